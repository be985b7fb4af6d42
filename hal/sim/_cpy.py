# The bench board on CPython (tools/sim.py --runtime cpython): the asyncio
# differences from MicroPython. Never loaded on MicroPython.
import asyncio
import os

from hal.sim import board as _b


class Board(_b.Board):
    def __init__(self):
        self._ev = asyncio.Event()
        super().__init__()

    async def wait_input(self, ms):
        if self.sock is None:
            await asyncio.sleep(ms / 1000)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._read_link())
        if not self._flag:
            try:
                await asyncio.wait_for(self._ev.wait(), ms / 1000)
            except asyncio.TimeoutError:
                pass
        self._flag = False
        self._ev.clear()

    async def _read_link(self):
        loop = asyncio.get_event_loop()
        while True:
            if self._n >= len(self._buf):
                self._n = 0
            try:
                n = await loop.sock_recv_into(self.sock, self._mv[self._n:])
            except OSError:
                n = 0
            if not n:
                self.inp["net"] = False
                self._flag = True
                self._ev.set()
                return
            self._n += n
            if self._parse():
                self._ev.set()
            if self._pending or self._resync:
                self._flush()

    async def open(self, host, port, ssl_ctx=None, server_hostname=None):
        if not self.inp["net"]:
            raise OSError(101)  # ENETUNREACH
        if ssl_ctx is not None and not server_hostname:
            server_hostname = host
        proxy = os.getenv("JOLT_NET")
        if not proxy:
            return await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
        proxy = proxy.rsplit(":", 1)
        r, w = await asyncio.open_connection(proxy[0], int(proxy[1]))
        try:
            w.write(("CONNECT %s %d\n" % (host, port)).encode())
            await w.drain()
            line = await r.readline()
        except Exception:
            line = b""
        if not line.startswith(b"OK"):
            w.close()
            raise OSError(111)  # ECONNREFUSED
        if ssl_ctx is not None:
            await w.start_tls(ssl_ctx, server_hostname=server_hostname)
        return r, w
