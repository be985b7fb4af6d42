"""lib.ws against a real `websockets` server and against hand-written raw
servers that break the protocol on purpose."""
import asyncio
import base64
import hashlib
import os
import ssl
import struct
import time

import pytest
import trustme
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from lib import ws as wsmod
from lib.ws import WebSocket, WSClosed, WSError, connect

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def run(coro, limit=20):
    return asyncio.run(asyncio.wait_for(coro, limit))


async def open_tcp(host, port, ssl_ctx, server_hostname):
    # The HAL link's open() signature on top of CPython streams.
    if ssl_ctx is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)


async def ws_server(handler, **kw):
    kw.setdefault("subprotocols", ["ocpp1.6"])
    server = await serve(handler, "127.0.0.1", 0, **kw)
    return server, server.sockets[0].getsockname()[1]


async def echo(conn):
    try:
        async for msg in conn:
            await conn.send(msg)
    except ConnectionClosed:
        pass


# ---------------------------------------------------------------- raw server

def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def response(key, proto="ocpp1.6", accept=None, extra=""):
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + (accept if accept is not None else accept_for(key)),
    ]
    if proto:
        lines.append("Sec-WebSocket-Protocol: " + proto)
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def server_frame(opcode, payload, fin=True, mask=False, rsv=0, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


async def read_client_frame(reader):
    """One frame from the client; asserts it is masked and returns it unmasked."""
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frame not masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    key = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bool(b0 & 0x80), bytes(b ^ key[i % 4] for i, b in enumerate(data))


async def raw_server(script):
    """TCP server that reads the upgrade request, then runs
    script(reader, writer, key, request_text). Its result or exception lands
    in the returned future."""
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        try:
            req = (await reader.readuntil(b"\r\n\r\n")).decode()
            key = ""
            for line in req.split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            res = await script(reader, writer, key, req)
            if not done.done():
                done.set_result(res)
        except Exception as e:  # surfaced to the test through the future
            if not done.done():
                done.set_exception(e)
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], done


async def raw_client(port, **kw):
    return await connect(open_tcp, "ws", "127.0.0.1", port, "/ocpp/CP1", **kw)


def close_code_of(payload):
    return struct.unpack(">H", payload[:2])[0]


# ------------------------------------------------------------------- framing

def test_client_frames_are_masked_with_correct_lengths():
    for n in (0, 1, 5, 125, 126, 127, 65535, 65536, 70001):
        payload = bytes(i & 0xFF for i in range(n))
        f = wsmod._frame(wsmod._OP_TEXT, payload)
        assert f[0] == 0x81
        assert f[1] & 0x80
        ln = f[1] & 0x7F
        if n < 126:
            assert ln == n
            off = 2
        elif n < 65536:
            assert ln == 126 and struct.unpack(">H", f[2:4])[0] == n
            off = 4
        else:
            assert ln == 127 and struct.unpack(">Q", f[2:10])[0] == n
            off = 10
        key = f[off:off + 4]
        body = f[off + 4:]
        assert len(body) == n
        assert bytes(b ^ key[i % 4] for i, b in enumerate(body)) == payload


def test_mask_key_is_fresh_per_frame():
    keys = {bytes(wsmod._frame(wsmod._OP_TEXT, b"abcd")[2:6]) for _ in range(20)}
    assert len(keys) > 1


# ------------------------------------------------------- against websockets

