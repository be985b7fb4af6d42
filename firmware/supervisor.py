# Fault supervisor: evaluates every fault condition of firmware/faults.py each
# control cycle with its filter times, keeps the set of active faults, and tells
# the connector which fault decides its state. It never awaits: it runs inside
# the control step, so nothing else can delay it.
import time

from lib import log
from firmware import faults as F


class Supervisor:
    def __init__(self, cfg, station):
        self.cfg = cfg
        self.station = station
        self.active = {}        # key -> row of the active fault
        self._since = {}        # key -> ticks when the condition (or its absence) started
        self._rows = {}
        for row in F.FAULTS:
            self._rows[row[0]] = row
        self.ev_comm_reset_at = None

    # Conditions: each returns True while the fault condition is present.
    def c_diode(self, conn, io):
        return conn.diode_fault and conn.ev in "BC"

    def c_ev_comm(self, conn, io):
        return conn.ev in ("E", "F", "?")

    def c_vent(self, conn, io):
        return conn.ev == "D"

    def evaluate(self, conn, io):
        now = time.ticks_ms()
        changed = False
        for row in F.FAULTS:
            key, flags = row[0], row[4]
            present = getattr(self, "c_" + key)(conn, io)
            active = key in self.active
            if present == active:
                self._since.pop(key, None)
                continue
            if active and (flags & F.LATCH):
                continue
            if active and (flags & F.UNPLUG) and conn.ev != "A":
                continue
            start = self._since.get(key)
            if start is None:
                start = self._since[key] = now
            wait = row[5] if present else row[6]
            if time.ticks_diff(now, start) < wait:
                continue
            self._since.pop(key, None)
            changed = True
            if present:
                self.active[key] = row
                log.warn("fault", "%s raised" % row[1])
            else:
                del self.active[key]
                log.info("fault", "%s cleared" % row[1])
        if changed:
            self._publish(conn)
        return changed

    def _publish(self, conn):
        worst = None
        for row in self.active.values():
            if worst is None or row[3] > worst[3]:
                worst = row
        if worst is None:
            conn.set_fault(None, False)
            return
        blocking = False
        stop = False
        for row in self.active.values():
            blocking = blocking or bool(row[4] & F.BLOCK)
            stop = stop or bool(row[4] & F.STOP)
        conn.set_fault((worst[1], worst[2], None), blocking)
        if stop:
            conn.stop("EmergencyStop" if "emergency" in self.active else "Other")

    def state_f(self):
        for row in self.active.values():
            if row[4] & F.STATE_F:
                return True
        return False

    def clear_latched(self):
        """Manual reset: forget latched faults; present conditions raise them again."""
        for key in list(self.active):
            if self.active[key][4] & F.LATCH:
                del self.active[key]
