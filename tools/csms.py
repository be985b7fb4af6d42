#!/usr/bin/env python3
"""OCPP 1.6J central system (CSMS) for development and for integration tests.

Built on the PyPI `ocpp` package (ocpp.v16) and `websockets`. Two uses:

* `make sim` / CLI: a development central system that prints one readable line
  per message and takes console commands (see docs/csms.md).
* Integration tests: a STRICT central system. Every text frame from the charger
  is checked for OCPP-J framing, every CALL and every CALLRESULT the charger
  sends is validated against the OCPP 1.6 JSON schemas, and protocol rules
  (one outstanding CALL, unique message ids, no requests while the registration
  is Pending/Rejected) are enforced. Every breach is appended to
  `CentralSystem.violations`; the wire behaviour stays that of a real CSMS (a
  schema-invalid CALL is answered with a CALLERROR).

Library use (asyncio):

    cs = CentralSystem(tags={"04E91C2A": "Accepted"})
    await cs.start()          # cs.url == "ws://127.0.0.1:PORT/ocpp"
    ...
    await cs.call("JOLT-1", "Reset", {"type": "Soft"})
    await cs.stop()

Synchronous tests use `CsmsThread` (same arguments), a context manager that
runs the central system in its own event loop thread.
"""
import argparse
import asyncio
import base64
import binascii
import copy
import datetime
import inspect
import itertools
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, _validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _OcppChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

OCPP_VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"
MAX_UNIQUE_ID = 36
BOOT_RETRY_SLACK = 0.2  # seconds of clock granularity allowed on the BootNotification retry interval

# OCPP 1.6 (section 4.2.3, with the errata's "known issues that will not be fixed"
# spellings FormationViolation and OccurenceConstraintViolation).
ERROR_CODES = (
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
)
# The ocpp package raises some OCPP 2.x codes; a 1.6 central system sends the 1.6 names.
_CODE_TO_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}

# Requests a charge point sends to the central system (core + firmware management
# + the 1.6 security extension, whose schemas ship with ocpp.v16).
CHARGER_ACTIONS = (
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
)
# Requests the central system sends to a charge point.
CSMS_ACTIONS = tuple(
    sorted(a.value for a in Action if a.value not in CHARGER_ACTIONS or a.value == "DataTransfer")
)
# Transaction-related messages: a resend under the same UniqueId is answered
# again, not processed twice (docs/never-lose.md).
TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")


class _Drop:
    def __repr__(self):
        return "DROP"


#: Response override meaning "never answer this CALL" (retry/timeout tests).
DROP = _Drop()


class CallErrorReply:
    """Response override: answer the CALL with a CALLERROR."""

    def __init__(self, code="InternalError", description="", details=None):
        self.code = code
        self.description = description
        self.details = details if details is not None else {}

    def __repr__(self):
        return "CallErrorReply(%r)" % self.code


class Delayed:
    """Response override: wait `seconds`, then answer with `reply` (None = default)."""

    def __init__(self, seconds, reply=None):
        self.seconds = seconds
        self.reply = reply


class CallErrorReceived(Exception):
    """The charger answered a CSMS-initiated CALL with a CALLERROR."""

    def __init__(self, action, code, description, details):
        super().__init__("%s answered with CALLERROR %s: %s %s" % (action, code, description, details))
        self.action = action
        self.code = code
        self.description = description
        self.details = details


class CallTimeout(TimeoutError):
    """The charger did not answer a CSMS-initiated CALL in time."""


class NotConnected(Exception):
    """No open connection for that charger id."""