def test_handshake_and_echo_both_directions():
    seen = {}

    def process_request(conn, request):
        seen["path"] = request.path
        seen["headers"] = request.headers

    async def main():
        server, port = await ws_server(echo, process_request=process_request)
        seen["port"] = port
        async with server:
            ws = await connect(open_tcp, "ws", "127.0.0.1", port, "/ocpp/CP1")
            assert ws.subprotocol == "ocpp1.6"
            assert not ws.closed
            msgs = ["hello", "", "h\u00e9llo \u26a1 \U0001f697 \u4e2d\u6587", "x" * 10240,
                    "\u00e9" * 5000]
            for m in msgs:
                await ws.send(m)
                assert await ws.recv() == m
            await ws.close()
            assert ws.closed
        return seen

    seen = run(main())
    assert seen["path"] == "/ocpp/CP1"
    h = seen["headers"]
    assert h["Sec-WebSocket-Protocol"] == "ocpp1.6"
    assert h["Sec-WebSocket-Version"] == "13"
    assert h["Host"] == "127.0.0.1:%d" % seen["port"]
    assert len(base64.b64decode(h["Sec-WebSocket-Key"])) == 16
    assert "Authorization" not in h


def test_concurrent_senders_do_not_corrupt_frames():
    async def main():
        server, port = await ws_server(echo)
        async with server:
            ws = await raw_client(port)
            msgs = ["m%d-" % i + "y" * (i * 300) for i in range(30)]
            await asyncio.gather(*[ws.send(m) for m in msgs])
            got = [await ws.recv() for _ in msgs]
            await ws.close()
            return msgs, got

    msgs, got = run(main())
    assert sorted(got) == sorted(msgs)


def test_fragmented_message_from_server():
    async def handler(conn):
        await conn.send(["Boot", "Notif", "ication \u00e9\u00e8"])
        await conn.send("after")
        await conn.wait_closed()

    async def main():
        server, port = await ws_server(handler)
        async with server:
            ws = await raw_client(port)
            first = await ws.recv()
            second = await ws.recv()
            await ws.close()
            return first, second

    assert run(main()) == ("BootNotification \u00e9\u00e8", "after")


def test_server_ping_is_answered_and_client_ping_records_pong():
    result = {}

    async def handler(conn):
        waiter = await conn.ping(b"srv")
        await asyncio.wait_for(waiter, 3)
        result["pong"] = True
        await conn.send("after-ping")
        await echo(conn)

    async def main():
        server, port = await ws_server(handler)
        async with server:
            ws = await raw_client(port)
            assert await ws.recv() == "after-ping"
            assert ws.last_pong is None
            before = time.ticks_ms()
            await ws.ping(b"cli")
            await ws.send("next")
            assert await ws.recv() == "next"
            assert ws.last_pong is not None
            assert time.ticks_diff(ws.last_pong, before) >= 0
            await ws.close()

    run(main())
    assert result["pong"]


def test_server_close_is_echoed_and_raises_wsclosed():
    result = {}

    async def handler(conn):
        await conn.close(1001, "going away")
        result["code"] = conn.close_code

    async def main():
        server, port = await ws_server(handler)
        async with server:
            ws = await raw_client(port)
            with pytest.raises(WSClosed) as ei:
                await ws.recv()
            assert ws.closed
            with pytest.raises(WSClosed):
                await ws.recv()
            with pytest.raises(WSClosed):
                await ws.send("late")
            await ws.close()  # already closed: no error
            await asyncio.sleep(0.1)
            return ei.value

    exc = run(main())
    assert exc.code == 1001 and exc.reason == "going away"
    # The server's close completed with our echo of its code.
    assert result["code"] == 1001


def test_client_close_reaches_server_with_code():
    result = {}

    async def handler(conn):
        try:
            await conn.recv()
        except ConnectionClosed as e:
            result["code"] = e.rcvd.code
            result["reason"] = e.rcvd.reason

    async def main():
        server, port = await ws_server(handler)
        async with server:
            ws = await raw_client(port)
            await ws.close(4000, "bye")
            await ws.close(1000)  # only one close frame is ever sent
            with pytest.raises(WSClosed):
                await ws.send("x")
            await asyncio.sleep(0.2)

    run(main())
    assert result == {"code": 4000, "reason": "bye"}


