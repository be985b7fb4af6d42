"""A hostile link for integration tests: a TCP man-in-the-middle between the
charger on the bench and the strict central system (tools/csms.py).

    link = HostileLink(csms)          # Rig(tmp_path, link): the charger dials link.url
    link.mode = "silent"              # the next connections: TCP accepted, then nothing
    link.mode = "no_subprotocol"      # a 101 without Sec-WebSocket-Protocol
    link.mode = "forward"             # byte for byte to the central system (the default)
    link.inject(frame)                # into the live connection, between two server frames
    link.inject(half, close=True)     # ... and the TCP connection cut right after
    link.flood(ping, 100, 3)          # a frame 100 times a second for 3 s

Everything else (wait_message, call, messages, ...) is the central system's.
"""
import asyncio
import base64
import hashlib
import struct
import threading
import time
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode, payload=b"", fin=True, length=None):
    """A server frame (unmasked); length: the length the header claims."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((b0, n))
    elif n < 65536:
        head = bytes((b0, 126)) + struct.pack(">H", n)
    else:
        head = bytes((b0, 127)) + struct.pack(">Q", n)
    return head + payload


class HostileLink:
    def __init__(self, csms):
        self._csms = csms
        u = urllib.parse.urlparse(csms.url)
        self._up = (u.hostname, u.port)
        self._path = u.path
        self.mode = "forward"
        self.accepted = []      # (time, mode) of every TCP connection the charger made
        self._clients = []      # writers towards the charger of live forwarded connections
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True, name="hostile-link").start()
        ready.wait(5)

    def __getattr__(self, name):  # the central system's API
        return getattr(self._csms, name)

    @property
    def url(self):
        return "ws://127.0.0.1:%d%s" % (self._port, self._path)

    def _run(self, ready):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", 0))
        self._port = server.sockets[0].getsockname()[1]
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def close(self):
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _do(self, fn):
        done = threading.Event()
        box = []

        def run():
            try:
                box.append(fn())
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)
        return box[0] if box else None

    def inject(self, data, close=False):
        """data to the charger on every live forwarded connection (they are
        between two frames whenever the loop runs); close: then cut them."""
        def go():
            n = 0
            for w in list(self._clients):
                w.write(data)
                n += 1
                if close:
                    w.transport.abort()
            return n
        return self._do(go)

    def flood(self, data, rate, seconds):
        """data written rate times a second for seconds (returns at once)."""
        async def go():
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for w in list(self._clients):
                    w.write(data)
                await asyncio.sleep(1 / rate)
        self._do(lambda: self._loop.create_task(go()))

    def connections(self, since_t=0):
        return [m for t, m in self.accepted if t >= since_t]

    async def _conn(self, reader, writer):
        mode = self.mode
        self.accepted.append((time.monotonic(), mode))
        try:
            if mode == "silent":
                while await reader.read(4096):
                    pass
            elif mode == "no_subprotocol":
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    head += chunk
                key = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                       if ln.lower().startswith(b"sec-websocket-key:")][0]
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                while await reader.read(4096):
                    pass
            else:
                await self._forward(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def _forward(self, reader, writer):
        ur, uw = await asyncio.open_connection(*self._up)

        async def up():
            try:
                while True:
                    b = await reader.read(16384)
                    if not b:
                        break
                    uw.write(b)
                    await uw.drain()
            finally:
                uw.transport.abort()

        async def down():
            # The handshake response, then whole frames only: an injection
            # always lands between two frames.
            head = b""
            while b"\r\n\r\n" not in head:
                b = await ur.read(4096)
                if not b:
                    return
                head += b
            end = head.index(b"\r\n\r\n") + 4
            writer.write(head[:end])
            buf = head[end:]
            self._clients.append(writer)
            try:
                while True:
                    while True:
                        if len(buf) < 2:
                            break
                        n = buf[1] & 0x7F
                        h = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                        if len(buf) < h:
                            break
                        if n >= 126:
                            n = int.from_bytes(buf[2:h], "big")
                        if len(buf) < h + n:
                            break
                        writer.write(buf[:h + n])
                        buf = buf[h + n:]
                    b = await ur.read(16384)
                    if not b:
                        break
                    buf += b
            finally:
                if writer in self._clients:
                    self._clients.remove(writer)
                writer.transport.abort()

        await asyncio.gather(up(), down(), return_exceptions=True)
