#!/usr/bin/env python3
"""Benchmark: central-system round trip, CALL sent -> CALLRESULT received.

Measured at the central system (tools/csms.py, strict, schema validation on)
from its own message records: the time it recorded sending the CALL to the
time it recorded the charger's answer with the same id. Two charge points in
the same run against the same central system:

  firmware   the JOLT firmware on the bench (tools/sim.py; the board-like
             interpreter from ROMFS when present, as tests/integration/rig.py)
  reference  tools/bench/ref_cp.py, a charge point on the PyPI `ocpp` package
             (CPython, its own process)

Calls, in turn (a fixed sequence, no randomness): GetConfiguration (two
keys), TriggerMessage (Heartbeat), RemoteStartTransaction (idTag BENCH1),
n of each.

    .venv/bin/python tools/bench/roundtrip.py [--n 1000] [--runtime board32|micropython]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.bench.stats import pct  # noqa: E402

CALLS = (
    ("GetConfiguration", {"key": ["HeartbeatInterval", "MeterValueSampleInterval"]}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("RemoteStartTransaction", {"idTag": "BENCH1", "connectorId": 1}),
)


def _drive(cs, cp_id, n):
    """n of each call to cp_id; {action: [seconds]}, {action: {status: count}}, errors."""
    from tools.csms import CallErrorReceived

    ids = {}
    statuses = {a: {} for a, _ in CALLS}
    errors = []
    t_start = time.monotonic()
    for i in range(n * len(CALLS)):
        action, payload = CALLS[i % len(CALLS)]
        try:
            r = cs.call(cp_id, action, payload, timeout=10)
            st = r.get("status", "ok") if isinstance(r, dict) else "?"
        except CallErrorReceived as e:
            st = "CALLERROR " + e.args[1] if len(e.args) > 1 else "CALLERROR"
        except Exception as e:  # noqa: BLE001 - a timeout counts, the run goes on
            errors.append("%s: %r" % (action, e))
            continue
        statuses[action][st] = statuses[action].get(st, 0) + 1
        ids[action] = ids.get(action, 0) + 1
    # pair the records: CALL out -> answer in, same id
    sent = {}
    rtt = {a: [] for a, _ in CALLS}
    for m in cs.messages:
        if m["cp"] != cp_id or m["t"] < t_start:
            continue
        if m["dir"] == "out" and m["type"] == 2:
            sent[m["id"]] = (m["action"], m["t"])
        elif m["dir"] == "in" and m["type"] in (3, 4) and m["id"] in sent:
            action, t0 = sent.pop(m["id"])
            if action in rtt:
                rtt[action].append(m["t"] - t0)
    return rtt, statuses, errors


def summarize(rtt):
    out = {}
    for action, xs in rtt.items():
        ms = [x * 1000 for x in xs]
        out[action] = {"n": len(ms), "p50": pct(ms, 50) if ms else None, "p99": pct(ms, 99) if ms else None}
    return out


def measure(n=1000, runtime=None, heapsize=None, log_dir=None):
    """Both charge points, n calls of each kind; a dict with firmware/reference summaries."""
    from tools.csms import CsmsThread
    from tools.simkit.client import BenchProcess
    from tools.simkit.bench import BOARD32_HEAP, MP64_HEAP, board32_binary

    if runtime is None:
        runtime = "board32" if board32_binary() else "micropython"
    if heapsize is None:
        heapsize = BOARD32_HEAP if runtime == "board32" else MP64_HEAP
    tmp = tempfile.mkdtemp(prefix="roundtrip-", dir=log_dir)
    res = {"runtime": runtime, "heapsize": heapsize, "n": n}
    with CsmsThread(tags={"BENCH1": "Accepted"}, heartbeat_interval=300) as cs:
        bench = BenchProcess(os.path.join(tmp, "state"), cs.url, "RTT1", heapsize=heapsize, runtime=runtime)
        with bench:
            cs.wait_message("StatusNotification", timeout=30,
                            where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
            time.sleep(0.5)
            rtt, st, err = _drive(cs, "RTT1", n)
            res["firmware"] = summarize(rtt)
            res["firmware_status"] = st
            res["firmware_errors"] = err
            res["firmware_boots"] = bench.status()["boots"]
        ref_log = open(os.path.join(tmp, "ref_cp.log"), "wb")
        ref = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "bench", "ref_cp.py"), cs.url, "REF1"],
                               cwd=ROOT, stdout=ref_log, stderr=subprocess.STDOUT)
        try:
            cs.wait_connected("REF1", timeout=30)
            cs.wait_message("StatusNotification", timeout=30,
                            where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
            time.sleep(0.3)
            rtt, st, err = _drive(cs, "REF1", n)
            res["reference"] = summarize(rtt)
            res["reference_status"] = st
            res["reference_errors"] = err
        finally:
            ref.terminate()
            try:
                ref.wait(5)
            except subprocess.TimeoutExpired:
                ref.kill()
                ref.wait(5)
            ref_log.close()
        res["violations"] = [v for v in cs.violations]
    return res


def table(res):
    """The report's table lines."""
    lines = ["round trip at the central system, ms (CALL sent -> CALLRESULT received), n=%d each; "
             "firmware on %s, heap %s; reference: ocpp %s on CPython"
             % (res["n"], res["runtime"], res["heapsize"], _ocpp_version()),
             "%-24s %9s %9s %9s %9s %8s %8s" % ("call", "fw p50", "fw p99", "ref p50", "ref p99",
                                               "p50 x", "p99 x")]
    for action, _ in CALLS:
        f, r = res["firmware"][action], res["reference"][action]
        lines.append("%-24s %9s %9s %9s %9s %8s %8s" % (
            action, _f(f["p50"]), _f(f["p99"]), _f(r["p50"]), _f(r["p99"]),
            _ratio(f["p50"], r["p50"]), _ratio(f["p99"], r["p99"])))
    lines.append("answers: firmware %s; reference %s" % (_st(res["firmware_status"]), _st(res["reference_status"])))
    if res["firmware_errors"] or res["reference_errors"]:
        lines.append("errors: firmware %d %s; reference %d %s" % (
            len(res["firmware_errors"]), res["firmware_errors"][:1],
            len(res["reference_errors"]), res["reference_errors"][:1]))
    lines.append("schema/protocol violations at the central system: %d%s" % (
        len(res["violations"]), "" if not res["violations"] else " first %s" % (res["violations"][0],)))
    return lines


def _f(x):
    return "-" if x is None else "%.2f" % x


def _ratio(a, b):
    return "-" if not a or not b else "%.1f" % (a / b)


def _st(d):
    return "; ".join("%s %s" % (a, ", ".join("%s=%d" % kv for kv in sorted(c.items()))) for a, c in d.items())


def _ocpp_version():
    try:
        from importlib.metadata import version
        return version("ocpp")
    except Exception:  # noqa: BLE001
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runtime", default=None, choices=("board32", "micropython"))
    ap.add_argument("--heapsize", default=None)
    a = ap.parse_args()
    res = measure(a.n, a.runtime, a.heapsize)
    print("\n".join(table(res)))
    sys.exit(1 if res["firmware_errors"] or res["reference_errors"] or res["violations"] else 0)


if __name__ == "__main__":
    main()
