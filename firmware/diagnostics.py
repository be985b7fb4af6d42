# GetDiagnostics (docs/logging.md), loaded per use and dropped when the
# upload ends: the log lines of the SD card's files (lib/log.py) stamped
# within startTime..stopTime are streamed through one small buffer to the
# location: http(s):// by PUT (docs/decisions.md), ftp:// by STOR (lib/ftp).
# The answer names the file, or nothing when no line matches (OCPP: no
# fileName when there is no diagnostic information); then
# DiagnosticsStatusNotification Uploading (each attempt), Uploaded or, after
# `retries` attempts `retryInterval` apart, UploadFailed; Idle again after.
import asyncio
import gc
import os

from lib import isotime, log, transient

TAG = "diag"
NAME = "firmware.diagnostics"
NOTE = "DiagnosticsStatusNotification"
ATTEMPTS = 3      # when GetDiagnostics gives no retries
INTERVAL_S = 30   # when it gives no retryInterval
BUF = 256


def _bound(p, key):
    t = p.get(key)
    return None if t is None else isotime.format(isotime.parse(t)).encode()


async def _scan(files, lo, hi, buf, out, enough=0):
    """The bytes of the lines stamped within lo..hi (b"2026-...Z", None: open)
    of files [(path, size)], each file read up to its size: `await
    out(memoryview)` for each piece (out None: only counted). Stops past
    `enough` bytes when it is not 0. Returns the byte count."""
    mv = memoryview(buf)
    size = len(buf)
    total = 0
    keep = False
    for path, left in files:
        try:
            f = open(path, "rb")
        except OSError:  # rotated away since it was listed
            continue
        with f:
            n = 0  # bytes in buf
            start = True  # buf[0] starts a line
            while left or n:
                if left and n < size:
                    k = f.readinto(mv[n:min(size, n + left)])
                    if not k:
                        raise OSError("%s shorter than counted" % path)
                    left -= k
                    n += k
                i = 0
                while i < n:
                    j = buf.find(b"\n", i, n)
                    if j < 0 and left and (i or n < size):
                        break  # a line not whole yet: read more
                    end = n if j < 0 else j + 1
                    if start and end - i >= 20 and buf[i + 19] == 90 and buf[i + 4] == 45:  # "...Z", "-"
                        s = bytes(mv[i:i + 20])
                        keep = (lo is None or s >= lo) and (hi is None or s <= hi)
                    if keep:
                        total += end - i
                        if out is not None:
                            await out(mv[i:end])
                        elif enough and total >= enough:
                            return total
                    start = j >= 0
                    i = end
                if i:
                    mv[:n - i] = mv[i:n]  # (overlapping: a memmove)
                    n -= i
                await asyncio.sleep(0)
    return total


async def start(ops, p):
    """GetDiagnostics: the answer, after the upload task is started."""
    if ops.diagnostics_status != "Idle":
        log.warn(TAG, "GetDiagnostics while an upload runs: no file")
        return {}
    loc = p["location"]
    lo, hi = _bound(p, "startTime"), _bound(p, "stopTime")
    if hi is None:
        hi = isotime.format(ops.board.clock.now()).encode()
    while log.write_some():  # the lines still in RAM first
        await asyncio.sleep(0)
    files = []
    for f in log.paths():
        try:
            files.append((f, os.stat(f)[6]))
        except OSError:
            pass
    n = 0
    buf = bytearray(BUF)
    try:
        n = await _scan(files, lo, hi, buf, None, 1)
    except OSError as e:
        log.warn(TAG, "log files unreadable: %r" % (e,))
    if not n:
        log.info(TAG, "GetDiagnostics: no log lines in the window (%d log files)" % len(files))
        transient.drop(NAME)
        return {}
    name = "diagnostics-%s-%s.log" % (ops.board.system.unique_id(),
                                      isotime.format(ops.board.clock.now()).replace("-", "").replace(":", ""))
    ops.diagnostics_status = "Uploading"
    asyncio.create_task(_run(ops, p, loc, name, files, lo, hi, buf))
    return {"fileName": name}


async def _run(ops, p, loc, name, files, lo, hi, buf):
    attempts = p.get("retries")
    attempts = ATTEMPTS if attempts is None else max(1, attempts)
    interval = p.get("retryInterval")
    interval = INTERVAL_S if interval is None else max(0, interval)
    ftp = loc.startswith("ftp://")
    mod = "lib.ftp" if ftp else "lib.http"
    ok = False
    try:
        await asyncio.sleep(0.1)  # the answer goes out first
        for i in range(attempts):
            await ops.status_note(NOTE, "Uploading")
            ctx = None
            try:
                n = await _scan(files, lo, hi, buf, None)
                t = ops.board.net.open
                if ftp:
                    await transient.load(mod).stor(t, loc, name, lambda w: _scan(files, lo, hi, buf, _out(w)))
                else:
                    ctx = ops.cp.tls_context() if loc.startswith("https:") else None
                    await transient.load(mod).send(
                        t, loc + name if loc.endswith("/") else loc, "PUT",
                        "Content-Type: text/plain\r\nContent-Length: %d\r\n"
                        "Content-Disposition: attachment; filename=\"%s\"\r\n" % (n, name),
                        lambda w: _scan(files, lo, hi, buf, _out(w)), ctx)
                log.info(TAG, "%s: %d bytes uploaded to %s" % (name, n, loc))
                ok = True
                break
            except Exception as e:
                log.warn(TAG, "upload %d of %d to %s failed: %r" % (i + 1, attempts, loc, e))
                if isinstance(e, ValueError) or i + 1 >= attempts:  # a location we cannot use: no retry
                    break
                ctx = None
                gc.collect()
                await asyncio.sleep(interval)
        buf = ctx = None
        transient.drop("lib.ftp")
        transient.drop("lib.http")
        await ops.status_note(NOTE, "Uploaded" if ok else "UploadFailed")
    finally:
        ops.diagnostics_status = "Idle"
        transient.drop("lib.ftp")
        transient.drop("lib.http")
        transient.drop(NAME)


def _out(w):
    async def out(mv):
        w.write(mv)
        await w.drain()
    return out
