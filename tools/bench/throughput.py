#!/usr/bin/env python3
"""Benchmark: throughput of the firmware on the bench against the strict
central system, one charging session throughout (MeterValueSampleInterval 1 s,
HeartbeatInterval 2 s).

1. CALL burst: the central system sends GetConfiguration and TriggerMessage
   (StatusNotification) in turn, one outstanding CALL at a time (OCPP-J), as
   fast as the charger answers, for --burst seconds. Meanwhile faults are
   injected (EV to state D and back, tools/bench/fault_latency.py) and their
   fault-to-relay-open latency taken from the bench's event stamps (budget:
   10 ms p99, docs/faults.md), and every Heartbeat gap is checked against
   the interval (missed: a gap over 1.5 x interval).
2. Offline replay: the network goes down for --offline seconds while the
   session goes on (one MeterValues per second queued in the journal, oldest
   MeterValues dropped when the journal is full: docs/never-lose.md), then
   comes back. Replayed MeterValues: those received after the link came back
   whose sampled timestamp is older than that moment. Reported: how many
   (with a long enough period the journal fills, drops the oldest, logs
   'journal full', and the count is the largest backlog it holds), the time
   from the link coming back to the last one, the rate, and the capacity
   docs/journal.md's formula gives for records of the replayed frames' size.
   240 s (the default) does NOT fill it with this firmware's single-phase
   MeterValues (~240 B frames, ~262 records). Also reported: samples taken
   while offline that never came (lost, or skipped by a late sample loop)
   and 'no memory: meter values dropped' lines (both must be 0).
3. --fill (run_all's `journal` section): the largest backlog. MeterValues
   (~240 B) every second, offline until the firmware logs 'journal full'
   (about 4.5 minutes: the bench has no faster clock and 1 s is the shortest
   interval), 5 s more, then back: records held and replayed, their bytes,
   that they are the newest with none missing, and the drain time
   (docs/journal.md says what full means).

    .venv/bin/python tools/bench/throughput.py [--burst 30] [--offline 240]
    .venv/bin/python tools/bench/throughput.py --fill
"""
import argparse
import calendar
import os
import shutil
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.bench.stats import pct  # noqa: E402

HB = 2  # HeartbeatInterval, s
FAULT_BUDGET_MS = 10.0  # p99, docs/faults.md
BURST = (
    ("GetConfiguration", {"key": ["HeartbeatInterval", "MeterValueSampleInterval"]}),
    ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}),
)


def _epoch(ts):
    """ISO 8601 UTC (as the firmware writes it) -> seconds since the epoch."""
    ts = ts.rstrip("Z").split(".")[0]
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%S"))


def _heartbeat_gaps(cs, cp_id, t0, t1):
    ts = [m["t"] for m in cs.messages if m["cp"] == cp_id and m["dir"] == "in" and m["type"] == 2
          and m["action"] == "Heartbeat" and t0 <= m["t"] <= t1]
    edges = [t0] + ts + [t1]
    return len(ts), max(b - a for a, b in zip(edges, edges[1:]))


def burst(cs, bench, cp_id, seconds, fault_every=0.5):
    from tools.bench.fault_latency import inject
    from tools.csms import CallErrorReceived

    stop = threading.Event()
    count = [0, 0]  # answered, CALLERROR/timeouts

    def fire():
        i = 0
        while not stop.is_set():
            action, payload = BURST[i % len(BURST)]
            i += 1
            try:
                cs.call(cp_id, action, payload, timeout=10)
                count[0] += 1
            except CallErrorReceived:
                count[1] += 1
            except Exception:  # noqa: BLE001 - counted, the burst goes on
                count[1] += 1

    th = threading.Thread(target=fire, daemon=True)
    t0 = time.monotonic()
    th.start()
    lat = []
    while time.monotonic() - t0 < seconds:
        lat += inject(bench, 1, ("vent",))
        time.sleep(fault_every)
    stop.set()
    th.join(15)
    t1 = time.monotonic()
    n_hb, gap = _heartbeat_gaps(cs, cp_id, t0, t1)
    ms = [x * 1000 for x in lat]
    return {"seconds": t1 - t0, "answered": count[0], "failed": count[1], "rate": count[0] / (t1 - t0),
            "heartbeats": n_hb, "max_gap": gap, "faults": len(ms),
            "fault_p50": pct(ms, 50) if ms else None, "fault_p99": pct(ms, 99) if ms else None,
            "fault_max": max(ms) if ms else None}


