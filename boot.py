# Runs before main.py (docs/ota.md). Counts the trial boots of a newly
# installed application slot and goes back to the previous slot after TRIALS
# of them that did not end healthy; otherwise installs a signed update from
# the SD card (firmware/update.py, from the running slot). The slot to boot is
# the small record RECORD, replaced by one rename. Nothing here may keep the
# charger from booting: any error leaves the record as it was.
import json
import os
import sys

RECORD = "boot.json"
TRIALS = 3


def record():
    for p in (RECORD, RECORD + ".new"):  # .new: a rename cut half-way
        try:
            with open(p) as f:
                r = json.load(f)
            if r["slot"] in (0, 1):
                return r
        except Exception:
            pass
    return {"slot": 0}


def write(r):
    with open(RECORD + ".new", "w") as f:
        f.write(json.dumps(r))
    try:
        os.rename(RECORD + ".new", RECORD)
    except OSError:  # a filesystem that does not rename over a file
        os.remove(RECORD)
        os.rename(RECORD + ".new", RECORD)


def healthy():
    """The application is up (BootNotification accepted): a trial ends, a
    rollback has been reported. The record as it was when that changed it."""
    r = record()
    if "tries" in r or "failed" in r:
        write({"slot": r["slot"]})
        return r
    return None


def pending():
    """A trial runs or a rollback is not reported yet: the application will
    call healthy() (main.py keeps this module loaded for it)."""
    r = record()
    return "tries" in r or "failed" in r


def mount(s=None):
    """Mount application slot s (default: the recorded one) at /rom, in place
    of what is there (segment 0 from start-up). Returns the slot mounted."""
    if s is None:
        s = record()["slot"]
    try:
        import vfs

        # VfsRom (MicroPython >= 1.25 built with MICROPY_VFS_ROM) is missing from the stubs
        rom = vfs.VfsRom(vfs.rom_ioctl(2, s))  # pyright: ignore[reportAttributeAccessIssue]
    except Exception as e:  # no ROMFS segments here (a stock build) or an unusable slot
        if s:
            print("boot: slot %d unusable (%r), running slot 0" % (s, e))
        return 0
    for k in list(sys.modules):  # modules of another slot must not stay
        if k.split(".")[0] in ("firmware", "lib", "hal"):
            del sys.modules[k]
    try:
        vfs.umount("/rom")
    except OSError:  # nothing mounted there
        pass
    vfs.mount(rom, "/rom")
    return s


def main():
    r = record()
    if "tries" in r:
        if r["tries"] >= TRIALS:
            prev = r.get("prev", 1 - r["slot"])
            print("boot: version %s not healthy after %d trial boots: back to slot %d"
                  % (r.get("version"), r["tries"], prev))
            write({"slot": prev, "failed": r.get("version")})
        else:
            r["tries"] += 1
            write(r)
            print("boot: trial boot %d of version %s" % (r["tries"], r.get("version")))
        return
    hw = None
    try:
        s = mount(r["slot"])
        import hal
        from firmware import update

        hw = hal.slots(s)  # the slot mounted is never written
        update.from_sd("", hw)
    except Exception as e:
        print("boot: update: %r" % (e,))
    if hw is not None:
        hw.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the record stays as it was; main.py starts
        print("boot: %r" % (e,))
