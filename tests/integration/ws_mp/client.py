# Runs lib.ws on the MicroPython unix port against the server started by
# tests/integration/test_ws_micropython.py.
# Usage: micropython client.py ROOT PORT DEADPORT [BIGSIZE [TLSPORT CA_PEM_FILE]]
# Prints one JSON object per line; the test asserts on them.
import sys

sys.path.insert(0, sys.argv[1])

import asyncio
import gc
import json

from lib.ws import WSClosed, WSError, connect

PORT = int(sys.argv[2])
DEAD = int(sys.argv[3]) if len(sys.argv) > 3 else 1
BIG = int(sys.argv[4]) if len(sys.argv) > 4 else 10240
TLS_PORT = int(sys.argv[5]) if len(sys.argv) > 6 else 0
CA_FILE = sys.argv[6] if len(sys.argv) > 6 else None


def out(**kw):
    print(json.dumps(kw))


async def open_fn(host, port, ssl_ctx, server_hostname):
    return await asyncio.open_connection(host, port, ssl_ctx, server_hostname)


async def scenario(name, coro):
    try:
        await coro
    except Exception as e:
        out(t=name, error="%s: %s" % (type(e).__name__, e))


async def echo():
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/echo", auth=("CP1", "key"))
    ok = []
    for t in ("hello", "h\u00e9llo \u26a1 \U0001f697"):
        await ws.send(t)
        ok.append(await ws.recv() == t)
    # The big message is not kept around while its echo arrives, so the
    # small-heap run measures the client, not this script.
    big = "x" * BIG
    await ws.send(big)
    big = None
    r = await ws.recv()
    ok.append(len(r) == BIG and r.count("x") == BIG)
    r = None
    out(t="echo", ok=ok, proto=ws.subprotocol, big=BIG)
    await ws.close()
    out(t="echo_closed", closed=ws.closed)


async def frag():
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/frag")
    out(t="frag", msg=await ws.recv())
    await ws.close()


async def ping():
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/ping")
    first = await ws.recv()
    await ws.ping(b"mp")
    await ws.send("next")
    second = await ws.recv()
    out(t="ping", first=first, second=second, pong=ws.last_pong is not None)
    await ws.close()


async def close():
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/close")
    try:
        await ws.recv()
        out(t="close", code=None)
    except WSClosed as e:
        out(t="close", code=e.code, reason=e.reason, closed=ws.closed)


async def big():
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/big", max_message=1000)
    try:
        await ws.recv()
        out(t="big", code=None)
    except WSClosed as e:
        out(t="big", code=e.code)


async def noproto():
    try:
        await connect(open_fn, "ws", "127.0.0.1", PORT, "/echo", subprotocol="ocpp2.0.1")
        out(t="noproto", error=None)
    except WSError as e:
        out(t="noproto", error="WSError", why=str(e))


async def refused():
    # MicroPython's open_connection succeeds on a closed port; the refusal
    # shows up on the first write and must surface as a failed connect.
    try:
        await connect(open_fn, "ws", "127.0.0.1", DEAD, "/echo", timeout_ms=2000)
        out(t="refused", error=None)
    except (OSError, WSError) as e:
        out(t="refused", error=type(e).__name__)


async def concurrent():
    # A reader task and a writer task share one connection, as the charge
    # point does.
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/echo")
    got = []

    async def reader():
        for _ in range(10):
            got.append(await ws.recv())

    task = asyncio.create_task(reader())
    for i in range(10):
        await ws.send("c%d" % i)
    await asyncio.wait_for(task, 5)
    out(t="concurrent", got=got)
    await ws.close()


async def local_close():
    # close() from one task while another waits in recv(): the reader must
    # learn about our close, not see a network error.
    ws = await connect(open_fn, "ws", "127.0.0.1", PORT, "/echo")
    seen = []

    async def reader():
        try:
            await ws.recv()
        except WSClosed as e:
            seen.append(e.code)
            seen.append(e.reason)

    task = asyncio.create_task(reader())
    await asyncio.sleep_ms(50)
    await ws.close(1001, "rebooting")
    await asyncio.wait_for(task, 2)
    out(t="local_close", seen=seen, closed=ws.closed)


def _ctx(trusted):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if trusted:
        with open(CA_FILE) as f:
            pem = f.read()
        b64 = "".join([l for l in pem.split("\n") if l and not l.startswith("-----")])
        import binascii
        ctx.load_verify_locations(cadata=binascii.a2b_base64(b64))
    return ctx


async def tls():
    ws = await connect(open_fn, "wss", "localhost", TLS_PORT, "/echo", ssl_ctx=_ctx(True))
    ok = []
    for m in ("secure \u00e9", "s" * 12000):
        await ws.send(m)
        ok.append(await ws.recv() == m)
    await ws.close()
    try:
        await connect(open_fn, "wss", "localhost", TLS_PORT, "/echo", ssl_ctx=_ctx(False))
        untrusted = "connected"
    except (OSError, WSError) as e:
        untrusted = type(e).__name__
    out(t="tls", ok=ok, untrusted=untrusted)


async def main():
    todo = [("echo", echo), ("frag", frag), ("ping", ping), ("close", close),
            ("big", big), ("noproto", noproto), ("refused", refused),
            ("concurrent", concurrent), ("local_close", local_close)]
    if TLS_PORT:
        todo.append(("tls", tls))
    for name, fn in todo:
        await scenario(name, fn())
        gc.collect()
    out(t="done", mem_free=gc.mem_free(), mem_alloc=gc.mem_alloc())


asyncio.run(main())
