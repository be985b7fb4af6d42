# The control loop: read the pilot and the card reader, run the fault
# supervisor and the connector state machine, drive relay, lock and pilot.
# Output order is the safety rule: the contactor opens before anything else
# changes and closes last, after the lock is confirmed.
import asyncio
import time

from lib import log
from firmware import pilot

CYCLE_MS = 20
DEBOUNCE_READS = 2
PWM_SETTLE_MS = 100  # the negative plateau is only measured once the PWM runs


class Control:
    def __init__(self, board, station, supervisor):
        self.board = board
        self.station = station
        self.conn = station.connector
        self.sup = supervisor
        self._candidate = "A"
        self._count = 0
        self._relay = False
        self._lock = None
        self._duty = -1
        self._pwm_since = None
        self._status = None
        self._fault = None
        self._weak = False
        supervisor.ctl = self
        station.apply_now = self.apply

    def read_pilot(self):
        """Debounced EV state: leaving C is taken at once (the contactor must
        open within the IEC 61851-1 budget), anything else after two reads."""
        p = self.board.pilot
        ev = pilot.ev_state(p.high_mv())
        if ev != self._candidate:
            self._candidate = ev
            self._count = 1
        elif self._count < DEBOUNCE_READS:
            self._count += 1
        current = self.conn.ev
        if ev != current and (current == "C" or self._count >= DEBOUNCE_READS):
            return ev
        return current

    def diode_ok(self, ev):
        """Diode verdict; keeps the last one while it cannot be measured."""
        if ev not in "BC":
            return True
        since = self._pwm_since
        if since is None or time.ticks_diff(time.ticks_ms(), since) < PWM_SETTLE_MS:
            return not self.conn.diode_fault
        return pilot.diode_ok(self.board.pilot.low_mv())

    def step(self):
        ev = self.read_pilot()
        self.conn.on_ev(ev, self.diode_ok(ev))
        self.sup.evaluate(self.conn, self.board)
        tag = self.board.rfid.poll()
        if tag:
            log.info("rfid", "card %s" % tag)
            self.conn.on_card(tag)
        self.conn.tick()
        self.apply()

    def apply(self):
        b = self.board
        conn = self.conn
        conn.compute_outputs(b.lock.locked(), self.sup.state_f())
        if not conn.relay_wanted and self._relay:
            b.relay.set(False)
            self._relay = False
        if conn.lock_wanted != self._lock:
            b.lock.set(conn.lock_wanted)
            self._lock = conn.lock_wanted
        if conn.duty_wanted != self._duty:
            oscillating = bool(conn.duty_wanted)
            if oscillating != bool(self._duty and self._duty != -1):
                self._pwm_since = time.ticks_ms() if oscillating else None
            b.pilot.set_duty(conn.duty_wanted)
            self._duty = conn.duty_wanted
        if conn.relay_wanted and not self._relay:
            b.relay.set(True)
            self._relay = True
        # status() builds a tuple; its inputs are compared instead (no garbage per cycle).
        st = conn.status_name()
        if st is not self._status or conn.fault is not self._fault or conn.weak != self._weak:
            self._status = st
            self._fault = conn.fault
            self._weak = conn.weak
            b.signal.led(conn.state_name())
            self.station.poke_status()

    async def run(self):
        self.apply()
        while True:
            await self.board.wait_input(CYCLE_MS)
            try:
                self.step()
            except Exception as e:
                # Never let a bug leave the contactor closed.
                b = self.board
                b.relay.set(False)
                self._relay = False
                log.error("control", "step failed, contactor opened: %r" % (e,))
                await asyncio.sleep(0.1)
