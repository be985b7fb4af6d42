# The output interlock: the one module that drives the contactor relay, the
# connector lock and the control pilot's PWM. Everything else asks it: the
# connector state machine says what the session wants, the fault supervisor
# may open the contactor at once, and only `apply` closes it, when every
# condition of the interlock (may_close) holds in the same control cycle.
#
# Opening is immediate and comes first; closing comes last, after the lock
# and the PWM are driven. The diode of the EV (IEC 61851-1) is verified here
# because only this module knows since when the PWM of the current offer runs.
import time

from firmware import pilot
from micropython import const

_PWM_SETTLE_MS = const(100)  # the negative plateau is measured once the PWM has run this long

# Connector phases (firmware/connector.py) the outputs depend on.
_TX = const(3)
_FINISHING = const(4)


class Outputs:
    def __init__(self, board):
        self.board = board
        self.relay = False        # what the relay was driven to (the supervisor checks the feedback against it)
        self.lock = None          # what the lock was driven to (None: not yet)
        self.duty = -1            # PWM duty driven (None: steady +12 V, 0: state F; -1: not yet)
        self.offered_a = 0        # current the PWM advertises (0: none)
        self.diode_verified = False  # the negative plateau was measured healthy during this PWM run
        self.diode_bad = False    # it was measured failed (kept until the EV is unplugged or measured healthy)
        self._pwm_since = None    # ticks when the current PWM run started (None: no PWM)
        self._amps = 0            # pilot.duty_for(_amps) == _duty: the float is made when the current changes
        self._duty = None

    # --- the interlock ------------------------------------------------------------

    def may_close(self, conn, offering, supply_ok):
        """The one place that decides whether the contactor may be closed."""
        return (offering                        # authorized transaction, operative, no blocking fault,
                                                # energy still allowed (MaxEnergyOnInvalidId)
                and conn.ev == "C"              # the EV asks for energy (never D: no ventilation)
                and self._pwm_since is not None  # the PWM of the current offer runs ...
                and self.diode_verified         # ... and the EV's diode was seen during it
                and self.board.lock.locked()    # the cable lock is confirmed by its feedback
                and not conn.blocking           # no blocking fault
                and supply_ok)                  # the supply is in range now (not only "no fault yet")

    # --- immediate actions ------------------------------------------------------------

    def open(self):
        """Open the contactor now. Always drives the pin, whatever we believe it is."""
        self.board.relay.set(False)
        self.relay = False

    def redrive_lock(self, locked):
        """Drive the lock motor once more (the supervisor's lock retries)."""
        self.board.lock.set(not locked)
        self.board.lock.set(locked)
        self.lock = locked

    # --- diode ---------------------------------------------------------------------------

    def check_diode(self, ev):
        """Measure the diode when it can be: EV in B or C and the PWM running for
        _PWM_SETTLE_MS. Returns False while the diode is known to have failed."""
        if ev != "B" and ev != "C":
            self.diode_bad = False
            self.diode_verified = False
            return True
        since = self._pwm_since
        if since is not None and time.ticks_diff(time.ticks_ms(), since) >= _PWM_SETTLE_MS:
            ok = pilot.diode_ok(self.board.pilot.low_mv())
            self.diode_verified = ok
            self.diode_bad = not ok
        return not self.diode_bad

    # --- the control cycle -------------------------------------------------------------------

    def apply(self, conn, state_f=False, lock_hold=False, supply_ok=True):
        """Drive relay, lock and PWM from the connector's state. Called every
        control cycle; allocates nothing unless the offered current changes."""
        b = self.board
        tx = conn.phase == _TX
        offering = tx and not conn.blocking and conn.energy_allowed() and conn.operative_for_tx()
        amps = conn.offered_amps() if offering else 0
        if amps != self._amps:
            self._amps = amps
            self._duty = pilot.duty_for(amps)
        duty = self._duty if offering else None
        if state_f:
            duty = 0  # state F: tell the EV the EVSE is unavailable
        close = self.may_close(conn, offering and duty is not None and duty != 0, supply_ok)
        if self.relay and not close:
            self.open()  # first
        lock = tx or (conn.phase == _FINISHING and conn.hold_lock) or lock_hold
        if lock != self.lock:
            b.lock.set(lock)
            self.lock = lock
        if duty != self.duty:
            running = duty is not None and duty != 0
            was = self.duty is not None and self.duty != 0 and self.duty != -1
            if running != was:
                # A new PWM run (or none): its diode check starts afresh.
                self._pwm_since = time.ticks_ms() if running else None
                self.diode_verified = False
            b.pilot.set_duty(duty)
            self.duty = duty
            self.offered_a = amps if running else 0
        if close and not self.relay:
            b.relay.set(True)  # last
            self.relay = True
