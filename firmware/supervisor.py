# Fault supervisor: evaluates every fault condition of firmware/faults.py each
# control cycle with its filter times, keeps the set of active faults, and tells
# the connector (and connector 0) which fault decides the state. It never
# awaits and allocates nothing in a cycle where no fault changes: it runs
# inside the control step, so nothing else can delay it. docs/faults.md.
import time

from lib import fsutil, log
from firmware import faults as F
from micropython import const

_LATCH_FILE = const("faults.latch")


class Supervisor:
    def __init__(self, cfg, station, outputs, meter=None):
        self.cfg = cfg
        self.station = station      # told which fault decides connector 0's status
        self.out = outputs          # firmware.outputs.Outputs: opens the contactor, knows what it drove
        self.meter = meter
        self.board = b = station.board
        self.t = t = F.T
        self.root = b.flash.root or ""
        try:
            import json
            with open(self.root + "faults.json") as f:
                d = json.load(f)
            # Only known thresholds of the right type: a string or a list
            # where a number belongs would raise in every control step.
            for k in d if isinstance(d, dict) else ():
                v = d[k]
                if k in t and (type(v) is int if type(t[k]) is int else type(v) is list and v
                                and len(v) % 2 == 0 and all(type(x) is int for x in v)):
                    t[k] = tuple(v) if type(v) is list else v
                else:
                    log.warn("fault", "faults.json: %s ignored" % k)
        except (OSError, ValueError):
            pass
        self.active = {}        # key -> row of the active fault
        self._now = {}          # key -> condition present this cycle (_conditions)
        for r in F.FAULTS:
            self._now[r[0]] = False
        self._since: list = [None] * len(F.FAULTS)  # ticks when the condition (or its absence) started
        self._vals = None       # meter values the grid figures come from
        self.v_lo = self.v_hi = self.hz = self.amps = None
        self._step = 0          # derating step
        self._lock = [None, 0, 0]  # lock: wanted, retries, ticks of the last drive
        self._evc = 0           # ticks of the EV communication reset cycle start
        self.reset_failed = False
        self.lock_hold = False  # a HOLD fault keeps the cable locked (welded contactor)
        self._dirty = False
        self._unlatch = False   # manual reset pending
        raw = fsutil.read(self.root + _LATCH_FILE)
        try:
            raw = (raw or b"").decode().split()
        except UnicodeError:  # a damaged file latches nothing
            raw = ()
        for key in raw:
            for r in F.FAULTS:
                if r[0] == key and r[4] & F.LATCH:
                    self.active[key] = r
                    self._dirty = True

    # --- conditions -----------------------------------------------------------

    def _conditions(self, conn, io):
        """Every condition of F.FAULTS, True while present, sampled in one pass
        into self._now (key -> bool): a call per cycle, not one per fault
        (each function costs heap on the board, and a call time)."""
        c = self._now
        t = self.t
        a = self.active
        s = io.sensors
        out = self.out
        amps = self.amps
        c["ground"] = s.read("ne_mv") > t["ne_mv"]
        # The feedback contact against what the interlock drove.
        c["switch"] = io.relay.closed() != out.relay
        c["button"] = io.button.pressed()
        c["leak"] = s.read("leak_ac_ua") >= t["leak_ac_ua"] or s.read("leak_dc_ua") >= t["leak_dc_ua"]
        c["i_max"] = amps is not None and amps > t["i_max"]
        if amps is None or not out.relay:
            c["i_ev"] = "i_ev" in a
        else:
            off = conn.offered_amps() * 1000
            tol = off // 10
            if tol < t["i_tol"]:
                tol = t["i_tol"]
            c["i_ev"] = amps > off + tol
        c["lock"] = self._lock_fault(io)
        c["overheat"] = s.read("temperature_dc") > (t["t_resume"] if "overheat" in a else t["t_stop"])
        c["diode"] = conn.diode_fault and conn.ev in "BC"
        c["ev_comm"] = conn.ev in "EF?"
        c["supply"] = not s.read("supply_ok")
        c["ov"] = self._band("ov", self.v_hi, 0, t["v_max"], t["v_hyst"])
        c["uv"] = self._band("uv", self.v_lo, t["v_min"], 100000, t["v_hyst"])
        hz = self.hz
        nominal = 60000 if hz is not None and hz > 55000 else 50000
        c["hz"] = self._band("hz", hz, nominal - t["hz_tol"], nominal + t["hz_tol"], t["hz_hyst"])
        c["vpr"] = not s.read("phase_ok")
        c["vent"] = conn.ev == "D"
        c["reset"] = self.reset_failed
        # A silent meter (communication lost: OtherError/ModBusComsFailure),
        # or one that answers but cannot be read (exception replies): PowerMeterFailure.
        m = self.meter
        if m is not None and not m.ok:
            c["meter"] = not m.refused
            c["meter_read"] = m.refused
        else:
            c["meter"] = c["meter_read"] = False
        c["derate"] = self._derate(conn, io)
        c["reader"] = not io.rfid.ok()
        c["sd"] = not io.sd.ok()
        c["weak"] = self._weak(conn, io)

    def _lock_fault(self, io):
        # Lock feedback not following the command: drive the lock again every
        # lock_retry_ms, lock_retries times, then it is a fault.
        L = self._lock
        want = self.out.lock
        if want is None or io.lock.locked() == want:
            L[1] = 0
            L[0] = None
            return False
        now = time.ticks_ms()
        if L[0] != want:
            L[0] = want
            L[1] = 0
            L[2] = now
        elif L[1] < self.t["lock_retries"]:
            if time.ticks_diff(now, L[2]) >= self.t["lock_retry_ms"]:
                L[1] += 1
                L[2] = now
                log.warn("fault", "lock retry %d" % L[1])
                self.out.redrive_lock(want)
        elif time.ticks_diff(now, L[2]) >= self.t["lock_retry_ms"]:
            return True
        return "lock" in self.active

    def _band(self, key, v, lo, hi, hyst):
        if v is None:
            return key in self.active
        if key in self.active:
            lo += hyst
            hi -= hyst
        return v < lo or v > hi

    def _derate(self, conn, io):
        c = self.t["derate"]
        temp = io.sensors.read("temperature_dc")
        s = self._step
        while 2 * s < len(c) and temp >= c[2 * s]:
            s += 1
        while s and temp < c[2 * s - 2] - self.t["derate_hyst"]:
            s -= 1
        if s != self._step:
            self._step = s
            conn.derate_a = c[2 * s - 1] if s else None
        return s > 0

    def _weak(self, conn, io):
        # The guide: only in Available, never a Faulted state. Only while the
        # link is up: a link that is down has no signal to judge (the HAL reads
        # it as -127 dBm) and its recovery is firmware/netmgr.py's, which also
        # owns the recovery of a weak one (docs/network.md).
        n = io.net
        if not n.up() or conn.status_name() != "Available":
            return False
        lim = self.t["rssi_min"]
        if "weak" in self.active:
            lim += self.t["rssi_hyst"]
        return n.rssi() < lim

    # --- the cycle ------------------------------------------------------------

    def _grid(self, vals):
        """Voltage / frequency / current figures of a new meter reading (once
        per poll, not per cycle). Single phase: L1 only."""
        self._vals = vals
        three = self.cfg.get("Phase") == "Three.Phase"
        lo = hi = amps = hz = None
        for k in vals:
            name, ph = k
            if ph is not None and (ph == "N" or len(ph) > 2 or (not three and ph != "L1")):
                continue
            v = vals[k]
            if name == "Voltage":
                v = int(v)
                lo = v if lo is None or v < lo else lo
                hi = v if hi is None or v > hi else hi
            elif name == "Current.Import":
                v = int(v * 1000)
                amps = v if amps is None or v > amps else amps
            elif name == "Frequency":
                hz = int(v * 1000)
        self.v_lo, self.v_hi, self.amps, self.hz = lo, hi, amps, hz

    def evaluate(self, conn, io):
        now = time.ticks_ms()
        m = self.meter
        if m is not None:
            if not m.ok:
                if self._vals is not None:
                    self._vals = None
                    self.v_lo = self.v_hi = self.amps = self.hz = None  # unknown: nothing changes
            elif m.values is not self._vals:
                self._grid(m.values)
        rows = F.FAULTS
        since = self._since
        active = self.active
        changed = self._dirty
        unlatch = False
        self._conditions(conn, io)
        now_present = self._now
        for i in range(len(rows)):
            row = rows[i]
            key = row[0]
            flags = row[4]
            present = now_present[key]
            on = key in active
            if present == on:
                since[i] = None
                continue
            if on and (flags & F.LATCH) and not self._unlatch:
                continue
            if on and (flags & F.UNPLUG) and conn.ev != "A":
                continue
            start = since[i]
            if start is None:
                start = since[i] = now
            if time.ticks_diff(now, start) < (row[5] if present else row[6]):
                continue
            since[i] = None
            changed = True
            if present:
                if flags & F.BLOCK:
                    self.out.open()  # the contactor first, everything else after
                active[key] = row
                if key == "ev_comm":
                    self._evc = now
                elif flags & F.LATCH:
                    self._later(self._save)
                elif key == "sd":
                    log.files(None)  # the log files live on the SD card
            else:
                del active[key]
                if flags & F.LATCH:
                    self._later(self._save)
                elif key == "button":
                    unlatch = True  # the button cycle is a manual reset (next cycle)
        self._unlatch = unlatch
        if changed:
            self._dirty = False
            self._publish(conn, io)
        return changed

    def _publish(self, conn, io):
        worst = cpw = None
        blocking = stop = hold = False
        for row in self.active.values():
            f = row[4]
            if f & F.BLOCK:
                blocking = True
            if f & F.STOP:
                stop = True
            if f & F.HOLD:
                hold = True
            if row[0] != "weak" and (worst is None or row[3] > worst[3]):
                worst = row
            if f & F.CP and (cpw is None or row[3] > cpw[3]):
                cpw = row
        if blocking:
            self.out.open()
        st = self.station
        self.lock_hold = hold
        conn.weak = "weak" in self.active
        conn.set_fault(None if worst is None else (worst[1], worst[2], worst[7]), blocking)
        if stop:
            conn.stop("EmergencyStop" if "button" in self.active else "Other")
        st.cp_fault = None if cpw is None else (
            "Faulted" if cpw[4] & F.BLOCK else "Available", cpw[1], cpw[2], cpw[7])
        st.poke_status()
        log.warn("fault", "faults active: %s" % " ".join(self.active))

    def supply_in_range(self, io):
        """The supply as measured now (the faults need their filter time first):
        input power present and the voltage, when known, inside the band."""
        if not io.sensors.read("supply_ok"):
            return False
        t = self.t
        return (self.v_lo is None or self.v_lo >= t["v_min"]) and (self.v_hi is None or self.v_hi <= t["v_max"])

    def state_f(self):
        """EV communication reset: after evc_wait_s with the error, the pilot
        goes to state F for evc_f_ms, then the EV is evaluated again."""
        if "ev_comm" not in self.active:
            return False
        el = time.ticks_diff(time.ticks_ms(), self._evc)
        wait = self.t["evc_wait_s"] * 1000
        if el < wait:
            return False
        if el < wait + self.t["evc_f_ms"]:
            return True
        self._evc = time.ticks_ms()
        log.info("fault", "EV comm reset done")
        return False

    def _later(self, fn):
        # Flash writes never run inside the control step.
        import asyncio
        c = self._run(fn)
        try:
            asyncio.create_task(c)
        except RuntimeError:  # no event loop (host unit tests)
            c.close()
            fn()

    async def _run(self, fn):
        fn()

    def _save(self):
        # Atomic: a power cut mid-write must not forget a latched fault.
        keys = [k for k in self.active if self.active[k][4] & F.LATCH]
        path = self.root + _LATCH_FILE
        try:
            if keys:
                fsutil.write_atomic(path, " ".join(keys))
            else:
                import os
                os.remove(path)
        except OSError as e:
            if keys:
                log.error("fault", "cannot record latched faults: %r" % (e,))

    def manual_reset(self):
        """Latched faults whose condition is gone clear at the next cycle."""
        log.info("fault", "manual reset")
        self._unlatch = True

    async def before_reset(self, kind):
        """Reset.req hook: a Hard Reset is a manual reset of latched faults. If
        the controller is still running reset_wait_s later, the reset failed:
        ResetFailure, and the watchdog (not fed) resets it instead."""
        import asyncio
        if kind == "Hard":
            self.manual_reset()
        await asyncio.sleep(0)
        asyncio.create_task(self._reset_check())

    async def _reset_check(self):
        import asyncio
        await asyncio.sleep(self.t["reset_wait_s"] + self.cfg.get("ResetRetries"))
        self.reset_failed = True
        log.error("fault", "reset failed: watchdog reset")
        self.board.wdt.start(1000)
