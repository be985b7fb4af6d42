# UpdateFirmware over OCPP (docs/ota.md), loaded for one update and dropped
# after: download the package over http(s) into the SD card's update folder,
# check it, wait for no transaction, reboot into boot.py's install; the
# FirmwareStatusNotification sequence Downloading, Downloaded/DownloadFailed,
# Installing, then after the reboot Installed (the new version's first
# accepted BootNotification) or InstallationFailed (refused, or rolled back).
import asyncio
import os

from lib import http, isotime, log, otapkg
from firmware import update, version

TAG = "update"
PENDING = "fw_pending.json"  # on flash: the version an OCPP update reboots into
PART = "ota-download.part"
ATTEMPTS = 3      # when UpdateFirmware gives no retries
INTERVAL_S = 30   # when it gives no retryInterval
BUSY_POLL_S = 2


async def _status(ops, status):
    ops.firmware_status = status
    log.info(TAG, "FirmwareStatusNotification %s" % status)
    for _ in range(3):
        try:
            await ops.cp.call("FirmwareStatusNotification", {"status": status})
            return
        except Exception as e:  # offline: the state stays for TriggerMessage
            log.warn(TAG, "FirmwareStatusNotification %s: %r" % (status, e))
            await asyncio.sleep(5)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


async def run(ops, p):
    board = ops.board
    loc = p["location"]
    import hal

    if hal.slots().count < 2:
        log.error(TAG, "no application slots: cannot install %s" % loc)
        await _status(ops, "InstallationFailed")
        return
    t = isotime.parse(p["retrieveDate"])
    attempts = p.get("retries")
    attempts = ATTEMPTS if attempts is None else max(1, attempts)
    interval = p.get("retryInterval")
    interval = INTERVAL_S if interval is None else max(0, interval)
    if t is not None:
        while board.clock.now() < t:
            await asyncio.sleep(min(30, t - board.clock.now()))
    sd = board.sd.root
    if sd is None:
        log.error(TAG, "no SD card (SDCardFailure): cannot download %s" % loc)
        await _status(ops, "DownloadFailed")
        return
    d = sd + update.UPDATE_DIR
    try:
        os.mkdir(d)
    except OSError:
        pass
    part = d + PART
    buf = bytearray(otapkg.CHUNK)
    ok = False
    for i in range(attempts):
        await _status(ops, "Downloading")
        try:
            ctx = ops.cp.tls_context() if loc.startswith("https:") else None
            with open(part, "wb") as f:
                n = await http.get(board.net.open, loc, f.write, buf, ctx, max_bytes=otapkg.MAX_PACKAGE)
            ctx = None
            log.info(TAG, "downloaded %s: %d bytes" % (loc, n))
            ok = True
            break
        except Exception as e:
            ctx = None
            log.warn(TAG, "download %d of %d from %s failed: %r" % (i + 1, attempts, loc, e))
            _remove(part)
            if i + 1 < attempts:
                await asyncio.sleep(interval)
    if not ok:
        await _status(ops, "DownloadFailed")
        return
    await _status(ops, "Downloaded")
    key = update.key(board.flash.root)
    try:
        if key is None:
            raise otapkg.Refused("no update key on this board")
        m = otapkg.check(part, key, ops.cfg.variant, version.FIRMWARE, update.BOARD,
                         ops.cfg.get("FirmwareAllowDowngrade"), buf=buf)
        if otapkg.compare(m["version"], version.FIRMWARE) == 0:
            raise otapkg.Refused("version %s already running" % version.FIRMWARE)
    except (otapkg.Refused, OSError) as e:
        log.error(TAG, "%s refused: %s" % (loc, e))
        _remove(part)
        await _status(ops, "InstallationFailed")
        return
    buf = key = None
    while ops.busy():  # a running transaction ends first
        await asyncio.sleep(BUSY_POLL_S)
    await _status(ops, "Installing")
    pkg = d + "ota-%s.jolt" % m["version"]
    _remove(pkg)
    os.rename(part, pkg)
    with open(board.flash.root + PENDING, "w") as f:
        f.write(m["version"])
    log.info(TAG, "rebooting into the install of %s" % m["version"])
    await ops.reboot("Soft")


async def report(ops):
    """After an OCPP update's reboot, once BootNotification is accepted:
    Installed when the new version runs, else InstallationFailed."""
    path = ops.board.flash.root + PENDING
    try:
        with open(path) as f:
            want = f.read().strip()
    except OSError:
        return
    ok = want == version.FIRMWARE
    if not ok:
        log.error(TAG, "update to %s not installed (running %s)" % (want, version.FIRMWARE))
    await _status(ops, "Installed" if ok else "InstallationFailed")
    _remove(path)
    ops.firmware_status = "Idle"
