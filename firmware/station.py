# The charging station around the connector state machine: it carries out
# what the connector decides (authorization, transaction messages, status
# notifications, signals) and answers the central system's connector-level
# requests (remote start/stop, unlock, availability).
import asyncio
from micropython import const

from lib import fsutil, isotime, log, transient
from firmware.chargepoint import CallError, NotConnected
from firmware.connector import Connector, ConnectorContext, TX, connector_known

_CONNECTOR_ID = const(1)  # the JOLT has one connector


class Station(ConnectorContext):
    def __init__(self, board, cfg, cp, ops, auth, txs, outputs):
        self.board = board
        self.cfg = cfg
        self.cp = cp
        self.auth = auth
        self.txs = txs
        self.res_path = board.flash.root + "reservation.json"  # firmware/reservations.py
        self.outputs = outputs        # firmware.outputs.Outputs
        self.connector = Connector(_CONNECTOR_ID, cfg, self)
        self.sent = {}                # connectorId -> last status tuple sent
        self._status_wake = asyncio.Event()
        self.cp_fault = None          # set by the supervisor: connector 0 status tuple of a charger-wide fault
        txs.on_start_result = self._start_result
        cp.listen(self._on_session)
        cp.on("RemoteStartTransaction", self._remote_start)
        cp.on("RemoteStopTransaction", self._remote_stop)
        cp.on("UnlockConnector", self._unlock)
        cp.on("ChangeAvailability", self._change_availability)
        ops.before_reset.append(self._before_reset)
        ops.triggers["StatusNotification"] = self._trigger_status
        self._res_end = None          # why the reservation ended, until stored
        cp.on("ReserveNow", self._res)
        cp.on("CancelReservation", self._res)

    # --- the ConnectorContext ----------------------------------------------------

    def authorize(self, conn, tag, purpose):
        asyncio.create_task(self._authorize(conn, tag, purpose))

    async def _authorize(self, conn, tag, purpose):
        try:
            verdict = await self.auth.run("decide", tag, purpose, conn)
        except Exception as e:  # a MemoryError loading the decision costs this card only
            log.error("auth", "%s: %r" % (tag, e))
            verdict = ("refuse", {"status": "Invalid"}, "AUTH_FAIL", None)
        conn.on_authorized(tag, verdict, purpose)

    def start_tx(self, conn, session):
        reservation_id = session.reservation
        r = conn.reserved
        if reservation_id is not None and (r is None or r["id"] != reservation_id):
            reservation_id = None  # expired or cancelled meanwhile
        tx = self.txs.start(conn.cid, session.id_tag, session.parent, reservation_id)
        if reservation_id is not None:
            # The reservation ends with the transaction it was made for (OCPP
            # 5.13). On flash at once, right after txs.start recorded the
            # transaction in this same control step: a power cut after the
            # start must not bring the used reservation back at boot.
            conn.reserved = None
            try:
                fsutil.write_atomic(self.res_path, "null")
            except OSError as e:
                log.error("res", "cannot store the reservation: %r" % (e,))
            self._res_end = "%d used" % reservation_id  # run_status logs it and sends the status
            self._status_wake.set()
        return tx

    def stop_tx(self, conn, tx, reason, id_tag):
        self.txs.stop(tx, reason, id_tag)

    def tx_energy_allowed(self, tx):
        return self.txs.energy_allowed(tx)

    def open_contactor(self):
        self.outputs.open()

    def contactor_closed(self):
        return self.outputs.relay

    def signal(self, name):
        self.board.signal.show(name)

    # --- transaction answers -----------------------------------------------

    def _start_result(self, tx, info):
        conn = self.connector
        s = conn.session
        status = info.get("status")
        if s is None or s.tx is not tx or conn.phase != TX or status == "Accepted" or status is None:
            return  # the policy (firmware/auth.py start_answer) is loaded only for a refusal
        try:
            verdict = self.auth.run("start_answer", info, s.free)
        except Exception as e:  # no memory for the policy: the safe side, stop
            log.error("tx", "start answer: %r" % (e,))
            verdict = "deauth"
        if verdict is None:
            return
        if verdict == "deauth":
            log.info("tx", "StartTransaction answered %s: stopping" % status)
            conn.stop("DeAuthorized", s.id_tag)
        else:
            tx["limit"] = verdict
            log.info("tx", "StartTransaction answered %s: limited to %d Wh" % (status, tx["limit"]))
            if not self.txs.energy_allowed(tx):
                self.outputs.open()  # now, not at the next control cycle

    # --- status notifications ----------------------------------------------

    def status_of(self, cid):
        conn = self.connector
        if cid == _CONNECTOR_ID:
            return conn.status()
        # Connector 0 is the charge point as a whole: its charger-wide faults
        # (supervisor, docs/faults.md).
        if self.cp_fault is not None and self.cp_fault[0] == "Faulted":
            return self.cp_fault
        if not conn.operative and not conn.pending_inoperative:
            return ("Unavailable", "NoError", None, None)
        return self.cp_fault or ("Available", "NoError", None, None)

    def _on_session(self, event):
        if event == "accepted":
            self.sent = {}  # the central system learns the current state, not stale history
        self._status_wake.set()

    def poke_status(self):
        self._status_wake.set()

    async def _trigger_status(self, cid):
        ids = (0, _CONNECTOR_ID) if cid is None else (cid,)
        for c in ids:
            self.sent.pop(c, None)
        self._status_wake.set()

    async def run_status(self):
        # The reservation kept on flash: loaded here, not while the app is
        # built (a module loaded and dropped then would fragment the heap).
        await self._res(None, "load")
        while True:
            self._status_wake.clear()
            r = self.connector.reserved
            if r is not None and r["exp"] <= self.board.clock.now():
                self._res_end = "%d expired" % r["id"]
            if self._res_end:
                await self._res((None, self._res_end), "store")
                self._res_end = None
            if self.cp.accepted:
                for cid in (0, _CONNECTOR_ID):
                    st = self.status_of(cid)
                    if self.sent.get(cid) != st:
                        if await self._send_status(cid, st):
                            self.sent[cid] = st
            try:
                await asyncio.wait_for(self._status_wake.wait(), 1)
            except asyncio.TimeoutError:
                pass

    async def _send_status(self, cid, st):
        status, code, vendor, info = st
        p = {"connectorId": cid, "status": status, "errorCode": code,
             "timestamp": isotime.format(self.board.clock.now())}
        if vendor:
            p["vendorErrorCode"] = vendor[:50]
        if info:
            p["info"] = info[:50]
        try:
            await self.cp.call("StatusNotification", p)
            return True
        except (NotConnected, CallError, asyncio.TimeoutError) as e:
            log.warn("status", "StatusNotification failed: %r" % (e,))
            return False

    # --- power loss -------------------------------------------------------------

    async def recover(self, settle_s=0.5):
        """After boot: close the transaction a power cut interrupted (PowerLoss)
        and, with OnPowerLossRestart, start a new one for the same card if the
        EV is still connected (docs/decisions.md)."""
        await asyncio.sleep(settle_s)  # let the control loop read the pilot first
        tx = self.txs.recover()
        if tx is None:
            return
        conn = self.connector
        log.info("tx", "transaction local#%d ended by power loss" % tx["l"])
        if self.cfg.get("OnPowerLossRestart") and conn.ev in "BC" and conn.can_remote_start():
            log.info("tx", "OnPowerLossRestart: new transaction for %s" % tx["tag"])
            conn.remote_start(tx["tag"], {"parentIdTag": tx["parent"]} if tx.get("parent") else None)

    # --- central system requests ---------------------------------------------

    async def _remote_start(self, p):
        cid = p.get("connectorId")
        if cid is not None and not connector_known(self.cfg, cid):
            return {"status": "Rejected"}
        if "chargingProfile" in p:
            # Smart charging is not among the supported feature profiles.
            log.info("remote", "RemoteStartTransaction with chargingProfile rejected")
            return {"status": "Rejected"}
        conn = self.connector
        tag = p["idTag"]
        ok, reservation_id = self.auth.run("remote_reservation", tag, conn.reserved)
        if not ok or not conn.can_remote_start():
            return {"status": "Rejected"}
        if self.cfg.get("AuthorizeRemoteTxRequests"):
            asyncio.create_task(self._remote_start_authorized(tag, reservation_id))
        else:
            conn.remote_start(tag, None, reservation_id)
        return {"status": "Accepted"}

    async def _remote_start_authorized(self, tag, reservation_id):
        info = await self.auth.run("authorize", tag)
        if info.get("status") != "Accepted":
            log.info("remote", "remote start for %s not authorized (%s)" % (tag, info.get("status")))
            self.signal("AUTH_FAIL")
            return
        if not self.connector.remote_start(tag, info, reservation_id):
            log.info("remote", "remote start for %s no longer possible" % tag)

    async def _remote_stop(self, p):
        conn = self.connector
        s = conn.session
        if conn.phase != TX or s is None or s.tx is None or self.txs.transaction_id(s.tx) != p["transactionId"]:
            return {"status": "Rejected"}
        conn.stop("Remote")
        return {"status": "Accepted"}

    async def _unlock(self, p):
        if not connector_known(self.cfg, p["connectorId"]):
            return {"status": "NotSupported"}  # OCPP: "ConnectorId is unknown"
        conn = self.connector
        conn.unlock()
        # Give the lock time to move, then trust only its feedback.
        for _ in range(20):
            await asyncio.sleep(0.05)
            if not self.board.lock.locked():
                return {"status": "Unlocked"}
        return {"status": "UnlockFailed"}

    async def _change_availability(self, p):
        if not connector_known(self.cfg, p["connectorId"], True):
            return {"status": "Rejected"}
        result = self.connector.set_operative(p["type"] == "Operative")
        self._status_wake.set()
        return {"status": result}

    # --- reservations (firmware/reservations.py, loaded for each use) ----------

    async def _res(self, arg, fn="request"):
        # ReserveNow / CancelReservation, or fn "load" / "store" of firmware/reservations.py
        try:
            return getattr(transient.load("firmware.reservations"), fn)(self, arg)
        finally:
            transient.drop("firmware.reservations")

    async def _before_reset(self, kind):
        conn = self.connector
        if conn.phase == TX:
            conn.stop("HardReset" if kind == "Hard" else "SoftReset")
            # Let the StopTransaction go out before the reboot (it is journaled anyway).
            for _ in range(50):
                if self.txs.store.count() == 0:
                    break
                await asyncio.sleep(0.1)
