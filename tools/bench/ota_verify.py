#!/usr/bin/env python3
"""Update package verification on the board-like interpreter (docs/ota.md).

Makes a key pair (tools/ota.py keygen) and a sim package in a tmp dir, then on
the board-like 32-bit interpreter (the venv's micropython when absent), with
lib/ from a ROMFS image as on the board:
- the signature check (RSA-2048 pow + EMSA-PSS), mean of 20;
- the whole check of the package (signature + the image streamed into SHA-256);
- the smallest heap (in KiB steps) in which the whole check passes;
- the smallest heap in which boot.py installs the package from the SD card
  into the second slot (check, write, read back, switch), as on the bench.

    .venv/bin/python tools/bench/ota_verify.py

The ESP32 estimate scales the host figure by the clock ratio times 3 (an
Xtensa LX6 does less per cycle than a desktop core): an estimate, not a
measurement.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from tools import ota  # noqa: E402
from tools.romfs import image_from_tree  # noqa: E402
from tools.mpy_build import build  # noqa: E402
from tools.simkit.bench import board32_binary  # noqa: E402

SCRIPT = r"""
import gc, time, sys
from lib import otapkg
key = otapkg.load_key(KEY)
N = int(sys.argv[-1]) if len(sys.argv) > 1 else REPS
t = time.ticks_us()
for i in range(N):
    f = open(PKG, 'rb')
    otapkg.read_manifest(f, key)
    f.close()
sig_us = time.ticks_diff(time.ticks_us(), t) // N
t = time.ticks_us()
m = otapkg.check(PKG, key, 'business', '0.1.0', 'sim')
full_us = time.ticks_diff(time.ticks_us(), t)
print('RESULT', sig_us, full_us, m['size'])
"""


def host_mhz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    except OSError:
        pass
    return None


def smallest_install(mp, d, pkg):
    """boot.py on a bench-like state dir: slot 0 the project's image, the
    package in sd/update; the smallest heap (KiB) in which the record switches."""
    import json
    import shutil

    from tools.romfs import build_image

    st = os.path.join(d, "state")
    flash = os.path.join(st, "flash")
    upd = os.path.join(st, "sd", "update")
    os.makedirs(flash)
    os.makedirs(upd)
    build_image(os.path.join(st, "romfs.img"), board="sim")
    shutil.copyfile(os.path.join(d, "keys", "ota_key.json"), os.path.join(flash, "ota_key.json"))
    for rel in ("boot.py", "main.py"):
        shutil.copyfile(os.path.join(ROOT, rel), os.path.join(flash, rel))
    slots = os.path.join(st, "romfs.img") + ":" + os.path.join(st, "romfs_b.img")
    env = dict(os.environ, MICROPY_ROMFS=slots, JOLT_SLOTS=slots, MICROPYPATH=":.frozen:/rom:/rom/lib")
    for heap in range(8, 97, 2):
        for n in os.listdir(upd):
            os.rename(os.path.join(upd, n), os.path.join(upd, "p.jolt"))
        if not os.listdir(upd):
            shutil.copyfile(pkg, os.path.join(upd, "p.jolt"))
        for f in ("boot.json", "boot.json.new"):
            if os.path.exists(os.path.join(flash, f)):
                os.remove(os.path.join(flash, f))
        subprocess.run([mp, "-X", "heapsize=%dK" % heap, "boot.py"], capture_output=True, env=env,
                       cwd=flash, timeout=60)
        try:
            with open(os.path.join(flash, "boot.json")) as f:
                if json.load(f).get("slot") == 1:
                    return heap
        except (OSError, ValueError):
            pass
    return None


def main():
    mp = board32_binary() or os.path.join(ROOT, ".venv", "bin", "micropython")
    with tempfile.TemporaryDirectory() as d:
        priv, _ = ota.keygen(os.path.join(d, "keys"))
        pkg = os.path.join(d, "p.jolt")
        ota.build(priv, "0.2.0", pkg, board="sim")
        tree = os.path.join(d, "tree")
        build(tree, board="sim")
        rom = os.path.join(d, "lib.romfs")
        with open(rom, "wb") as f:
            f.write(image_from_tree(os.path.join(tree)))
        script = (SCRIPT.replace("KEY", repr(os.path.join(d, "keys", "ota_key.json")))
                  .replace("PKG", repr(pkg)).replace("REPS", "20"))
        env = dict(os.environ, MICROPY_ROMFS=rom, MICROPYPATH=":.frozen:/rom")

        def run(heap, reps=20):
            return subprocess.run([mp, "-X", "heapsize=%dK" % heap, "-c", script, str(reps)],
                                  capture_output=True, text=True, env=env, cwd=d, timeout=120)

        r = run(256)
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")]
        if not line:
            print(r.stdout + r.stderr)
            return 1
        sig_us, full_us, size = map(int, line[0].split()[1:])
        smallest = None
        for heap in range(4, 65, 2):
            if run(heap, 1).returncode == 0:
                smallest = heap
                break
        install_heap = smallest_install(mp, d, pkg)
    mhz = host_mhz()
    print("interpreter: %s" % mp)
    print("signature check (RSA-2048 pow + PSS decode): %.1f ms" % (sig_us / 1000))
    print("whole package check (signature + SHA-256 of %d B image through 1 KiB): %.1f ms" % (size, full_us / 1000))
    print("smallest heap the whole check passes in: %s KiB" % smallest)
    print("smallest heap boot.py installs the package in (check, write slot, read back, switch): %s KiB"
          % install_heap)
    if mhz:
        f = mhz / 240 * 3
        print("ESP32 240 MHz estimate (x%.0f: host %.0f MHz / 240 x 3): signature %.2f s, whole check %.2f s "
              "(flash reads not counted)" % (f, mhz, sig_us * f / 1e6, full_us * f / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