@pytest.mark.parametrize("payload", ["z" * 2000, ["a" * 600, "b" * 600]])
def test_oversize_message_closes_1009(payload):
    result = {}

    async def handler(conn):
        await conn.send(payload)
        try:
            await conn.recv()
        except ConnectionClosed as e:
            result["code"] = e.rcvd.code

    async def main():
        server, port = await ws_server(handler)
        async with server:
            ws = await raw_client(port, max_message=1000)
            with pytest.raises(WSClosed) as ei:
                await ws.recv()
            await asyncio.sleep(0.2)
            return ei.value.code, ws.closed

    assert run(main()) == (1009, True)
    assert result["code"] == 1009


def test_basic_auth_header():
    seen = {}

    def process_request(conn, request):
        seen["auth"] = request.headers.get("Authorization")

    async def main():
        server, port = await ws_server(echo, process_request=process_request)
        async with server:
            ws = await raw_client(port, auth=("JOLT-CP-01", "0011aabbcc\u00e9"))
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await ws.close()

    run(main())
    expect = base64.b64encode("JOLT-CP-01:0011aabbcc\u00e9".encode()).decode()
    assert seen["auth"] == "Basic " + expect


def test_server_rejecting_handshake_gives_wserror():
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def process_request(conn, request):
        return Response(401, "Unauthorized", Headers(), b"")

    async def main():
        server, port = await ws_server(echo, process_request=process_request)
        async with server:
            with pytest.raises(WSError) as ei:
                await raw_client(port)
            return str(ei.value)

    assert "401" in run(main())


def test_handshake_method_on_existing_streams():
    async def main():
        server, port = await ws_server(echo)
        async with server:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            ws = WebSocket(r, w, max_message=100)
            await ws.handshake("127.0.0.1", port, "/x", timeout_ms=2000)
            await ws.send("ok")
            assert await ws.recv() == "ok"
            await ws.close()

    run(main())


def test_connect_refused_port_raises_oserror():
    async def main():
        s = __import__("socket").socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(OSError):
            await raw_client(port, timeout_ms=2000)

    run(main())


def test_bad_scheme_and_wss_without_context():
    async def main():
        with pytest.raises(WSError):
            await connect(open_tcp, "http", "127.0.0.1", 1, "/")
        with pytest.raises(WSError):
            await connect(open_tcp, "wss", "127.0.0.1", 1, "/")

    run(main())


# ------------------------------------------------------ raw handshake errors

