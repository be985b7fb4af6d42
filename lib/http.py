# A small HTTP/1.0 GET client for downloads: the body is streamed into a
# sink through the caller's buffer, never held whole (update packages).
import asyncio

from lib import url


class HTTPError(Exception):
    pass


async def _fill(r, mv):
    """Read up to len(mv) bytes; 0 at the end of the body."""
    if hasattr(r, "readinto"):
        while True:
            k = await r.readinto(mv)
            if k is not None:  # None: a TLS record not complete yet
                return k
    b = await r.read(len(mv))
    mv[:len(b)] = b
    return len(b)


async def get(open_fn, location, sink, buf, ssl_ctx=None, timeout_ms=30000, max_bytes=1 << 20):
    """GET `location` (http:// or https://, ssl_ctx needed for https) and
    call sink(memoryview) with the body chunk by chunk. Returns the body
    length; HTTPError / OSError / asyncio.TimeoutError otherwise."""
    scheme, host, port, path = url.parse_http(location)
    if scheme == "https" and ssl_ctx is None:
        raise HTTPError("https needs an ssl context")
    if scheme == "http":
        ssl_ctx = None
    r, w = await asyncio.wait_for(open_fn(host, port, ssl_ctx, host if ssl_ctx else None), timeout_ms / 1000)
    try:
        w.write(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: JOLT\r\nConnection: close\r\n\r\n"
                 % (path, host)).encode())
        await w.drain()
        line = await asyncio.wait_for(r.readline(), timeout_ms / 1000)
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise HTTPError("bad status line")
        if parts[1] != b"200":
            raise HTTPError("HTTP %s" % parts[1].decode())
        length = None
        while True:
            h = await asyncio.wait_for(r.readline(), timeout_ms / 1000)
            if h in (b"\r\n", b"\n", b""):
                break
            if h[:15].lower() == b"content-length:":
                length = int(h[15:].strip())
        if length is not None and length > max_bytes:
            raise HTTPError("body of %d bytes, at most %d" % (length, max_bytes))
        mv = memoryview(buf)
        got = 0
        while length is None or got < length:
            n = await asyncio.wait_for(_fill(r, mv if length is None else mv[:min(len(buf), length - got)]),
                                       timeout_ms / 1000)
            if not n:
                break
            got += n
            if got > max_bytes:
                raise HTTPError("body over %d bytes" % max_bytes)
            sink(mv[:n])
        if length is not None and got != length:
            raise HTTPError("body cut at %d of %d bytes" % (got, length))
        return got
    finally:
        try:
            w.close()
        except Exception:
            pass
