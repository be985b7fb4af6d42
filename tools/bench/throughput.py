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
   MeterValues (~240 B frames, ~262 records): the run of 2026-12-05 replayed
   214 with no drop. --offline 320 would fill it (about 5 more minutes).

    .venv/bin/python tools/bench/throughput.py [--burst 30] [--offline 240]
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


def offline(cs, bench, cp_id, seconds, drain_timeout=120):
    bench.cmd({"cmd": "network", "up": False})
    time.sleep(seconds)
    t_up = time.monotonic()
    wall_up = time.time()
    bench.cmd({"cmd": "network", "up": True})
    replayed = []  # receive times
    sizes = []  # their frames' bytes
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
            if _epoch(mv[0].get("timestamp", "2100-01-01T00:00:00Z")) < wall_up - 0.5:
                replayed.append(m["t"])
                sizes.append(len(m["raw"]))
                quiet_since = None
        if replayed:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 5:  # no old MeterValues for 5 s: drained
                break
        time.sleep(0.1)
    with open(bench.log_path, errors="replace") as f:  # the whole firmware output (the bench keeps a tail)
        dropped = f.read().count("journal full: oldest meter values dropped")
    res = {"offline": seconds, "replayed": len(replayed), "dropped_logs": dropped,
           "frame": sum(sizes) / len(sizes) if sizes else None}
    if replayed:
        res["drain"] = replayed[-1] - t_up
        span = replayed[-1] - replayed[0]
        res["rate"] = (len(replayed) - 1) / span if span > 0 else None
    return res


def measure(burst_s=30, offline_s=90, runtime=None, heapsize=None):
    from tools.csms import CsmsThread
    from tools.simkit.bench import BOARD32_HEAP, board32_binary
    from tools.simkit.client import BenchProcess
    from tools.bench.fault_latency import _wait

    if runtime is None:
        runtime = "board32" if board32_binary() else "micropython"
    if heapsize is None:
        heapsize = BOARD32_HEAP if runtime == "board32" else "256K"
    tmp = tempfile.mkdtemp(prefix="throughput-")
    res = {"runtime": runtime, "heapsize": heapsize}
    try:
        with CsmsThread(tags={"TAG1": "Accepted"}, heartbeat_interval=HB) as cs:
            bench = BenchProcess(os.path.join(tmp, "state"), cs.url, "THR1", heapsize=heapsize, runtime=runtime,
                                 config={"MeterValueSampleInterval": "1"})
            with bench:
                cs.wait_message("StatusNotification", timeout=30,
                                where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
                bench.cmd({"cmd": "plug"})
                bench.cmd({"cmd": "rfid", "id": "TAG1"})
                cs.wait_message("StartTransaction", timeout=15)
                bench.cmd({"cmd": "ev", "state": "C"})
                _wait(bench, "relay", True, 0, 15)
                bench.cmd({"cmd": "ev_current", "amps": 16})
                res["burst"] = burst(cs, bench, "THR1", burst_s)
                res["offline"] = offline(cs, bench, "THR1", offline_s)
                res["boots"] = bench.status()["boots"]
            res["violations"] = len(cs.violations)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def ok(res):
    b, o = res["burst"], res["offline"]
    return (res["violations"] == 0 and res["boots"] == 1 and b["answered"] > 0 and b["failed"] == 0
            and b["max_gap"] <= 1.5 * HB and b["faults"] > 0 and b["fault_p99"] <= FAULT_BUDGET_MS
            and o["replayed"] > 0)


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
        "%-44s %12d %12s" % ("'journal full' drops logged", o["dropped_logs"], "-"),
        "%-44s %12s %12s" % ("replayed MeterValues frame, bytes (mean)", _f(o.get("frame")), "-"),
        "%-44s %12s %12s" % ("journal capacity for such records (estimate)", capacity(o.get("frame")), "-"),
        "%-44s %12s %12s" % ("drain: link up -> last replayed, s", _f(o.get("drain")), "-"),
        "%-44s %12s %12s" % ("MeterValues replayed per second", _f(o.get("rate")), "-"),
        "reboots during the run: %d; violations at the central system: %d" % (res["boots"] - 1, res["violations"])]
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
    ap.add_argument("--runtime", default=None, choices=("board32", "micropython"))
    a = ap.parse_args()
    res = measure(a.burst, a.offline, a.runtime)
    print("\n".join(table(res)))
    sys.exit(0 if ok(res) else 1)


if __name__ == "__main__":
    main()
