# The control loop: every cycle it reads the pilot and the card reader, runs
# the fault supervisor and the connector state machine, and has the output
# interlock (firmware/outputs.py) drive relay, lock and pilot.
import asyncio
from micropython import const

from lib import log
from firmware import pilot, watchdog

_CYCLE_MS = const(20)
_DEBOUNCE_READS = const(2)


class Control:
    def __init__(self, board, connector, supervisor, outputs, station):
        self.board = board
        self.conn = connector
        self.sup = supervisor
        self.out = outputs
        self.station = station  # told when the status changes
        self._candidate = "A"
        self._count = 0
        self._status = None
        self._fault = None
        self._weak = False

    def read_pilot(self):
        """Debounced EV state: leaving C is taken at once (the contactor must
        open within the IEC 61851-1 budget), anything else after two reads."""
        p = self.board.pilot
        ev = pilot.ev_state(p.high_mv())
        if ev != self._candidate:
            self._candidate = ev
            self._count = 1
        elif self._count < _DEBOUNCE_READS:
            self._count += 1
        current = self.conn.ev
        if ev != current and (current == "C" or self._count >= _DEBOUNCE_READS):
            return ev
        return current

    def step(self):
        ev = self.read_pilot()
        self.conn.on_ev(ev, self.out.check_diode(ev))
        self.sup.evaluate(self.conn, self.board)
        tag = self.board.rfid.poll()
        if tag:
            log.info("rfid", "card %s" % tag)
            self.conn.on_card(tag)
        self.conn.tick()
        self.apply()

    def apply(self):
        conn = self.conn
        sup = self.sup
        self.out.apply(conn, sup.state_f(), sup.lock_hold, sup.supply_in_range(self.board))
        # status() builds a tuple; its inputs are compared instead (no garbage per cycle).
        st = conn.status_name()
        if st is not self._status or conn.fault is not self._fault or conn.weak != self._weak:
            self._status = st
            self._fault = conn.fault
            self._weak = conn.weak
            self.board.signal.led(conn.light())
            self.station.poke_status()

    async def run(self):
        self.apply()
        while True:
            await self.board.wait_input(_CYCLE_MS)
            watchdog.checkin(watchdog.CONTROL)  # allocation-free
            watchdog.tick()
            try:
                self.step()
            except Exception as e:
                # Never let a bug leave the contactor closed.
                self.out.open()
                try:
                    log.error("control", "step failed, contactor opened: %r" % (e,))
                except MemoryError:  # no heap for the line: the loop goes on
                    pass
                e = None
                await asyncio.sleep(0.1)
