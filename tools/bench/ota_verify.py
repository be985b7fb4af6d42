#!/usr/bin/env python3
"""Update package verification on the board-like interpreter (docs/ota.md).

Makes a key pair (tools/ota.py keygen) and a sim package in a tmp dir, then on
the board-like 32-bit interpreter (the venv's micropython when absent), with
lib/ from a ROMFS image as on the board:
- the signature check (RSA-2048 pow + EMSA-PSS), mean of 20;
- the whole check of the package (signature + the image streamed into SHA-256);
- the smallest heap (in KiB steps) in which the whole check passes.

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
    mhz = host_mhz()
    print("interpreter: %s" % mp)
    print("signature check (RSA-2048 pow + PSS decode): %.1f ms" % (sig_us / 1000))
    print("whole package check (signature + SHA-256 of %d B image through 1 KiB): %.1f ms" % (size, full_us / 1000))
    print("smallest heap the whole check passes in: %s KiB" % smallest)
    if mhz:
        f = mhz / 240 * 3
        print("ESP32 240 MHz estimate (x%.0f: host %.0f MHz / 240 x 3): signature %.2f s, whole check %.2f s "
              "(flash reads not counted)" % (f, mhz, sig_us * f / 1e6, full_us * f / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
