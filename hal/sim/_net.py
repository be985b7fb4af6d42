# net.open() of the bench board, imported on first use by
# hal.sim.board.Board.__getattr__: board.net.open(host, port, ...) is
# open(board, host, port, ...). MicroPython only (CPython: hal/sim/_cpy.py).
import asyncio
import os
import socket


async def open(b, host, port, ssl_ctx=None, server_hostname=None):
    if not b.inp["net"]:
        raise OSError(101)  # ENETUNREACH
    if ssl_ctx is not None and not server_hostname:
        server_hostname = host
    proxy = os.getenv("JOLT_NET")  # host:port
    if not proxy:
        return await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
    # Through the bench's proxy: a plain "CONNECT host port" line, an "OK"
    # line back, then the bytes flow end to end (TLS included).
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        proxy = proxy.rsplit(":", 1)
        s.connect(socket.getaddrinfo(proxy[0], int(proxy[1]))[0][-1])
    except OSError as e:
        if e.args[0] != 115:  # EINPROGRESS
            s.close()
            raise
    st = asyncio.StreamReader(s)
    try:
        st.write(("CONNECT %s %d\n" % (host, port)).encode())
        await st.drain()
        line = await st.readline()
    except Exception:
        line = b""
    if not line.startswith(b"OK"):
        s.close()
        raise OSError(111)  # ECONNREFUSED
    if ssl_ctx is None:
        return st, st
    ss = ssl_ctx.wrap_socket(s, server_hostname=server_hostname, do_handshake_on_connect=False)
    ss.setblocking(False)
    st = asyncio.StreamReader(ss)
    return st, st