def _log_count(bench, text):
    with open(bench.log_path, errors="replace") as f:  # the whole firmware output (the bench keeps a tail)
        return f.read().count(text)


def _replay(cs, cp_id, t_up, wall_up, drain_timeout):
    """MeterValues received after the link came back (t_up, monotonic; wall_up,
    wall clock) whose sample is older than that: [(received t, frame bytes,
    sample epoch)], once none came for 5 s."""
    out = []
    quiet_since = None
    deadline = t_up + drain_timeout
    seen = 0
    while time.monotonic() < deadline:
        msgs = cs.messages
        new = [m for m in msgs[seen:] if m["cp"] == cp_id and m["dir"] == "in" and m["type"] == 2
               and m["action"] == "MeterValues" and m["t"] >= t_up]
        seen = len(msgs)
        for m in new:
            mv = (m["payload"] or {}).get("meterValue") or [{}]
            ts = _epoch(mv[0].get("timestamp", "2100-01-01T00:00:00Z"))
            if ts < wall_up - 0.5:
                out.append((m["t"], len(m["raw"]), ts))
                quiet_since = None
        if out:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 5:  # no old MeterValues for 5 s: drained
                break
        time.sleep(0.1)
    return out


def _summary(res, replayed, t_up, interval=1):
    res["replayed"] = len(replayed)
    res["frame"] = sum(r[1] for r in replayed) / len(replayed) if replayed else None
    res["bytes"] = sum(r[1] for r in replayed)
    if replayed:
        res["drain"] = replayed[-1][0] - t_up
        span = replayed[-1][0] - replayed[0][0]
        res["rate"] = (len(replayed) - 1) / span if span > 0 else None
        ts = sorted(r[2] for r in replayed)
        # samples missing between the first and the last replayed one (lost or skipped)
        res["missing"] = int(round((ts[-1] - ts[0]) / interval)) + 1 - len(set(ts))
        res["first_ts"], res["last_ts"] = ts[0], ts[-1]
    return res


def _back_online(cs, bench, cp_id, drain_timeout):
    """The link up again: (monotonic and wall time it came up, the MeterValues replayed)."""
    t_up = time.monotonic()
    wall_up = time.time()
    bench.cmd({"cmd": "network", "up": True})
    return t_up, wall_up, _replay(cs, cp_id, t_up, wall_up, drain_timeout)


def offline(cs, bench, cp_id, seconds, drain_timeout=120):
    bench.cmd({"cmd": "network", "up": False})
    wall_down = time.time()
    time.sleep(seconds)
    t_up, wall_up, replayed = _back_online(cs, bench, cp_id, drain_timeout)
    res = {"offline": seconds, "dropped_logs": _log_count(bench, "journal full: oldest meter values dropped"),
           "no_memory_logs": _log_count(bench, "no memory: meter values dropped")}
    _summary(res, replayed, t_up)
    # Samples taken while offline (one a second) that never came: lost or
    # skipped late. Sample timestamps are whole seconds: one in each second
    # after the one the link went down in, up to the one before it came back.
    lo, hi = int(wall_down) + 1, int(wall_up - 0.5) - 1
    got = {r[2] for r in replayed if lo <= r[2] <= hi}
    res["offline_missing"] = max(0, hi - lo + 1 - len(got))
    res["missing_at"] = [t - int(wall_down) for t in sorted(set(range(lo, hi + 1)) - got)][:10]
    return res


def fill(cs, bench, cp_id, timeout=900, more=5, drain_timeout=300):
    """Offline until the journal is full (the firmware logs 'journal full:
    oldest meter values dropped'), `more` seconds longer, then back online:
    the backlog it held and its drain."""
    full = "journal full: oldest meter values dropped"
    bench.cmd({"cmd": "network", "up": False})
    t_down = time.monotonic()
    while _log_count(bench, full) == 0:
        if time.monotonic() - t_down > timeout:
            raise RuntimeError("journal not full after %d s offline" % timeout)
        time.sleep(1)
    t_full = time.monotonic()
    time.sleep(more)
    t_up, wall_up, replayed = _back_online(cs, bench, cp_id, drain_timeout)
    res = {"offline": t_up - t_down, "to_full": t_full - t_down, "dropped_logs": _log_count(bench, full),
           "no_memory_logs": _log_count(bench, "no memory: meter values dropped"), "wall_up": wall_up}
    return _summary(res, replayed, t_up)


