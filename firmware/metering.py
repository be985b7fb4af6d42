# The energy meter: polled over Modbus RTU, values kept as the meter reports
# them (the guide: no calculations or edits), the cumulative register exposed
# to transactions; and the meter values sent to the central system: sampled
# (MeterValueSampleInterval), clock-aligned (ClockAlignedDataInterval) and the
# StopTransaction transactionData. docs/metering.md.
import asyncio
import time
from micropython import const

from lib import isotime, log, ocppj, transient
from firmware import watchdog
from lib.modbus import ModbusError, ModbusException, ModbusMaster, PARITY_EVEN, plan
from firmware.stopdata import StopData

# firmware.metervalues builds the MeterValues content: needed once per sample
# (seconds to minutes apart), not per poll, so it is loaded for that and dropped.
_MV = const("firmware.metervalues")

_POLL_MS = const(1000)
_HALF_POLL = const(_POLL_MS // 2)
_SLAVE = const(1)
_ENERGY = const(("Energy.Active.Import.Register", None))
_BUNDLE = const(4)        # connector 0 registers kept while not accepted (transaction samples are journaled)
_MV_BYTES = const(2048)   # a meterValue's JSON at most (three phases, every measurand: about 1.7 KB)


class Metering:
    def __init__(self, board, cfg, outputs, cp):
        self.board = board
        self.cp = cp             # firmware.chargepoint.ChargePoint
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
        self.station = self.txs = None  # attach()
        self._tx = None          # transaction being reported
        self._next = time.ticks_ms()  # ticks of its next periodic sample (set when a tx begins)
        self._last = None        # deadband memory
        # Samples are never dicts: a transaction sample is written straight
        # into its journal record, what is kept (below) is JSON text.
        self._stop = StopData(board.flash.root)  # StopTransaction.transactionData, on flash
        self._pend = []          # connector 0 energy registers while not accepted (JSON text)
        self._slot = None
        self._hb = None          # Home Plus: register when the last session began

    def attach(self, station, txs):
        self.station = station
        self.txs = txs

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
        phase = self.cfg.get("Phase")
        if self._phase != phase:
            three = phase == "Three.Phase"
            # Noted as done only once the plan is made: a MemoryError here
            # costs this poll, and the next one makes the plan again.
            self.plan = _load_plan(self.cfg.variant, three)
            self._phase = phase
            self.three = three
            self._spare = None  # the dicts hold the old plan's keys: start afresh
        try:
            vals = await self.master.poll(_SLAVE, self.plan, self._spare)
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
        wh = vals.get(_ENERGY)
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
        prev = due = time.ticks_ms()
        while True:
            watchdog.checkin(watchdog.METER)
            await self.poll_once()
            now = time.ticks_ms()
            self._estimate(time.ticks_diff(now, prev))
            prev = now
            if self.station is not None:
                try:
                    await self.report(now)
                except Exception as e:  # values are never worth the metering loop
                    log.error("meter", "report failed: %r" % (e,))
            # Polls on a grid of _POLL_MS, not _POLL_MS after each wake-up: a
            # wake-up's delay is not carried into every later poll (nor into
            # the samples taken at them, seconds apart on the wall clock).
            due = time.ticks_add(due, _POLL_MS)
            left = time.ticks_diff(due, time.ticks_ms())
            if left <= 0:  # a poll longer than the period: the grid begins again
                left = 50
                due = time.ticks_add(time.ticks_ms(), left)
            await asyncio.sleep_ms(left)

    # --- meter values -------------------------------------------------------------

    def _current_tx(self):
        st = self.station
        if st is None:  # not attached yet
            return None
        c = st.connector
        s = c.session
        return s.tx if c.phase == 3 and s is not None else None  # connector.TX

    async def report(self, now):
        cfg = self.cfg
        tx = self._current_tx()
        if tx is not self._tx:
            self._tx = tx
            if tx is not None:
                self._hb = tx["base"]
                self._last = {}
                self._next = time.ticks_add(now, cfg.get("MeterValueSampleInterval") * 1000)
                # In the message buffer, waited for: a buffer of its own (2 KB)
                # could be refused on a busy heap, and this value is written once.
                async with self.cp.buffer as out:
                    self._stop.begin(tx["l"], self._into(out, cfg.get("StopTxnSampledData"),
                                                         "Transaction.Begin", tx["ts"], tx["start"]))
        elif self._hb is None and self._wh is not None:
            self._hb = self._wh
        iv = cfg.get("MeterValueSampleInterval")
        # A sample is taken at the poll nearest to when it is due, not at the
        # first one after: the schedule counts from a poll's time and the
        # loop polls once a second, so a poll ending a millisecond earlier
        # than the one before found the sample not yet due and it came a
        # poll late (with a 1 s interval: a second without MeterValues).
        if tx is not None and iv > 0 and time.ticks_diff(now, self._next) >= -_HALF_POLL:
            self._next = time.ticks_add(self._next, iv * 1000)
            if time.ticks_diff(now, self._next) >= -_HALF_POLL:
                self._next = time.ticks_add(now, iv * 1000)  # a late loop: counted from now
            await self._journal(tx, cfg.get("MeterValuesSampledData"), "Sample.Periodic",
                                self.board.clock.now(), self._last)
        ci = cfg.get("ClockAlignedDataInterval")
        if ci > 0:
            slot = self.board.clock.now() // ci
            if self._slot is not None and slot == self._slot + 1:
                ts = slot * ci
                csl = cfg.get("MeterValuesAlignedData")
                if tx is not None:
                    await self._journal(tx, csl, "Sample.Clock", ts)
                    async with self.cp.buffer as out:
                        mv = self._into(out, cfg.get("StopTxnAlignedData"), "Sample.Clock", ts, self.energy(tx))
                        if mv is not None:
                            self._stop.clock(mv)
                else:
                    self._idle(csl, ts)
            self._slot = slot  # a clock jump resynchronises without a reading
        if self._pend and self.cp.accepted:
            p = self._pend
            self._pend = []
            fields = {"connectorId": 0}
            asyncio.create_task(self._send(ocppj.Streamed(lambda out: ocppj.write_obj(out, fields, "meterValue", p),
                                                          lambda: ocppj.built(fields, "meterValue", p))))

    def _sample(self, csl, ctx, ts, energy, out, last=None):
        # firmware.metervalues.sample(). Imported once and kept: it runs every
        # few seconds, and loading and dropping it each time (transient) cost
        # more in heap churn than its ~700 B resident (bytecode in ROMFS).
        return transient.load(_MV).sample(self, csl, ctx, ts, energy, out, last)

    async def _journal(self, tx, csl, ctx, ts, last=None):
        """A transaction sample, written into its journal record in the
        message buffer (held meanwhile: sends wait a moment): no heap."""
        txs = self.txs
        if txs is None:  # (attached before a transaction exists)
            return
        async with self.cp.buffer as out:
            txs.begin_meter_values(tx, out)
            if self._sample(csl, ctx, ts, self.energy(tx), out, last) >= 0:
                txs.end_meter_values(tx, out)

    def _into(self, out, csl, ctx, ts, energy):
        """A meterValue's JSON written into out (an empty ocppj.Out), as a
        memoryview of it, or None when nothing is left."""
        return memoryview(out.buf)[:out.n] if self._sample(csl, ctx, ts, energy, out) >= 0 else None

    def _idle(self, csl, ts):
        """A clock-aligned sample without a transaction (connector 0): sent at
        once while the central system has accepted us, written as the message is
        encoded. Otherwise only its energy register is kept, _BUNDLE at most,
        the oldest dropped (not journaled: no transaction depends on it)."""
        if self.cp.accepted:
            asyncio.create_task(self._send(self._streamed(0, None, csl, "Sample.Clock", ts, self.energy(None))))
            return
        # the register's JSON, for use before the next await: in the message
        # buffer, or in a buffer of its own while a send holds it
        mv = self._into(self.cp.writer() or ocppj.Out(_MV_BYTES),
                        _ENERGY[0] if _ENERGY[0] in csl.split(",") else "", "Sample.Clock", ts, self.energy(None))
        if mv is not None:
            mv = bytes(mv)  # a few dozen bytes: the register only
            if len(self._pend) >= _BUNDLE:
                self._pend.pop(0)
            self._pend.append(mv)

    def _streamed(self, cid, tid, csl, ctx, ts, energy):
        """A MeterValues payload whose one meterValue is sampled as it is
        encoded (no copy on the heap); nothing to send raises Empty."""
        def write(out):
            out.write('{"connectorId":%d' % cid)
            if tid is not None:
                out.write(',"transactionId":%d' % tid)
            out.write(b',"meterValue":[')
            if self._sample(csl, ctx, ts, energy, out) < 0:
                raise Empty()
            out.write(b"]}")

        def build():  # only if it did not fit the buffer
            o = ocppj.Out(_MV_BYTES + 64)
            write(o)
            return ocppj.loads(memoryview(o.buf)[:o.n])

        return ocppj.Streamed(write, build)

    async def _send(self, payload):
        try:
            await self.cp.call("MeterValues", payload)
        except Empty:
            pass
        except Exception as e:
            log.warn("meter", "MeterValues: %r" % (e,))

    async def trigger(self, cid):
        """TriggerMessage MeterValues: MeterValuesSampledData now (context Trigger)."""
        tx = self._current_tx()
        txs = self.txs
        if tx is not None and txs is not None:  # (a transaction: attached)
            txs.reporting(tx)  # the register it reports is durable first
        cid = 1 if cid is None else cid
        tid = txs.transaction_id(tx) if tx is not None and txs is not None and cid == 1 else None
        try:
            await self.cp.call("MeterValues", self._streamed(
                cid, tid, self.cfg.get("MeterValuesSampledData"), "Trigger", self.board.clock.now(),
                self.energy(tx)))
        except Empty:
            pass

    def tx_data(self, tx, stop_wh, now):
        """StopTransaction.transactionData as items of ocppj.write_obj, written
        when the stop is journaled (right after this): StopTxnSampledData at
        Transaction.Begin and .End, StopTxnAlignedData at each clock boundary in
        between (the last 12), from the file kept for the transaction."""
        csl = self.cfg.get("StopTxnSampledData")
        begin = None
        if _ENERGY[0] in csl.split(","):
            # nothing on file for it: meterStart is all that is known of the beginning
            begin = '{"timestamp":"%s","sampledValue":[{"value":"%d","context":"Transaction.Begin",' \
                '"measurand":"%s","unit":"Wh"}]}' % (isotime.format(tx["ts"]), tx["start"], _ENERGY[0])
        items = [self._stop.items(tx["l"], begin)]

        def end(out, sep):
            at = out.n
            if sep:
                out.write(b",")
            if self._sample(csl, "Transaction.End", now, stop_wh, out) < 0:
                out.n = at
                return sep
            return True

        items.append(end)
        self._tx = None
        return items


class Empty(Exception):
    """A meter value with nothing left to send (no measurand has a value)."""


def _load_plan(variant, three):
    """The poll plan for this variant's meter and the Phase setting. The
    register maps are only needed to make the plan, so the module is dropped
    again afterwards (its tables would otherwise stay on the heap for good)."""
    try:
        mm = transient.load("firmware.meter_maps")
        if three or variant != "homeplus":
            model = "SDM630"
            wanted = mm.DEFAULT_THREE_PHASE
            if not three:
                wanted = [k for k in wanted if k[1] in (None, "L1")]
        else:
            model = "SDM120"
            wanted = mm.DEFAULT_SINGLE_PHASE
        return plan(mm.get(model, wanted), wanted)  # the wanted entries of the map only
    finally:
        transient.drop("firmware.meter_maps")
