#!/usr/bin/env python3
"""Interned names of the firmware on the board-like interpreter, and the room
left before MicroPython's next pool of names.

Every identifier, attribute name and short string constant of a module loaded
from ROMFS is interned when the module loads and stays for good. The names
live in pools that double in size: on the 32-bit board the pool after the
640-name one is a single block of about 9 KB (1280 entries), taken the moment
one name more is needed (docs/memory.md, "Interned names"). This boots the
application as firmware/app.run does up to its event loop (HAL, per-use
modules warmed, App constructed) from the ROMFS image, then interns new names
one at a time until a new pool appears.

    .venv/bin/python tools/bench/names.py [--heapsize 256K]

(The names do not depend on the heap size; a large heap keeps the probe's
own allocations from failing once the next pool is taken.)

Prints names interned, pools, names left before the next pool, and the heap
that pool takes; then loads every other module of the image the bench board
can load and names those that intern new names after boot (a module loaded
per use missing from PER_USE in firmware/app.py or Board.PER_USE).
"""
import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

PROBE = r'''
import gc, micropython, sys
# As on the board: boot.py runs first in the same interpreter (its names stay),
# then main.py imports it again and mounts the application.
exec(open("boot.py").read(), {"__name__": "__main__"})
import boot
boot.mount()
del sys.modules["boot"]
import hal
from lib import transient
import firmware.app as a
b = hal.load()
transient.warm(a.PER_USE + b.PER_USE)
app = a.App(b)
gc.collect()
micropython.qstr_info()
# The room left: new names one at a time until a pool is taken (this code's
# own few names are in the count above: it errs on the safe side).
i = 0
while True:
    n = "zq%04d" % i  # allocated before the measurement
    before = gc.mem_alloc()
    getattr(sys, n, None)  # interns the name
    if gc.mem_alloc() - before > 2048:  # not a name's few bytes: a new pool
        print("POOL", i, gc.mem_alloc() - before)
        break
    i += 1
exec(open("after.py").read())  # compiled only now: its names are not the firmware's
'''

# After the count and the room: the checks (their own names are counted again
# before the modules load).
AFTER = r'''
import json
long = "LONG"  # firmware/names.py: json.loads gives the interned name, the same object each time
print("INTERNED", len([n for n, m in zip(json.loads(long), json.loads(long)) if n is not m]),
      "firmware.names" in sys.modules)
micropython.qstr_info()
for m in MODULES:  # every other module of the image: its names must be interned already
    if m not in sys.modules:
        transient.load(m)
        transient.drop(m)
    print("MODULE", m)
    micropython.qstr_info()
'''

# The esp32 HAL, its DNS resolver and the CPython runtime's board are never loaded on the bench.
NOT_ON_THE_BENCH = ("hal/esp32/", "hal/sim/_cpy", "lib/dns")
# Loaded by boot.py before the application, while the heap is whole (docs/ota.md);
# the package checker (lib.otapkg, lib.rsapss) only when the SD card has a package.
AT_BOOT = ("firmware.update", "lib.otapkg", "lib.rsapss", "hal.sim.slots")
POOL = re.compile(r"n_pool=(\d+), n_qstr=(\d+)")


def long_names():
    """The names firmware/names.py interns at boot."""
    with open(os.path.join(ROOT, "firmware", "names.py")) as f:
        tree = ast.parse(f.read())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return sorted(names | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names})


def measure(heapsize="256K"):
    """{"names", "pools", "room", "pool_bytes"} or None without the board-like interpreter."""
    from tools.romfs import SYS_PATH, build_image
    from tools.simkit.bench import board32_binary

    b32 = board32_binary()
    if not b32:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        flash = os.path.join(tmp, "flash")
        os.makedirs(flash)
        img = os.path.join(tmp, "jolt.romfs")
        files = build_image(img, board="sim")
        modules = [f[:-4].replace("/", ".").replace(".__init__", "") for f in files
                   if f.endswith(".mpy") and not f.startswith(NOT_ON_THE_BENCH)
                   and f[:-4].replace("/", ".") not in AT_BOOT]
        with open(os.path.join(flash, "probe.py"), "w") as f:
            f.write(PROBE)
        with open(os.path.join(flash, "after.py"), "w") as f:
            f.write(AFTER.replace("MODULES", repr(modules)).replace('"LONG"', repr(json.dumps(long_names()))))
        # boot.py is loaded per use from littlefs (firmware/app.py PER_USE)
        with open(os.path.join(ROOT, "boot.py")) as src, open(os.path.join(flash, "boot.py"), "w") as dst:
            dst.write(src.read())
        env = dict(os.environ, MICROPY_ROMFS=img, MICROPYPATH=":".join(SYS_PATH))
        r = subprocess.run([b32, "-X", "heapsize=" + heapsize, "probe.py"], cwd=flash,
                           capture_output=True, text=True, timeout=60, env=env)
    lines = r.stdout.splitlines()
    grew = [ln.split() for ln in lines if ln.startswith("POOL")]
    long = [ln.split() for ln in lines if ln.startswith("INTERNED")]
    m = [POOL.search(ln) for ln in lines if POOL.search(ln)]
    if r.returncode or not grew or not long or len(m) != len(modules) + 2:
        raise RuntimeError("names probe failed:\n" + r.stdout[:3000] + r.stderr[-2000:])
    counts = [int(x.group(2)) for x in m]
    after = counts[1:]  # from the probe's own names on
    late = {mod: after[i + 1] - after[i] for i, mod in enumerate(modules) if after[i + 1] > after[i]}
    return {"names": counts[0], "pools": int(m[0].group(1)), "room": int(grew[0][1]),
            "pool_bytes": int(grew[0][2]), "late": late, "modules": len(modules),
            "long": len(long_names()), "long_not_interned": int(long[0][1]), "names_module_kept": long[0][2] == "True"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heapsize", default="256K")
    a = ap.parse_args()
    res = measure(a.heapsize)
    if res is None:
        print("names: no board-like interpreter (MICROPYTHON_BOARD32 or ../shared/micropython-board32/micropython)")
        return
    print("names: %(names)d interned in %(pools)d pools after boot; room for %(room)d more "
          "before the next pool (%(pool_bytes)d B of heap once taken)" % res)
    print("names: %d other modules loaded after boot, %d interning new names %s" % (
        res["modules"], len(res["late"]), res["late"] or ""))
    print("names: %(long)d long names of firmware/names.py, %(long_not_interned)d not interned after boot; "
          "firmware.names kept: %(names_module_kept)s" % res)


if __name__ == "__main__":
    main()