def _charging(cs, bench):
    from tools.bench.fault_latency import _wait
    cs.wait_message("StatusNotification", timeout=30,
                    where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
    bench.cmd({"cmd": "plug"})
    bench.cmd({"cmd": "rfid", "id": "TAG1"})
    cs.wait_message("StartTransaction", timeout=15)
    bench.cmd({"cmd": "ev", "state": "C"})
    _wait(bench, "relay", True, 0, 15)
    bench.cmd({"cmd": "ev_current", "amps": 16})


def _runtime(runtime, heapsize):
    from tools.simkit.bench import BOARD32_HEAP, MP64_HEAP, board32_binary
    if runtime is None:
        runtime = "board32" if board32_binary() else "micropython"
    if heapsize is None:
        heapsize = BOARD32_HEAP if runtime == "board32" else MP64_HEAP
    return runtime, heapsize


def _charging_run(prefix, cp_id, heartbeat, config, runtime, heapsize, work, extra=None):
    """The firmware on the bench against the strict central system, charging
    with TAG1; work(cs, bench, res) measures. res also has the runtime, heap,
    boots (1: no reboot) and the central system's violations."""
    from tools.csms import CsmsThread
    from tools.simkit.client import BenchProcess

    runtime, heapsize = _runtime(runtime, heapsize)
    tmp = tempfile.mkdtemp(prefix=prefix)
    res = dict(extra or {}, runtime=runtime, heapsize=heapsize)
    try:
        with CsmsThread(tags={"TAG1": "Accepted"}, heartbeat_interval=heartbeat) as cs:
            bench = BenchProcess(os.path.join(tmp, "state"), cs.url, cp_id, heapsize=heapsize, runtime=runtime,
                                 config=config)
            with bench:
                _charging(cs, bench)
                work(cs, bench, res)
                res["boots"] = bench.status()["boots"]
            res["violations"] = len(cs.violations)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def measure_fill(runtime=None, heapsize=None, phase="Single.Phase"):
    """The largest backlog: a charging session (MeterValues every 1 s, the
    default sampled data: ~240 B records fill the 64 KiB journal in about
    4.5 minutes) offline until the journal is full, then its drain."""
    def work(cs, bench, res):
        time.sleep(2)
        res["fill"] = fill(cs, bench, "FILL1")

    return _charging_run("journal-fill-", "FILL1", 60, {"MeterValueSampleInterval": "1", "Phase": phase},
                         runtime, heapsize, work, {"phase": phase})


def fill_ok(res):
    f = res["fill"]
    return (res["violations"] == 0 and res["boots"] == 1 and f["replayed"] > 0 and f["missing"] == 0
            and f["no_memory_logs"] == 0 and f["last_ts"] >= f["wall_up"] - 3)


def fill_table(res):
    f = res["fill"]
    return ["largest offline backlog: firmware on %s, heap %s, %s, MeterValues every 1 s, offline until the "
            "64 KiB journal is full (then the oldest MeterValues are dropped)" % (res["runtime"], res["heapsize"],
                                                                                 res["phase"]),
            "%-44s %12s" % ("figure", "measured"),
            "%-44s %12.1f" % ("offline: link down -> 'journal full', s", f["to_full"]),
            "%-44s %12.1f" % ("offline period, s", f["offline"]),
            "%-44s %12d" % ("'journal full' drops logged", f["dropped_logs"]),
            "%-44s %12d" % ("MeterValues held and replayed (backlog)", f["replayed"]),
            "%-44s %12d" % ("backlog, bytes on the wire", f["bytes"]),
            "%-44s %12s" % ("replayed MeterValues frame, bytes (mean)", _f(f.get("frame"))),
            "%-44s %12s" % ("samples missing inside the replayed run", f.get("missing", "-")),
            "%-44s %12s" % ("newest replayed sample before link up, s", _f(f["wall_up"] - f["last_ts"])
                            if f.get("last_ts") else "-"),
            "%-44s %12s" % ("drain: link up -> last replayed, s", _f(f.get("drain"))),
            "%-44s %12s" % ("MeterValues replayed per second", _f(f.get("rate"))),
            "%-44s %12s" % ("single-phase records held (estimate, ~240 B)", capacity(240)),
            "reboots during the run: %d; violations at the central system: %d; 'no memory' drops: %d" % (
                res["boots"] - 1, res["violations"], f["no_memory_logs"])]


def measure(burst_s=30, offline_s=90, runtime=None, heapsize=None):
    def work(cs, bench, res):
        res["burst"] = burst(cs, bench, "THR1", burst_s)
        res["offline"] = offline(cs, bench, "THR1", offline_s)

    return _charging_run("throughput-", "THR1", HB, {"MeterValueSampleInterval": "1"}, runtime, heapsize, work)


def ok(res):
    b, o = res["burst"], res["offline"]
    return (res["violations"] == 0 and res["boots"] == 1 and b["answered"] > 0 and b["failed"] == 0
            and b["max_gap"] <= 1.5 * HB and b["faults"] > 0 and b["fault_p99"] <= FAULT_BUDGET_MS
            and o["replayed"] > 0 and o["offline_missing"] == 0 and o["no_memory_logs"] == 0)


def table(res):
    b, o = res["burst"], res["offline"]
    lines = ["throughput, firmware on %s, heap %s, charging (16 A, MeterValues every 1 s)" % (
        res["runtime"], res["heapsize"]),
        "%-44s %12s %12s" % ("figure", "measured", "limit"),
        "%-44s %12.1f %12s" % ("CALLs answered per second (burst %.0f s)" % b["seconds"], b["rate"], "-"),
        "%-44s %12d %12s" % ("CALLs failed (CALLERROR/timeout)", b["failed"], "0"),
        "%-44s %12.2f %12.1f" % ("longest Heartbeat gap, s (%d heartbeats)" % b["heartbeats"], b["max_gap"], 1.5 * HB),
        "%-44s %12s %12.1f" % ("fault-to-relay-open p99, ms (%d faults)" % b["faults"],
                               _f(b["fault_p99"]), FAULT_BUDGET_MS),
        "%-44s %12s %12s" % ("fault-to-relay-open p50 / max, ms", "%s / %s" % (_f(b["fault_p50"]), _f(b["fault_max"])),
                             "-"),
        "%-44s %12d %12s" % ("offline period, s", o["offline"], "-"),
        "%-44s %12d %12s" % ("MeterValues replayed (backlog held)", o["replayed"], "-"),
        "%-44s %12d %12s" % ("samples taken offline, never replayed", o["offline_missing"], "0"),
        "%-44s %12d %12s" % ("'journal full' drops logged", o["dropped_logs"], "-"),
        "%-44s %12d %12s" % ("'no memory: meter values dropped' logged", o["no_memory_logs"], "0"),
        "%-44s %12s %12s" % ("replayed MeterValues frame, bytes (mean)", _f(o.get("frame")), "-"),
        "%-44s %12s %12s" % ("journal capacity for such records (estimate)", capacity(o.get("frame")), "-"),
        "%-44s %12s %12s" % ("drain: link up -> last replayed, s", _f(o.get("drain")), "-"),
        "%-44s %12s %12s" % ("MeterValues replayed per second", _f(o.get("rate")), "-"),
        "reboots during the run: %d; violations at the central system: %d" % (res["boots"] - 1, res["violations"])]
    if o.get("missing_at"):
        lines.append("offline samples never replayed, s after link down: %s" % o["missing_at"])
    return lines


def capacity(frame, max_bytes=65536):
    """Records of a frame's size the default journal holds (docs/journal.md: (max_bytes - 17) // (13 + n));
    the record holds the payload plus a local id, about the size of the frame."""
    return "-" if not frame else "%d" % ((max_bytes - 17) // (13 + int(frame)))


def _f(x):
    return "-" if x is None else "%.1f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--burst", type=float, default=30)
    ap.add_argument("--offline", type=float, default=240)
    ap.add_argument("--fill", action="store_true", help="only the largest backlog: offline until the journal is full")
    ap.add_argument("--phase", default="Single.Phase", choices=("Single.Phase", "Three.Phase"))
    ap.add_argument("--runtime", default=None, choices=("board32", "micropython"))
    a = ap.parse_args()
    if a.fill:
        res = measure_fill(a.runtime, phase=a.phase)
        print("\n".join(fill_table(res)))
        sys.exit(0 if fill_ok(res) else 1)
    res = measure(a.burst, a.offline, a.runtime)
    print("\n".join(table(res)))
    sys.exit(0 if ok(res) else 1)


if __name__ == "__main__":
    main()