@pytest.mark.parametrize("make, why", [
    (lambda key: response(key, proto=None), "subprotocol"),
    (lambda key: response(key, proto="ocpp2.0.1"), "subprotocol"),
    (lambda key: response(key, accept=accept_for("AAAAAAAAAAAAAAAAAAAAAA==")), "Accept"),
    (lambda key: response(key, accept=""), "Accept"),
    (lambda key: response(key).replace(b"Upgrade: websocket", b"Upgrade: h2c"), "Upgrade"),
    (lambda key: response(key).replace(b"Connection: Upgrade", b"Connection: close"), "Connection"),
    (lambda key: response(key, extra="Sec-WebSocket-Extensions: permessage-deflate"), "extension"),
    (lambda key: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "200"),
    (lambda key: b"garbage\r\n\r\n", "status"),
    (lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgr", "eof"),
])
def test_bad_handshake_responses(make, why):
    async def script(reader, writer, key, req):
        writer.write(make(key))
        await writer.drain()
        await asyncio.sleep(0.3)

    async def main():
        srv, port, done = await raw_server(script)
        async with srv:
            with pytest.raises(WSError) as ei:
                await raw_client(port, timeout_ms=3000)
            return str(ei.value)

    assert why in run(main())


def test_valid_raw_handshake_and_frame_in_same_segment():
    # The first frame arrives glued to the 101 response.
    async def script(reader, writer, key, req):
        writer.write(response(key) + server_frame(1, b"glued"))
        await writer.drain()
        return await read_client_frame(reader)

    async def main():
        srv, port, done = await raw_server(script)
        async with srv:
            ws = await raw_client(port)
            assert await ws.recv() == "glued"
            await ws.send("reply")
            frame = await asyncio.wait_for(done, 3)
            await ws.close()
            return frame

    assert run(main()) == (1, True, b"reply")


def test_hanging_server_times_out():
    async def script(reader, writer, key, req):
        await asyncio.sleep(10)

    async def main():
        srv, port, done = await raw_server(script)
        async with srv:
            t0 = time.monotonic()
            with pytest.raises(WSError) as ei:
                await raw_client(port, timeout_ms=400)
            elapsed = time.monotonic() - t0
            # The handshake method bounds itself as well.
            r, w = await asyncio.open_connection("127.0.0.1", port)
            t1 = time.monotonic()
            with pytest.raises(WSError):
                await WebSocket(r, w).handshake("127.0.0.1", port, "/", timeout_ms=300)
            elapsed2 = time.monotonic() - t1
            return str(ei.value), elapsed, elapsed2

    why, elapsed, elapsed2 = run(main())
    assert "timeout" in why
    assert 0.35 < elapsed < 2.0
    assert 0.25 < elapsed2 < 2.0


def test_endless_header_is_bounded():
    async def script(reader, writer, key, req):
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n")
        for _ in range(100):
            writer.write(b"X-Junk: " + b"j" * 100 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def main():
        srv, port, done = await raw_server(script)
        async with srv:
            with pytest.raises(WSError) as ei:
                await raw_client(port, timeout_ms=5000)
            return str(ei.value)

    assert "too large" in run(main())


# -------------------------------------------------------- raw protocol errors

def _after_handshake(frames):
    """Raw server: valid handshake, then `frames`, then report the client's
    reply frames until its close frame."""
    async def script(reader, writer, key, req):
        writer.write(response(key) + b"".join(frames))
        await writer.drain()
        replies = []
        while True:
            try:
                f = await asyncio.wait_for(read_client_frame(reader), 3)
            except asyncio.IncompleteReadError:
                return replies
            replies.append(f)
            if f[0] == 8:
                return replies
    return script


def _run_raw(frames, max_message=16384, rx=None):
    async def main():
        srv, port, done = await raw_server(_after_handshake(frames))
        async with srv:
            ws = await raw_client(port, max_message=max_message, rx=rx)
            got = []
            try:
                while True:
                    m = await ws.recv()
                    # From the receive buffer: a view valid until the next recv().
                    got.append(m if isinstance(m, str) else ("rx", bytes(m)))
            except WSClosed as e:
                exc = e
            replies = await asyncio.wait_for(done, 3)
            assert ws.closed
            return got, exc, replies

    return run(main())


@pytest.mark.parametrize("frames, code", [
    ([server_frame(1, b"hidden", mask=True)], 1002),
    ([server_frame(1, b"rsv", rsv=0x40)], 1002),
    ([server_frame(3, b"op3")], 1002),
    ([server_frame(0xB, b"")], 1002),
    ([server_frame(9, b"p" * 126)], 1002),
    ([server_frame(9, b"p", fin=False)], 1002),
    ([server_frame(0, b"orphan")], 1002),
    ([server_frame(1, b"a", fin=False), server_frame(1, b"b")], 1002),
    ([server_frame(2, b"\x00\x01")], 1003),
    ([server_frame(1, b"\xff\xfe")], 1007),
    ([server_frame(1, b"\xc3", fin=False), server_frame(0, b"(")], 1007),
    ([server_frame(8, b"\x03")], 1002),
    ([server_frame(8, struct.pack(">H", 999))], 1002),
])
def test_protocol_violations_close_with_code(frames, code):
    got, exc, replies = _run_raw(frames)
    assert got == []
    assert exc.code == code
    assert replies[-1][0] == 8
    assert close_code_of(replies[-1][2]) == code


def test_oversize_length_rejected_before_payload():
    # Announces 1 GiB but sends nothing more: the client must refuse at the
    # header instead of waiting for (or allocating) the payload.
    got, exc, replies = _run_raw([server_frame(1, b"", length=1 << 30)])
    assert exc.code == 1009
    assert close_code_of(replies[-1][2]) == 1009


def test_fragments_with_interleaved_ping():
    frames = [
        server_frame(1, b"ab", fin=False),
        server_frame(9, b"mid"),
        server_frame(0, "c\u00e9".encode()[:2], fin=False),
        server_frame(0, "c\u00e9".encode()[2:]),
        server_frame(10, b"unsolicited"),
        server_frame(8, struct.pack(">H", 1000) + b"done"),
    ]
    got, exc, replies = _run_raw(frames)
    assert got == ["abc\u00e9"]
    assert (exc.code, exc.reason) == (1000, "done")
    assert replies[0] == (10, True, b"mid")
    assert replies[-1][0] == 8 and close_code_of(replies[-1][2]) == 1000


def test_close_without_code_reports_1005_and_replies_empty():
    got, exc, replies = _run_raw([server_frame(8, b"")])
    assert exc.code == 1005
    assert replies == [(8, True, b"")]


def test_eof_gives_1006():
    async def script(reader, writer, key, req):
        writer.write(response(key) + server_frame(1, b"bye")[:3])
        await writer.drain()

    async def main():
        srv, port, done = await raw_server(script)
        async with srv:
            ws = await raw_client(port)
            with pytest.raises(WSClosed) as ei:
                await ws.recv()
            assert ws.closed
            await ws.close()
            return ei.value

    exc = run(main())
    assert (exc.code, exc.reason) == (1006, "eof")


def test_ping_payload_limit():
    async def main():
        server, port = await ws_server(echo)
        async with server:
            ws = await raw_client(port)
            with pytest.raises(ValueError):
                await ws.ping(b"x" * 126)
            await ws.close()
            with pytest.raises(WSClosed):
                await ws.ping()

    run(main())


# ----------------------------------------------------------------------- TLS

def _tls_setup():
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    return ca, server_ctx


def test_wss_echo_with_trusted_ca():
    ca, server_ctx = _tls_setup()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    seen = {}

    def on_sni(sslobj, name, ctx):
        seen["sni"] = name

    server_ctx.sni_callback = on_sni

    async def open_v4(host, port, ssl_ctx, server_hostname):
        # "localhost" may resolve to ::1 first while the server listens on
        # 127.0.0.1 only; the name still drives SNI and verification.
        return await open_tcp("127.0.0.1", port, ssl_ctx, server_hostname)

    async def main():
        server, port = await ws_server(echo, ssl=server_ctx)
        async with server:
            ws = await connect(open_v4, "wss", "localhost", port, "/ocpp/CP1",
                               ssl_ctx=client_ctx, timeout_ms=5000)
            await ws.send("secure \u00e9")
            assert await ws.recv() == "secure \u00e9"
            await ws.send("s" * 12000)
            assert await ws.recv() == "s" * 12000
            await ws.close()

    run(main())
    assert seen["sni"] == "localhost"


def test_wss_untrusted_ca_fails():
    ca, server_ctx = _tls_setup()
    client_ctx = ssl.create_default_context()  # system roots only

    async def main():
        server, port = await ws_server(echo, ssl=server_ctx)
        async with server:
            with pytest.raises(OSError) as ei:
                await connect(open_tcp, "wss", "127.0.0.1", port, "/ocpp/CP1",
                              ssl_ctx=client_ctx, timeout_ms=5000)
            return ei.value

    exc = run(main())
    assert isinstance(exc, ssl.SSLError)


def test_local_close_wakes_pending_recv_with_our_code():
    async def main():
        server, port = await ws_server(echo)
        async with server:
            ws = await raw_client(port)
            task = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0.1)
            assert not task.done()
            await ws.close(1001, "rebooting")
            with pytest.raises(WSClosed) as ei:
                await asyncio.wait_for(task, 2)
            return ei.value

    exc = run(main())
    assert (exc.code, exc.reason) == (1001, "rebooting")


# ------------------------------------------------------------ out of memory

class _ReadintoReader:
    """A CPython StreamReader with MicroPython's readinto(), so recv() takes
    the device path that allocates the message buffer."""

    def __init__(self, r):
        self._r = r

    async def readinto(self, mv):
        data = await self._r.read(len(mv))
        mv[:len(data)] = data
        return len(data)


def test_message_without_memory_is_dropped_and_the_link_stays(monkeypatch):
    # A message the heap has no room for costs that message only: recv()
    # raises MemoryError once, the link stays in step, the next messages come.
    real = bytearray

    def small_heap(*a):
        if a and isinstance(a[0], int) and a[0] > 1000:
            raise MemoryError("memory allocation failed, allocating %d bytes" % a[0])
        return real(*a)

    async def handler(conn):
        await conn.send("9" * 5000)
        await conn.send("after")
        await conn.send(["x" * 600, "y" * 1500, "z" * 600])  # fragmented: no room for the second piece
        await conn.send("last")
        msg = await conn.recv()
        await conn.send("echo " + str(len(msg)))
        await conn.wait_closed()

    async def main():
        server, port = await ws_server(handler)
        async with server:
            ws = await raw_client(port)
            ws._r = _ReadintoReader(ws._r)
            monkeypatch.setattr(wsmod, "bytearray", small_heap, raising=False)
            got = []
            for _ in range(4):
                try:
                    got.append(await ws.recv())
                except MemoryError:
                    got.append("MemoryError")
            await ws.send("s" * 3000)  # sent in pieces: no 3000-byte buffer needed
            got.append(await ws.recv())
            got.append(ws.closed)
            await ws.close()
            return got

    assert run(main()) == ["MemoryError", "after", "MemoryError", "last", "echo 3000", False]


def test_messages_up_to_the_receive_buffer_are_assembled_in_it():
    rx = bytearray(8)
    frames = [
        server_frame(1, b"12345678"),                        # exactly fills it
        server_frame(1, b"ab", fin=False), server_frame(9, b"p"), server_frame(0, b"cd"),
        server_frame(1, b"abcd", fin=False), server_frame(0, b"efghij"),  # outgrows it
        server_frame(1, b"0123456789"),                      # bigger from the start
        server_frame(1, b"\xc3\xa9"),                        # UTF-8 left to the JSON decoder
        server_frame(8, struct.pack(">H", 1000)),
    ]
    got, exc, replies = _run_raw(frames, rx=rx)
    assert got == [("rx", b"12345678"), ("rx", b"abcd"), "abcdefghij", "0123456789", ("rx", b"\xc3\xa9")]
    assert exc.code == 1000


def test_a_shared_receive_buffer_is_held_from_a_message_until_it_is_decoded():
    """rx_lock: the receive buffer is also the sender's (firmware/chargepoint.py).
    A message waits for a send that holds it, holds it until rx_done() or the
    next recv(), and gives it back when it outgrows it or the link fails."""
    frames = [server_frame(1, b"first"), server_frame(1, b"second"),
              server_frame(1, b"abcd", fin=False), server_frame(0, b"efghij"),  # outgrows it
              server_frame(1, b"12", fin=False), server_frame(3, b"op3")]      # fails mid-message

    async def main():
        srv, port, done = await raw_server(_after_handshake(frames))
        async with srv:
            lock = asyncio.Lock()
            ws = await raw_client(port, rx=bytearray(8), rx_lock=lock)
            await lock.acquire()  # a send in progress
            t = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0.3)
            waited = not t.done()
            lock.release()
            first = bytes(await t)
            held = lock.locked()
            ws.rx_done()
            freed = not lock.locked()
            second = bytes(await ws.recv())
            held2 = lock.locked()
            third = await ws.recv()  # gives "second" back first, then outgrows the buffer
            after_str = lock.locked()
            with pytest.raises(WSClosed) as e:
                await ws.recv()
            await asyncio.wait_for(done, 3)
            return waited, first, held, freed, second, held2, third, after_str, e.value.code, lock.locked()

    assert run(main()) == (True, b"first", True, True, b"second", True, "abcdefghij", False, 1002, False)


