#!/usr/bin/env python3
"""Benchmark: power on to BootNotification sent, on both interpreters.

The bench (tools/sim.py) stamps its `power` event (power on) with
time.monotonic(); the central system (tools/csms.py, same machine, same
monotonic clock) stamps the BootNotification it receives. The first boot of a
new board installs the firmware first (tools/simkit: .mpy files or the ROMFS
image), so it is reported apart; then the board is powered off and on again
`--cycles` times (after each boot has reached Available).

  board32      the board-like 32-bit interpreter, modules in a ROMFS image, the integration suite's heap (BOARD32_HEAP, 112K)
  micropython  the venv's 64-bit interpreter, .mpy files on the simulated flash, MP64_HEAP (320K)

    .venv/bin/python tools/bench/boot.py [--cycles 10]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.bench.stats import pct  # noqa: E402
from tools.simkit.bench import BOARD32_HEAP, MP64_HEAP  # noqa: E402

HEAPS = {"board32": BOARD32_HEAP, "micropython": MP64_HEAP}


def _power_on_t(bench, since):
    for e in bench.events(since)[0]:
        if e["kind"] == "power" and e["value"] is True:
            return e["t"]
    return None


def measure_runtime(runtime, cycles, heapsize=None):
    """{"first": s, "reboots": [s...]} for one interpreter."""
    from tools.csms import CsmsThread
    from tools.simkit.client import BenchProcess

    tmp = tempfile.mkdtemp(prefix="boot-")
    out = {"runtime": runtime, "heapsize": heapsize or HEAPS[runtime], "reboots": []}
    try:
        with CsmsThread(heartbeat_interval=300) as cs:
            bench = BenchProcess(os.path.join(tmp, "state"), cs.url, "BOOT1", heapsize=out["heapsize"],
                                 runtime=runtime)
            with bench:
                def one(mark):
                    boot = cs.wait_message("BootNotification", timeout=60, since_t=t_lo[0])
                    t_on = _power_on_t(bench, mark)
                    cs.wait_message("StatusNotification", timeout=30, since_t=boot["t"],
                                    where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
                    return boot["t"] - t_on

                t_lo = [0.0]
                try:
                    out["first"] = one(0)
                    for _ in range(cycles):
                        time.sleep(0.3)
                        bench.cmd({"cmd": "power", "on": False})
                        time.sleep(0.2)
                        mark = bench.mark()
                        t_lo[0] = time.monotonic()
                        bench.cmd({"cmd": "power", "on": True})
                        out["reboots"].append(one(mark))
                except Exception as e:  # the bench's log goes with the temp dir: say what it said
                    with open(bench.log_path, errors="replace") as f:
                        tail = f.read().splitlines()[-40:]
                    raise RuntimeError("%s: %s\nbench log (%s) tail:\n%s" % (
                        runtime, str(e).splitlines()[0], bench.log_path, "\n".join(tail))) from e
            out["violations"] = len(cs.violations)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def measure(cycles=10, runtimes=None):
    from tools.simkit.bench import board32_binary

    if runtimes is None:
        runtimes = ["board32", "micropython"] if board32_binary() else ["micropython"]
    return [measure_runtime(rt, cycles) for rt in runtimes]


def table(results):
    lines = ["boot: power on (bench `power` event) -> BootNotification received by the central system, ms",
             "%-12s %6s %11s %7s %11s %11s %11s" % ("interpreter", "heap", "first boot", "cycles",
                                                   "reboot p50", "reboot max", "violations")]
    for r in results:
        ms = [x * 1000 for x in r["reboots"]]
        lines.append("%-12s %6s %11.0f %7d %11s %11s %11d" % (
            r["runtime"], r["heapsize"], r["first"] * 1000, len(ms),
            "%.0f" % pct(ms, 50) if ms else "-", "%.0f" % max(ms) if ms else "-", r["violations"]))
    lines.append("first boot: a new board (nothing on its flash but the installed firmware); "
                 "reboots: power off, power on, same board")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--runtime", choices=("board32", "micropython"), action="append")
    a = ap.parse_args()
    print("\n".join(table(measure(a.cycles, a.runtime))))


if __name__ == "__main__":
    main()
