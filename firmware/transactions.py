# Transactions and their messages. StartTransaction, StopTransaction and
# transaction MeterValues go to the central system strictly in order through one
# queue (a persistent journal on the device), each retried per
# TransactionMessageAttempts / TransactionMessageRetryInterval; a StopTransaction
# queued before its StartTransaction was answered carries the transactionId the
# central system assigns later.
import asyncio
import gc
import json
import time
from micropython import const

from lib import fsutil, isotime, log, ocppj
from lib.journal import MAX_DATA, JournalError, JournalFull
from firmware.chargepoint import CallError, NotConnected
from firmware import watchdog

# The records this module owns (short keys: they are written to flash for
# every message, and journals written by earlier firmware must stay readable).
#
# A transaction (dict, also kept as "open" in STATE_FILE until it stops):
#   l      local id (int, counts up across reboots; the journal's key)
#   cid    connectorId
#   tag    idTag that started it; parent: its parentIdTag or None
#   base   meter register (Wh) at the start: Home Plus energy counts from it
#   start  meterStart as sent
#   ts     start time (UTC epoch seconds)
#   limit  Wh still allowed after an Invalid answer (MaxEnergyOnInvalidId), None: no limit
# A queued message (journal data, kind _K_START / _K_STOP / _K_METER):
#   {"v":2,"a":action,"l":local id,"u":its OCPP UniqueId[,"i":idTag],"p":payload}
# written in this order, "p" last and without the transactionId (given at
# delivery), so it is sent as journaled: only the part before "p" is decoded
# (a MeterValues or a StopTransaction with its transactionData is never a tree
# of dicts on the heap while it waits for its answer). Earlier firmware wrote
# {"a", "p", "l", "u"} in any order: such records are decoded whole.
# The commit of a StartTransaction answer (kind _K_MAP):
#   {"l": local id, "id": transactionId, "s": journal seq of the StartTransaction}
STATE_FILE = "tx_state.json"
_CALL_TIMEOUT_MS = const(30000)
_CHECKPOINT_MS = const(60000)  # how often an open transaction's meter value is saved
_K_START = const(1)
_K_STOP = const(2)
_K_METER = const(3)
_K_MAP = const(4)      # local id -> transactionId; also the commit of the StartTransaction answer
_HELD = const(4)       # messages kept in RAM when the heap had no room to journal them
_V2 = const(b'{"v":2,')
_P = const(b',"p":')
_HEAD_MAX = const(256)  # the part of a record before its payload is shorter


def _record(data):
    """(header, payload offset) of a queued record; offset None: a record of
    earlier firmware or a map record, the header then being the whole record."""
    n = len(data) if len(data) < _HEAD_MAX else _HEAD_MAX
    if n > len(_V2) and bytes(data[:len(_V2)]) == _V2:
        # Find ,"p": without copying the record; the header is decoded with
        # its "," turned into "}" for a moment (in place when data is the
        # message buffer).
        i = len(_V2)
        while i < n - 4:
            if data[i] == 0x2C and data[i + 1] == 0x22 and data[i + 2] == 0x70 and data[i + 3] == 0x22 \
                    and data[i + 4] == 0x3A:
                try:
                    data[i] = 0x7D
                except TypeError:  # bytes read outside the buffer
                    return ocppj.loads(bytes(data[:i]) + b"}"), i + len(_P)
                try:
                    return ocppj.loads(data[:i + 1]), i + len(_P)
                finally:
                    data[i] = 0x2C
            i += 1
    return ocppj.loads(data), None


def _bad_start(res):
    """A StartTransaction answer the queue cannot use (no integer
    transactionId, an idTagInfo that is no object with a status): a failed
    attempt, not a transaction id of the wrong type that every later
    message of the transaction would fail on."""
    tid = res.get("transactionId")
    info = res.get("idTagInfo")
    return not isinstance(tid, int) or isinstance(tid, bool) or info is not None and not (
        isinstance(info, dict) and isinstance(info.get("status"), str))