def test_a_message_from_the_receive_buffer_decodes_as_ocpp():
    from lib import ocppj
    msg = b'[2,"u1","Heartbeat",{}]'
    got, exc, _ = _run_raw([server_frame(1, msg), server_frame(1, b'[2,"u2","X",{"a":"\xff"}]'),
                            server_frame(8, struct.pack(">H", 1000))], rx=bytearray(64))
    assert ocppj.parse(memoryview(bytearray(got[0][1]))) == (2, "u1", "Heartbeat", {})
    with pytest.raises(ocppj.FrameError) as e:  # invalid UTF-8: answered, not taken
        ocppj.parse(memoryview(bytearray(got[1][1])))
    assert e.value.code == "FormationViolation" and e.value.uid == "u2"


class _Writes:
    """A stream writer that keeps each write() apart (what TCP sends as a segment)."""

    def __init__(self):
        self.writes = []

    def write(self, b):
        self.writes.append(bytes(b))

    async def drain(self):
        pass


def _unmask(frame):
    ln = frame[1] & 0x7F
    off = 2 if ln < 126 else 4 if ln == 126 else 10
    key = frame[off:off + 4]
    return bytes(b ^ key[i % 4] for i, b in enumerate(frame[off + 4:]))


def test_header_and_first_piece_go_out_in_one_write():
    """A header written on its own made TCP (Nagle) hold the payload until the
    peer's delayed ACK: ~40 ms per message, measured by tools/bench/roundtrip.py."""
    for n in (0, 1, 100, 490, 500, 511, 512, 1000, 3000):
        w = _Writes()
        ws = wsmod.WebSocket(None, w)
        text = "".join(chr(97 + i % 26) for i in range(n))
        asyncio.run(ws.send(text))
        assert len(w.writes[0]) > (6 if n < 126 else 8) or n == 0, n
        if n <= 490:
            assert len(w.writes) == 1, (n, [len(x) for x in w.writes])
        assert all(len(x) <= 512 for x in w.writes)
        assert _unmask(b"".join(w.writes)) == text.encode(), n


