# A small FTP client for uploads (RFC 959; docs/logging.md): log in (the
# URL's user and password, else anonymous), TYPE I, PASV, one STOR, QUIT.
# The data connection goes to the control connection's host at the port
# PASV names (the address in the reply is ignored, as curl does: a server
# behind NAT names its private one). The URL's path is a folder relative to
# the login folder (RFC 1738): ftp://u:p@host:21/diag + "x.log" stores
# "diag/x.log".
import asyncio

from lib import url
from lib.http import close


def _unquote(s):
    """Percent-decoding of a URL's user, password or path: the escapes are
    UTF-8 bytes (RFC 3986). Done on bytes: chr() would intern each character
    it makes, for good, and a URL comes from the central system."""
    i = s.find("%")
    if i < 0:
        return s
    b = s.encode()
    i = b.find(b"%")
    while 0 <= i < len(b) - 2:
        b = b[:i] + bytes((int(b[i + 1:i + 3], 16),)) + b[i + 3:]
        i = b.find(b"%", i + 1)
    return b.decode()


def parse(location):
    """ftp://[user[:password]@]host[:port][/path] -> (user, password, host,
    port, folder) with folder "" or ending in "/"; ValueError otherwise."""
    if not isinstance(location, str) or not location.startswith("ftp://"):
        raise ValueError("not an ftp:// URL")
    rest = location[6:]
    slash = rest.find("/")
    auth, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash + 1:])
    at = auth.rfind("@")
    user, pw = "anonymous", "jolt@"
    if at >= 0:
        cred = auth[:at]
        auth = auth[at + 1:]
        colon = cred.find(":")
        user = _unquote(cred if colon < 0 else cred[:colon])
        pw = "" if colon < 0 else _unquote(cred[colon + 1:])
    auth, port = url.hostport(auth, 21)
    if " " in location or "\r" in location or "\n" in location:
        raise ValueError("bad characters")
    if path and not path.endswith("/"):
        path += "/"
    path = _unquote(path)
    for x in (user, pw, path):
        if "\r" in x or "\n" in x:  # no second command smuggled in
            raise ValueError("line break in the URL")
    return user, pw, auth, port, path


async def _cmd(r, w, t, text, want):
    """Send `text` (None: only read) and read the reply (a multi-line one
    whole); OSError unless its code starts with a digit of `want`, bytes
    (chr() would intern the digit). Returns the reply's last line."""
    if text is not None:
        w.write(text.encode() + b"\r\n")
        await asyncio.wait_for(w.drain(), t)
    line = await asyncio.wait_for(r.readline(), t)
    code = line[:3]
    if line[3:4] == b"-":
        while True:
            line = await asyncio.wait_for(r.readline(), t)
            if not line or (line[:3] == code and line[3:4] == b" "):
                break
    if len(line) < 4 or not code.isdigit():
        raise OSError("no reply to %s" % (text or "connect").split()[0])
    if line[:1] not in want:
        raise OSError(line.decode().strip())
    return line


async def stor(open_fn, location, name, body, timeout_ms=30000):
    """Store a file `name` in the folder of `location` (ftp://...): `await
    body(writer)` writes its bytes to the data connection. Returns when the
    server confirmed it (226/250); OSError (the server's reply) /
    asyncio.TimeoutError otherwise."""
    user, pw, host, port, folder = parse(location)
    t = timeout_ms / 1000
    r, w = await asyncio.wait_for(open_fn(host, port), t)
    dw = None
    try:
        await _cmd(r, w, t, None, b"2")  # 220 greeting
        if (await _cmd(r, w, t, "USER " + user, b"23"))[:1] == b"3":
            await _cmd(r, w, t, "PASS " + pw, b"2")
        await _cmd(r, w, t, "TYPE I", b"2")
        line = await _cmd(r, w, t, "PASV", b"2")
        # "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)": the port is p1 * 256 + p2.
        i = 4
        while i < len(line) and not (48 <= line[i] <= 57):
            i += 1
        j = i
        while j < len(line) and (48 <= line[j] <= 57 or line[j] == 44):
            j += 1
        n = line[i:j].split(b",")
        if len(n) != 6:
            raise OSError("bad PASV reply")
        dr, dw = await asyncio.wait_for(open_fn(host, int(n[4]) * 256 + int(n[5])), t)
        await _cmd(r, w, t, "STOR " + folder + name, b"1")
        await body(dw)
        await asyncio.wait_for(dw.drain(), t)
        await close(dw)  # the end of the file
        dw = None
        await _cmd(r, w, t, None, b"2")  # 226 transfer complete
        try:
            await _cmd(r, w, t, "QUIT", b"2")
        except Exception:  # stored: a lost goodbye changes nothing
            pass
    finally:
        await close(dw)
        await close(w)
