# A small HTTP/1.0 client: GET for downloads, the body streamed into a sink
# through the caller's buffer, never held whole (update packages); send()
# for uploads (PUT/POST), the body written by the caller (diagnostics).
import asyncio

from lib import ocppj, url


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


async def _open(open_fn, location, ssl_ctx, timeout_ms, method, head):
    """Connect and write the request line and headers (head: more header
    lines, each ending in CRLF); returns (reader, writer)."""
    scheme, host, port, path = url.parse_http(location)
    if scheme == "https" and ssl_ctx is None:
        raise HTTPError("https needs an ssl context")
    if scheme == "http":
        ssl_ctx = None
    r, w = await asyncio.wait_for(open_fn(host, port, ssl_ctx, host if ssl_ctx else None), timeout_ms / 1000)
    # In parts, not copied: the request as one text and its bytes were two
    # blocks of ~240 B, which a heap at 80 KiB did not always have.
    w.write(ocppj.buffer("%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: JOLT\r\nConnection: close\r\n"
                         % (method, path, host)))
    w.write(ocppj.buffer(head))
    w.write(b"\r\n")
    return r, w


async def _answer(r, timeout_ms, want):
    """Read the status line and the headers: the Content-Length (None when
    absent); HTTPError when the status code does not start with `want`."""
    line = await asyncio.wait_for(r.readline(), timeout_ms / 1000)
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise HTTPError("bad status line")
    if not parts[1].startswith(want):
        raise HTTPError("HTTP %s" % parts[1].decode())
    length = None
    while True:
        h = await asyncio.wait_for(r.readline(), timeout_ms / 1000)
        if h in (b"\r\n", b"\n", b""):
            return length
        if h[:15].lower() == b"content-length:":
            length = int(h[15:].strip())


async def close(w):
    """Close a stream: MicroPython releases the socket only in wait_closed()
    (bounded: a TLS shutdown could stall on CPython)."""
    if w is None:
        return
    try:
        w.close()
        await asyncio.wait_for(w.wait_closed(), 1)
    except Exception:
        pass


async def get(open_fn, location, sink, buf, ssl_ctx=None, timeout_ms=30000, max_bytes=1 << 20):
    """GET `location` (http:// or https://, ssl_ctx needed for https) and
    call sink(memoryview) with the body chunk by chunk. Returns the body
    length; HTTPError / OSError / asyncio.TimeoutError otherwise."""
    r, w = await _open(open_fn, location, ssl_ctx, timeout_ms, "GET", "")
    try:
        await w.drain()
        length = await _answer(r, timeout_ms, b"200")
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
        await close(w)


async def send(open_fn, location, method, head, body, ssl_ctx=None, timeout_ms=30000):
    """Upload: `method` (PUT or POST) to `location` with the header lines
    `head` (Content-Length and Content-Type included, each ending in CRLF);
    `await body(writer)` writes the body and drains. Returns when the server
    answered 2xx; HTTPError / OSError / asyncio.TimeoutError otherwise."""
    r, w = await _open(open_fn, location, ssl_ctx, timeout_ms, method, head)
    try:
        await body(w)
        await asyncio.wait_for(w.drain(), timeout_ms / 1000)
        await _answer(r, timeout_ms, b"2")
    finally:
        await close(w)