def test_send_without_memory_costs_that_message_before_the_frame_begins_and_the_link_after(monkeypatch):
    # No memory for the frame's header: nothing went out, send() raises
    # MemoryError and the link carries the next message. No memory once the
    # frame has begun (a later piece): the peer would read garbage, so the
    # link is closed (1006) and the send raises WSClosed.
    real_frame, real_mask = wsmod._frame, wsmod._mask
    fail = {"frame": 0, "mask_at": None, "masks": 0}

    def frame(*a):
        if fail["frame"]:
            fail["frame"] -= 1
            raise MemoryError("memory allocation failed, allocating 8 bytes")
        return real_frame(*a)

    def mask(*a):
        fail["masks"] += 1
        if fail["masks"] == fail["mask_at"]:
            raise MemoryError("memory allocation failed, allocating 16 bytes")
        return real_mask(*a)

    monkeypatch.setattr(wsmod, "_frame", frame)
    monkeypatch.setattr(wsmod, "_mask", mask)

    async def main():
        server, port = await ws_server(echo)
        async with server:
            ws = await raw_client(port)
            got = []
            fail["frame"] = 1
            try:
                await ws.send("lost")
            except MemoryError:
                got.append("MemoryError")
            await ws.send("kept")
            got.append(await ws.recv())
            got.append(ws.closed)
            fail["masks"], fail["mask_at"] = 0, 2  # the second piece of a long message
            try:
                await ws.send("x" * 3000)
            except WSClosed as e:
                got.append(e.code)
            got.append(ws.closed)
            return got

    assert run(main()) == ["MemoryError", "kept", False, 1006, True]
