#!/usr/bin/env python3
"""Heap cost of the device code, side by side on both interpreters.

Builds the .mpy tree the bench installs (tools/mpy_build.py, board "sim") and
the ROMFS image (tools/romfs.py), then imports the firmware module by module
and prints the live heap (gc.mem_alloc() after gc.collect()) each import adds,
then what each module loaded per use (firmware/app.py PER_USE) costs while loaded:

- board32 ROMFS: the board-like 32-bit interpreter, modules executed in place
  from the ROMFS image (what the board spends: the figure that counts);
- board32 .mpy: the same interpreter, .mpy files on the filesystem (a board
  without ROMFS: bytecode copied into the heap);
- 64-bit .mpy: the venv's PyPI micropython, as the bench ran before.

    .venv/bin/python tools/bench/heap_imports.py [--heapsize 2M]

The board-like columns are left out (and said so) when that interpreter is absent.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from tools.mpy_build import build  # noqa: E402

MODULES = [
    "lib.log", "lib.fsutil", "lib.isotime", "lib.url", "lib.ocppj", "lib.ws",
    "lib.journal", "lib.modbus", "hal", "hal.sim.board", "firmware.params", "firmware.config",
    "firmware.chargepoint", "firmware.operations", "firmware.metering",
    "firmware.idtags", "firmware.transactions", "firmware.pilot", "firmware.connector",
    "firmware.station", "firmware.faults", "firmware.supervisor", "firmware.control", "firmware.app",
]

PROBE = r'''
import gc, json, sys
gc.collect()
base = gc.mem_alloc()
prev = base
out = []
for m in %s:
    __import__(m)
    gc.collect()
    now = gc.mem_alloc()
    out.append([m, now - prev])
    prev = now
print(json.dumps({"imports": out, "total": prev - base}))
'''

# The modules loaded per use (firmware/app.py PER_USE, the HAL's Board.PER_USE),
# each as it costs while loaded after boot: the application imported and the
# per-use modules warmed first, as at boot (no pool of names counted); each
# dropped again with what it imported. A probe of its own: the imports above
# stay measured as they always were.
PER_USE_PROBE = r'''
import gc, json, sys
from lib import transient
import firmware.app as app
import hal.sim.board as sim
names = [n for n in app.PER_USE + sim.Board.PER_USE if n != "boot"]  # boot.py is compiled from littlefs
transient.warm(names)
per = []
for m in names:
    before = set(sys.modules)
    gc.collect()
    a = gc.mem_alloc()
    transient.load(m)
    gc.collect()
    per.append([m, gc.mem_alloc() - a])
    for n in [n for n in sys.modules if n not in before]:
        transient.drop(n)
print(json.dumps(per))
'''


def probe(cmd, cwd, env=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, env=env)
    if r.returncode:
        sys.exit(r.stdout + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(heapsize):
    """{column: {"imports": [[module, bytes]...], "total": bytes}}"""
    from tools.romfs import SYS_PATH, build_image
    from tools.simkit.bench import board32_binary

    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    b32 = board32_binary()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = os.path.join(tmp, "tree")
        build(tree, board="sim")
        for d in (tree,):
            with open(os.path.join(d, "probe.py"), "w") as f:
                f.write(PROBE % json.dumps(MODULES))
            with open(os.path.join(d, "per_use.py"), "w") as f:
                f.write(PER_USE_PROBE)

        def both(cmd, cwd, env=None):
            res = probe(cmd + ["probe.py"], cwd, env)
            res["per_use"] = probe(cmd + ["per_use.py"], cwd, env)
            return res

        out["64-bit .mpy"] = both([mp, "-X", "heapsize=" + heapsize], tree)
        if b32:
            env = dict(os.environ, MICROPYPATH=":.frozen")
            out["board32 .mpy"] = both([b32, "-X", "heapsize=" + heapsize], tree, env)
            flash = os.path.join(tmp, "flash")
            os.makedirs(flash)
            img = os.path.join(tmp, "jolt.romfs")
            build_image(img, board="sim")
            with open(os.path.join(flash, "probe.py"), "w") as f:
                f.write(PROBE % json.dumps(MODULES))
            with open(os.path.join(flash, "per_use.py"), "w") as f:
                f.write(PER_USE_PROBE)
            env = dict(os.environ, MICROPY_ROMFS=img, MICROPYPATH=":".join(SYS_PATH))
            out["board32 ROMFS"] = both([b32, "-X", "heapsize=" + heapsize], flash, env)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heapsize", default="2M")
    a = ap.parse_args()
    res = measure(a.heapsize)
    cols = [c for c in ("board32 ROMFS", "board32 .mpy", "64-bit .mpy") if c in res]
    per = {c: dict(res[c]["imports"]) for c in cols}
    order = sorted(MODULES, key=lambda m: -per[cols[0]][m])
    print("heap_imports %-28s %s" % ("module", "".join("%15s" % c for c in cols)))
    for m in order:
        print("heap_imports %-28s %s" % (m, "".join("%15d" % per[c][m] for c in cols)))
    print("heap_imports %-28s %s" % ("total", "".join("%15d" % res[c]["total"] for c in cols)))
    use = {c: dict(res[c]["per_use"]) for c in cols}
    print("heap_imports %-28s (while loaded, after boot)" % "per-use module")
    for m in sorted(use[cols[0]], key=lambda m: -use[cols[0]][m]):
        print("heap_imports %-28s %s" % (m, "".join("%15d" % use[c][m] for c in cols)))
    if "board32 ROMFS" not in res:
        print("heap_imports: no board-like interpreter (MICROPYTHON_BOARD32 or "
              "../shared/micropython-board32/micropython): board figures not measured")


if __name__ == "__main__":
    main()
