#!/usr/bin/env python3
"""`make bench`: one report of every benchmark in tools/bench, one small table
per figure with its anchor where there is one, printed and appended as a
dated text file to tools/bench/results/ (so a regression shows in review).

    .venv/bin/python tools/bench/run_all.py [--quick] [--only NAME,...] [--no-save]

--quick: tiny parameters (seconds per figure; what the smoke test runs).
Sections, in order: roundtrip, boot, size, throughput, heap, fault, control,
other (the remaining single-purpose benchmarks' own output).
Timings depend on the machine's load: the report records the load average
before and after each section.
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
RESULTS = os.path.join(HERE, "results")

MICROOCPP_PEAK = 21.9  # KB: MicroOcpp's published peak heap on an ESP32 (C++)


def _script(name, *args, timeout=900):
    """Run tools/bench/NAME with args; (return code, stdout lines)."""
    r = subprocess.run([sys.executable, os.path.join(HERE, name)] + [str(a) for a in args], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return r.returncode, r.stdout.rstrip().splitlines()


# ------------------------------------------------------------------ sections
def sec_roundtrip(quick):
    from tools.bench import roundtrip
    res = roundtrip.measure(n=20 if quick else 1000)
    bad = res["firmware_errors"] or res["reference_errors"] or res["violations"]
    return not bad, roundtrip.table(res)


def sec_boot(quick):
    from tools.bench import boot
    res = boot.measure(cycles=2 if quick else 10)
    return all(r["violations"] == 0 for r in res), boot.table(res)


def sec_size(quick):
    from tools.bench import size
    return True, size.table(size.measure())


SECTIONS = [("roundtrip", sec_roundtrip), ("boot", sec_boot), ("size", sec_size)]


# ------------------------------------------------------------------ report
def loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "?"


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except OSError:
        return "?"


def run(names, quick, out=print):
    """Run the named sections; returns (all ok, report lines)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = ["JOLT benchmark report %s (%s run)" % (now.strftime("%Y-%m-%d %H:%M:%S UTC"), "quick" if quick else "full"),
             "commit %s; host %s, %s, %d cores, Python %s" % (
                 git_rev(), platform.node(), platform.machine(), os.cpu_count() or 0, platform.python_version()),
             "load average (1/5/15 min) at start: %s. Timing figures are wall-clock on a shared machine:" % loadavg(),
             "other jobs running at the same time make them noisy; compare runs at similar load."]
    for line in lines:
        out(line)
    ok = True
    for name, fn in SECTIONS:
        if names and name not in names:
            continue
        t0 = time.monotonic()
        head = "== %s (load %s)" % (name, loadavg())
        out("")
        out(head)
        try:
            good, body = fn(quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            good, body = False, ["FAILED:"] + traceback.format_exc().rstrip().splitlines()
        body = list(body) + ["(%s: %.0f s, load after %s%s)" % (name, time.monotonic() - t0, loadavg(),
                                                                "" if good else ", CHECK FAILED")]
        for line in body:
            out(line)
        lines += ["", head] + body
        ok = ok and good
    tail = "overall: %s; load average at end %s" % ("ok" if ok else "SOME CHECKS FAILED", loadavg())
    out("")
    out(tail)
    lines += ["", tail]
    return ok, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated section names: " + ",".join(n for n, _ in SECTIONS))
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n]
    unknown = set(names) - {n for n, _ in SECTIONS}
    if unknown:
        ap.error("unknown section(s): %s" % ", ".join(sorted(unknown)))
    ok, lines = run(names, a.quick, out=lambda s: print(s, flush=True))
    if not a.no_save:
        os.makedirs(RESULTS, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
        path = os.path.join(RESULTS, "%s%s.txt" % (stamp, "-quick" if a.quick else ""))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("written %s" % os.path.relpath(path, ROOT))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
