# The energy meter: polled over Modbus RTU, values kept as the meter reports
# them (the guide: no calculations or edits), the cumulative register exposed
# to transactions; and the meter values sent to the central system: sampled
# (MeterValueSampleInterval), clock-aligned (ClockAlignedDataInterval) and the
# StopTransaction transactionData. docs/metering.md.
import asyncio
import json
import time

from lib import isotime, log, transient
from firmware import watchdog
from lib.modbus import ModbusError, ModbusException, ModbusMaster, PARITY_EVEN, plan

# firmware.metervalues builds the MeterValues content: needed once per sample
# (seconds to minutes apart), not per poll, so it is loaded for that and dropped.
_MV = "firmware.metervalues"

POLL_MS = 1000
SLAVE = 1
ENERGY = ("Energy.Active.Import.Register", None)
BUNDLE = 4        # samples in one MeterValues at most (held while the link is busy)
STOP_CLOCK = 12   # Sample.Clock entries kept for StopTransaction.transactionData


class Metering:
    def __init__(self, board, cfg, outputs):
        self.board = board
        self.cfg = cfg
        self.outputs = outputs   # firmware.outputs.Outputs: the current the pilot offers
        self.master = ModbusMaster(board.meter_uart, baud=9600, parity=PARITY_EVEN)
        self.values = {}         # last good poll {(name, phase): value}, kept while the meter is down
        self._spare = None       # polled into, then swapped with values: a new object each good
                                 # poll (the supervisor's cue), no new dict (None: make one)
        self.ok = False          # the meter answered the last poll (fault supervisor: ModBusComsFailure)
        self.down = False        # it did not: polled and unanswered (values estimated)
        self.refused = False     # it answers, but with Modbus exceptions (PowerMeterFailure)
        self.est_wh = 0.0        # energy estimated since the last good poll while it is down
        self._wh = None
        self._phase = None
        self.three = False       # Phase is Three.Phase
        self.plan = None
        self.station = self.txs = self.cp = None
        self._tx = None          # transaction being reported
        self._next = 0           # ticks of its next periodic sample
        self._last = None        # deadband memory
        self._begin = None       # Transaction.Begin meterValue of self._tx
        self._clock = []         # Sample.Clock entries for StopTxnAlignedData
        self._pend = []          # samples not yet handed over ...
        self._pend_tx = None     # ... for this transaction (None: connector 0)
        self._slot = None
        self._hb = None          # Home Plus: register when the last session began

    def attach(self, station, txs, cp):
        self.station = station
        self.txs = txs
        self.cp = cp

    # --- readings ---------------------------------------------------------------

    def register_wh(self):
        """Last cumulative import register the meter reported (Wh; never decreases)."""
        return self._wh or 0

    def offered_a(self):
        return self.outputs.offered_a

    def reading(self, name, ph):
        if name == "Temperature":
            return self.board.sensors.read("temperature_dc") / 10
        if name == "Current.Offered":
            return self.offered_a()
        if name == "Power.Offered":
            v = self._get("Voltage")
            return None if v is None else self.offered_a() * v * (3 if self.three else 1)
        if not self.ok:
            return None
        v = self.values.get((name, ph))
        if v is None and ph == "L1":
            v = self.values.get((name, None))
        return v

    def energy(self, tx):
        """Energy.Active.Import.Register of the last poll, as reported for tx."""
        if self._wh is None:
            return None
        return self.session_wh(self._wh, tx["base"] if tx is not None else self._hb)

    def session_wh(self, reg, base):
        """The one formula for the reported register: the meter's register
        (Business), the energy since the session began at `base` (Home Plus
        resets it at each session, guide)."""
        if self.cfg.variant != "homeplus":
            return reg
        return max(0, reg - (reg if base is None else base))

    # --- polling ------------------------------------------------------------------

    async def poll_once(self):
        if self._phase != self.cfg.get("Phase"):
            self._phase = self.cfg.get("Phase")
            self.three = self._phase == "Three.Phase"
            self.plan = _load_plan(self.cfg.variant, self.three)
            self._spare = None  # the dicts hold the old plan's keys: start afresh
        try:
            vals = await self.master.poll(SLAVE, self.plan, self._spare)
        except ModbusError as e:
            if self.ok:
                log.warn("meter", "down: %r" % (e,))
            self.ok = False
            self.down = True
            self.refused = isinstance(e, ModbusException)
            return False
        self._spare = {} if self._spare is None else self.values
        self.values = vals
        self.est_wh = 0.0  # the register wins
        wh = vals.get(ENERGY)
        if wh is not None:
            wh = int(wh + 0.5)
            if self._wh is None or wh >= self._wh:
                self._wh = wh
            else:
                log.warn("meter", "register back %d<%d" % (wh, self._wh))
        if not self.ok:
            log.info("meter", "up, %s Wh" % self._wh)
        self.ok = True
        self.down = False
        self.refused = False
        return True

    def _get(self, name):
        v = self.values
        return v.get((name, "L1")) or v.get((name, None))

    def _estimate(self, dt_ms):
        # Meter down: last voltage x last measured current (the offered one
        # when none was measured) x phases, while the contactor is closed.
        if not self.down or not self.board.relay.closed():
            return
        v = self._get("Voltage") or 230.0
        a = self._get("Current.Import") or 0
        off = self.offered_a()
        if a < 0.5 or a > off:
            a = off
        self.est_wh += v * a * (3 if self.three else 1) * dt_ms / 3600000

    async def run(self):
        prev = time.ticks_ms()
        while True:
            watchdog.checkin(watchdog.METER)
            start = time.ticks_ms()
            await self.poll_once()
            now = time.ticks_ms()
            self._estimate(time.ticks_diff(now, prev))
            prev = now
            if self.station is not None:
                try:
                    self.report(now)
                except Exception as e:  # values are never worth the metering loop
                    log.error("meter", "report: %r" % (e,))
            spent = time.ticks_diff(time.ticks_ms(), start)
            await asyncio.sleep((POLL_MS - spent) / 1000 if spent < POLL_MS else 0.05)

    # --- meter values -------------------------------------------------------------

    def _current_tx(self):
        c = self.station.connector
        s = c.session
        return s.tx if c.phase == 3 and s is not None else None  # connector.TX

    def report(self, now):
        cfg = self.cfg
        p = self._pend
        i = 0
        while i < len(p):
            # held back a cycle (constrained link): only the energy register
            # (and estimate) is kept; entries with nothing left are dropped
            sv = [s for s in p[i]["sampledValue"] if s["measurand"].startswith("Energy.Active.Import")]
            if sv:
                p[i]["sampledValue"] = sv
                i += 1
            else:
                p.pop(i)
        tx = self._current_tx()
        if tx is not self._tx:
            self._tx = tx
            self._clock = []
            self._begin = None
            if tx is not None:
                self._hb = tx["base"]
                self._last = {}
                self._next = time.ticks_add(now, cfg.get("MeterValueSampleInterval") * 1000)
                self._begin = self._sample(cfg.get("StopTxnSampledData"), "Transaction.Begin",
                                           tx["ts"], tx["start"])
        elif self._hb is None and self._wh is not None:
            self._hb = self._wh
        iv = cfg.get("MeterValueSampleInterval")
        if tx is not None and iv > 0 and time.ticks_diff(now, self._next) >= 0:
            self._next = time.ticks_add(self._next, iv * 1000)
            if time.ticks_diff(now, self._next) >= 0:
                self._next = time.ticks_add(now, iv * 1000)
            self._add(tx, self._sample(cfg.get("MeterValuesSampledData"), "Sample.Periodic",
                                       self.board.clock.now(), self.energy(tx), self._last))
        ci = cfg.get("ClockAlignedDataInterval")
        if ci > 0:
            slot = self.board.clock.now() // ci
            if self._slot is not None and slot == self._slot + 1:
                ts = slot * ci
                self._add(tx, self._sample(cfg.get("MeterValuesAlignedData"), "Sample.Clock",
                                           ts, self.energy(tx)))
                if tx is not None:
                    mv = self._sample(cfg.get("StopTxnAlignedData"), "Sample.Clock", ts, self.energy(tx))
                    if mv is not None:
                        if len(self._clock) >= STOP_CLOCK:
                            self._clock.pop(0)
                        # Kept as JSON text for the whole session: a third of
                        # the heap the dicts take (decoded again at the stop).
                        self._clock.append(json.dumps(mv))
            self._slot = slot  # a clock jump resynchronises without a reading
        self._flush(False)

    def _sample(self, csl, ctx, ts, energy, last=None):
        """metervalues.sample(). Imported once and kept: it runs every few
        seconds, and loading and dropping it each time (transient) cost more
        in heap churn than its ~700 B resident (bytecode in ROMFS)."""
        return transient.load(_MV).sample(self, csl, ctx, ts, energy, last)

    def _add(self, tx, mv):
        if mv is None:
            return
        if tx is not self._pend_tx:
            self._flush(True)
            self._pend_tx = tx
        self._pend.append(mv)

    def _flush(self, force):
        p = self._pend
        if not p:
            return
        tx = self._pend_tx
        up = self.cp.accepted
        if tx is not None:
            if force or up or len(p) >= BUNDLE:
                self.txs.queue_meter_values(tx, p)
                self._pend = []
        elif up:
            asyncio.create_task(self._send({"connectorId": 0, "meterValue": p}))
            self._pend = []
        elif len(p) >= BUNDLE:
            p.pop(0)  # non-transaction values are not journaled: the oldest goes

    async def _send(self, payload):
        try:
            await self.cp.call("MeterValues", payload)
        except Exception as e:
            log.warn("meter", "MeterValues: %r" % (e,))

    async def trigger(self, cid):
        """TriggerMessage MeterValues: MeterValuesSampledData now (context Trigger)."""
        tx = self._current_tx()
        if tx is not None:
            self.txs.reporting(tx)  # the register it reports is durable first
        mv = self._sample(self.cfg.get("MeterValuesSampledData"), "Trigger",
                          self.board.clock.now(), self.energy(tx))
        if mv is not None:
            p = {"connectorId": 1 if cid is None else cid, "meterValue": [mv]}
            tid = self.txs.transaction_id(tx) if tx is not None else None
            if tid is not None and p["connectorId"] == 1:
                p["transactionId"] = tid
            await self.cp.call("MeterValues", p)

    def tx_data(self, tx, stop_wh, now):
        """StopTransaction.transactionData: StopTxnSampledData at Transaction.Begin
        and .End, StopTxnAlignedData at each clock boundary in between. Samples
        still held for this transaction are queued first (they come before the
        StopTransaction)."""
        if self._pend_tx is tx:
            self._flush(True)
        out = []
        b = self._begin if self._tx is tx else None
        csl = self.cfg.get("StopTxnSampledData")
        if b is None and ENERGY[0] in csl.split(","):
            b = {"timestamp": isotime.format(tx["ts"]), "sampledValue": [
                {"value": str(tx["start"]), "context": "Transaction.Begin", "measurand": ENERGY[0], "unit": "Wh"}]}
        if b is not None:
            out.append(b)
        if self._tx is tx:
            for c in self._clock:
                out.append(json.loads(c))
        e = self._sample(csl, "Transaction.End", now, stop_wh)
        if e is not None:
            out.append(e)
        self._tx = None
        self._clock = []
        return out or None


def _load_plan(variant, three):
    """The poll plan for this variant's meter and the Phase setting. The
    register maps are only needed to make the plan, so the module is dropped
    again afterwards (its tables would otherwise stay on the heap for good)."""
    mm = transient.load("firmware.meter_maps")

    if three or variant != "homeplus":
        m = mm.SDM630
        wanted = mm.DEFAULT_THREE_PHASE
        if not three:
            wanted = [k for k in wanted if k[1] in (None, "L1")]
    else:
        m = mm.SDM120
        wanted = mm.DEFAULT_SINGLE_PHASE
    p = plan(m, wanted)
    transient.drop("firmware.meter_maps")
    return p
