#!/usr/bin/env python3
"""Smallest MicroPython heap the firmware works in, and its live peak, on
both interpreters side by side.

Runs one representative scenario on the bench against the strict central
system (boot, heartbeat, a charging session with meter values, a stop, a
CALLERROR-provoking request) with `-X heapsize=N`, and searches the smallest N
(in 8 KiB steps) for which it passes. Also reports the live-heap peak
(gc.mem_alloc() after gc.collect(), logged by the firmware every 5 s) seen
with a generous heap. Runtimes: `board32` (the board-like 32-bit interpreter,
modules in a ROMFS image: what the board spends) and `micropython` (the venv's
64-bit one, .mpy files); `both` (default) runs the board-like one when present.

    .venv/bin/python tools/bench/heap_min.py [--runtime both|board32|micropython]

--suite K runs the whole integration test suite with the firmware in a K KiB
heap instead (on the board-like interpreter when present: tests/integration/rig.py;
about 8 minutes when it passes, more when it does not) and reports whether it
passed and the highest live peak any test's firmware logged:

    .venv/bin/python tools/bench/heap_min.py --suite 80
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from tools.csms import CsmsThread  # noqa: E402
from tools.simkit.bench import board32_binary  # noqa: E402
from tools.simkit.client import BenchProcess  # noqa: E402

RANGES = {"board32": (48, 128), "micropython": (128, 320)}  # KiB searched by default


def scenario(heap_k, runtime="micropython"):
    """True if the scenario passes with heapsize=heap_k KiB; (ok, live peak)."""
    tmp = tempfile.mkdtemp(prefix="heap%d-" % heap_k)
    try:
        with CsmsThread(tags={"TAG1": "Accepted"}, heartbeat_interval=2) as cs:
            bench = BenchProcess(os.path.join(tmp, "state"), cs.url, "CP1", heapsize="%dK" % heap_k,
                                 config={"MeterValueSampleInterval": "1"}, runtime=runtime)
            with bench:
                try:
                    cs.wait_message("StatusNotification", timeout=20,
                                    where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
                    cs.wait_message("Heartbeat", timeout=6)
                    bench.cmd({"cmd": "plug"})
                    bench.cmd({"cmd": "rfid", "id": "TAG1"})
                    cs.wait_message("StartTransaction", timeout=10)
                    bench.cmd({"cmd": "ev", "state": "C"})
                    bench.wait_event("relay", lambda v: v is True, timeout=10)
                    bench.cmd({"cmd": "ev_current", "amps": 16})
                    cs.wait_message("MeterValues", timeout=10)
                    rep = cs.send_raw("CP1", '[2,"x1","Reset",{"type":"Later"}]', wait_reply_timeout=5)
                    assert rep is not None and rep["type"] == 4
                    bench.cmd({"cmd": "rfid", "id": "TAG1"})
                    cs.wait_message("StopTransaction", timeout=10)
                    time.sleep(5.5)  # one more heap sample
                    ok = bench.status()["boots"] == 1 and not cs.violations
                except (AssertionError, Exception):
                    ok = False
                log = "\n".join(bench.log(2000))
        peaks = [int(m) for m in re.findall(r"live peak (\d+)", log)]
        return ok and "MemoryError" not in log, (max(peaks) if peaks else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def suite(heap_k):
    """The integration tests with heapsize=heap_k KiB: (passed, summary, failed tests, live peak)."""
    tmp = tempfile.mkdtemp(prefix="heapsuite%d-" % heap_k)
    try:
        env = dict(os.environ, JOLT_TEST_HEAP="%dK" % heap_k)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--basetemp", os.path.join(tmp, "t"), "tests/integration"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        failed = re.findall(r"^FAILED (\S+)", r.stdout, re.M)
        peak = {}  # runtime -> highest live peak its firmware logged
        for path in glob.glob(os.path.join(tmp, "t", "*", "*bench.log")):
            with open(path, errors="replace") as f:
                text = f.read()
            rt = "board32" if ", board32)" in text else "micropython"
            for m in re.findall(r"live peak (\d+)", text):
                peak[rt] = max(peak.get(rt, 0), int(m))
        return r.returncode == 0, summary, failed, peak
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def smallest(runtime, lo, hi):
    """Smallest heap (KiB, 8 KiB steps) in [lo, hi] the scenario passes in; None: above hi."""
    if not scenario(hi, runtime)[0]:
        return None
    if scenario(lo, runtime)[0]:
        return lo
    while hi - lo > 8:
        mid = (lo + hi) // 16 * 8
        if scenario(mid, runtime)[0]:
            hi = mid
        else:
            lo = mid
    return hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", default="both", choices=("both", "board32", "micropython"))
    ap.add_argument("--low", type=int, help="KiB (default: 48 board32, 128 micropython)")
    ap.add_argument("--high", type=int, help="KiB (default: 128 board32, 320 micropython)")
    ap.add_argument("--suite", type=int, metavar="KIB", help="run the integration tests in this heap")
    a = ap.parse_args()
    if a.suite:
        ok, summary, failed, peak = suite(a.suite)
        where = "board32 ROMFS" if board32_binary() else "64-bit micropython (no board-like interpreter)"
        print("heap_min integration_suite heapsize=%dK on %s: %s (%s)" % (
            a.suite, where, "passed" if ok else "FAILED", summary))
        for name in failed:
            print("heap_min integration_suite failed: %s" % name)
        for rt in sorted(peak):
            print("heap_min integration_suite live_peak %s: %d bytes%s" % (
                rt, peak[rt], "" if rt == "board32" or not board32_binary() else " (the wss:// tests, 320K)"))
        sys.exit(0 if ok else 1)
    runtimes = ["board32", "micropython"] if a.runtime == "both" else [a.runtime]
    if "board32" in runtimes and not board32_binary():
        print("heap_min board32: no board-like interpreter (MICROPYTHON_BOARD32 or "
              "../shared/micropython-board32/micropython): not measured")
        runtimes.remove("board32")
    failed = False
    for rt in runtimes:
        ok, peak = scenario(2048, rt)
        print("heap_min %-11s live_peak_with_2M_heap: %s bytes (scenario %s)" % (
            rt, peak, "passed" if ok else "FAILED"))
        if not ok:
            failed = True
            continue
        lo, hi = RANGES[rt]
        k = smallest(rt, a.low or lo, a.high or hi)
        print("heap_min %-11s smallest_heap: %s" % (rt, "%d KiB" % k if k else "above %d KiB" % (a.high or hi)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
