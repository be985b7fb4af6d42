# Minimal RFC 6455 WebSocket client (text messages only) for MicroPython asyncio.
# It also runs on CPython asyncio so that it can be unit-tested on the host.
# Client role only: outgoing frames are masked, incoming ones must not be.
# Kept small on purpose (every function and string costs heap on the device):
# helpers are inlined and error texts are short.
import asyncio
import binascii
import hashlib
import os
import time
from micropython import const

_OP_TEXT = const(1)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)
# Reads in chunks instead of readline() so that a server sending an endless
# line cannot make us allocate more than _MAX_HEADER bytes.
_MAX_HEADER = const(4096)
_PIECE = const(512)  # bigger messages are sent in pieces of this size
PIECE = _PIECE


class WSError(Exception):
    """The connection could not be opened (handshake refused or malformed)."""


class WSClosed(Exception):
    """The connection is closed; `code` is the close code, `reason` the text."""

    def __init__(self, code=1006, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def _frame(opcode, payload, n=None):
    # Header, mask key and masked payload in one buffer so each frame costs a
    # single allocation and a single write (frames from concurrent tasks never
    # interleave on the wire). n: the payload length when only the header and
    # key are wanted (send() masks a big payload in pieces after it).
    body = n is None
    if body:
        n = len(payload)
    hlen = 2 if n < 126 else 4 if n < 65536 else 10
    buf = bytearray(hlen + 4 + (n if body else 0))
    buf[0] = 0x80 | opcode
    if hlen == 2:
        buf[1] = 0x80 | n
    else:
        buf[1] = 0xFE if hlen == 4 else 0xFF
        for i in range(hlen - 2):
            buf[hlen - 1 - i] = (n >> (8 * i)) & 0xFF
    buf[hlen:hlen + 4] = os.urandom(4)
    if body:
        _mask(buf, hlen + 4, payload, 0, n, buf[hlen:hlen + 4])
    return buf


def _mask(buf, off, payload, start, n, key):
    # buf[off:off+n] = payload[start:start+n] masked with key (start % 4 == 0).
    k0, k1, k2, k3 = key[0], key[1], key[2], key[3]
    i = 0
    # Unrolled by four so the key index needs no modulo per byte.
    end4 = n & ~3
    while i < end4:
        j = off + i
        p = start + i
        buf[j] = payload[p] ^ k0
        buf[j + 1] = payload[p + 1] ^ k1
        buf[j + 2] = payload[p + 2] ^ k2
        buf[j + 3] = payload[p + 3] ^ k3
        i += 4
    while i < n:
        buf[off + i] = payload[start + i] ^ key[i & 3]
        i += 1


class WebSocket:
    def __init__(self, reader, writer, max_message=16384, rx=None, piece=None, rx_lock=None):
        self._r = reader
        self._w = writer
        self.max_message = max_message
        # rx: a buffer allocated once (at boot, while the heap is whole) that
        # messages up to its size are assembled in; recv() then returns a
        # memoryview of it, valid until rx_done() or the next recv(), instead
        # of a str. rx_lock: the buffer is shared (the sender's): held from
        # the first byte of a message read into it until rx_done().
        self._rx = rx
        self._rx_lock = rx_lock
        self._rx_held = False
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
        # Big frames are masked through it (send()). piece: one of PIECE bytes
        # allocated once, at boot: a reconnect on a fragmented heap may find no
        # free block of that size.
        self._piece = piece if piece is not None else bytearray(_PIECE)
        self._key = None  # the mask key of the frame being sent
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
        key = binascii.b2a_base64(os.urandom(16))[:-1]
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n") % (path or "/", host, port, key.decode())
        if subprotocol:
            req += "Sec-WebSocket-Protocol: %s\r\n" % subprotocol
        if auth is not None:
            user, password = auth
            if isinstance(user, str):
                user = user.encode()
            if isinstance(password, str):
                password = password.encode()
            req += "Authorization: Basic %s\r\n" % binascii.b2a_base64(user + b":" + password)[:-1].decode()
        self._w.write((req + "\r\n").encode())
        req = None
        await self._w.drain()

        head = b""
        while True:
            try:
                chunk = await self._r.read(256)
            except EOFError:  # CPython's IncompleteReadError is one too
                chunk = b""
            if not chunk:
                raise WSError("eof in handshake")
            head += chunk
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(head) > _MAX_HEADER:
                raise WSError("header too large")
        self._pending = head[end + 4:]
        try:
            rows = head[:end].decode().split("\r\n")
        except UnicodeError:
            raise WSError("bad encoding")
        head = None
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
                value = hdrs[name] + ", " + value
            hdrs[name] = value
        get = hdrs.get
        if get("upgrade", "").lower() != "websocket":
            raise WSError("bad Upgrade")
        for t in get("connection", "").split(","):
            if t.strip().lower() == "upgrade":
                break
        else:
            raise WSError("bad Connection")
        expect = binascii.b2a_base64(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())[:-1]
        if get("sec-websocket-accept", "") != expect.decode():
            raise WSError("bad Sec-WebSocket-Accept")
        if get("sec-websocket-extensions"):
            raise WSError("bad extension")
        agreed = get("sec-websocket-protocol")
        # None requested: none may be agreed either.
        if (agreed or None) != (subprotocol or None):
            raise WSError("bad subprotocol")
        self.subprotocol = agreed

    # ------------------------------------------------------------------ reading

    async def _read(self, n):
        pend = self._pending
        if len(pend) >= n:
            if n:
                self._pending = pend[n:]
                return pend[:n]
            return b""
        r = self._r
        # Allocated before anything is consumed: a MemoryError here leaves
        # the stream where it was (recv() then skips the payload).
        buf = bytearray(n) if hasattr(r, "readinto") else None
        self._pending = b""
        try:
            if buf is not None:
                # MicroPython stream: fill one buffer in place; readexactly
                # there concatenates chunks, costing a copy per chunk.
                got = len(pend)
                buf[:got] = pend
                mv = memoryview(buf)
                while got < n:
                    k = await r.readinto(mv[got:])
                    if k is None:
                        # TLS record not complete yet.
                        continue
                    if not k:
                        raise EOFError
                    got += k
                return buf
            data = await r.readexactly(n - len(pend))
            return pend + data if pend else data
        # MicroPython raises EOFError; CPython's IncompleteReadError is one.
        except EOFError:
            await self._fail(1006, "eof")
        except OSError:
            await self._fail(1006, "frame read error")

    async def _fail(self, code, why, reply=None):
        # Ends the link and raises WSClosed(code, why). 1006: the link is lost,
        # nothing is sent. Otherwise a protocol violation by the server (tell
        # it why) or its close frame (reply: the (code, reason) echoed).
        if code == 1006:
            if self.closed:
                # Our own close() pulled the socket from under a pending
                # recv(): report that close, not a network failure.
                code = self.close_code or code
                why = self.close_reason
        else:
            await self._send_close(*(reply or (code, why)))
            self.close_code = code
            self.close_reason = why
        await self._abort()
        raise WSClosed(code, why)

    def rx_done(self):
        """The message recv() returned in the receive buffer is decoded: the
        buffer is free for its other user (recv() calls it too)."""
        lock = self._rx_lock
        if self._rx_held and lock is not None:
            self._rx_held = False
            lock.release()

    async def recv(self):
        """Next complete text message as str (or a memoryview of the receive
        buffer). One reader task at a time; send()/ping()/close() may be
        called from other tasks meanwhile."""
        self.rx_done()
        try:
            return await self._recv()
        except BaseException:
            self.rx_done()
            raise

    async def _recv(self):
        if self.closed:
            raise WSClosed(self.close_code or 1006, self.close_reason)
        msg = None
        total = 0
        drop = False
        while True:
            hdr = await self._read(2)
            self.last_rx = time.ticks_ms()
            b0 = hdr[0]
            n = hdr[1]
            fin = b0 & 0x80
            op = b0 & 0x0F
            if b0 & 0x70:
                await self._fail(1002, "reserved bits set")
            if n & 0x80:
                await self._fail(1002, "masked frame from server")
            n &= 0x7F
            if op > _OP_PONG or 2 < op < _OP_CLOSE:
                await self._fail(1002, "unknown opcode")
            if op >= _OP_CLOSE and (not fin or n > 125):
                await self._fail(1002, "bad control frame")
            if n >= 126:
                ext = await self._read(2 if n == 126 else 8)
                if n == 127 and ext[0] & 0x80:
                    await self._fail(1002, "bad length")
                n = int.from_bytes(ext, "big")

            if op >= _OP_CLOSE:
                data = await self._read(n)
                if op == _OP_PING:
                    if not self._close_sent:
                        await self.send(data, _OP_PONG)
                elif op == _OP_PONG:
                    self.last_pong = time.ticks_ms()
                else:
                    code = 1005
                    why = ""
                    if n:
                        code = (data[0] << 8) | data[1] if n > 1 else 0
                        # Codes a peer may put on the wire (RFC 6455 7.4);
                        # 1005/1006/1015 are reserved for local reporting only.
                        if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
                            await self._fail(1002, "bad close payload" if n == 1 else "bad close code")
                        try:
                            why = str(data[2:], "utf-8")
                        except UnicodeError:
                            await self._fail(1007, "bad close reason")
                    # Echo the code as RFC 6455 5.5.1 asks; 1005 means "none
                    # given" and must not be sent, so the reply is empty then.
                    await self._fail(code, why, (code if n else None, ""))
                continue

            if op == 2:
                await self._fail(1003, "binary not supported")
            if op:
                if msg is not None:
                    await self._fail(1002, "expected continuation")
                total = 0
                drop = False
            elif msg is None:
                await self._fail(1002, "unexpected continuation")
            total += n
            # Checked before reading so an oversize frame never gets buffered.
            if total > self.max_message:
                await self._fail(1009, "message too big")
            # No memory for the message: its bytes are read and thrown away in
            # small pieces, so the link stays in step; recv() then raises
            # MemoryError for this one message and the next recv() goes on.
            data = None
            rx = self._rx
            if not drop and rx is not None and (op or msg is rx):
                if total <= len(rx):
                    # Into the receive buffer: no heap block for the message.
                    if op and self._rx_lock is not None:
                        await self._rx_lock.acquire()  # a send in progress ends first
                        self._rx_held = True
                    await self._read_into(memoryview(rx)[total - n:total])
                    msg = data = rx
            if data is None and not drop:
                try:
                    if rx is not None and msg is rx:  # outgrew the buffer: on the heap after all
                        msg = None
                        msg = bytearray(memoryview(rx)[:total - n])
                        self.rx_done()
                    data = await self._read(n)
                    # msg: None, b"" (only while dropping: not here) or the
                    # message so far (nothing to add to when empty)
                    if msg:
                        msg.extend(data)
                        data = msg
                    elif not fin:
                        data = msg = bytearray(data)
                except MemoryError:
                    drop = True
            if drop and data is None:
                while n:
                    k = n if n < 128 else 128
                    await self._read(k)
                    n -= k
            if not fin:
                if msg is None:
                    msg = b""  # a message is under way (being dropped)
                continue
            msg = None
            if drop or data is None:  # (data is None only when dropped)
                raise MemoryError("ws: message dropped")
            if rx is not None and data is rx:
                # UTF-8 is checked by the JSON decoder that reads it.
                return memoryview(rx)[:total]
            try:
                return str(data, "utf-8")
            except UnicodeError:
                await self._fail(1007, "invalid utf-8")

    async def _read_into(self, mv):
        n = len(mv)
        pend = self._pending
        got = len(pend) if len(pend) < n else n
        mv[:got] = pend[:got]
        self._pending = pend[got:] if got < len(pend) else b""
        r = self._r
        try:
            while got < n:
                if hasattr(r, "readinto"):
                    k = await r.readinto(mv[got:])
                    if k is None:
                        continue  # TLS record not complete yet
                else:
                    b = await r.read(n - got)
                    k = len(b)
                    mv[got:got + k] = b
                if not k:
                    raise EOFError
                got += k
        except EOFError:
            await self._fail(1006, "eof")
        except OSError:
            await self._fail(1006, "frame read error")

    # ------------------------------------------------------------------ writing

    async def _send_close(self, code, reason):
        # Never raises: used on paths that are already tearing the link down.
        if self._close_sent:
            return
        self._close_sent = True
        payload = b""
        if code is not None:
            while len(reason.encode()) > 123:
                reason = reason[:-1]
            payload = bytes((code >> 8, code & 0xFF)) + reason.encode()
        try:
            await self.send(payload, _OP_CLOSE)
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

    async def send(self, text, opcode=_OP_TEXT):
        # Its frame is a heap block per message sent: kept small (a burst
        # found no 176-byte block for it), the work is in _check, _head, _out.
        text = self._check(text, opcode)
        w = self._w
        i = -1  # bytes of text written; -1: not begun
        try:
            async with self._wlock:
                if opcode >= _OP_CLOSE:
                    w.write(_frame(opcode, text))  # control frames: 125 bytes at most
                    await w.drain()
                    return
                # A message is masked and written _PIECE bytes at a time
                # through the connection's own buffer: no message-sized block
                # on the heap. Everything is allocated before the first byte
                # goes out (_head): once the frame has begun, a failure breaks the link.
                off = self._head(opcode, len(text))
                i = 0
                while True:
                    i = self._out(text, i, off)
                    await w.drain()
                    if i >= len(text):
                        break
                    off = 0
        except OSError:
            await self._fail(1006, "write error")
        except MemoryError:
            if i < 0:
                raise  # nothing written: the link is fine
            await self._fail(1006, "no memory mid-frame")

    def _check(self, text, opcode):
        # The payload as a buffer, checked before anything is written.
        if isinstance(text, str):
            # MicroPython keeps str as UTF-8 and exposes those bytes through
            # memoryview without copying, which saves one message-sized buffer
            # per send; CPython has no such view and needs encode().
            try:
                text = memoryview(text)  # pyright: ignore[reportArgumentType]  (MicroPython str: a buffer)
            except TypeError:
                text = text.encode()
        if opcode == _OP_PING and len(text) > 125:
            raise ValueError("ping payload > 125 bytes")
        # _send_close() marks the close as sent before it sends it.
        if self.closed or self._close_sent and opcode != _OP_CLOSE:
            raise WSClosed(self.close_code or 1006, self.close_reason)
        return text

    def _head(self, opcode, n):
        # The frame's header into the piece buffer; returns its length.
        head = _frame(opcode, None, n)
        self._key = head[-4:]
        self._piece[:len(head)] = head
        return len(head)

    def _out(self, text, i, off):
        # Masks the next piece of text (from i) into the piece buffer after
        # off bytes already there, and writes it; returns the new i.
        # The header goes out in one write with the first piece: as a write
        # of its own, TCP (Nagle) held the payload back until the peer's
        # delayed ACK of the header, ~40 ms per message.
        piece = self._piece
        n = len(text)
        room = (_PIECE - off) & ~3  # later pieces start at a multiple of 4 (_mask)
        k = n - i if n - i < room else room
        _mask(piece, off, text, i, k, self._key)
        if hasattr(self._r, "readinto"):  # MicroPython stream: write() copies what it keeps
            self._w.write(memoryview(piece)[:off + k])
        else:
            self._w.write(bytes(piece[:off + k]))
        return i + k

    async def ping(self, payload=b""):
        await self.send(payload, _OP_PING)

    async def close(self, code=1000, reason=""):
        # The server's close reply is not awaited: another task may be blocked
        # in recv() on the same stream, and two readers cannot share it.
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        await self._send_close(code, reason)
        await self._abort()


async def connect(open_fn, scheme, host, port, path, subprotocol="ocpp1.6", auth=None,
                  ssl_ctx=None, timeout_ms=10000, max_message=16384, rx=None, piece=None, rx_lock=None):
    sni = host
    if scheme == "ws":
        ssl_ctx = sni = None
    elif scheme != "wss":
        raise WSError("bad URL scheme")
    elif ssl_ctx is None:
        # The link's open() treats None as plain TCP; refuse rather than
        # silently downgrade.
        raise WSError("wss needs an ssl context")
    box: list = [None]

    async def run():
        reader, writer = await open_fn(host, port, ssl_ctx, sni)
        ws = box[0] = WebSocket(reader, writer, max_message, rx, piece, rx_lock)
        await ws._handshake(host, port, path, subprotocol, auth)
        return ws

    try:
        return await asyncio.wait_for(run(), timeout_ms / 1000)
    except Exception as e:
        if box[0] is not None:
            await box[0]._abort()
        # Checked by type, not order: on CPython TimeoutError is an OSError.
        if isinstance(e, asyncio.TimeoutError):
            raise WSError("connect timeout")
        raise
