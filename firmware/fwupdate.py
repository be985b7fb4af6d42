# UpdateFirmware over OCPP (docs/ota.md), loaded for one update and dropped
# after: download the package over http(s) into the SD card's update folder,
# wait for no transaction, reboot into boot.py's check and install; the
# FirmwareStatusNotification sequence Downloading, Downloaded/DownloadFailed,
# Installing, then after the reboot Installed (the new version's first
# accepted BootNotification) or InstallationFailed (refused, or rolled back).
import asyncio
import gc
import os
from micropython import const

from lib import isotime, log, transient
from firmware import version

_TAG = const("update")
_PENDING = const("fw_pending.txt")  # on flash: the version an OCPP update reboots from
_PART = const("ota-download.part")
_ATTEMPTS = const(3)      # when UpdateFirmware gives no retries
_INTERVAL_S = const(30)   # when it gives no retryInterval
_BUSY_POLL_S = const(2)
_NOTE = const("FirmwareStatusNotification")
_MAX_PACKAGE = const(1 << 19)  # bytes a download may have (the slots hold 320 KiB)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


async def run(ops, p):
    board = ops.board
    loc = p["location"]
    # The reboot at the end should not need heap: a HAL that loads its reset
    # code on first use (hal/sim) loads it now, before the download.
    try:
        board.system.reset
    except MemoryError:
        pass
    t = isotime.parse(p["retrieveDate"])
    attempts = p.get("retries")
    attempts = _ATTEMPTS if attempts is None else max(1, attempts)
    interval = p.get("retryInterval")
    interval = _INTERVAL_S if interval is None else max(0, interval)
    if t is not None:
        while board.clock.now() < t:
            await asyncio.sleep(min(30, t - board.clock.now()))
    sd = board.sd.root
    if sd is None:
        log.error(_TAG, "no SD card (SDCardFailure): cannot download %s" % loc)
        await ops.status_note(_NOTE, "DownloadFailed")
        return
    d = sd + "update/"  # firmware/update._UPDATE_DIR, where boot.py looks
    try:
        os.mkdir(d)
    except OSError:
        pass
    part = d + _PART
    gc.collect()
    try:
        buf = bytearray(1024)
    except MemoryError:  # a fragmented heap: a slower download, not none
        buf = bytearray(256)
    ok = False
    http = transient.load("lib.http")  # for the download only (dropped after it)
    for i in range(attempts):
        await ops.status_note(_NOTE, "Downloading")
        try:
            ctx = ops.cp.tls_context() if loc.startswith("https:") else None
            with open(part, "wb") as f:
                n = await http.get(board.net.open, loc, f.write, buf, ctx, max_bytes=_MAX_PACKAGE)
            ctx = None
            log.info(_TAG, "downloaded %s: %d bytes" % (loc, n))
            ok = True
            break
        except Exception as e:
            ctx = None
            log.warn(_TAG, "download %d of %d from %s failed: %r" % (i + 1, attempts, loc, e))
            _remove(part)
            if i + 1 < attempts:
                await asyncio.sleep(interval)
    # The buffer (1 KB) and the HTTP client go before the notifications: at
    # 80 KiB, after a charging session, these found no 120 B with them kept.
    buf = http = None
    transient.drop("lib.http")
    gc.collect()
    if not ok:
        await ops.status_note(_NOTE, "DownloadFailed")
        return
    await ops.status_note(_NOTE, "Downloaded")
    # The package is checked by boot.py after the reboot, on a clean heap,
    # before anything changes (the application's heap has no room for the
    # checker's code on a 96 KiB bench: docs/ota.md).
    while ops.busy():  # a running transaction ends first
        await asyncio.sleep(_BUSY_POLL_S)
    await ops.status_note(_NOTE, "Installing")
    # The version we come from, first: after the reboot another version
    # running means installed (a cut before the package is in place, a
    # refusal in boot.py or a rollback report InstallationFailed).
    with open(board.flash.root + _PENDING, "w") as f:
        f.write(version.FIRMWARE)
    pkg = d + "ota.jolt"
    _remove(pkg)
    os.rename(part, pkg)
    log.info(_TAG, "rebooting into the install of %s" % loc)
    gc.collect()
    await ops.reboot("Soft")


async def report(ops):
    """After an OCPP update's reboot, once BootNotification is accepted:
    Installed when the new version runs, else InstallationFailed."""
    path = ops.board.flash.root + _PENDING
    try:
        with open(path) as f:
            was = f.read().strip()
    except OSError:
        return
    ok = was != version.FIRMWARE
    if not ok:
        log.error(_TAG, "update not installed: still running %s" % was)
    await ops.status_note(_NOTE, "Installed" if ok else "InstallationFailed")
    _remove(path)
    ops.firmware_status = "Idle"
