# OCPP 1.6J session with the central system: connection with bounded backoff,
# BootNotification until Accepted, Heartbeat, WebSocket keep-alive, at most one
# outstanding CALL, and dispatch of CSMS requests to registered handlers with
# spec-correct CALLERRORs for anything malformed.
import asyncio
import time

from lib import isotime, log, ocppj
from lib import url as urlmod
from lib import transient
from lib.ws import WSClosed, WSError, connect

CALL_TIMEOUT_MS = 30000
BACKOFF_MIN_S = 1
BACKOFF_MAX_S = 30
BOOT_RETRY_DEFAULT_S = 30
MAX_INCOMING_TASKS = 4
MAX_MESSAGE = 16384


class CallError(Exception):
    """Raised by a handler to answer with a CALLERROR, and by call() when the
    central system answered one."""

    def __init__(self, code, description=""):
        super().__init__("%s: %s" % (code, description))
        self.code = code
        self.description = description


class NotConnected(Exception):
    pass


class ChargePoint:
    def __init__(self, board, cfg, identity):
        self.board = board
        self.cfg = cfg
        self.identity = identity  # BootNotification fields
        self.accepted = False
        self.registration = None  # last BootNotification status
        self.registered = False   # accepted once since boot: a reconnect needs no new BootNotification
        self._ws = None
        self._handlers = {}
        self._listeners = []
        self._call_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._wait_uid = None
        self._wait_action = None
        self._reply = None
        self._reply_evt = asyncio.Event()
        self._incoming = 0
        self._hb_wake = asyncio.Event()
        self._net_was_down = False
        cfg.subscribe(self._on_config)

    # --- wiring -------------------------------------------------------------

    def on(self, action, handler):
        """handler: async fn(payload) -> response payload dict; may raise CallError."""
        self._handlers[action] = handler

    def listen(self, fn):
        """fn(event): called with "accepted" and "disconnected"."""
        self._listeners.append(fn)

    def _emit(self, event):
        for fn in self._listeners:
            try:
                fn(event)
            except Exception as e:
                log.error("ocpp", "listener failed on %s: %r" % (event, e))

    def _on_config(self, key, value):
        if key == "HeartbeatInterval":
            self._hb_wake.set()

    # --- outgoing -----------------------------------------------------------

    async def call(self, action, payload, timeout_ms=CALL_TIMEOUT_MS):
        """Send a CALL and return the CALLRESULT payload.

        Raises NotConnected (not online / not accepted), CallError (CALLERROR
        from the central system) or asyncio.TimeoutError."""
        if not self.accepted and action != "BootNotification":
            raise NotConnected()
        return await self._call(action, payload, timeout_ms)

    async def _call(self, action, payload, timeout_ms):
        async with self._call_lock:
            ws = self._ws
            if ws is None:
                raise NotConnected()
            uid = ocppj.new_id()
            self._wait_uid = uid
            self._wait_action = action
            self._reply = None
            self._reply_evt.clear()
            try:
                log.info("ocpp", "-> %s" % action)
                await self._send(ws, ocppj.call(uid, action, payload))
                await asyncio.wait_for(self._reply_evt.wait(), timeout_ms / 1000)
            finally:
                self._wait_uid = None
            kind, a, b = self._reply
            if kind == ocppj.ERROR:
                raise CallError(a, b)
            if kind is None:
                raise NotConnected()
            return a

    async def _send(self, ws, text):
        async with self._send_lock:
            try:
                await ws.send(text)
            except (OSError, WSClosed, WSError) as e:
                # The reader notices the dead socket too; make waiters give up now.
                self._drop(ws, "send failed: %r" % (e,))
                raise NotConnected()

    # --- incoming -----------------------------------------------------------

    def _on_message(self, ws, text):
        try:
            kind, uid, a, b = ocppj.parse(text)
        except ocppj.FrameError as e:
            log.warn("ocpp", "bad frame (%s): %s" % (e.code, e.description))
            if e.uid is not None:
                asyncio.create_task(self._reply_error(ws, e.uid, e.code, e.description))
            return
        if kind == ocppj.CALL:
            if self._incoming >= MAX_INCOMING_TASKS:
                asyncio.create_task(self._reply_error(ws, uid, "GenericError", "busy"))
                return
            self._incoming += 1
            asyncio.create_task(self._handle_call(ws, uid, a, b))
            return
        if uid != self._wait_uid:
            log.warn("ocpp", "unexpected reply %s ignored" % uid)
            return
        if kind == ocppj.RESULT:
            self._reply = (kind, b, None)
        else:
            self._reply = (kind, a, b[0])
        log.info("ocpp", "<- %s %s" % (self._wait_action, "result" if kind == ocppj.RESULT else "error " + a))
        self._reply_evt.set()

    async def _reply_error(self, ws, uid, code, description):
        try:
            await self._send(ws, ocppj.error(uid, code, description))
        except NotConnected:
            pass

    async def _handle_call(self, ws, uid, action, payload):
        try:
            log.info("ocpp", "<- %s" % action)
            # Validation code and schemas are loaded per request and dropped after.
            schema = transient.load("firmware.ocpp_schemas").schema(action)
            transient.drop("firmware.ocpp_schemas")
            handler = self._handlers.get(action)
            if schema is None:
                raise CallError("NotImplemented", "unknown action " + action)
            if handler is None:
                raise CallError("NotSupported", action + " not supported")
            problem = transient.load("lib.schema").check(schema, payload)
            transient.drop("lib.schema")
            if problem is not None:
                raise CallError(problem[0], problem[1])
            response = await handler(payload)
            await self._send(ws, ocppj.result(uid, response))
        except CallError as e:
            log.warn("ocpp", "%s answered %s: %s" % (action, e.code, e.description))
            await self._reply_error(ws, uid, e.code, e.description)
        except NotConnected:
            pass
        except Exception as e:
            log.error("ocpp", "handler %s failed: %r" % (action, e))
            await self._reply_error(ws, uid, "InternalError", "handler failed")
        finally:
            self._incoming -= 1

    # --- connection lifecycle ----------------------------------------------

    def _drop(self, ws, why):
        if self._ws is not ws or ws is None:
            return
        log.warn("ocpp", "connection lost: %s" % why)
        self._ws = None
        was_accepted = self.accepted
        self.accepted = False
        if self._wait_uid is not None:
            self._reply = (None, None, None)
            self._reply_evt.set()
        self._hb_wake.set()
        asyncio.create_task(ws.close())
        if was_accepted:
            self._emit("disconnected")

    def target(self):
        """(scheme, host, port, path) of the configured central system, or raise ValueError."""
        server = self.cfg.get("OcppServerAddress")
        scheme, host, port, path = urlmod.parse(server)
        return scheme, host, port, path + "/" + self.cfg.get("OcppChargerId")

    def _ssl_context(self):
        """TLS client context trusting the CA installed on the board (ca.pem,
        PEM or DER). MicroPython's ssl takes DER, so PEM is decoded here; with
        several PEM blocks each is loaded in turn (one root CA is expected)."""
        import binascii
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(self.board.flash.root + "ca.pem", "rb") as f:
            data = f.read()
        if b"-----BEGIN" not in data:
            ctx.load_verify_locations(cadata=data)
            return ctx
        for block in data.split(b"-----BEGIN CERTIFICATE-----")[1:]:
            body = block.split(b"-----END")[0]
            ctx.load_verify_locations(cadata=binascii.a2b_base64(body.replace(b"\n", b"").replace(b"\r", b"")))
        return ctx

    async def _connect(self, target):
        scheme, host, port, path = target
        try:
            ssl_ctx = self._ssl_context() if scheme == "wss" else None
        except (OSError, ValueError) as e:
            raise OSError("no usable CA certificate (ca.pem): %r" % (e,))
        key = self.cfg.get("AuthorizationKey")
        auth = (self.cfg.get("OcppChargerId"), key) if key else None
        timeout_ms = max(5, self.cfg.get("ConnectionTimeOut")) * 1000
        return await connect(
            self.board.net.open, scheme, host, port, path, "ocpp1.6", auth, ssl_ctx,
            min(timeout_ms, 30000), MAX_MESSAGE)

    async def run(self):
        backoff = BACKOFF_MIN_S
        while True:
            if not self.board.net.up():
                self._net_was_down = True
                await asyncio.sleep(0.2)
                continue
            if self._net_was_down:
                # The link just came back: try at once, not at the end of a long backoff.
                self._net_was_down = False
                backoff = BACKOFF_MIN_S
            try:
                target = self.target()
            except ValueError as e:
                log.error("ocpp", "invalid OcppServerAddress %r: %s" % (self.cfg.get("OcppServerAddress"), e))
                await self._sleep_unless_net_change(BACKOFF_MAX_S)
                continue
            try:
                ws = await self._connect(target)
            except Exception as e:
                log.warn("ocpp", "connect failed: %r; retry in %d s" % (e, backoff))
                await self._sleep_unless_net_change(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            log.info("ocpp", "connected")
            self._ws = ws
            reader = asyncio.create_task(self._reader(ws))
            try:
                if await self._session(ws):
                    backoff = BACKOFF_MIN_S
            except Exception as e:
                log.warn("ocpp", "session ended: %r" % (e,))
            self._drop(ws, "session ended")
            reader.cancel()
            await self._sleep_unless_net_change(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _sleep_unless_net_change(self, seconds):
        end = time.ticks_add(time.ticks_ms(), seconds * 1000)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            if not self.board.net.up():
                self._net_was_down = True
            elif self._net_was_down:
                return
            await asyncio.sleep(0.2)

    async def _reader(self, ws):
        try:
            while True:
                text = await ws.recv()
                self._on_message(ws, text)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._drop(ws, repr(e))

    async def _session(self, ws):
        """Boot then heartbeat/keep-alive until the connection drops. True once accepted."""
        if not self.registered:
            while not await self._boot(ws):
                if self._ws is not ws:
                    return False
            self.registered = True
        self.accepted = True
        self._emit("accepted")
        await self._keepalive(ws)
        return True

    async def _boot(self, ws):
        payload = {}
        for k in ("chargePointVendor", "chargePointModel", "chargePointSerialNumber",
                  "chargeBoxSerialNumber", "firmwareVersion", "meterType", "meterSerialNumber"):
            v = self.identity.get(k)
            if v:
                payload[k] = v
        try:
            res = await self._call("BootNotification", payload, CALL_TIMEOUT_MS)
        except (asyncio.TimeoutError, CallError) as e:
            log.warn("ocpp", "BootNotification failed: %r" % (e,))
            await asyncio.sleep(BOOT_RETRY_DEFAULT_S)
            return False
        status = res.get("status")
        interval = res.get("interval")
        self.registration = status
        self._set_clock(res.get("currentTime"))
        if status == "Accepted":
            if isinstance(interval, int) and interval > 0:
                try:
                    self.cfg.set_internal("HeartbeatInterval", interval)
                except ValueError as e:
                    log.warn("ocpp", "heartbeat interval %d not taken: %s" % (interval, e))
            return True
        wait = interval if isinstance(interval, int) and interval > 0 else BOOT_RETRY_DEFAULT_S
        log.info("ocpp", "registration %s, BootNotification again in %d s" % (status, wait))
        end = time.ticks_add(time.ticks_ms(), wait * 1000)
        while self._ws is ws and time.ticks_diff(end, time.ticks_ms()) > 0:
            await asyncio.sleep(0.1)
        return False

    def _set_clock(self, text):
        if isinstance(text, str):
            t = isotime.parse(text)
            if t is not None:
                self.board.clock.set(t)

    async def _keepalive(self, ws):
        last_hb = time.ticks_ms()
        last_ping = last_hb
        while self._ws is ws:
            interval = self.cfg.get("HeartbeatInterval")
            ping_s = self.cfg.get("WebSocketPingInterval")
            now = time.ticks_ms()
            if interval > 0 and time.ticks_diff(now, last_hb) >= interval * 1000:
                last_hb = now
                await self.heartbeat()
            if ping_s > 0 and time.ticks_diff(now, last_ping) >= ping_s * 1000:
                last_ping = now
                if time.ticks_diff(now, ws.last_rx) > 3 * ping_s * 1000:
                    self._drop(ws, "no traffic from central system")
                    return
                try:
                    await ws.ping()
                except Exception as e:
                    self._drop(ws, "ping failed: %r" % (e,))
                    return
            self._hb_wake.clear()
            try:
                await asyncio.wait_for(self._hb_wake.wait(), 1)
            except asyncio.TimeoutError:
                pass

    async def heartbeat(self):
        try:
            res = await self.call("Heartbeat", {})
            self._set_clock(res.get("currentTime"))
        except (NotConnected, CallError, asyncio.TimeoutError) as e:
            log.warn("ocpp", "Heartbeat failed: %r" % (e,))

    async def boot_notification(self):
        """TriggerMessage(BootNotification): send it again on the live session."""
        ws = self._ws
        if ws is not None:
            await self._boot(ws)
