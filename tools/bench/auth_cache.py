#!/usr/bin/env python3
"""Benchmark: the authorization cache full (200 idTags, _CACHE_MAX).

Compiles firmware/idtags.py and its lib dependencies with mpy-cross (as on the
device), fills the cache the way central-system answers do (200 cards of 20
characters with a 20-character parentIdTag), and prints, measured on each
MicroPython interpreter found (the venv's 64-bit unix port; the 32-bit
board-like build if present):

  file_bytes      size of the cache file on flash
  kept            live heap the full cache keeps (after a collect, minus an
                  empty one): 0 means nothing of it stays in RAM
  as_dict         the same 200 entries held as the dict the JSON cache of
                  earlier versions kept (json.loads of its file), for comparison
  lookup_alloc    bytes one lookup allocates (all garbage afterwards), hit
  lookup_us       mean time of one lookup on this host's filesystem (a hit
                  reads half the records on average, a miss all of them)
  put_us          mean time of one new entry (a scan and one record written)

    .venv/bin/python tools/bench/auth_cache.py [--heapsize 512K] [--json]

(A large heap by default: the comparison dict and its JSON text do not fit
the suite's heap, which is the point.)
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools.bench.locallist import run_worker  # noqa: E402
from tools.simkit.bench import board32_binary  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
SOURCES = ("firmware/__init__.py", "firmware/names.py", "firmware/idtags.py", "lib/__init__.py", "lib/fsutil.py", "lib/log.py",
           "lib/isotime.py", "lib/transient.py")

WORKER = r"""
import sys
sys.path.insert(0, %(build)r)
import gc, json, time
import lib.log
lib.log.info = lib.log.warn = lambda *a: None

class Clock:
    t = 1800000000
    def now(self):
        return self.t

import firmware.idtags as I
clock = Clock()
N = 200
tags = ["CARD%%016d" %% i for i in range(N)]
gc.collect()
store = I.TagStore(%(state)r + "/auth_cache.bin", N, clock)
gc.collect()
m0 = gc.mem_alloc()
t = time.ticks_us()
for i in range(N):
    clock.t += 1
    store.put(tags[i], {"status": "Accepted", "parentIdTag": "GROUP%%015d" %% (i %% 7)})
put_us = time.ticks_diff(time.ticks_us(), t) // N
gc.collect()
kept = gc.mem_alloc() - m0
assert store.lookup(tags[N - 1]) == {"status": "Accepted", "parentIdTag": "GROUP%%015d" %% ((N - 1) %% 7)}
gc.collect()
a = gc.mem_alloc()
store.lookup(tags[N // 2])
alloc_hit = gc.mem_alloc() - a
t = time.ticks_us()
for i in range(0, N, 4):
    store.lookup(tags[i])
lookup_us = time.ticks_diff(time.ticks_us(), t) // (N // 4)
import os
size = os.stat(%(state)r + "/auth_cache.bin")[6]
text = json.dumps({"version": 0, "tags": {tags[i]: ["Accepted", 0, "GROUP%%015d" %% (i %% 7), 1800000000 + i]
                                          for i in range(N)}})
gc.collect()
a = gc.mem_alloc()
held = json.loads(text)
gc.collect()
as_dict = gc.mem_alloc() - a
print("RESULT {\"entries\": %%d, \"file_bytes\": %%d, \"kept\": %%d, \"as_dict\": %%d, \"lookup_alloc\": %%d, "
      "\"lookup_us\": %%d, \"put_us\": %%d}" %% (N, size, kept, as_dict, alloc_hit, lookup_us, put_us))
"""


def run(interp, heapsize):
    return run_worker(interp, heapsize, SOURCES, WORKER, "bench-authcache-")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heapsize", default="512K")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {}
    for name, interp in (("unix64", os.path.join(VENV_BIN, "micropython")), ("board32", board32_binary())):
        if interp and os.path.exists(interp):
            results[name] = dict(run(interp, args.heapsize), heap=args.heapsize)
    if args.json:
        print(json.dumps(results))
        return
    for name, res in results.items():
        for k, v in res.items():
            print("auth_cache %-8s %-14s %s" % (name, k, v))


if __name__ == "__main__":
    main()
