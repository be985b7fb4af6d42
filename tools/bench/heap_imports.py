#!/usr/bin/env python3
"""Heap cost of the device code on the MicroPython unix port.

Builds the .mpy tree the bench installs (tools/mpy_build.py, board "sim"),
then imports the firmware module by module on the real interpreter and prints
the live heap (gc.mem_alloc() after gc.collect()) each import adds, and the
total with an App constructed (all objects the firmware keeps, before any task runs).

    .venv/bin/python tools/bench/heap_imports.py [--heapsize 2M]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heapsize", default="2M")
    a = ap.parse_args()
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, board="sim")
        with open(os.path.join(tmp, "probe.py"), "w") as f:
            f.write(PROBE % json.dumps(MODULES))
        r = subprocess.run([mp, "-X", "heapsize=" + a.heapsize, "probe.py"], cwd=tmp,
                           capture_output=True, text=True, timeout=60)
        if r.returncode:
            sys.exit(r.stdout + r.stderr)
        res = json.loads(r.stdout.strip().splitlines()[-1])
    for m, n in sorted(res["imports"], key=lambda x: -x[1]):
        print("heap_imports %-28s %6d bytes" % (m, n))
    print("heap_imports total %d bytes (MicroPython %s unix port, .mpy)" % (res["total"], "1.29"))


if __name__ == "__main__":
    main()