def _tx_ok(tx):
    """The open transaction of the state file is one start() made (a damaged
    one would raise in the control step or the PowerLoss stop)."""
    try:
        for k in ("l", "cid", "base", "start", "ts"):
            if type(tx[k]) is not int:
                return False
        for k in ("tag", "parent", "limit"):
            v = tx.get(k)
            if v is not None and type(v) is not (int if k == "limit" else str):
                return False
    except (KeyError, TypeError, AttributeError):
        return False
    return True


def _write_head(out, action, local, uid, tag):
    # the record up to its payload
    out.write(_V2)
    out.write(b'"a":')
    json.dump(action, out)
    out.write(b',"l":')
    json.dump(local, out)
    out.write(b',"u":')
    json.dump(uid, out)
    if tag:
        out.write(b',"i":')
        json.dump(tag, out)
    out.write(_P)


def _write_record(out, action, local, uid, msg):
    fields, key, items = msg
    _write_head(out, action, local, uid, fields.get("idTag"))
    ocppj.write_obj(out, fields, key, items)
    out.write(b"}")


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
        self.map_seq = {}       # local id -> journal seq of its _K_MAP record
        self.next_local = 1
        self.floor_wh = 0       # the register never goes backwards across reboots
        self.saved_wh = 0       # the register as STATE_FILE holds it
        self.last_ts = 0
        self.on_start_result = None  # fn(tx, idTagInfo) set by the station
        self._wake = asyncio.Event()
        self.open_at_boot = None     # the transaction a power cut interrupted
        # A MemoryError while queueing (the control step stopping a session,
        # say) costs no message and never reaches the caller: the message is
        # held here, in order, and journaled by run() once memory is back.
        self._held: list = [None] * _HELD   # (kind, action, payload, local), oldest first
        self._state_due = False      # the state file still needs writing
        cp.listen(self._on_session)
        self._load()

    def _on_session(self, event):
        if event == "accepted":
            self._wake.set()  # replay the queue at once after (re)connecting

    def _load(self):
        state = None
        raw = fsutil.read(self.root + STATE_FILE)
        if raw is not None:
            try:
                state = json.loads(raw)
                self.floor_wh = self.saved_wh = int(state.get("reg", 0))
                self.last_ts = int(state.get("ts", 0))
                self.next_local = int(state.get("next", 1))
                tx = state.get("open")
                if tx is not None and not _tx_ok(tx):
                    raise ValueError("open transaction %r" % (tx,))
                self.open_at_boot = tx
            except (ValueError, TypeError, AttributeError, OverflowError) as e:
                log.error("tx", "state file unreadable: %r" % (e,))
        tx = self.open_at_boot
        queued = {}  # kind -> locals with a pending record, for the interrupted transaction
        acks = []  # acked after the walk: an ack may rewrite the journal under it
        for seq, kind, data in self.store.records(self.cp.scratch()):
            try:
                rec = _record(data)[0]
                local = rec["l"]
            except (ValueError, KeyError, TypeError):
                continue
            if local >= self.next_local:
                self.next_local = local + 1
            if tx is not None and local == tx.get("l"):
                queued[kind] = True
            if kind == _K_MAP:
                # The map record is the commit point of a StartTransaction answer.
                self.id_map[local] = rec["id"]
                self.map_seq[local] = seq
                acks.append(rec["s"])
        for seq in acks:
            self.store.ack(seq)
        if tx is not None:
            if tx.get("l", 0) >= self.next_local:
                self.next_local = tx["l"] + 1
            if _K_STOP in queued:
                # Cut between queuing its StopTransaction and recording it closed:
                # it is stopped already (a PowerLoss stop now would be a second one).
                self.open_at_boot = None
            elif _K_START not in queued and _K_MAP not in queued:
                # Cut between recording it open and queuing its StartTransaction
                # (or its StartTransaction was given up): the central system has
                # no transaction to stop.
                log.warn("tx", "local#%d has no StartTransaction: no PowerLoss stop" % tx.get("l", 0))
                self.open_at_boot = None

    # --- transaction lifecycle ---------------------------------------------

    def energy_wh(self, tx):
        """Meter value for a transaction: cumulative register (Business) or
        energy since the session began (Home Plus resets to 0, guide)."""
        return self.meter.session_wh(self.register_wh(), tx["base"])

    def register_wh(self):
        reg = self.meter.register_wh()
        if reg < self.floor_wh:
            return self.floor_wh
        self.floor_wh = reg
        return reg

    def start(self, cid, id_tag, parent, reservation_id=None):
        if self.open_at_boot is not None:
            # A transaction starting before the boot's power-loss recovery ran:
            # the interrupted one ends first (and stays the one STATE_FILE forgets).
            self.recover()
        reg = self.register_wh()
        local = self.next_local
        self.next_local += 1
        tx = {
            "l": local, "cid": cid, "tag": id_tag, "parent": parent, "base": reg,
            "start": 0 if self.cfg.variant == "homeplus" else reg,
            "ts": self.board.clock.now(), "limit": None,
        }
        self.by_local[local] = tx
        self._save_state(tx)
        payload = {
            "connectorId": cid, "idTag": id_tag, "meterStart": tx["start"],
            "timestamp": isotime.format(tx["ts"]),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        self._queue(_K_START, "StartTransaction", (payload, None, None), local)
        log.info("tx", "start local#%d %s meterStart=%d" % (local, id_tag, tx["start"]))
        return tx

    def stop(self, tx, reason, id_tag=None, stop_wh=None, now=None):
        if stop_wh is None:
            stop_wh = self.energy_wh(tx)
        if stop_wh < tx["start"]:
            stop_wh = tx["start"]  # meterStop never below meterStart
        if now is None:
            now = self.board.clock.now()
        payload = {"meterStop": stop_wh, "timestamp": isotime.format(now), "reason": reason}
        if id_tag:
            payload["idTag"] = id_tag
        try:
            # firmware/metering.py: StopTxnSampledData / StopTxnAlignedData, as ocppj.write_obj items
            data = self.meter.tx_data(tx, stop_wh, now)
        except MemoryError:
            data = None  # the optional part goes, the stop stays
            log.warn("tx", "no memory: stop without transactionData")
        self._queue(_K_STOP, "StopTransaction", (payload, "transactionData" if data else None, data), tx["l"])
        self.by_local.pop(tx["l"], None)
        # STATE_FILE keeps a transaction open while its stop is only held in
        # RAM (a power cut then ends it with PowerLoss at boot), and otherwise
        # any other open one (started before a power-loss stop), or a power
        # cut during it would lose it.
        self._save_state(tx if self._held[0] is not None else self._open_tx())
        log.info("tx", "stop local#%d reason=%s meterStop=%d" % (tx["l"], reason, stop_wh))

    def energy_allowed(self, tx):
        limit = tx["limit"]
        return limit is None or self.energy_wh(tx) - tx["start"] < limit

    def begin_meter_values(self, tx, out):
        """A transaction MeterValues record written in place (out: the message
        buffer, held by the caller): this writes it up to its one meterValue,
        the caller writes that, then calls end_meter_values()."""
        self.reporting(tx)
        _write_head(out, "MeterValues", tx["l"], ocppj.new_id(), None)
        out.write('{"connectorId":%d,"meterValue":[' % tx["cid"])

    def end_meter_values(self, tx, out):
        out.write(b"]}}")
        if self._held[0] is not None:
            # messages wait in RAM for memory: nothing may pass them
            log.warn("tx", "no memory: meter values dropped")
            return
        try:
            self._append(_K_METER, "MeterValues", memoryview(out.buf)[:out.n])
        except MemoryError:
            log.warn("tx", "no memory: meter values dropped")

    def transaction_id(self, tx):
        """transactionId known for a live transaction (None until StartTransaction is answered)."""
        return self.id_map.get(tx["l"])

    # --- power-loss bookkeeping ----------------------------------------------

    def _save_state(self, open_tx):
        """Small state that must survive a power cut: the open transaction, the
        last register and time seen, the next local id. Written at start, stop
        and checkpoints only (flash wear)."""
        self.last_ts = self.board.clock.now()
        self._state_due = False
        try:
            fsutil.write_atomic(self.root + STATE_FILE, json.dumps(
                {"open": open_tx, "reg": self.floor_wh, "ts": self.last_ts, "next": self.next_local}))
            self.saved_wh = self.floor_wh
        except MemoryError:
            self._state_due = True  # written again by run()
            self._wake.set()
        except OSError as e:
            log.error("tx", "cannot record transaction state: %r" % (e,))

    def _open_tx(self):
        for tx in self.by_local.values():
            return tx
        return None

    def checkpoint(self):
        """Called periodically during a transaction: keeps the last meter
        value and time for a PowerLoss stop after a power cut."""
        tx = self._open_tx()
        if tx is not None:
            self.register_wh()
            self._save_state(tx)

    def reporting(self, tx):
        """Called before a meter value of tx is queued or sent: the register it
        reports (the last one polled, never above register_wh()) is made durable
        first, so a PowerLoss meterStop is never below a value already reported."""
        if self.register_wh() > self.saved_wh and tx is not None and tx.get("l") in self.by_local:
            self._save_state(tx)

    def recover(self):
        """After boot: end the transaction a power cut interrupted with
        reason PowerLoss and the last known meter value. Returns it (or None)."""
        tx = self.open_at_boot
        self.open_at_boot = None
        if tx is None:
            return None
        self.by_local[tx["l"]] = tx
        # meterStop: the register saved with the time saved (at or above every
        # value reported for tx, which is saved before it is reported). Not the
        # meter's reading now: energy after that time has no known time and
        # would put a higher value before a sample already reported. stop()
        # keeps it at or above meterStart.
        self.stop(tx, "PowerLoss", None, self.meter.session_wh(self.floor_wh, tx["base"]), self.last_ts or tx["ts"])
        return tx

    # --- the ordered message queue ---------------------------------------------

    def _queue(self, kind, action, payload, local):
        if self._held[0] is None:
            try:
                return self._journal(kind, action, payload, local)
            except MemoryError:
                pass
        # Held (behind any held before it: the order stays). A collection
        # makes room for the few bytes of the tuple if anything can.
        for _ in range(2):
            try:
                return self._hold((kind, action, payload, local))
            except MemoryError:
                gc.collect()
        return False

    def _hold(self, rec):
        held = self._held
        self._wake.set()
        i = 0
        why = ""
        while i < _HELD and held[i] is not None:
            i += 1
        if i == _HELD:
            if rec[0] == _K_METER:
                why = "meter values dropped"
                rec = None
            else:
                # A start or stop takes the place of the oldest meter values.
                i = 0
                while i < _HELD and held[i][0] != _K_METER:
                    i += 1
                if i == _HELD:
                    why = rec[1] + " lost"
                    rec = None
                else:
                    why = "meter values dropped"
                    while i < _HELD - 1:
                        held[i] = held[i + 1]
                        i += 1
        if rec is not None:
            held[i] = rec
            why = rec[1] + " held"
        try:
            log.warn("tx", "no memory: " + why)
        except MemoryError:
            pass
        return rec is not None

    def _unhold(self):
        """Journal the held messages, oldest first; False while memory is short."""
        held = self._held
        try:
            if self._state_due:
                self._save_state(self._open_tx())
                if self._state_due:
                    return False
            if held[0] is None:
                return True
            while held[0] is not None:
                self._journal(*held[0])
                for i in range(_HELD - 1):
                    held[i] = held[i + 1]
                held[_HELD - 1] = None
            self._save_state(self._open_tx())  # a stop that was held is journaled now
        except MemoryError:
            return False
        return True

    def _encode(self, action, local, msg):
        # "u": the message's UniqueId, kept with it so that a resend after a lost
        # answer (link or power cut) lets the central system see it is the same one.
        uid = ocppj.new_id()
        out = self.cp.writer()
        if out is None:  # a send holds the message buffer: one of the exact size
            n = ocppj.Count()
            _write_record(n, action, local, uid, msg)
            if n.n > MAX_DATA:
                raise OverflowError
            out = ocppj.Out(n.n)
        _write_record(out, action, local, uid, msg)
        return memoryview(out.buf)[:out.n]

    def _journal(self, kind, action, msg, local):
        try:
            data = self._encode(action, local, msg)
        except OverflowError:
            # Bigger than a journal record: a stop goes without its transactionData.
            fields, key, items = msg
            if kind == _K_STOP and key is not None:
                log.warn("tx", "StopTransaction too big: sent without transactionData")
                return self._journal(kind, action, (fields, None, None), local)
            log.error("tx", "%s too big: not queued" % action)
            return False
        return self._append(kind, action, data)

    def _append(self, kind, action, data):
        while True:
            try:
                self.store.append(data, kind)
                break
            except JournalFull:
                # Full (long outage): meter values go first, oldest first;
                # StartTransaction/StopTransaction are never dropped for them.
                if not self._drop_oldest_meter():
                    log.error("tx", "journal full: %s not queued" % action)
                    return False
        self._wake.set()
        return True

    def _drop_oldest_meter(self):
        seq = self.store.oldest(_K_METER)
        if seq is None:
            return False
        self.store.drop(seq)
        log.warn("tx", "journal full: oldest meter values dropped")
        return True

    def _head(self):
        """Oldest message still to deliver (map records are bookkeeping, not messages)."""
        if self.store.count() <= len(self.map_seq):
            return None  # only map records left: no flash read
        # Read into the message buffer when free: _deliver decodes it before any await.
        return self.store.first(_K_MAP, self.cp.scratch())

    async def run(self):
        """Deliver queued transaction messages in order, forever."""
        last_cp = time.ticks_ms()
        while True:
            watchdog.checkin(watchdog.TXQUEUE)
            if (self._held[0] is not None or self._state_due) and not self._unhold():
                gc.collect()
                await asyncio.sleep(1)  # memory is short: try again soon
                continue
            if self.by_local and time.ticks_diff(time.ticks_ms(), last_cp) >= _CHECKPOINT_MS:
                last_cp = time.ticks_ms()
                self.checkpoint()
            try:
                head = self._head()  # a flash read into a buffer when the message buffer is held
            except MemoryError:
                log.warn("tx", "no memory to read the queue")
                gc.collect()
                await asyncio.sleep(1)
                continue
            if head is None or not self.cp.accepted:
                # Woken by a queued message or an accepted session; otherwise
                # only the next checkpoint is due (no idle tick: each wait_for
                # costs a task and a timeout exception).
                self._wake.clear()
                if not self.by_local:
                    watchdog.park(watchdog.TXQUEUE)  # idle: waiting for work
                    await self._wake.wait()
                    continue
                left = _CHECKPOINT_MS - time.ticks_diff(time.ticks_ms(), last_cp)
                watchdog.expect(watchdog.TXQUEUE, left)
                try:
                    await asyncio.wait_for(self._wake.wait(), max(left, 10) / 1000)
                except asyncio.TimeoutError:
                    pass
                continue
            seq, kind, data = head
            try:
                await self._deliver(seq, kind, data)
            except MemoryError:
                # the message stays queued: tried again once memory is back
                data = head = None
                log.warn("tx", "no memory to send %d" % seq)
                gc.collect()
                await asyncio.sleep(1)

    async def _deliver(self, seq, kind, data):
        try:
            rec, at = _record(data)
            action, local = rec["a"], rec["l"]
            tag = rec.get("i") if at is not None else rec["p"].get("idTag")
            uid0 = rec.get("u")
        except (ValueError, KeyError, TypeError, AttributeError):
            log.error("tx", "unreadable queued record %d dropped" % seq)
            self.store.drop(seq)
            return
        tid = None
        if action != "StartTransaction":
            tid = self.id_map.get(local)
            if tid is None:
                log.error("tx", "%s for local#%d without transactionId: dropped" % (action, local))
                self.store.drop(seq)
                return
        if at is None:
            payload = rec["p"]
            if tid is not None:
                payload["transactionId"] = tid
        else:
            payload = self._as_journaled(seq, at, len(data) - 1, tid)
        data = rec = None  # data is the message buffer: the send reuses it
        attempts = max(1, self.cfg.get("TransactionMessageAttempts"))
        interval = self.cfg.get("TransactionMessageRetryInterval")
        for attempt in range(1, attempts + 1):
            # The first attempt on a connection reuses the UniqueId; a retry on the
            # same connection must not (OCPP-J), so it gets a new one.
            uid = uid0 if attempt == 1 else None
            watchdog.checkin(watchdog.TXQUEUE)
            sent = time.ticks_ms()
            try:
                res = await self.cp.call(action, payload, _CALL_TIMEOUT_MS, uid)
                if action == "StartTransaction" and _bad_start(res):
                    raise CallError("FormationViolation", "answer outside the schema")
            except NotConnected:
                return  # not an attempt: delivered after reconnect
            except (CallError, asyncio.TimeoutError, JournalError) as e:
                if isinstance(e, asyncio.TimeoutError) and not self.cp.heard_since(sent):
                    # Nothing at all from the central system since the CALL: a
                    # link that died silently (WiFi, NAT), which the pings see
                    # only after 3 intervals, not a message it failed to process.
                    # Not an attempt: the connection goes, the message waits.
                    self.cp.drop_link("no answer to %s, nothing heard for %d s" % (action, _CALL_TIMEOUT_MS // 1000))
                    return
                log.warn("tx", "%s attempt %d/%d failed: %r" % (action, attempt, attempts, e))
                if attempt < attempts:
                    watchdog.expect(watchdog.TXQUEUE, interval * attempt * 1000)
                    await asyncio.sleep(interval * attempt)
                continue
            self._answered(seq, action, tag, local, res)
            return
        log.error("tx", "%s given up after %d attempts" % (action, attempts))
        self.store.drop(seq)
        if action == "StopTransaction":
            self._forget(local)

    def _as_journaled(self, seq, start, end, tid):
        """The payload at start..end of record seq, written into the message
        buffer straight from the journal when the CALL is encoded, with the
        transactionId put first."""
        store = self.store

        def write(out):
            s = start
            if tid is not None:
                # a MeterValues or StopTransaction payload always has fields
                out.write('{"transactionId":%d,' % tid)
                s += 1  # past its "{"
            if not store.copy(seq, s, end, out):  # JournalError when flash fails
                raise JournalError("record %d gone" % seq)

        def build():  # only when the message does not fit the buffer
            o = ocppj.Out(end - start + 32)
            write(o)
            return ocppj.loads(memoryview(o.buf)[:o.n])

        return ocppj.Streamed(write, build)

    def _answered(self, seq, action, tag, local, res):
        info = res.get("idTagInfo")
        if action == "StartTransaction":
            tid = res.get("transactionId")
            self.id_map[local] = tid
            # One durable write commits the answer: the map record (it acks the start on reload).
            self.map_seq[local] = self.store.append(json.dumps({"l": local, "id": tid, "s": seq}), _K_MAP)
            self.store.ack(seq)
            tx = self.by_local.get(local)
            if info and tag:
                self.auth.remember(tag, info)
            log.info("tx", "local#%d is transaction %s (%s)" % (local, tid, info and info.get("status")))
            if tx is not None and self.on_start_result is not None:
                self.on_start_result(tx, info or {})
        else:
            self.store.ack(seq)
            if action == "StopTransaction":
                if info and tag:
                    self.auth.remember(tag, info)
                self._forget(local)

    def _forget(self, local):
        m = self.map_seq.pop(local, None)
        if m is not None:
            self.store.ack(m)
        self.id_map.pop(local, None)
