#!/usr/bin/env python3
"""`make bench`: one report of every benchmark in tools/bench, one small table
per figure with its anchor where there is one, printed and appended as a
dated text file to tools/bench/results/ (so a regression shows in review).

    .venv/bin/python tools/bench/run_all.py [--quick] [--only NAME,...] [--no-save]

--quick: tiny parameters (seconds per figure; what the smoke test runs).
Sections, in order: roundtrip, boot, size, throughput, journal, heap, fault,
control, other (the remaining single-purpose benchmarks' own output).
Timings depend on the machine's load: the report records the load average
before and after each section. The heap section is the long one in a full
run: tools/bench/heap_day.py --search lives a compressed charging day from
the suite's heap - 16 KiB up in 8 KiB steps until one completes (about 7
minutes for the one that completes, less for each that fails before);
--quick runs its --smoke (under a minute).
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
    return all("error" not in r and r["violations"] == 0 for r in res), boot.table(res)


def sec_size(quick):
    from tools.bench import size
    return True, size.table(size.measure())


def sec_throughput(quick):
    from tools.bench import throughput
    res = throughput.measure(burst_s=4 if quick else 30, offline_s=4 if quick else 240)
    return throughput.ok(res), throughput.table(res)


def sec_journal(quick):
    """The largest offline backlog the journal holds and its drain (throughput.py --fill)."""
    if quick:
        return True, ["(not in the quick run: about five minutes)"]
    from tools.bench import throughput
    res = throughput.measure_fill()
    return throughput.fill_ok(res), throughput.fill_table(res)


def sec_heap(quick):
    """The memory issue's figures on the board-like interpreter, MicroOcpp's peak beside them: a full
    charging day (heap_day.py --search: each heap tried, its outcome and live peak, the smallest it
    completes in; the day's peak is that run's)
    and one session (heap_min.py)."""
    import re
    from tools.simkit.bench import board32_binary
    rt = "board32" if board32_binary() else "micropython"
    day_args = ["--runtime", rt] + (["--smoke"] if quick else ["--search"])
    rc_day, day = _script("heap_day.py", *day_args, timeout=3600)
    args = ["--runtime", rt] + (["--low", "88", "--high", "96"] if quick else [])
    rc, out = _script("heap_min.py", *args)
    runs = []  # [heap KiB, completed, live peak]
    for x in day:
        m = re.match(r"heap_day .* heapsize=(\d+)K: (completed|FAILED)", x)
        if m:
            runs.append([int(m.group(1)), m.group(2) == "completed", None])
        m = re.match(r"heap_day live_peak: (\d+) bytes", x)
        if m and runs:
            runs[-1][2] = int(m.group(1))
    done = [r[2] for r in runs if r[1] and r[2] is not None]
    day_peak = max(done) if done else None
    day_small = _num(day, r"heap_day smallest_heap: (\d+) KiB")
    peak = _num(out, r"live_peak_with_2M_heap: (\d+) bytes")
    small = _num(out, r"smallest_heap: (\d+) KiB")

    def kb(x):
        return "-" if x is None else "%.1f KB (%d B)" % (x / 1024.0, x)

    def ratio(x):
        return "-" if x is None else "%.2f" % (x / 1024.0 / MICROOCPP_PEAK)

    row = "%-50s %24s %22s"
    day_what, short = ("smoke day (quick: not the figure)", "smoke") if quick else ("charging day", "day")
    lines = ["heap on %s. Day: tools/bench/heap_day.py, a charging day compressed onto the bench (boot, "
             "1000-entry local list, 20 sessions at 16 A with MeterValues every 10 s, a reservation, "
             "GetDiagnostics, an offline period sampled every 1 s so its queued messages approach an hour's "
             "at 10 s as far as the journal holds, UpdateFirmware and the reboot; its docstring says how)%s. "
             "Session: tools/bench/heap_min.py (boot, heartbeat, one charging session with MeterValues every "
             "1 s, a stop, a CALLERROR)%s" % (
                 rt, "; quick: --smoke, 2 sessions, 60-entry list, 20 s offline, no update, no search"
                 if quick else "", "; quick: only 88 and 96 KiB tried" if quick else ""),
             row % ("figure", "JOLT", "MicroOcpp (ESP32, C++)"),
             row % ("live heap peak, %s" % day_what, kb(day_peak), "%.1f KB (published)" % MICROOCPP_PEAK),
             row % ("JOLT %s peak / MicroOcpp peak" % short, ratio(day_peak), "")]
    lines += [row % ("  %s at %d KiB" % (short, k), ("completed, peak %s" if ok else "FAILED, peak %s") % (
        "-" if p is None else "%.1f KB" % (p / 1024.0)), "") for k, ok, p in runs]
    lines += [row % ("smallest --heapsize the day completes in (8 KiB)", "-" if day_small is None else
                     "%d KiB" % day_small, "-"),
              row % ("live heap peak, one session (2M heap)", kb(peak), ""),
              row % ("JOLT session peak / MicroOcpp peak", ratio(peak), ""),
              row % ("smallest --heapsize one session passes (8 KiB)", "-" if small is None else
                     "%d KiB" % small, "-"),
              "heap_day output:"] + ["  " + x for x in day] + ["heap_min output:"] + ["  " + x for x in out]
    return rc == 0 and rc_day == 0 and peak is not None and day_peak is not None, lines


def sec_fault(quick):
    n = 5 if quick else 200
    rc, out = _script("fault_latency.py", "--n", n)
    p99 = _num(out, r"p99 ([\d.]+) ms", float)
    lines = ["fault-to-relay-open under load (tools/bench/fault_latency.py, 64-bit micropython, vent and supply "
             "faults; budget 10 ms p99, docs/faults.md)"] + ["  " + x for x in out]
    lines.append("%-40s %14s %10s" % ("p99 vs budget", "-" if p99 is None else "%.1f ms" % p99, "10.0 ms"))
    return rc == 0 and p99 is not None and (quick or p99 <= 10.0), lines


def sec_control(quick):
    import re
    rc, out = _script("control_alloc.py", "--cycles", 200 if quick else 2000)
    rows = [re.match(r"control_alloc (\w+)\s+(\w+) ([\d.]+) B/cycle over (\d+) cycles", x) for x in out]
    rows = [m.groups() for m in rows if m]
    lines = ["control cycle allocation (tools/bench/control_alloc.py, 64-bit micropython, hal/mock; a cycle "
             "runs every 20 ms; automatic GC off while measuring)",
             "%-10s %-12s %10s %8s" % ("state", "status", "B/cycle", "cycles")]
    lines += ["%-10s %-12s %10s %8s" % r for r in rows]
    return rc == 0 and len(rows) == 3, lines


OTHER = ("heap_imports.py", "hal_heap.py", "config_heap.py", "locallist.py", "auth_cache.py", "modbus_poll.py")


def sec_other(quick):
    if quick:
        return True, ["(not in the quick run)"]
    lines, ok = [], True
    for name in OTHER:
        rc, out = _script(name)
        ok = ok and rc == 0
        lines += ["-- %s%s" % (name, "" if rc == 0 else " (exit %d)" % rc)] + ["  " + x for x in out]
    return ok, lines


def _num(lines, pattern, conv=int):
    import re
    for line in lines:
        m = re.search(pattern, line)
        if m:
            return conv(m.group(1))
    return None


SECTIONS = [("roundtrip", sec_roundtrip), ("boot", sec_boot), ("size", sec_size), ("throughput", sec_throughput),
            ("journal", sec_journal), ("heap", sec_heap), ("fault", sec_fault), ("control", sec_control), ("other", sec_other)]


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
