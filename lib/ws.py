# Minimal RFC 6455 WebSocket client (text messages only) for MicroPython asyncio.
# It also runs on CPython asyncio so that it can be unit-tested on the host.
# Client role only: outgoing frames are masked, incoming ones must not be.
import asyncio
import binascii
import hashlib
import os
import time

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER = 4096
_CHUNK = 256

OP_CONT = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10


class WSError(Exception):
    """The connection could not be opened (handshake refused or malformed)."""


class WSClosed(Exception):
    """The connection is closed; `code` is the close code, `reason` the text."""

    def __init__(self, code=1006, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def _b64(data):
    return binascii.b2a_base64(data)[:-1]


def _utf8(text):
    # MicroPython keeps str as UTF-8 and exposes those bytes through
    # memoryview without copying, which saves one message-sized buffer per
    # send; CPython has no such view and needs encode().
    try:
        return memoryview(text)
    except TypeError:
        return text.encode()


def _is_eof(exc):
    # MicroPython raises EOFError; CPython raises asyncio.IncompleteReadError,
    # which MicroPython does not define, so it is recognised by name.
    return isinstance(exc, EOFError) or type(exc).__name__ == "IncompleteReadError"


def _valid_close_code(code):
    # Codes a peer may put on the wire (RFC 6455 7.4); 1005/1006/1015 are
    # reserved for local reporting only.
    if 1000 <= code <= 1003 or 1007 <= code <= 1014:
        return True
    return 3000 <= code <= 4999


def _frame(opcode, payload):
    # Header, mask key and masked payload in one buffer so each frame costs a
    # single allocation and a single write (frames from concurrent tasks never
    # interleave on the wire).
    n = len(payload)
    if n < 126:
        hlen = 2
    elif n < 65536:
        hlen = 4
    else:
        hlen = 10
    buf = bytearray(hlen + 4 + n)
    buf[0] = 0x80 | opcode
    if n < 126:
        buf[1] = 0x80 | n
    elif n < 65536:
        buf[1] = 0x80 | 126
        buf[2] = n >> 8
        buf[3] = n & 0xFF
    else:
        buf[1] = 0x80 | 127
        for i in range(8):
            buf[9 - i] = (n >> (8 * i)) & 0xFF
    key = os.urandom(4)
    buf[hlen:hlen + 4] = key
    k0, k1, k2, k3 = key[0], key[1], key[2], key[3]
    off = hlen + 4
    i = 0
    # Unrolled by four so the key index needs no modulo per byte.
    end4 = n & ~3
    while i < end4:
        j = off + i
        buf[j] = payload[i] ^ k0
        buf[j + 1] = payload[i + 1] ^ k1
        buf[j + 2] = payload[i + 2] ^ k2
        buf[j + 3] = payload[i + 3] ^ k3
        i += 4
    while i < n:
        buf[off + i] = payload[i] ^ key[i & 3]
        i += 1
    return buf


class WebSocket:
    def __init__(self, reader, writer, max_message=16384):
        self._r = reader
        self._w = writer
        self.max_message = max_message
        self.closed = False
        self.close_code = None
        self.close_reason = ""
        self.last_pong = None
        self.last_rx = time.ticks_ms()  # any frame from the server: the link is alive
        self.subprotocol = None
        self._close_sent = False
        # Bytes read past the end of the handshake response (a server may send
        # its first frame in the same segment as the 101).
        self._pending = b""
        # Serialises write+drain: on MicroPython two tasks draining the same
        # stream at once can drop buffered bytes.
        self._wlock = asyncio.Lock()

    # ---------------------------------------------------------------- handshake

    async def handshake(self, host, port, path, subprotocol="ocpp1.6", auth=None, timeout_ms=10000):
        try:
            await asyncio.wait_for(
                self._handshake(host, port, path, subprotocol, auth), timeout_ms / 1000)
        except asyncio.TimeoutError:
            # Checked before OSError: on CPython TimeoutError is an OSError.
            await self._abort()
            raise WSError("handshake timeout")
        except (WSError, OSError):
            await self._abort()
            raise

    async def _handshake(self, host, port, path, subprotocol, auth):
        key = _b64(os.urandom(16))
        if ":" in host and not host.startswith("["):
            hosthdr = "[%s]:%d" % (host, port)
        else:
            hosthdr = "%s:%d" % (host, port)
        lines = [
            "GET %s HTTP/1.1" % (path or "/"),
            "Host: " + hosthdr,
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: " + key.decode(),
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append("Sec-WebSocket-Protocol: " + subprotocol)
        if auth is not None:
            user, password = auth
            if isinstance(user, str):
                user = user.encode()
            if isinstance(password, str):
                password = password.encode()
            lines.append("Authorization: Basic " + _b64(user + b":" + password).decode())
        lines.append("")
        lines.append("")
        self._w.write("\r\n".join(lines).encode())
        await self._w.drain()

        head = await self._read_head()
        try:
            text = head.decode()
        except UnicodeError:
            raise WSError("bad response encoding")
        rows = text.split("\r\n")
        status = rows[0].split(" ")
        if len(status) < 2 or not status[0].startswith("HTTP/1.1"):
            raise WSError("bad status line")
        if status[1] != "101":
            raise WSError("status " + status[1])
        hdrs = {}
        for row in rows[1:]:
            if not row:
                continue
            colon = row.find(":")
            if colon <= 0:
                raise WSError("bad header line")
            name = row[:colon].strip().lower()
            value = row[colon + 1:].strip()
            if name in hdrs:
                # Repeated headers are combined as HTTP allows.
                hdrs[name] = hdrs[name] + ", " + value
            else:
                hdrs[name] = value
        if hdrs.get("upgrade", "").lower() != "websocket":
            raise WSError("no Upgrade: websocket")
        tokens = [t.strip().lower() for t in hdrs.get("connection", "").split(",")]
        if "upgrade" not in tokens:
            raise WSError("no Connection: Upgrade")
        expect = _b64(hashlib.sha1(key + _GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept", "") != expect:
            raise WSError("bad Sec-WebSocket-Accept")
        if hdrs.get("sec-websocket-extensions"):
            raise WSError("unrequested extension")
        agreed = hdrs.get("sec-websocket-protocol")
        if subprotocol:
            if agreed != subprotocol:
                raise WSError("subprotocol not agreed")
        elif agreed:
            raise WSError("unrequested subprotocol")
        self.subprotocol = agreed

    async def _read_head(self):
        # Reads in chunks instead of readline() so that a server sending an
        # endless line cannot make us allocate more than _MAX_HEADER bytes.
        head = b""
        scan = 0
        while True:
            try:
                chunk = await self._r.read(_CHUNK)
            except Exception as e:
                if _is_eof(e):
                    chunk = b""
                else:
                    raise
            if not chunk:
                raise WSError("eof in handshake")
            head += chunk
            end = head.find(b"\r\n\r\n", scan)
            if end >= 0:
                self._pending = head[end + 4:]
                return head[:end]
            if len(head) > _MAX_HEADER:
                raise WSError("response header too large")
            scan = len(head) - 3 if len(head) > 3 else 0

    # ------------------------------------------------------------------ reading

    async def _read_exact(self, n):
        if n == 0:
            return b""
        pend = self._pending
        if pend:
            if len(pend) >= n:
                self._pending = pend[n:]
                return pend[:n]
            self._pending = b""
        r = self._r
        try:
            if hasattr(r, "readinto"):
                # MicroPython stream: fill one buffer in place; readexactly
                # there concatenates chunks, costing a copy per chunk.
                buf = bytearray(n)
                mv = memoryview(buf)
                got = len(pend)
                if got:
                    buf[:got] = pend
                while got < n:
                    k = await r.readinto(mv[got:])
                    if k is None:
                        # TLS record not complete yet.
                        continue
                    if k == 0:
                        raise EOFError
                    got += k
                return buf
            data = await r.readexactly(n - len(pend))
            return pend + data if pend else data
        except Exception as e:
            if _is_eof(e):
                await self._lost("eof")
            if isinstance(e, OSError):
                await self._lost("read error")
            raise

    async def _lost(self, why):
        if self.closed:
            # Our own close() pulled the socket from under a pending recv():
            # report that close, not a network failure.
            raise WSClosed(self.close_code, self.close_reason)
        await self._abort()
        raise WSClosed(1006, why)

    async def _fail(self, code, why):
        # Protocol violation by the server: tell it why, then drop the link.
        await self._send_close(code, why)
        await self._abort()
        self.close_code = code
        self.close_reason = why
        raise WSClosed(code, why)

    async def recv(self):
        """Next complete text message as str. One reader task at a time;
        send()/ping()/close() may be called from other tasks meanwhile."""
        if self.closed:
            raise WSClosed(self.close_code or 1006, self.close_reason)
        msg = None
        while True:
            hdr = await self._read_exact(2)
            self.last_rx = time.ticks_ms()
            b0 = hdr[0]
            b1 = hdr[1]
            fin = b0 & 0x80
            opcode = b0 & 0x0F
            if b0 & 0x70:
                await self._fail(1002, "reserved bits set")
            if b1 & 0x80:
                await self._fail(1002, "masked frame from server")
            n = b1 & 0x7F
            if opcode >= OP_CLOSE:
                if opcode > OP_PONG:
                    await self._fail(1002, "unknown opcode")
                if not fin or n > 125:
                    await self._fail(1002, "bad control frame")
            elif opcode > OP_BINARY:
                await self._fail(1002, "unknown opcode")
            if n == 126:
                ext = await self._read_exact(2)
                n = (ext[0] << 8) | ext[1]
            elif n == 127:
                ext = await self._read_exact(8)
                if ext[0] & 0x80:
                    await self._fail(1002, "bad length")
                n = 0
                for i in range(8):
                    n = (n << 8) | ext[i]

            if opcode >= OP_CLOSE:
                payload = await self._read_exact(n)
                if opcode == OP_PING:
                    if not self._close_sent:
                        try:
                            await self._send_frame(OP_PONG, payload)
                        except OSError:
                            await self._lost("write error")
                elif opcode == OP_PONG:
                    self.last_pong = time.ticks_ms()
                else:
                    await self._on_close(payload)
                continue

            if opcode == OP_BINARY:
                await self._fail(1003, "binary not supported")
            if opcode == OP_TEXT:
                if msg is not None:
                    await self._fail(1002, "expected continuation")
                # Checked before reading so an oversize frame never gets buffered.
                if n > self.max_message:
                    await self._fail(1009, "message too big")
                payload = await self._read_exact(n)
                if fin:
                    return await self._decode(payload)
                msg = bytearray(payload)
            else:
                if msg is None:
                    await self._fail(1002, "unexpected continuation")
                if len(msg) + n > self.max_message:
                    await self._fail(1009, "message too big")
                msg.extend(await self._read_exact(n))
                if fin:
                    return await self._decode(msg)

    async def _decode(self, data):
        try:
            return str(data, "utf-8")
        except UnicodeError:
            await self._fail(1007, "invalid utf-8")

    async def _on_close(self, payload):
        if len(payload) == 1:
            await self._fail(1002, "bad close payload")
        code = 1005
        reason = ""
        if len(payload) >= 2:
            code = (payload[0] << 8) | payload[1]
            if not _valid_close_code(code):
                await self._fail(1002, "bad close code")
            try:
                reason = str(payload[2:], "utf-8")
            except UnicodeError:
                await self._fail(1007, "bad close reason")
        # Echo the code as RFC 6455 5.5.1 asks; 1005 means "none given" and
        # must not be sent, so the reply is empty then.
        await self._send_close(code if code != 1005 else None, "")
        await self._abort()
        self.close_code = code
        self.close_reason = reason
        raise WSClosed(code, reason)

    # ------------------------------------------------------------------ writing

    async def _send_frame(self, opcode, payload):
        frame = _frame(opcode, payload)
        await self._wlock.acquire()
        try:
            self._w.write(frame)
            await self._w.drain()
        finally:
            self._wlock.release()

    async def _send_close(self, code, reason):
        # Never raises: used on paths that are already tearing the link down.
        if self._close_sent:
            return
        self._close_sent = True
        if code is None:
            payload = b""
        else:
            while len(reason.encode()) > 123:
                reason = reason[:-1]
            payload = bytes((code >> 8, code & 0xFF)) + reason.encode()
        try:
            await self._send_frame(OP_CLOSE, payload)
        except Exception:
            pass

    async def _abort(self):
        if self.closed:
            return
        self.closed = True
        if self.close_code is None:
            self.close_code = 1006
        w = self._w
        try:
            w.close()
        except Exception:
            pass
        try:
            # MicroPython only releases the socket in wait_closed(); on CPython
            # a TLS shutdown could stall, hence the bound.
            await asyncio.wait_for(w.wait_closed(), 1)
        except Exception:
            pass

    async def send(self, text):
        if self.closed or self._close_sent:
            raise WSClosed(self.close_code or 1006, self.close_reason)
        data = _utf8(text) if isinstance(text, str) else text
        try:
            await self._send_frame(OP_TEXT, data)
        except OSError:
            await self._lost("write error")

    async def ping(self, payload=b""):
        if isinstance(payload, str):
            payload = payload.encode()
        if len(payload) > 125:
            raise ValueError("ping payload > 125 bytes")
        if self.closed or self._close_sent:
            raise WSClosed(self.close_code or 1006, self.close_reason)
        try:
            await self._send_frame(OP_PING, payload)
        except OSError:
            await self._lost("write error")

    async def close(self, code=1000, reason=""):
        # The server's close reply is not awaited: another task may be blocked
        # in recv() on the same stream, and two readers cannot share it.
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        await self._send_close(code, reason)
        await self._abort()


async def connect(open_fn, scheme, host, port, path, subprotocol="ocpp1.6", auth=None,
                  ssl_ctx=None, timeout_ms=10000, max_message=16384):
    if scheme == "wss":
        if ssl_ctx is None:
            # The link's open() treats None as plain TCP; refuse rather than
            # silently downgrade.
            raise WSError("wss needs an ssl context")
        ctx = ssl_ctx
        sni = host
    elif scheme == "ws":
        ctx = None
        sni = None
    else:
        raise WSError("bad scheme")
    box = [None]

    async def run():
        reader, writer = await open_fn(host, port, ctx, sni)
        ws = WebSocket(reader, writer, max_message)
        box[0] = ws
        await ws._handshake(host, port, path, subprotocol, auth)
        return ws

    try:
        return await asyncio.wait_for(run(), timeout_ms / 1000)
    except asyncio.TimeoutError:
        if box[0] is not None:
            await box[0]._abort()
        raise WSError("connect timeout")
    except Exception:
        if box[0] is not None:
            await box[0]._abort()
        raise