def utc_now_iso(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def check_frame(text):
    """OCPP-J framing checks of one raw frame.

    Returns (parsed list or None, list of problem strings). Pure; used for every
    frame the charger sends."""
    if not isinstance(text, str):
        return None, ["binary frame (OCPP-J uses text frames)"]
    try:
        msg = json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        return None, ["not valid JSON: %s" % e]
    if not isinstance(msg, list):
        return None, ["not a JSON array"]
    if not msg:
        return None, ["empty array"]
    problems = []
    mtype = msg[0]
    if type(mtype) is not int or mtype not in (2, 3, 4):
        return None, ["MessageTypeId must be 2, 3 or 4, got %r" % (mtype,)]
    expected = {2: 4, 3: 3, 4: 5}[mtype]
    if len(msg) != expected:
        problems.append("message type %d must have %d elements, got %d" % (mtype, expected, len(msg)))
        if len(msg) < 2:
            return None, problems
    uid = msg[1]
    if not isinstance(uid, str):
        problems.append("UniqueId must be a string, got %r" % (uid,))
    elif len(uid) > MAX_UNIQUE_ID:
        problems.append("UniqueId longer than %d characters (%d)" % (MAX_UNIQUE_ID, len(uid)))
    elif mtype == 2 and not uid:
        problems.append("empty UniqueId in CALL")
    if mtype == 2 and len(msg) >= 3:
        if not isinstance(msg[2], str):
            problems.append("Action must be a string, got %r" % (msg[2],))
        if len(msg) >= 4 and not isinstance(msg[3], dict):
            problems.append("CALL payload must be a JSON object")
    elif mtype == 3 and len(msg) >= 3:
        if not isinstance(msg[2], dict):
            problems.append("CALLRESULT payload must be a JSON object")
    elif mtype == 4 and len(msg) >= 3:
        if msg[2] not in ERROR_CODES:
            problems.append("CALLERROR errorCode %r is not an OCPP 1.6 error code" % (msg[2],))
        if len(msg) >= 4 and not isinstance(msg[3], str):
            problems.append("CALLERROR errorDescription must be a string")
        if len(msg) >= 5 and not isinstance(msg[4], dict):
            problems.append("CALLERROR errorDetails must be a JSON object")
    return msg, problems


def _schema_error(action, mtype, payload):
    """Validate `payload` of a CALL (mtype 2) / CALLRESULT (3) for `action`
    against the OCPP 1.6 schema via the ocpp package. Returns None or the
    OCPPError raised by the package."""
    payload = copy.deepcopy(payload)
    msg = Call("x", action, payload) if mtype == 2 else CallResult("x", payload, action)
    try:
        _validate_payload(msg, OCPP_VERSION)
    except OCPPError as e:
        return e
    return None


def _cause(e):
    details = getattr(e, "details", None)
    if isinstance(details, dict) and "cause" in details:
        return str(details["cause"]).split("\n\n")[0]
    return getattr(e, "description", None) or str(e)


def _error_code(e):
    code = getattr(e, "code", "InternalError")
    return _CODE_TO_16.get(code, code)


def _compact(obj, limit=400):
    s = json.dumps(obj, separators=(",", ":"))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def format_message(m, with_time=True):
    """One readable line for a recorded message dict."""
    arrow = "-->" if m["dir"] == "in" else "<--"
    kind = {2: "", 3: ".conf", 4: ".error"}.get(m["type"], "")
    action = m.get("action") or "?"
    if m["type"] == 4 and isinstance(m.get("payload"), dict):
        body = "%s %s" % (m["payload"].get("errorCode"), m["payload"].get("errorDescription") or "")
    elif m["type"] is None:
        body = "RAW %s" % m["raw"][:200]
    else:
        body = _compact(m.get("payload"))
    t = ""
    if with_time:
        t = time.strftime("%H:%M:%S", time.localtime(m.get("wall", time.time())))
        t += ".%03d " % int((m.get("wall", 0) % 1) * 1000)
    return "%s%s %s %s%s %s" % (t, m["cp"], arrow, action, kind, body)


class _RecordingConnection:
    """Sits between the ocpp ChargePoint and the websocket: records every text
    frame in both directions and runs the strict checks on incoming frames."""

    def __init__(self, cs, cp_id, ws):
        self.cs = cs
        self.cp_id = cp_id
        self.ws = ws
        self.cp = None  # the OcppChargePoint of this connection

    async def recv(self):
        return await self.ws.recv()

    async def send(self, text):
        # Attributed to this connection even if the charger has reconnected
        # meanwhile: a late answer still counts as processed (resends).
        self.cs._outgoing(self.cp_id, text, self.cp)
        await self.ws.send(text)


class _State:
    """Per-connection protocol state."""

    def __init__(self):
        self.outstanding = None  # (uid, action, t) of the charger's unanswered CALL
        self.withheld = None  # "drop" | "delay": the CSMS withholds the answer to `outstanding`
        self.call_ids = set()  # CALL ids the charger used on this connection
        self.in_calls = {}  # uid -> (action, payload) of charger CALLs
        self.pending = {}  # uid -> {"action", "future", "raw"} of CSMS CALLs
        self.wildcards = []  # futures of raw sends whose id could not be parsed
        self.expired = {}  # uid -> action of CSMS CALLs that timed out
        self.call_lock = asyncio.Lock()
        self.triggered = []  # actions the charger may send while not Accepted
        self.boot_retry_after = None  # (earliest t, answer t, interval) after Pending/Rejected


class OcppChargePoint(_OcppChargePoint):
    """The ocpp.v16 ChargePoint for one connected charger: default answers for
    every charger-initiated action. Schema validation is done by the
    CentralSystem before and after these handlers (so that every breach is
    recorded), hence skip_schema_validation here."""

    def __init__(self, cp_id, connection, cs):
        super().__init__(cp_id, connection, response_timeout=30)
        self.cs = cs
        self.state = _State()
        self.ws = connection.ws
        self._calls = asyncio.Queue()

    # ---- wire loop ----
    async def start(self):
        worker = asyncio.ensure_future(self._worker())
        try:
            while True:
                raw = await self._connection.recv()
                await self.route_message(raw)
        finally:
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass
            for p in self.state.pending.values():
                if not p["future"].done():
                    p["future"].set_exception(NotConnected("%s disconnected" % self.id))
            for f in self.state.wildcards:
                if not f.done():
                    f.set_result(None)

    async def route_message(self, raw_msg):
        msg = self.cs._incoming(self, raw_msg)
        if msg is None:
            return
        if msg["type"] == 2:
            self._calls.put_nowait(msg)
        else:
            self.cs._resolve(self, msg)

    async def _worker(self):
        while True:
            msg = await self._calls.get()
            try:
                await self.cs._answer(self, msg)
            except ConnectionClosed:
                return
            except Exception as e:  # a CSMS-side bug must not kill the connection
                self.cs._note_error(self.id, "answering %s: %r" % (msg.get("action"), e))

    # ---- default answers ----
    @on(Action.boot_notification, skip_schema_validation=True)
    def on_boot_notification(self, **kwargs):
        return call_result.BootNotification(
            current_time=self.cs._now_iso(), interval=self.cs.heartbeat_interval, status=self.cs.boot_status
        )

    @on(Action.heartbeat, skip_schema_validation=True)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=self.cs._now_iso())

    @on(Action.status_notification, skip_schema_validation=True)
    def on_status_notification(self, **kwargs):
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    def on_authorize(self, id_tag, **kwargs):
        return call_result.Authorize(id_tag_info=self.cs.id_tag_info(id_tag))

    @on(Action.start_transaction, skip_schema_validation=True)
    def on_start_transaction(self, id_tag, **kwargs):
        return call_result.StartTransaction(
            transaction_id=self.cs._next_transaction_id(), id_tag_info=self.cs.id_tag_info(id_tag)
        )

    @on(Action.stop_transaction, skip_schema_validation=True)
    def on_stop_transaction(self, id_tag=None, **kwargs):
        if id_tag is None:
            return call_result.StopTransaction()
        return call_result.StopTransaction(id_tag_info=self.cs.id_tag_info(id_tag))

    @on(Action.meter_values, skip_schema_validation=True)
    def on_meter_values(self, **kwargs):
        return call_result.MeterValues()

    @on(Action.data_transfer, skip_schema_validation=True)
    def on_data_transfer(self, **kwargs):
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.diagnostics_status_notification, skip_schema_validation=True)
    def on_diagnostics_status_notification(self, **kwargs):
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification, skip_schema_validation=True)
    def on_firmware_status_notification(self, **kwargs):
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification, skip_schema_validation=True)
    def on_log_status_notification(self, **kwargs):
        return call_result.LogStatusNotification()

    @on(Action.security_event_notification, skip_schema_validation=True)
    def on_security_event_notification(self, **kwargs):
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate, skip_schema_validation=True)
    def on_sign_certificate(self, **kwargs):
        return call_result.SignCertificate(status="Rejected")

    @on(Action.signed_firmware_status_notification, skip_schema_validation=True)
    def on_signed_firmware_status_notification(self, **kwargs):
        return call_result.SignedFirmwareStatusNotification()


