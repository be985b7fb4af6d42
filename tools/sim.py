#!/usr/bin/env python3
"""The bench: a simulated JOLT board running the firmware on the MicroPython
unix port, driven over a JSON-lines control channel. See docs/simulator.md.

  sim.py --csms URL --id ID --control PORT --state DIR [--variant business|homeplus]
         [--config KEY=VALUE]... [--heapsize SIZE] [--runtime micropython|board32|cpython]
         [--ota-key PUBLIC.pem]
"""
import argparse
import asyncio
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.simkit.bench import Bench  # noqa: E402


def parse_config(items):
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit("--config expects KEY=VALUE, got %r" % item)
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csms", required=True, help="central system URL (ws:// or wss://)")
    ap.add_argument("--id", required=True, help="charge point id")
    ap.add_argument("--control", type=int, required=True, help="control channel port on 127.0.0.1 (0: any)")
    ap.add_argument("--state", required=True, help="the board's storage: DIR/flash, DIR/sd")
    ap.add_argument("--variant", default="business", choices=("business", "homeplus"))
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--heapsize", default=None, help="MicroPython heap, e.g. 128K")
    ap.add_argument("--runtime", default="micropython", choices=("micropython", "board32", "cpython"),
                    help="micropython: the venv's 64-bit interpreter, .mpy files in DIR/flash; board32: the "
                         "board-like 32-bit interpreter, modules in a ROMFS image (docs/simulator.md)")
    ap.add_argument("--quiet", action="store_true", help="do not echo firmware output")
    ap.add_argument("--ota-key", default=None, metavar="PUBLIC.pem",
                    help="update key a fresh board gets at the factory (docs/ota.md)")
    a = ap.parse_args(argv)
    bench = Bench(a.csms, a.id, a.control, a.state, variant=a.variant, config=parse_config(a.config),
                  heapsize=a.heapsize, runtime=a.runtime, quiet=a.quiet, ota_key=a.ota_key)
    asyncio.run(bench.run())


if __name__ == "__main__":
    main()
