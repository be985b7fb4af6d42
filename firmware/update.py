# Signed updates into the inactive application slot (docs/ota.md). boot.py
# calls from_sd() before the charger starts (no transaction can run then).
# The slot record (boot.py: record(), write()) is the only switch: it is
# replaced by one rename after the new slot was written and read back; the
# application ends the trial boot (boot.healthy()) once BootNotification is
# accepted.
import binascii
import hashlib
import os
import sys

from micropython import const

import boot
from lib import log
from firmware import version

_TAG = const("update")
_KEY_FILE = const("ota_key.json")  # the factory's key (tools/ota.py devkey), else PRODUCTION_KEY
_UPDATE_DIR = const("update/")  # on the SD card
# The release key's modulus (hex, tools/ota.py devkey), built into release
# builds. None: only a board given a key file at the factory takes updates.
PRODUCTION_KEY = None
BOARD = "esp32" if sys.platform == "esp32" else "sim"


def key(root):
    from lib import otapkg  # here: a boot with no package on the card never interns its names

    try:
        return otapkg.load_key(root + _KEY_FILE)
    except (OSError, ValueError, KeyError):
        pass
    return otapkg.key_from_hex(PRODUCTION_KEY) if PRODUCTION_KEY else None


def from_sd(root, hw):
    """Install the first acceptable package in the SD card's update folder."""
    if hw.count < 2:
        log.info(_TAG, "no application slots: updates off")
        return None
    if hw.sd is None:
        log.warn(_TAG, "no SD card (or SDCardFailure): updates from the card off")
        return None
    d = hw.sd + _UPDATE_DIR
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".jolt"))
    except OSError:
        return None
    for n in names:
        m = install(root, hw, d + n)
        if m:
            return m
    return None


def _done(path, suffix):
    try:
        os.rename(path, path + suffix)
    except OSError as e:
        log.error(_TAG, "cannot rename %s: %r" % (path, e))


def install(root, hw, path):
    """Check the package at `path`, write it into the inactive slot, read it
    back, switch the record to it on trial. The manifest, or None (refused:
    the package renamed *.refused, nothing else changed)."""
    k = key(root)
    if k is None:
        log.error(_TAG, "%s: no update key on this board" % path)
        return None
    from firmware.config import Config
    from lib import otapkg

    cfg = Config(root=root)
    variant = cfg.variant
    down = cfg.get("FirmwareAllowDowngrade")
    cfg = None
    active = boot.record()["slot"]
    target = 1 - active
    running = version.FIRMWARE
    buf = bytearray(otapkg.CHUNK)
    try:
        # A dry pass first: nothing is written for a package that fails.
        m = otapkg.check(path, k, variant, running, BOARD, down, buf=buf)
        if otapkg.compare(m["version"], running) == 0:
            log.info(_TAG, "%s: version %s already running" % (path, running))
            _done(path, ".done")
            return None
        if m["size"] > hw.capacity:
            raise otapkg.Refused("image of %d bytes, slot of %d" % (m["size"], hw.capacity))
        log.info(_TAG, "%s: version %s accepted, writing slot %d" % (path, m["version"], target))
        w = hw.writer(target)
        try:
            otapkg.check(path, k, variant, running, BOARD, down, w.write, buf)
        finally:
            w.close()
        _read_back(hw, target, m, buf)
    except otapkg.Refused as e:
        log.error(_TAG, "%s refused: %s" % (path, e))
        _done(path, ".refused")
        return None
    boot.write({"slot": target, "prev": active, "tries": 1, "version": m["version"], "from": running})
    _done(path, ".done")
    log.info(_TAG, "version %s installed in slot %d: trial boot" % (m["version"], target))
    return m


def _read_back(hw, i, m, buf):
    from lib import otapkg

    h = hashlib.sha256()
    mv = memoryview(buf)
    left = m["size"]
    f = hw.reader(i)
    try:
        while left:
            n = f.readinto(mv[:min(left, len(buf))])
            if not n:
                break
            h.update(mv[:n])
            left -= n
    finally:
        f.close()
    if left or binascii.hexlify(h.digest()).decode() != m["sha256"]:
        raise otapkg.Refused("slot %d read back differs" % i)