class CentralSystem:
    """Strict OCPP 1.6J central system. See the module docstring and docs/csms.md.

    tags: None accepts every idTag; otherwise {tag: "Accepted"|"Blocked"|...} or
      {tag: {"status":..., "parentIdTag":..., "expiryDate":...}}; unknown tags
      are Invalid.
    auth_keys: {charger id: key} turns on HTTP Basic auth (user = charger id).
    min_charger_timeout: the firmware's CALL timeout, for answers the CSMS
      withholds on purpose (DROP, Delayed): a charger CALL counts as abandoned,
      no longer outstanding, this many seconds after it arrived. None (default):
      a DROPped CALL is abandoned at once, a Delayed one only when answered.
    """

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        tags=None,
        boot_status="Accepted",
        heartbeat_interval=300,
        auth_keys=None,
        ssl_context=None,
        subprotocol_required=True,
        path="/ocpp",
        ping_interval=20,
        close_timeout=2,
        min_charger_timeout=None,
        first_transaction_id=1,
    ):
        self.host = host
        self.port = port
        self.tags = tags
        self.boot_status = boot_status
        self.heartbeat_interval = heartbeat_interval
        self.auth_keys = auth_keys
        self.ssl_context = ssl_context
        self.subprotocol_required = subprotocol_required
        self.path = path
        self.ping_interval = ping_interval
        self.close_timeout = close_timeout
        self.min_charger_timeout = min_charger_timeout
        self.responses = {}  # action -> dict | callable | DROP | CallErrorReply | Delayed | list
        self.on_call = None  # fn(cp_id, action, payload) -> same kinds as responses, None = default
        self.now = lambda: datetime.datetime.now(datetime.timezone.utc)
        self.messages = []
        self.violations = []
        self.errors = []  # CSMS-side problems (e.g. an override answer failing the schema)
        self.connections = []
        self.transactions = {}  # transactionId -> {"cp", "start": payload, "stop": payload|None}
        self.tx_replies = {}  # (cp_id, UniqueId) -> our CALLRESULT to a transaction message (resends)
        self.registration = {}  # cp_id -> last BootNotification status we answered
        self.chargers = {}  # cp_id -> OcppChargePoint (open connections)
        self.listeners = []  # fn(kind, record) with kind "message" | "violation" | "connection" | "error"
        self.cond = threading.Condition()
        self._tx_ids = itertools.count(first_transaction_id)
        self._server = None
        self._last_cp = None

    # ---------------------------------------------------------------- server
    @property
    def url(self):
        scheme = "wss" if self.ssl_context else "ws"
        return "%s://%s:%d%s" % (scheme, self.host, self.port, self.path)

    async def start(self):
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            subprotocols=[SUBPROTOCOL],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ssl=self.ssl_context,
            compression=None,
            ping_interval=self.ping_interval,
            close_timeout=self.close_timeout,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), self.close_timeout + 3)
        except asyncio.TimeoutError:
            pass
        self._server = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    @staticmethod
    def _cp_id_from_path(path):
        path = urllib.parse.urlsplit(path).path
        return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path.strip("/") else ""

    def _select_subprotocol(self, connection, offered):
        if SUBPROTOCOL in offered:
            return SUBPROTOCOL
        return None  # only reached when not required (checked in _process_request)

    def _process_request(self, connection, request):
        cp_id = self._cp_id_from_path(request.path)
        offered = []
        for h in request.headers.get_all("Sec-WebSocket-Protocol"):
            offered += [p.strip() for p in h.split(",")]
        reason = None
        if not cp_id:
            status, reason = 404, "no charge point id in path"
        elif self.subprotocol_required and SUBPROTOCOL not in offered:
            status, reason = 400, "subprotocol ocpp1.6 required (offered %s)" % (offered,)
        elif self.auth_keys is not None and not self._auth_ok(cp_id, request.headers.get("Authorization")):
            status, reason = 401, "HTTP Basic authentication failed"
        if reason is None:
            return None
        self._connection_event(cp_id, "rejected", path=request.path, status=status, reason=reason)
        response = connection.respond(status, reason + "\n")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    def _auth_ok(self, cp_id, header):
        key = self.auth_keys.get(cp_id)
        if key is None or not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == cp_id and password == key

    async def _handler(self, ws):
        cp_id = self._cp_id_from_path(ws.request.path)
        old = self.chargers.get(cp_id)
        conn = _RecordingConnection(self, cp_id, ws)
        cp = conn.cp = OcppChargePoint(cp_id, conn, self)
        self.chargers[cp_id] = cp
        self._last_cp = cp_id
        self._connection_event(cp_id, "connect", path=ws.request.path, subprotocol=ws.subprotocol,
                               remote=str(ws.remote_address))
        if old is not None:  # a new connection for the same id replaces the old one
            asyncio.ensure_future(old.ws.close(1000, "replaced by a new connection"))
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        finally:
            if self.chargers.get(cp_id) is cp:
                del self.chargers[cp_id]
            self._connection_event(cp_id, "disconnect", code=ws.close_code, reason=ws.close_reason)

    # ------------------------------------------------------------ recording
    def _emit(self, kind, rec):
        for fn in list(self.listeners):
            try:
                fn(kind, rec)
            except Exception:
                pass

    def _append(self, lst, rec, kind):
        with self.cond:
            lst.append(rec)
            self.cond.notify_all()
        self._emit(kind, rec)

    def _connection_event(self, cp_id, event, **info):
        rec = {"t": time.monotonic(), "wall": time.time(), "cp": cp_id, "event": event}
        rec.update(info)
        self._append(self.connections, rec, "connection")

    def _violation(self, cp_id, kind, error, raw=None, action=None):
        rec = {"t": time.monotonic(), "cp": cp_id, "kind": kind, "action": action,
               "error": str(error), "message": raw}
        self._append(self.violations, rec, "violation")

    def _note_error(self, cp_id, error):
        self._append(self.errors, {"t": time.monotonic(), "cp": cp_id, "error": error}, "error")

    def _record(self, cp_id, direction, raw, parsed, action):
        rec = {"t": time.monotonic(), "wall": time.time(), "cp": cp_id, "dir": direction,
               "type": None, "id": None, "action": action, "payload": None, "raw": raw}
        if parsed:
            if parsed[0] in (2, 3, 4):
                rec["type"] = parsed[0]
            if len(parsed) > 1:
                rec["id"] = parsed[1]
            if parsed[0] == 2 and len(parsed) > 3:
                rec["payload"] = parsed[3]
            elif parsed[0] == 3 and len(parsed) > 2:
                rec["payload"] = parsed[2]
            elif parsed[0] == 4 and len(parsed) > 2:
                rec["payload"] = {
                    "errorCode": parsed[2],
                    "errorDescription": parsed[3] if len(parsed) > 3 else None,
                    "errorDetails": parsed[4] if len(parsed) > 4 else None,
                }
        self._append(self.messages, rec, "message")
        return rec

    # ------------------------------------------------------ incoming frames
    def _incoming(self, cp, raw):
        """Record and check one frame from the charger; returns the message
        record for well-framed CALL/CALLRESULT/CALLERROR, else None."""
        st = cp.state
        parsed, problems = check_frame(raw)
        action = None
        uid = parsed[1] if parsed and len(parsed) > 1 else None
        if parsed and parsed[0] == 2 and len(parsed) > 2 and isinstance(parsed[2], str):
            action = parsed[2]
        elif parsed and isinstance(uid, str) and uid in st.pending:
            action = st.pending[uid]["action"]
        elif parsed and isinstance(uid, str) and uid in st.expired:
            action = st.expired[uid]
        text = raw if isinstance(raw, str) else repr(raw)
        rec = self._record(cp.id, "in", text, parsed, action)
        for p in problems:
            self._violation(cp.id, "framing", p, text, action)
        if parsed is None:
            return None
        if problems:
            if rec["type"] == 2 and isinstance(uid, str):
                rec["bad_frame"] = problems  # still answered, with a CALLERROR
                return rec
            if rec["type"] in (3, 4) and isinstance(uid, str):
                return rec  # still delivered to the waiting call (the breach is recorded)
            return None
        if rec["type"] == 2:
            self._check_call(cp, rec)
        return rec

    def _check_call(self, cp, rec):
        st = cp.state
        now = time.monotonic()
        if st.outstanding is not None:
            o_uid, o_action, o_t = st.outstanding
            limit = self.min_charger_timeout
            if st.withheld and ((st.withheld == "drop" and limit is None)
                                or (limit is not None and now - o_t >= limit)):
                pass  # we withheld the answer and the charger's timeout has passed
            else:
                self._violation(cp.id, "outstanding",
                                "CALL %s %s sent while CALL %s %s (%.3fs ago) is still unanswered"
                                % (rec["action"], rec["id"], o_action, o_uid, now - o_t), rec["raw"], rec["action"])
        if rec["id"] in st.call_ids:
            self._violation(cp.id, "duplicate_id",
                            "UniqueId %r reused for a CALL on the same connection" % rec["id"], rec["raw"], rec["action"])
        st.call_ids.add(rec["id"])
        st.outstanding = (rec["id"], rec["action"], now)
        st.withheld = None
        st.in_calls[rec["id"]] = (rec["action"], rec["payload"])
        reg = self.registration.get(cp.id)
        if rec["action"] == "BootNotification" and st.boot_retry_after and now < st.boot_retry_after[0]:
            self._violation(cp.id, "registration",
                            "BootNotification retried %.2fs after %s with interval %ss"
                            % (now - st.boot_retry_after[1], reg, st.boot_retry_after[2]), rec["raw"], rec["action"])
        if reg in ("Pending", "Rejected") and rec["action"] != "BootNotification":
            if rec["action"] in st.triggered:
                st.triggered.remove(rec["action"])
            else:
                self._violation(cp.id, "registration",
                                "%s sent while registration is %s" % (rec["action"], reg), rec["raw"], rec["action"])

    def _resolve(self, cp, rec):
        """A CALLRESULT/CALLERROR from the charger."""
        st = cp.state
        uid = rec["id"]
        p = st.pending.pop(uid, None)
        if p is None:
            if st.wildcards:
                f = st.wildcards.pop(0)
                if not f.done():
                    f.set_result(rec)
                return
            if uid not in st.expired:
                self._violation(cp.id, "unexpected_result",
                                "response with UniqueId %r matches no outstanding CSMS CALL" % uid, rec["raw"])
            return
        action = p["action"]
        if rec["type"] == 3 and action in CSMS_ACTIONS:
            err = _schema_error(action, 3, rec["payload"])
            if err is not None:
                self._violation(cp.id, "schema", "%s.conf: %s: %s" % (action, _error_code(err), _cause(err)),
                                rec["raw"], action)
                rec["schema_error"] = _cause(err)
        if (rec["type"] == 3 and action == "TriggerMessage" and isinstance(rec["payload"], dict)
                and rec["payload"].get("status") == "Accepted"):
            st.triggered.append(p.get("requested"))
        if not p["future"].done():
            p["future"].set_result(rec)

    # ------------------------------------------------------ outgoing frames
    def _outgoing(self, cp_id, text, cp=None):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not parsed:
            parsed = None
        if cp is None:
            cp = self.chargers.get(cp_id)
        action = None
        if parsed and parsed[0] == 2 and len(parsed) > 2:
            action = parsed[2]
        elif parsed and len(parsed) > 1 and cp is not None:
            uid = parsed[1]
            if uid in cp.state.in_calls:
                action, req = cp.state.in_calls[uid]
                if cp.state.outstanding and cp.state.outstanding[0] == uid:
                    cp.state.outstanding = None
                if parsed[0] == 3 and len(parsed) > 2 and isinstance(parsed[2], dict):
                    self._after_answer(cp, uid, action, req, parsed[2])
        return self._record(cp_id, "out", text, parsed, action)

    def _after_answer(self, cp, uid, action, req, resp):
        err = _schema_error(action, 3, resp)
        if err is not None:
            self._note_error(cp.id, "CSMS answer %s.conf fails the schema: %s" % (action, _cause(err)))
        if action in TX_ACTIONS:
            self.tx_replies[(cp.id, uid)] = resp
        if action == "BootNotification":
            self.registration[cp.id] = resp.get("status")
            interval = resp.get("interval")
            cp.state.boot_retry_after = None
            if resp.get("status") != "Accepted" and isinstance(interval, int) and interval > 0:
                now = time.monotonic()  # the charger gets the answer after this: it may not retry earlier
                cp.state.boot_retry_after = (now + interval - BOOT_RETRY_SLACK, now, interval)
        elif action == "StartTransaction" and "transactionId" in resp:
            self.transactions[resp["transactionId"]] = {"cp": cp.id, "start": req, "stop": None}
        elif action == "StopTransaction" and isinstance(req, dict):
            tx = self.transactions.get(req.get("transactionId"))
            if tx is not None:
                tx["stop"] = req

    # --------------------------------------------------- answering CALLs
    def _now_iso(self):
        return utc_now_iso(self.now())

    def _next_transaction_id(self):
        return next(self._tx_ids)

    def id_tag_info(self, tag):
        if self.tags is None:
            return {"status": "Accepted"}
        info = self.tags.get(tag)
        if info is None:
            return {"status": "Invalid"}
        if isinstance(info, str):
            return {"status": info}
        return {k: v for k, v in info.items() if v is not None}

    def _override(self, cp_id, action, payload):
        reply = None
        if self.on_call is not None:
            reply = self.on_call(cp_id, action, payload)
        if reply is None and action in self.responses:
            reply = self.responses[action]
            if isinstance(reply, list):
                reply = self.responses[action].pop(0) if reply else None
        if callable(reply):
            reply = reply(payload)
        return reply

    async def _answer(self, cp, rec):
        action, uid, payload = rec["action"], rec["id"], rec["payload"]
        st = cp.state
        if rec.get("bad_frame"):
            return await self._send_error(cp, uid, "FormationViolation", "; ".join(rec["bad_frame"]))
        if action not in CHARGER_ACTIONS:
            if action in CSMS_ACTIONS:
                code, why = "NotSupported", "%s is a Central System to Charge Point action" % action
            else:
                code, why = "NotImplemented", "unknown action %s" % action
            self._violation(cp.id, "action", why, rec["raw"], action)
            return await self._send_error(cp, uid, code, why)
        err = _schema_error(action, 2, payload)
        if err is not None:
            self._violation(cp.id, "schema", "%s: %s: %s" % (action, _error_code(err), _cause(err)), rec["raw"], action)
            return await self._send_error(cp, uid, _error_code(err), err.description, {"cause": _cause(err)})
        done = self.tx_replies.get((cp.id, uid)) if action in TX_ACTIONS else None
        if done is not None:
            # A resend of a transaction message we already processed (its answer was
            # lost with the connection or a power cut): answer it again, process it once.
            rec["resent"] = True
            return await cp._send(json.dumps([3, uid, done], separators=(",", ":")))
        reply = self._override(cp.id, action, payload)
        if inspect.isawaitable(reply):
            reply = await reply
        while isinstance(reply, Delayed):
            if st.outstanding and st.outstanding[0] == uid:
                st.withheld = "delay"
            await asyncio.sleep(reply.seconds)
            reply = reply.reply
        if reply is DROP:
            if st.outstanding and st.outstanding[0] == uid:
                st.withheld = "drop"
            return
        if isinstance(reply, CallErrorReply):
            return await self._send_error(cp, uid, reply.code, reply.description, reply.details)
        if isinstance(reply, dict):
            return await cp._send(json.dumps([3, uid, reply], separators=(",", ":")))
        # Default: the ocpp package's routing to the @on handler.
        try:
            await cp._handle_call(Call(uid, action, payload))
        except OCPPError as e:
            await self._send_error(cp, uid, _error_code(e), e.description, {"cause": _cause(e)})

    async def _send_error(self, cp, uid, code, description, details=None):
        await cp._send(json.dumps([4, uid, code, description or "", details or {}], separators=(",", ":")))

    # ------------------------------------------------ CSMS-initiated calls
    def _cp(self, cp_id):
        if cp_id is None:
            cp_id = self._last_cp
        cp = self.chargers.get(cp_id)
        if cp is None:
            raise NotConnected("charger %r is not connected" % (cp_id,))
        return cp

    def connected(self, cp_id):
        return cp_id in self.chargers

    async def call(self, cp_id, action, payload=None, timeout=10, validate=True):
        """Send a CALL and return the charger's CALLRESULT payload.
        Raises CallErrorReceived on CALLERROR, CallTimeout, NotConnected.
        A schema-invalid CALLRESULT is recorded in violations and still returned."""
        cp = self._cp(cp_id)
        payload = {} if payload is None else payload
        if validate:
            err = _schema_error(action, 2, payload)
            if err is not None:
                raise ValueError("invalid %s request: %s" % (action, err))
        async with cp.state.call_lock:
            uid = str(uuid.uuid4())
            fut = asyncio.get_running_loop().create_future()
            cp.state.pending[uid] = {"action": action, "future": fut, "raw": False,
                                     "requested": payload.get("requestedMessage")}
            await cp._send(json.dumps([2, uid, action, payload], separators=(",", ":")))
            try:
                rec = await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                cp.state.pending.pop(uid, None)
                cp.state.expired[uid] = action
                raise CallTimeout("%s: no answer to %s within %ss" % (cp.id, action, timeout)) from None
        if rec["type"] == 4:
            p = rec["payload"]
            raise CallErrorReceived(action, p["errorCode"], p["errorDescription"], p["errorDetails"])
        return rec["payload"]

    async def send_raw(self, cp_id, text, wait_reply_timeout=None):
        """Send an arbitrary text frame. If it parses as a CALL its reply is
        matched by id; otherwise the next unmatched reply is taken as the
        answer. Returns the reply message record (or None)."""
        cp = self._cp(cp_id)
        fut = asyncio.get_running_loop().create_future()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        uid = parsed[1] if isinstance(parsed, list) and len(parsed) > 1 and isinstance(parsed[1], str) else None
        if uid is not None and uid not in cp.state.pending:
            action = parsed[2] if len(parsed) > 2 and isinstance(parsed[2], str) else None
            cp.state.pending[uid] = {"action": action, "future": fut, "raw": True, "requested": None}
        else:
            cp.state.wildcards.append(fut)
        await cp._send(text)
        if not wait_reply_timeout:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), wait_reply_timeout)
        except asyncio.TimeoutError:
            if uid is not None:
                p = cp.state.pending.pop(uid, None)
                cp.state.expired[uid] = p["action"] if p else None
            elif fut in cp.state.wildcards:
                cp.state.wildcards.remove(fut)
            return None

    async def disconnect(self, cp_id, code=1000, reason=""):
        cp = self.chargers.get(cp_id)
        if cp is not None:
            await cp.ws.close(code, reason)


