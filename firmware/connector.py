# The connector state machine: one place that knows the session phase of
# connector 1 and derives from it, the EV's pilot state, availability and
# faults the OCPP status. What relay, lock and pilot do is decided from this
# state by the output interlock (firmware/outputs.py).
#
# Everything here is synchronous and allocation-light so the control loop can
# call it every cycle; work that needs the network (Authorize, transaction
# messages, StatusNotification) is handed to `ctx` and comes back as events.
import time
from micropython import const

from lib import log

# Session phases.
IDLE = 0        # no session
_WAIT_AUTH = const(1)   # cable plugged, nobody authorized yet (Preparing)
_WAIT_PLUG = const(2)   # authorized, waiting for the cable (Preparing, ConnectionTimeOut)
TX = 3          # transaction running
_FINISHING = const(4)   # transaction over, cable still there (or still locked)

_PHASE_NAMES = const(("Idle", "WaitAuth", "WaitPlug", "Transaction", "Finishing"))
_PLUGGED = const("BCD")

# Guide states that OCPP 1.6 has no status for: sent as Faulted + OtherError +
# vendorErrorCode (docs/decisions.md).
_VENDOR_STATES = const(("DiodeError", "VentError"))


def connector_known(cfg, cid, zero_ok=False):
    """connectorId names a connector of this charger (0, the charge point as a
    whole, where the request allows it). Each request answers an unknown one
    as OCPP defines for it."""
    return (0 if zero_ok else 1) <= cid <= cfg.get("NumberOfConnectors")


class ConnectorContext:
    """What the connector needs from the charging station around it
    (firmware/station.py implements it; unit tests give their own)."""

    def authorize(self, conn, tag, purpose):
        """Decide on a card in a task; the verdict (firmware/auth.py) comes back
        as conn.on_authorized(tag, verdict, purpose), purpose "start" or "stop"."""
        raise NotImplementedError

    def start_tx(self, conn, session):
        """Queue StartTransaction; returns the transaction record."""
        raise NotImplementedError

    def stop_tx(self, conn, tx, reason, id_tag):
        """Queue StopTransaction (id_tag: the card that stopped it, or None)."""
        raise NotImplementedError

    def tx_energy_allowed(self, tx):
        """False once MaxEnergyOnInvalidId is used up."""
        raise NotImplementedError

    def open_contactor(self):
        """Open the contactor now (before any message about it is queued)."""
        raise NotImplementedError

    def contactor_closed(self):
        """What the contactor was driven to."""
        raise NotImplementedError

    def signal(self, name):
        """LED/buzzer pattern: AUTH_OK, AUTH_FAIL, ..."""
        raise NotImplementedError


class Session:
    """Who is charging: the authorization that opened the session, and the
    transaction once started (a dict owned by firmware.transactions)."""

    def __init__(self, id_tag, parent, free=False):
        self.id_tag = id_tag
        self.parent = parent
        self.free = free
        self.reservation = None   # reservationId the transaction takes up
        self.tx = None
        self.since = time.ticks_ms()


