# OCPP 1.6J session with the central system: connection with bounded backoff,
# BootNotification until Accepted, Heartbeat, WebSocket keep-alive, at most one
# outstanding CALL, and dispatch of CSMS requests to registered handlers with
# spec-correct CALLERRORs for anything malformed.
# Kept small on purpose (every function and string costs heap on the device):
# one-use helpers are inlined and log texts are short.
import asyncio
import gc
import time
from micropython import const

from lib import isotime, log, ocppj, transient, url
from lib.ws import PIECE, WSClosed, WSError, connect
from firmware import ocpp_schemas, watchdog

_CALL_TIMEOUT_MS = const(30000)
_BACKOFF_MAX_S = const(30)
_BOOT_RETRY_S = const(30)
_MAX_INCOMING_TASKS = const(4)
_MAX_MESSAGE = const(16384)
_MAX_DEPTH = const(16)  # nesting; OCPP 1.6's deepest message (SetChargingProfile) has 6 levels
# The message buffer: messages up to this size (any journal record:
# lib/journal.MAX_DATA) are encoded, and received messages up to this size
# (the guide's 30-entry SendLocalList too) assembled, without a heap block of
# their own. One buffer for both: a send waits while a received message is
# read into it and decoded, and a message arriving during a send waits until
# the frame is written.
OUT_BYTES = const(4096)


class CallError(Exception):
    """Raised by a handler to answer with a CALLERROR, and by call() when the
    central system answered one."""

    def __init__(self, code, description=""):
        super().__init__("%s: %s" % (code, description))
        self.code = code
        self.description = description


class NotConnected(Exception):
    pass


class _Buffer:
    """`async with cp.buffer as out`: the message buffer (an empty ocppj.Out)
    held until the block ends; sends wait meanwhile. The block must not await."""

    def __init__(self, lock, out):
        self._lock = lock
        self._out = out

    async def __aenter__(self):
        await self._lock.acquire()
        self._out.n = 0
        return self._out

    async def __aexit__(self, *exc):
        self._lock.release()