# =================================================================== thread
class CsmsThread:
    """CentralSystem in a background event-loop thread, for synchronous tests.

        with CsmsThread(tags={"AB": "Accepted"}) as cs:
            start_firmware(cs.url)
            boot = cs.wait_message("BootNotification")
    """

    def __init__(self, **kwargs):
        self.cs = CentralSystem(**kwargs)
        self.loop = None
        self.thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="csms-loop", daemon=True)
        self.thread.start()
        ready.wait(5)
        self._run(self.cs.start(), 10)
        return self

    def stop(self):
        if self.loop is None:
            return
        try:
            self._run(self.cs.stop(), self.cs.close_timeout + 5)
        except Exception:
            pass

        async def _cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_default_executor()

        try:
            self._run(_cancel_all(), 5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()
        self.loop = None

    def _run(self, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def _in_loop(self, fn):
        async def _f():
            return fn()

        return self._run(_f(), 5)

    # ---- properties ----
    @property
    def url(self):
        return self.cs.url

    @property
    def port(self):
        return self.cs.port

    @property
    def messages(self):
        with self.cs.cond:
            return list(self.cs.messages)

    @property
    def violations(self):
        with self.cs.cond:
            return list(self.cs.violations)

    @property
    def connections(self):
        with self.cs.cond:
            return list(self.cs.connections)

    @property
    def errors(self):
        with self.cs.cond:
            return list(self.cs.errors)

    @property
    def transactions(self):
        return self._in_loop(lambda: copy.deepcopy(self.cs.transactions))

    # ---- setters ----
    def set_tags(self, tags):
        self._in_loop(lambda: setattr(self.cs, "tags", tags))

    def set_boot_status(self, status):
        self._in_loop(lambda: setattr(self.cs, "boot_status", status))

    def set_heartbeat_interval(self, seconds):
        self._in_loop(lambda: setattr(self.cs, "heartbeat_interval", seconds))

    def set_response(self, action, reply):
        """reply: dict | callable(payload) | DROP | CallErrorReply | Delayed | list | None (= default)."""
        def _set():
            if reply is None:
                self.cs.responses.pop(action, None)
            else:
                self.cs.responses[action] = reply
        self._in_loop(_set)

    def set_responses(self, responses):
        self._in_loop(lambda: setattr(self.cs, "responses", dict(responses)))

    def set_on_call(self, fn):
        self._in_loop(lambda: setattr(self.cs, "on_call", fn))

    # ---- actions ----
    def call(self, cp_id, action, payload=None, timeout=10):
        return self._run(self.cs.call(cp_id, action, payload, timeout), timeout + 5)

    def send_raw(self, cp_id, text, wait_reply_timeout=None):
        return self._run(self.cs.send_raw(cp_id, text, wait_reply_timeout), (wait_reply_timeout or 0) + 5)

    def connected(self, cp_id):
        return self._in_loop(lambda: self.cs.connected(cp_id))

    def wait_connected(self, cp_id, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected(cp_id):
                return True
            time.sleep(0.02)
        raise AssertionError("charger %r did not connect within %ss; connections: %s"
                             % (cp_id, timeout, self.connections[-10:]))

    def disconnect(self, cp_id, code=1000, reason=""):
        self._run(self.cs.disconnect(cp_id, code, reason), self.cs.close_timeout + 5)

    # ---- waiting ----
    def wait_for(self, pred, timeout=10, since_t=None, what="message"):
        deadline = time.monotonic() + timeout
        i = 0
        with self.cs.cond:
            while True:
                msgs = self.cs.messages
                while i < len(msgs):
                    m = msgs[i]
                    i += 1
                    if since_t is not None and m["t"] < since_t:
                        continue
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cs.cond.wait(min(left, 0.5))
        raise AssertionError("timed out after %ss waiting for %s\n%s" % (timeout, what, self.dump()))

    def wait_message(self, action, dir="in", timeout=10, since_t=None, where=lambda payload: True, type=None):
        """First message of `action` in direction `dir` (CALLs by default for
        "in"; for "out" the CSMS's answer, type 3/4)."""
        if type is None:
            type = 2 if dir == "in" else None

        def pred(m):
            return (m["action"] == action and m["dir"] == dir and (type is None or m["type"] == type)
                    and where(m["payload"]))

        return self.wait_for(pred, timeout, since_t, what="%s %s" % (dir, action))

    def dump(self, last=30):
        lines = ["last %d messages:" % last]
        lines += ["  " + format_message(m) for m in self.messages[-last:]]
        v = self.violations
        lines.append("violations (%d):" % len(v))
        lines += ["  %s %s: %s" % (x["cp"], x["kind"], x["error"]) for x in v[-10:]]
        lines.append("connections: %s" % [(c["cp"], c["event"]) for c in self.connections[-10:]])
        return "\n".join(lines)


# ====================================================================== CLI
def parse_tags(text):
    if not text:
        return None
    tags = {}
    for item in text.split(","):
        item = item.strip()
        if item:
            tag, _, status = item.partition(":")
            tags[tag] = status or "Accepted"
    return tags


def parse_command(line, connected, last):
    """Console line -> (cp_id, action, payload) or a keyword tuple.
    Forms: `help`, `list`, `raw [cp] <text>`, `<ACTION> [json]`, `<cp_id> <ACTION> [json]`."""
    line = line.strip()
    if not line:
        return ("noop",)
    head, _, rest = line.partition(" ")
    if head in ("help", "?"):
        return ("help",)
    if head == "list":
        return ("list",)
    if head == "raw":
        first, _, tail = rest.strip().partition(" ")
        if first in connected:
            return ("raw", first, tail.strip())
        return ("raw", last, rest.strip())
    cp_id = last
    if head not in CSMS_ACTIONS and head in connected:
        cp_id = head
        head, _, rest = rest.strip().partition(" ")
    if head not in CSMS_ACTIONS:
        raise ValueError("unknown action %r (try help)" % head)
    payload = json.loads(rest) if rest.strip() else {}
    if not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    return ("call", cp_id, head, payload)


HELP = """commands:
  <ACTION> [json]            send a CALL to the most recently connected charger
  <cp_id> <ACTION> [json]    send a CALL to that charger
  raw [cp_id] <text>         send a raw text frame
  list                       connected chargers
  help                       this text
actions: %s""" % ", ".join(CSMS_ACTIONS)


async def _console(cs, out):
    loop = asyncio.get_running_loop()
    lines = asyncio.Queue()
    fd = sys.stdin.fileno()

    buf = bytearray()

    def readable():  # raw reads: a buffered readline() would strand lines in its buffer
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        buf.extend(data)
        while b"\n" in buf:
            i = buf.index(b"\n")
            lines.put_nowait(buf[: i + 1].decode(errors="replace"))
            del buf[: i + 1]
        if not data:
            loop.remove_reader(fd)
            if buf:
                lines.put_nowait(buf.decode(errors="replace"))
            lines.put_nowait("")

    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError, NotImplementedError):
        return
    while True:
        line = await lines.get()
        if not line:
            return
        try:
            cmd = parse_command(line, set(cs.chargers), cs._last_cp)
            if cmd[0] == "help":
                out(HELP)
            elif cmd[0] == "list":
                out("connected: %s" % (", ".join(sorted(cs.chargers)) or "(none)"))
            elif cmd[0] == "raw":
                await cs.send_raw(cmd[1], cmd[2])
            elif cmd[0] == "call":
                asyncio.ensure_future(_console_call(cs, out, cmd[1], cmd[2], cmd[3]))
        except Exception as e:
            out("error: %s" % e)


async def _console_call(cs, out, cp_id, action, payload):
    try:
        await cs.call(cp_id, action, payload, timeout=30)
    except Exception as e:
        out("error: %s: %s" % (action, e))


def main(argv=None):
    ap = argparse.ArgumentParser(description="OCPP 1.6J development central system")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--tags", default=None, help="TAG1,TAG2:Blocked (default: accept every tag)")
    ap.add_argument("--heartbeat", type=int, default=300, help="heartbeat interval for BootNotification")
    ap.add_argument("--boot", default="Accepted", choices=("Accepted", "Pending", "Rejected"))
    ap.add_argument("--auth", action="append", default=[], metavar="ID:KEY", help="require HTTP Basic auth")
    ap.add_argument("--no-time", action="store_true", help="no timestamps on output lines")
    a = ap.parse_args(argv)

    def out(line):
        print(line, flush=True)

    auth = None
    if a.auth:
        auth = dict(x.split(":", 1) for x in a.auth)
    cs = CentralSystem(host=a.host, port=a.port, tags=parse_tags(a.tags), boot_status=a.boot,
                       heartbeat_interval=a.heartbeat, auth_keys=auth)

    def listener(kind, rec):
        if kind == "message":
            out(format_message(rec, not a.no_time))
        elif kind == "violation":
            out("!! VIOLATION %s %s: %s" % (rec["cp"], rec["kind"], rec["error"]))
        elif kind == "connection":
            extra = {k: v for k, v in rec.items() if k not in ("t", "wall", "cp", "event")}
            out("%s %s %s" % (rec["cp"], rec["event"], _compact(extra)))
        elif kind == "error":
            out("!! CSMS %s" % rec["error"])

    cs.listeners.append(listener)

    async def run():
        await cs.start()
        out("listening on %s/<charger id> (subprotocol ocpp1.6); type 'help' for commands" % cs.url)
        console = asyncio.ensure_future(_console(cs, out))
        try:
            await asyncio.Event().wait()
        finally:
            console.cancel()
            await cs.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