class Connector:
    def __init__(self, cid, cfg, ctx):
        self.cid = cid
        self.cfg = cfg
        self.ctx = ctx              # a ConnectorContext (firmware.station.Station)
        self.phase = IDLE
        self.session: "Session | None" = None
        self.ev = "A"
        self.diode_fault = False
        self.operative = True
        self.pending_inoperative = False
        self.fault = None           # (errorCode, vendorErrorCode, info) of the fault that decides, or None
        self.blocking = False       # that fault stops charging
        self.derate_a = None        # current limit from the supervisor (high temperature), None = none
        self.weak = False           # WeakSignal active (supervisor): reported only while Available
        self.hold_lock = False      # cable stays locked after an EV-side disconnect (guide)
        self.suspended_since = None
        self.authorizing = None     # card whose authorization is under way
        self.reserved = None        # the reservation holding the connector (firmware/reservations.py)

    # --- what the outputs depend on -------------------------------------------

    def offered_amps(self):
        amps = self.cfg.get("MaxCurrentLimit")
        if self.cfg.get("Phase") == "Three.Phase":
            phase_limit = 22000 // (3 * 230)
        else:
            phase_limit = 7000 // 230
        if phase_limit < amps:
            amps = phase_limit
        if self.derate_a is not None and self.derate_a < amps:
            amps = self.derate_a
        return amps

    def energy_allowed(self):
        s = self.session
        if s is None or s.tx is None:
            return False
        return self.ctx.tx_energy_allowed(s.tx)

    def operative_for_tx(self):
        return self.operative or self.pending_inoperative

    # --- status ---------------------------------------------------------------

    def status_name(self):
        """The OCPP status alone. Allocates nothing: the control loop calls it
        every cycle (with `fault` and `weak` it decides whether status() changed)."""
        f = self.fault
        if f is not None and (self.blocking or f[0] in _VENDOR_STATES):
            return "Faulted"
        if self.phase == TX:
            if not self.energy_allowed() or (self.derate_a is not None and self.derate_a < 6):
                return "SuspendedEVSE"
            if self.ev == "C" and self.ctx.contactor_closed():
                return "Charging"
            return "SuspendedEV"
        if not self.operative:
            return "Unavailable"
        if self.phase == _FINISHING:
            return "Finishing"
        if self.phase == _WAIT_AUTH or self.phase == _WAIT_PLUG:
            return "Preparing"
        return "Reserved" if self.reserved else "Available"

    def status(self):
        """(status, errorCode, vendorErrorCode, info) as sent in StatusNotification."""
        st = self.status_name()
        f = self.fault
        if f is None:
            # the guide: WeakSignal only while Available, never Faulted
            return (st, "WeakSignal" if self.weak and st == "Available" else "NoError", None, None)
        code, vendor, info = f
        if st == "Faulted" and code in _VENDOR_STATES:
            return (st, "OtherError", code, info)
        return (st, code, vendor, info)

    def light(self):
        """What the status light shows (board.signal.led; patterns in
        docs/hardware.md): the guide's state name (DiodeError / VentError
        where OCPP has none), WeakSignal while Available with a weak WiFi
        signal (the recovery is under way, docs/network.md)."""
        st = self.status()
        if st[1] == "WeakSignal":
            return "WeakSignal"
        return st[2] if st[1] == "OtherError" and st[2] in _VENDOR_STATES else st[0]

    # --- events ---------------------------------------------------------------

    def on_ev(self, ev, diode_ok):
        """Debounced pilot state changed (or diode verdict changed)."""
        prev = self.ev
        self.ev = ev
        self.diode_fault = not diode_ok
        if ev == prev:
            return
        log.info("conn", "EV %s -> %s (%s)" % (prev, ev, _PHASE_NAMES[self.phase]))
        plugged = ev in _PLUGGED
        if self.phase == IDLE and plugged and prev not in _PLUGGED:
            if self.cfg.get("FreeMode") and self.operative and not self.blocking:
                self._open(self.cfg.get("DefaultIdTag") or "FreeMode", None, True)
            elif self.operative and not self.blocking:
                self.phase = _WAIT_AUTH
        elif self.phase == _WAIT_AUTH and not plugged:
            self.phase = IDLE
        elif self.phase == _WAIT_PLUG and plugged and self.session is not None:
            self._start_tx(self.session)
        elif self.phase == TX:
            if ev == "C":
                self.suspended_since = None
            elif ev == "B" and prev == "C":
                self.suspended_since = time.ticks_ms()
            if ev == "A":
                if self.cfg.get("StopTransactionOnEVSideDisconnect"):
                    self.hold_lock = not self.cfg.get("UnlockConnectorOnEVSideDisconnect")
                    self.stop("EVDisconnected")
                else:
                    self.suspended_since = None  # the transaction waits for the EV to return
        elif self.phase == _FINISHING and not plugged and not self.hold_lock:
            self._end_session()

    def on_card(self, tag):
        """A card was read. Returns nothing; decisions that need the central
        system run in a task (ctx.authorize) and come back via on_authorized."""
        s = self.session
        if tag == self.authorizing:
            log.info("conn", "card %s: authorization already under way" % tag)
            return
        if self.phase == TX:
            if s is not None and tag == s.id_tag:  # (a session is open in TX)
                self.stop("Local", tag)
            else:
                self.authorizing = tag
                self.ctx.authorize(self, tag, "stop")
        elif self.phase == _WAIT_PLUG:
            if s is not None and tag == s.id_tag:
                log.info("conn", "same card again: session cancelled")
                self._end_session()
            else:
                log.info("conn", "card %s ignored while waiting for the cable" % tag)
        elif self.phase == _FINISHING:
            if s is not None and tag == s.id_tag and self.hold_lock:
                self.hold_lock = False
                if self.ev not in _PLUGGED:
                    self._end_session()
            else:
                log.info("conn", "card %s ignored while finishing" % tag)
        elif self.blocking or not self.operative:
            log.info("conn", "card %s ignored: connector %s" % (tag, self.status()[0]))
            self.ctx.signal("AUTH_FAIL")
        else:
            self.authorizing = tag
            self.ctx.authorize(self, tag, "start")

    def on_authorized(self, tag, verdict, purpose):
        """Acts on the verdict of ctx.authorize (firmware/auth.py decides)."""
        if tag == self.authorizing:
            self.authorizing = None
        action, info, signal, reservation_id = verdict
        if purpose == "stop":
            if self.phase != TX:
                return
            self.ctx.signal(signal)
            if action == "stop":
                self.stop("Local", tag)  # OCPP: the identifier that stopped it
            elif action == "deauth":
                self.stop("DeAuthorized", tag)
            return
        if not self.can_remote_start():
            log.info("conn", "authorization for %s arrived too late (%s)" % (tag, _PHASE_NAMES[self.phase]))
            return
        self.ctx.signal(signal)
        if action == "start":
            self._open(tag, info.get("parentIdTag"), False, reservation_id)

    def remote_start(self, tag, authorized_info, reservation_id=None):
        """RemoteStartTransaction after any required authorization. True if taken."""
        if not self.can_remote_start():
            return False
        parent = authorized_info.get("parentIdTag") if authorized_info else None
        self._open(tag, parent, False, reservation_id)
        return True

    def can_remote_start(self):
        """A session can open now (a card's or a remote start's)."""
        return self.phase in (IDLE, _WAIT_AUTH) and not self.blocking and self.operative

    def stop(self, reason, id_tag=None):
        """End the running transaction (id_tag: the card that ended it). The
        contactor opens before the StopTransaction is queued."""
        if self.phase != TX:
            return False
        s = self.session
        self.phase = _FINISHING
        self.suspended_since = None
        self.ctx.open_contactor()
        if s is not None:  # (always in TX)
            self.ctx.stop_tx(self, s.tx, reason, id_tag)
        if self.ev not in _PLUGGED and not self.hold_lock:
            self._end_session()
        if self.pending_inoperative:
            self.pending_inoperative = False
            self.operative = False
        return True

    def unlock(self):
        """UnlockConnector: stop a running transaction (UnlockCommand) and release the lock."""
        if self.phase == TX:
            self.stop("UnlockCommand")
        self.hold_lock = False
        if self.phase == _FINISHING and self.ev not in _PLUGGED:
            self._end_session()

    def set_operative(self, operative):
        """ChangeAvailability: 'Accepted' or 'Scheduled' (during a transaction)."""
        if operative:
            self.operative = True
            self.pending_inoperative = False
            self._settle()
            return "Accepted"
        if self.phase == TX:
            self.pending_inoperative = True
            return "Scheduled"
        if self.phase in (_WAIT_AUTH, _WAIT_PLUG):
            self._end_session()
        self.operative = False
        return "Accepted"

    def tick(self):
        """Timers: ConnectionTimeOut while waiting for the cable, suspendedEVTimeout."""
        now = time.ticks_ms()
        s = self.session
        if self.phase == _WAIT_PLUG and s is not None:
            limit = self.cfg.get("ConnectionTimeOut")
            if limit > 0 and time.ticks_diff(now, s.since) >= limit * 1000:
                log.info("conn", "no cable within ConnectionTimeOut (%d s): session cancelled" % limit)
                self._end_session()
        elif self.phase == TX and self.suspended_since is not None and self.ev == "B":
            limit = self.cfg.get("suspendedEVTimeout")
            if limit > 0 and time.ticks_diff(now, self.suspended_since) >= limit * 1000:
                log.info("conn", "SuspendedEV longer than %d s" % limit)
                self.stop("EVDisconnected")

    def set_fault(self, fault, blocking):
        """From the fault supervisor: the fault that decides the status (or None)."""
        self.fault = fault
        self.blocking = blocking
        if blocking and self.phase in (_WAIT_AUTH, _WAIT_PLUG):
            self._end_session()
        self._settle()

    # --- internals ------------------------------------------------------------

    def _open(self, tag, parent, free=False, reservation_id=None):
        """A new session: the transaction starts now if the EV is plugged in,
        else when it is. reservation_id: the reservation it takes up."""
        s = self.session = Session(tag, parent, free)
        s.reservation = reservation_id
        self.hold_lock = False
        if self.ev in _PLUGGED:
            self._start_tx(s)
        else:
            self.phase = _WAIT_PLUG

    def _start_tx(self, s):
        self.phase = TX
        self.suspended_since = time.ticks_ms() if self.ev == "B" else None
        s.tx = self.ctx.start_tx(self, s)

    def _end_session(self):
        self.phase = IDLE
        self.session = None
        self.hold_lock = False
        self._settle()

    def _settle(self):
        # A cable that is (still) in while the connector can serve: the next
        # card starts a session (Preparing).
        if self.phase == IDLE and self.ev in _PLUGGED and self.operative and not self.blocking:
            self.phase = _WAIT_AUTH