class ChargePoint:
    def __init__(self, board, cfg, identity, out=None):
        self.board = board
        self.cfg = cfg
        self.identity = identity  # BootNotification fields
        self.accepted = False
        self.registered = False   # accepted once since boot: a reconnect needs no new BootNotification
        self._ws = None
        self._handlers = {}
        self._listeners = []
        self._call_lock = asyncio.Lock()
        self._wait_uid = None
        self._wait_action = None
        self._reply: "tuple | None" = None  # (kind, a, b) of the answer
        self._reply_evt = asyncio.Event()
        self._incoming = 0
        self._hb_wake = asyncio.Event()
        self._net_was_down = False
        self._out = out or ocppj.Out(OUT_BYTES)
        self._piece = bytearray(PIECE)  # the WebSocket's send buffer, kept across reconnects
        self._out_lock = asyncio.Lock()  # the buffer is in use until the frame is written (or the message read decoded)
        self.buffer = _Buffer(self._out_lock, self._out)
        # A new HeartbeatInterval takes effect at once, not after the old one.
        cfg.subscribe(lambda key, value: key in ("HeartbeatInterval", "WebSocketPingInterval")
                      and self._hb_wake.set())

    # --- wiring -------------------------------------------------------------

    def on(self, action, handler):
        """handler: fn(payload) -> response payload dict, or an async fn
        (awaited); may raise CallError. A handler that awaits nothing is a
        plain function: a request then needs no heap block for a coroutine
        (a burst of requests found none on a fragmented heap)."""
        self._handlers[action] = handler

    def listen(self, fn):
        """fn(event): called with "accepted" and "disconnected"."""
        self._listeners.append(fn)

    def _emit(self, event):
        for fn in self._listeners:
            try:
                fn(event)
            except Exception as e:
                log.error("ocpp", "listener %s: %r" % (event, e))

    # --- outgoing -----------------------------------------------------------

    async def call(self, action, payload, timeout_ms=_CALL_TIMEOUT_MS, uid=None):
        """Send a CALL and return the CALLRESULT payload. uid: the UniqueId of a
        resent transaction message (never reused on one connection); None: a new one.

        Raises NotConnected (not online / not accepted), CallError (CALLERROR
        from the central system) or asyncio.TimeoutError."""
        if not self.accepted and action != "BootNotification":
            raise NotConnected()
        async with self._call_lock:
            ws = self._ws
            if ws is None:
                raise NotConnected()
            if uid is None:
                uid = ocppj.new_id()
            self._wait_uid = uid
            self._wait_action = action
            self._reply_evt.clear()  # (self._reply is None between calls)
            try:
                log.info("ocpp", "-> " + action)
                await self._send(ws, [ocppj.CALL, uid, action, payload])
                await asyncio.wait_for(self._reply_evt.wait(), timeout_ms / 1000)
            finally:
                self._wait_uid = None
                r = self._reply
                self._reply = None
            if r is None:  # (set before the event: not seen)
                raise NotConnected()
            kind, a, b = r
            if kind == ocppj.ERROR:
                raise CallError(a, b)
            if kind is None:
                raise NotConnected()
            return a

    def heard_since(self, t):
        """Whether anything came from the central system since ticks_ms t on
        the connection in use."""
        ws = self._ws
        return ws is not None and time.ticks_diff(ws.last_rx, t) >= 0

    def drop_link(self, why):
        """Give up the connection in use (a reconnect follows)."""
        self._drop(self._ws, why)

    def scratch(self):
        """The message buffer for use before the next await, or None while a send holds it."""
        return None if self._out_lock.locked() else self._out.buf

    def writer(self):
        """The message buffer as an empty ocppj.Out for use before the next
        await (the transaction journal encodes into it), or None while a send
        holds it."""
        if self._out_lock.locked():
            return None
        self._out.n = 0
        return self._out

    async def _send(self, ws, msg, quiet=False):
        # msg: the OCPP-J message as a list, encoded into the shared buffer.
        # quiet: a failure is not raised (answers sent from their own task).
        try:
            async with self._out_lock:
                await ws.send(self._out.encode(msg))
        except (OSError, WSClosed, WSError) as e:
            # The reader notices the dead socket too; make waiters give up now.
            self._drop(ws, "send failed: %r" % (e,))
            if not quiet:
                raise NotConnected()

    # --- incoming -----------------------------------------------------------

    async def _reader(self, ws):
        try:
            while True:
                # A message the heap has no room for costs that message, not
                # the connection: dropped by ws (the CSMS's call times out and
                # is retried), or answered InternalError when it was read.
                try:
                    text = await ws.recv()
                except MemoryError:
                    log.warn("ocpp", "rx dropped: no memory")
                    continue
                try:
                    try:
                        kind, uid, a, b = ocppj.parse(text)
                    except MemoryError:
                        # Often the garbage of earlier messages, not live data:
                        # collect it and decode once more.
                        gc.collect()
                        kind, uid, a, b = ocppj.parse(text)
                except ocppj.FrameError as e:
                    ws.rx_done()
                    log.warn("ocpp", "bad frame %s: %s" % (e.code, e.description))
                    if e.uid is not None:
                        asyncio.create_task(self._send(ws, ocppj.error_msg(e.uid, e.code, e.description), True))
                    continue
                except MemoryError:
                    uid = ocppj.peek_id(text, ("[2,",))  # a CALL gets its answer
                    # MicroPython's decoder keeps its nesting on the heap: a
                    # message nested deeper than any OCPP payload is the
                    # sender's error, whatever the heap has free.
                    try:
                        deep = ocppj.too_deep(text, _MAX_DEPTH)
                    except MemoryError:
                        deep = False
                    text = None
                    ws.rx_done()
                    log.warn("ocpp", "rx nested too deep" if deep else "rx no memory")
                    if uid is not None:
                        err = (ocppj.error_msg(uid, "TypeConstraintViolation", "nested too deep") if deep
                               else ocppj.error_msg(uid, "InternalError", "out of memory"))
                        asyncio.create_task(self._send(ws, err, True))
                    continue
                text = None
                ws.rx_done()  # decoded: the buffer is the senders' again
                if kind == ocppj.CALL:
                    if self._incoming >= _MAX_INCOMING_TASKS:
                        asyncio.create_task(self._send(ws, ocppj.error_msg(uid, "GenericError", "busy"), True))
                    else:
                        self._incoming += 1
                        asyncio.create_task(self._handle_call(ws, uid, a, b))
                elif uid != self._wait_uid:
                    log.warn("ocpp", "stray reply " + uid)
                else:
                    ok = kind == ocppj.RESULT
                    self._reply = (kind, b, None) if ok else (kind, a, b[0])
                    log.info("ocpp", "<- %s %s" % (self._wait_action, "result" if ok else "error %s" % a))
                    self._reply_evt.set()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._drop(ws, repr(e))
        finally:
            ws.rx_done()

    async def _handle_call(self, ws, uid, action, payload):
        try:
            log.info("ocpp", "<- " + action)
            # Validation stays imported (about 1.7 KB; a schema is parsed per
            # request): loaded per request it needed a 1.3 KB block that a heap
            # fragmented by a BLE session and a meter plan reload did not have.
            problem = ocpp_schemas.check(action, payload, action in self._handlers)
            if problem is not None:
                raise CallError(problem[0], problem[1])
            r = self._handlers[action](payload)
            if hasattr(r, "send"):  # a coroutine
                r = await r
            await self._send(ws, [ocppj.RESULT, uid, r])
        except CallError as e:
            log.warn("ocpp", "%s answered %s: %s" % (action, e.code, e.description))
            await self._send(ws, ocppj.error_msg(uid, e.code, e.description), True)
        except NotConnected:
            pass
        except Exception as e:
            log.error("ocpp", "%s failed: %r" % (action, e))
            await self._send(ws, ocppj.error_msg(uid, "InternalError", "handler failed"), True)
        finally:
            self._incoming -= 1

    # --- connection lifecycle ----------------------------------------------

    def _drop(self, ws, why):
        if self._ws is not ws or ws is None:
            return
        log.warn("ocpp", "connection lost: " + why)
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

    async def run(self):
        backoff = 1
        cfg = self.cfg
        while True:
            watchdog.checkin(watchdog.OCPP)
            if not self.board.net.up():
                self._net_was_down = True
                await asyncio.sleep(0.2)
                continue
            if self._net_was_down:
                # The link just came back: try at once, not at the end of a long backoff.
                self._net_was_down = False
                backoff = 1
            server = cfg.get("OcppServerAddress")
            try:
                scheme, host, port, path = url.parse(server)
            except ValueError as e:
                log.error("ocpp", "invalid OcppServerAddress %r: %s" % (server, e))
                await self._sleep_unless_net_change(_BACKOFF_MAX_S)
                continue
            server = None
            try:
                ctx = self.tls_context() if scheme == "wss" else None
                cid = cfg.get("OcppChargerId")
                key = cfg.get("AuthorizationKey")
                ws = await connect(
                    self.board.net.open, scheme, host, port, path + "/" + cid, "ocpp1.6",
                    (cid, key) if key else None, ctx,
                    min(max(5, cfg.get("ConnectionTimeOut")) * 1000, 30000), _MAX_MESSAGE, self._out.buf,
                    self._piece, self._out_lock)
            except Exception as e:
                log.warn("ocpp", "connect failed: %r, retry in %d s" % (e, backoff))
                await self._sleep_unless_net_change(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            ctx = None
            log.info("ocpp", "connected")
            self._ws = ws
            reader = asyncio.create_task(self._reader(ws))
            try:
                if await self._session(ws):
                    backoff = 1
            except Exception as e:
                log.warn("ocpp", "session: %r" % (e,))
            self._drop(ws, "session ended")
            reader.cancel()
            await self._sleep_unless_net_change(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _sleep_unless_net_change(self, seconds):
        end = time.ticks_add(time.ticks_ms(), seconds * 1000)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            if not self.board.net.up():
                self._net_was_down = True
            elif self._net_was_down:
                return
            await asyncio.sleep(0.2)

    async def _session(self, ws):
        """Boot then heartbeat/keep-alive until the connection drops. True once accepted."""
        if not self.registered:
            while not await self._boot(ws):
                watchdog.checkin(watchdog.OCPP)
                if self._ws is not ws:
                    return False
            self.registered = True
        self.accepted = True
        self._emit("accepted")
        cfg = self.cfg
        last_hb = last_ping = time.ticks_ms()
        while self._ws is ws:
            watchdog.checkin(watchdog.OCPP)
            interval = cfg.get("HeartbeatInterval")
            ping_s = cfg.get("WebSocketPingInterval")
            now = time.ticks_ms()
            if interval > 0 and time.ticks_diff(now, last_hb) >= interval * 1000:
                last_hb = now
                await self.heartbeat()
            if ping_s > 0 and time.ticks_diff(now, last_ping) >= ping_s * 1000:
                last_ping = now
                if time.ticks_diff(now, ws.last_rx) > 3 * ping_s * 1000:
                    self._drop(ws, "no traffic for 3 ping intervals")
                    break
                try:
                    await ws.ping()
                except Exception as e:
                    self._drop(ws, "ping failed: %r" % (e,))
                    break
            # Sleep until the next heartbeat or ping is due, not a fixed tick:
            # each wait_for costs a task and a timeout exception.
            wait = 0
            if interval > 0:
                wait = interval * 1000 - time.ticks_diff(time.ticks_ms(), last_hb)
            if ping_s > 0:
                left = ping_s * 1000 - time.ticks_diff(time.ticks_ms(), last_ping)
                if wait <= 0 or left < wait:
                    wait = left
            self._hb_wake.clear()
            if self._ws is not ws:
                break
            if interval <= 0 and ping_s <= 0:
                watchdog.park(watchdog.OCPP)  # nothing due until a request wakes it
                await self._hb_wake.wait()
                continue
            watchdog.expect(watchdog.OCPP, max(wait, 10))
            try:
                await asyncio.wait_for(self._hb_wake.wait(), max(wait, 10) / 1000)
            except asyncio.TimeoutError:
                pass
        return True

    async def _boot(self, ws):
        payload = {}
        for k in self.identity:
            if self.identity[k]:
                payload[k] = self.identity[k]
        try:
            res = await self.call("BootNotification", payload)
        except (asyncio.TimeoutError, CallError) as e:
            log.warn("ocpp", "%s failed: %r" % ("BootNotification", e))
            watchdog.expect(watchdog.OCPP, _BOOT_RETRY_S * 1000)
            await asyncio.sleep(_BOOT_RETRY_S)
            return False
        status = res.get("status")
        interval = res.get("interval")
        t = isotime.parse(res.get("currentTime"))  # None unless a valid dateTime
        if t is not None:
            self.board.clock.set(t)
        ok = isinstance(interval, int) and interval > 0
        if status == "Accepted":
            if ok:
                try:
                    self.cfg.set_internal("HeartbeatInterval", interval)
                except ValueError as e:
                    log.warn("ocpp", "interval %d: %s" % (interval, e))
            return True
        wait = interval if ok else _BOOT_RETRY_S
        log.info("ocpp", "registration %s, again in %d s" % (status, wait))
        end = time.ticks_add(time.ticks_ms(), wait * 1000)
        watchdog.expect(watchdog.OCPP, wait * 1000)
        while self._ws is ws and time.ticks_diff(end, time.ticks_ms()) > 0:
            await asyncio.sleep(0.1)
        return False

    async def heartbeat(self):
        try:
            t = isotime.parse((await self.call("Heartbeat", {})).get("currentTime"))
            if t is not None:
                self.board.clock.set(t)
        except (NotConnected, CallError, asyncio.TimeoutError) as e:
            log.warn("ocpp", "%s failed: %r" % ("Heartbeat", e))

    def tls_context(self):
        """TLS client context trusting the CA installed on the board (ca.pem,
        PEM or DER; also used for https:// downloads). MicroPython's ssl takes
        DER, so PEM is decoded here; with several PEM blocks each is loaded in
        turn (one root CA is expected)."""
        try:
            import binascii
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_REQUIRED
            with open(self.board.flash.root + "ca.pem", "rb") as f:
                data = f.read()
            if b"-----BEGIN" not in data:
                ctx.load_verify_locations(cadata=data)
            for block in data.split(b"-----BEGIN CERTIFICATE-----")[1:]:
                body = block.split(b"-----END")[0]
                ctx.load_verify_locations(cadata=binascii.a2b_base64(
                    body.replace(b"\n", b"").replace(b"\r", b"")))
            return ctx
        except (OSError, ValueError) as e:
            raise OSError("no usable CA certificate (ca.pem): %r" % (e,))

    async def boot_notification(self):
        """TriggerMessage(BootNotification): send it again on the live session."""
        ws = self._ws
        if ws is not None:
            await self._boot(ws)
