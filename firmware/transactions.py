# Transactions and their messages. StartTransaction, StopTransaction and
# transaction MeterValues go to the central system strictly in order through one
# queue (a persistent journal on the device), each retried per
# TransactionMessageAttempts / TransactionMessageRetryInterval; a StopTransaction
# queued before its StartTransaction was answered carries the transactionId the
# central system assigns later.
import asyncio
import json

from lib import fsutil, isotime, log
from firmware.chargepoint import CallError, NotConnected

OPEN_TX_FILE = "tx_open.json"
CALL_TIMEOUT_MS = 30000
K_START = 1
K_STOP = 2
K_METER = 3


class MemoryStore:
    """In-RAM stand-in with the journal's interface (unit tests)."""

    def __init__(self):
        self._recs = []
        self._seq = 0

    def append(self, data, kind=0):
        self._seq += 1
        self._recs.append((self._seq, kind, data if isinstance(data, bytes) else data.encode()))
        return self._seq

    def ack(self, seq):
        self._recs = [r for r in self._recs if r[0] != seq]

    drop = ack

    def first(self):
        return self._recs[0] if self._recs else None

    def pending(self):
        return list(self._recs)


class Transactions:
    def __init__(self, cp, cfg, board, meter, store, auth):
        self.cp = cp
        self.cfg = cfg
        self.board = board
        self.meter = meter
        self.store = store
        self.auth = auth
        self.root = board.flash.root
        self.by_local = {}      # local id -> live tx dict
        self.id_map = {}        # local id -> transactionId from the central system
        self.next_local = 1
        self.on_start_result = None  # fn(tx, idTagInfo) set by the station
        self._wake = asyncio.Event()
        for seq, kind, data in store.pending():
            try:
                rec = json.loads(data)
                if rec.get("l", 0) >= self.next_local:
                    self.next_local = rec["l"] + 1
            except ValueError:
                pass

    # --- transaction lifecycle ---------------------------------------------

    def energy_wh(self, tx):
        """Meter value for a transaction: cumulative register (Business) or
        energy since the session began (Home Plus resets to 0, guide)."""
        reg = self.meter.register_wh()
        if self.cfg.variant == "homeplus":
            return max(0, reg - tx["base"])
        return reg

    def start(self, cid, id_tag, parent):
        reg = self.meter.register_wh()
        local = self.next_local
        self.next_local += 1
        tx = {
            "l": local, "cid": cid, "tag": id_tag, "parent": parent, "base": reg,
            "start": 0 if self.cfg.variant == "homeplus" else reg,
            "ts": self.board.clock.now(), "status": None, "limit": None,
        }
        self.by_local[local] = tx
        self._save_open(tx)
        self._queue(K_START, "StartTransaction", {
            "connectorId": cid, "idTag": id_tag, "meterStart": tx["start"],
            "timestamp": isotime.format(tx["ts"]),
        }, local)
        log.info("tx", "start local#%d %s meterStart=%d" % (local, id_tag, tx["start"]))
        return tx

    def stop(self, tx, reason, id_tag=None):
        stop_wh = self.energy_wh(tx)
        if stop_wh < tx["start"]:
            stop_wh = tx["start"]  # meterStop never below meterStart
        now = self.board.clock.now()
        payload = {
            "transactionId": 0, "meterStop": stop_wh, "timestamp": isotime.format(now), "reason": reason,
        }
        if id_tag:
            payload["idTag"] = id_tag
        data = self._transaction_data(tx, stop_wh, now)
        if data:
            payload["transactionData"] = data
        self._queue(K_STOP, "StopTransaction", payload, tx["l"])
        self.by_local.pop(tx["l"], None)
        self._clear_open()
        log.info("tx", "stop local#%d reason=%s meterStop=%d" % (tx["l"], reason, stop_wh))

    def energy_allowed(self, tx):
        limit = tx["limit"]
        return limit is None or self.energy_wh(tx) - tx["start"] < limit

    def _transaction_data(self, tx, stop_wh, now):
        if "Energy.Active.Import.Register" not in self.cfg.get("StopTxnSampledData").split(","):
            return None
        def mv(ts, wh, context):
            return {"timestamp": isotime.format(ts), "sampledValue": [{
                "value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register",
                "unit": "Wh"}]}
        return [mv(tx["ts"], tx["start"], "Transaction.Begin"), mv(now, stop_wh, "Transaction.End")]

    def transaction_id(self, tx):
        """transactionId known for a live transaction (None until StartTransaction is answered)."""
        return self.id_map.get(tx["l"])

    def find_by_id(self, transaction_id):
        for local, tx in self.by_local.items():
            if self.id_map.get(local) == transaction_id:
                return tx
        return None

    # --- power-loss bookkeeping ----------------------------------------------

    def _save_open(self, tx):
        try:
            fsutil.write_atomic(self.root + OPEN_TX_FILE, json.dumps(tx))
        except OSError as e:
            log.error("tx", "cannot record open transaction: %r" % (e,))

    def _clear_open(self):
        try:
            import os
            os.remove(self.root + OPEN_TX_FILE)
        except OSError:
            pass

    # --- the ordered message queue ---------------------------------------------

    def _queue(self, kind, action, payload, local):
        self.store.append(json.dumps({"a": action, "p": payload, "l": local}), kind)
        self._wake.set()

    async def run(self):
        """Deliver queued transaction messages in order, forever."""
        while True:
            head = self.store.first()
            if head is None or not self.cp.accepted:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 1)
                except asyncio.TimeoutError:
                    pass
                continue
            seq, kind, data = head
            await self._deliver(seq, kind, data)

    async def _deliver(self, seq, kind, data):
        try:
            rec = json.loads(data)
            action, payload, local = rec["a"], rec["p"], rec["l"]
        except (ValueError, KeyError):
            log.error("tx", "unreadable queued record %d dropped" % seq)
            self.store.drop(seq)
            return
        if action != "StartTransaction":
            tid = self.id_map.get(local)
            if tid is None:
                log.error("tx", "%s for local#%d without transactionId: dropped" % (action, local))
                self.store.drop(seq)
                return
            payload["transactionId"] = tid
        attempts = max(1, self.cfg.get("TransactionMessageAttempts"))
        interval = self.cfg.get("TransactionMessageRetryInterval")
        for attempt in range(1, attempts + 1):
            try:
                res = await self.cp.call(action, payload, CALL_TIMEOUT_MS)
            except NotConnected:
                return  # not an attempt: delivered after reconnect
            except (CallError, asyncio.TimeoutError) as e:
                log.warn("tx", "%s attempt %d/%d failed: %r" % (action, attempt, attempts, e))
                if attempt < attempts:
                    await asyncio.sleep(interval * attempt)
                continue
            self._answered(action, payload, local, res)
            self.store.ack(seq)
            return
        log.error("tx", "%s given up after %d attempts" % (action, attempts))
        self.store.drop(seq)

    def _answered(self, action, payload, local, res):
        info = res.get("idTagInfo")
        if action == "StartTransaction":
            tid = res.get("transactionId")
            self.id_map[local] = tid
            tx = self.by_local.get(local)
            if tx is not None:
                tx["status"] = info.get("status") if info else None
            if info:
                self.auth.remember(payload["idTag"], info)
            log.info("tx", "local#%d is transaction %s (%s)" % (local, tid, info and info.get("status")))
            if tx is not None and self.on_start_result is not None:
                self.on_start_result(tx, info or {})
        elif action == "StopTransaction" and info and payload.get("idTag"):
            self.auth.remember(payload["idTag"], info)
