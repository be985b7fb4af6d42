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

from micropython import const

from lib import isotime, log, transient

_ATTEMPTS = const(3)     # when GetDiagnostics gives no retries
_INTERVAL_S = const(30)  # when it gives no retryInterval
_BUF = const(256)


async def _scan(job, out, stop=0):
    """The bytes of the lines stamped within lo..hi (b"2026-...Z", None: open)
    of job = (files [(path, size)], lo, hi, buf), each file read up to its
    size: `await out(memoryview)` for each piece (out None: only counted).
    Stops past `stop` bytes when it is not 0. Returns the byte count."""
    files, lo, hi, buf = job
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
                        t = bytes(mv[i:i + 20])
                        keep = (lo is None or t >= lo) and (hi is None or t <= hi)
                    if keep:
                        total += end - i
                        if out is not None:
                            await out(mv[i:end])
                        elif stop and total >= stop:
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
        log.warn("diag", "GetDiagnostics while an upload runs: no file")
        return {}
    clock = ops.board.clock
    lo = p.get("startTime")
    hi = p.get("stopTime")
    lo = None if lo is None else isotime.format(isotime.parse(lo)).encode()
    hi = isotime.format(clock.now() if hi is None else isotime.parse(hi)).encode()
    while log.write_some():  # the lines still in RAM first
        await asyncio.sleep(0)
    files = []
    for f in log.paths():
        try:
            files.append((f, os.stat(f)[6]))
        except OSError:
            pass
    job = (files, lo, hi, bytearray(_BUF))
    n = 0
    try:
        n = await _scan(job, None, 1)
    except OSError as e:
        log.warn("diag", "log files unreadable: %r" % (e,))
    if not n:
        log.info("diag", "GetDiagnostics: no log lines in the window (%d log files)" % len(files))
        transient.drop("firmware.diagnostics")
        return {}
    name = "diagnostics-%s-%s.log" % (ops.board.system.unique_id(),
                                      isotime.format(clock.now()).replace("-", "").replace(":", ""))
    ops.diagnostics_status = "Uploading"
    asyncio.create_task(_run(ops, p, (name, job)))
    return {"fileName": name}


async def _run(ops, p, job):
    name, job = job
    loc = p["location"]
    tries = p.get("retries")
    tries = _ATTEMPTS if tries is None else max(1, tries)
    wait = p.get("retryInterval")
    wait = _INTERVAL_S if wait is None else max(0, wait)
    ok = False
    note = "DiagnosticsStatusNotification"
    at = loc.rfind("@")  # the log never shows a password
    shown = loc if at < 0 else loc[:loc.find("//") + 2] + "..." + loc[at:]
    try:
        await asyncio.sleep(0.1)  # the answer goes out first
        for i in range(tries):
            await ops.status_note(note, "Uploading")
            try:
                n = await _scan(job, None)
                t = ops.board.net.open
                if loc.startswith("ftp://"):
                    await transient.load("lib.ftp").stor(t, loc, name, lambda w: _scan(job, _out(w)))
                else:
                    await transient.load("lib.http").send(
                        t, loc + name if loc.endswith("/") else loc, "PUT",
                        "Content-Type: text/plain\r\nContent-Length: %d\r\n"
                        "Content-Disposition: attachment; filename=\"%s\"\r\n" % (n, name),
                        lambda w: _scan(job, _out(w)),
                        ops.cp.tls_context() if loc.startswith("https:") else None)
                log.info("diag", "%s: %d bytes uploaded to %s" % (name, n, shown))
                ok = True
                break
            except Exception as e:
                log.warn("diag", "upload %d of %d to %s failed: %r" % (i + 1, tries, shown, e))
                if isinstance(e, ValueError) or i + 1 >= tries:  # a location we cannot use: no retry
                    break
                gc.collect()
                await asyncio.sleep(wait)
        job = None
        transient.drop("lib.ftp")
        transient.drop("lib.http")
        await ops.status_note(note, "Uploaded" if ok else "UploadFailed")
    finally:
        ops.diagnostics_status = "Idle"
        transient.drop("lib.ftp")
        transient.drop("lib.http")
        transient.drop("firmware.diagnostics")


def _out(w):
    async def out(mv):
        w.write(mv)
        await w.drain()
    return out
