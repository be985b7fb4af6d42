#!/usr/bin/env python3
"""Benchmark: fault-to-relay-open latency on the bench, firmware busy.

The firmware (real MicroPython, hal/sim) charges on the bench against the
development central system (tools/csms.py); then faults are injected again
and again and each latency is taken from the bench's own event timestamps:
the `input` event (the bench applied the command and pushed it to the
firmware) to the `relay` event (the firmware's relay output arrived and the
contacts opened). Both are stamped by the bench with time.monotonic().

Busy firmware while measuring: meter polled every second (the firmware's
normal rate), Heartbeat every second, and a SendLocalList of the largest size
the firmware accepts (one WebSocket message of just under 16 KB,
chargepoint.MAX_MESSAGE) sent again and again from another thread.

Injections (alternating with --kinds vent,supply):
  vent    EV to state D (VentError), back to C after the relay opened
  supply  grid voltage 0 (PowerFailure), back to 230 V after the relay opened

    .venv/bin/python tools/bench/fault_latency.py [--n 200] [--kinds vent,supply] [--heapsize 128K]

Prints n, p50, p99 and max in ms.
"""
import argparse
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MAX_MESSAGE = 16384  # firmware/chargepoint.py


def _wait(bench, kind, value, since, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        evs, nxt = bench.events(since)
        for e in evs:
            if e["kind"] == kind and e["value"] is value:
                return e, evs
        if time.monotonic() > deadline:
            raise RuntimeError("no %s=%s event within %ss:\n%s" % (kind, value, timeout, "\n".join(bench.log(30))))
        time.sleep(0.01)


def _one(bench, cmd, undo):
    mark = bench.mark()
    bench.cmd(cmd)
    opened, evs = _wait(bench, "relay", False, mark)
    t_in = [e["t"] for e in evs if e["kind"] == "input" and e["seq"] < opened["seq"]][-1]
    mark = bench.mark()
    bench.cmd(undo)
    _wait(bench, "relay", True, mark)
    return opened["t"] - t_in


def inject(bench, n, kinds=("vent",)):
    """n injections (the relay must be closed, charging); latencies in seconds."""
    acts = {
        "vent": ({"cmd": "ev", "state": "D"}, {"cmd": "ev", "state": "C"}),
        "supply": ({"cmd": "grid", "voltage": 0}, {"cmd": "grid", "voltage": 230}),
    }
    out = []
    for i in range(n):
        cmd, undo = acts[kinds[i % len(kinds)]]
        out.append(_one(bench, cmd, undo))
    return out


def inject_vent(bench, n):
    return inject(bench, n, ("vent",))


def local_list(limit=MAX_MESSAGE - 200):
    """The largest SendLocalList (full-length idTags) within one firmware message."""
    entries = []
    size = 120
    i = 0
    while True:
        e = {"idTag": "JOLTBENCH%011d" % i,
             "idTagInfo": {"status": "Accepted", "expiryDate": "2031-01-01T00:00:00Z",
                           "parentIdTag": "FLEET%015d" % (i % 7)}}
        size += len(str(e)) + 2
        if size > limit:
            return {"listVersion": 2, "updateType": "Full", "localAuthorizationList": entries}
        entries.append(e)
        i += 1


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--kinds", default="vent,supply")
    ap.add_argument("--heapsize", default=None)
    args = ap.parse_args()

    from tools.csms import CsmsThread
    from tools.simkit.client import BenchProcess

    tmp = tempfile.mkdtemp(prefix="fault-latency-")
    with CsmsThread(tags={"TAG1": "Accepted"}, heartbeat_interval=1) as cs:
        bench = BenchProcess(os.path.join(tmp, "state"), cs.url, "LAT1", heapsize=args.heapsize)
        bench.start()
        try:
            cs.wait_message("BootNotification", timeout=30)
            cs.wait_connected("LAT1", timeout=30)
            bench.cmd({"cmd": "plug"})
            time.sleep(0.5)
            bench.cmd({"cmd": "rfid", "id": "TAG1"})
            cs.wait_message("StartTransaction", timeout=15)
            bench.cmd({"cmd": "ev", "state": "C"})
            _wait(bench, "relay", True, 0, 15)
            stop = threading.Event()
            lists = [0]
            errors = []
            payload = local_list()

            def flood():
                while not stop.is_set():
                    try:
                        cs.call("LAT1", "SendLocalList", payload, timeout=30)
                        lists[0] += 1
                    except Exception as e:  # noqa: BLE001 - load only; NotSupported is a CALLERROR
                        if type(e).__name__ == "CallErrorReceived":
                            lists[0] += 1
                        else:
                            errors.append(repr(e)[:80])
                            time.sleep(0.1)

            th = threading.Thread(target=flood, daemon=True)
            th.start()
            time.sleep(1)
            lat = inject(bench, args.n, tuple(args.kinds.split(",")))
            stop.set()
            th.join(35)
        finally:
            bench.stop()
    ms = [x * 1000 for x in lat]
    print("fault-to-relay-open latency, %d injections (%s), busy: meter 1 s, heartbeat 1 s, "
          "%d SendLocalList of %d entries" % (len(ms), args.kinds, lists[0], len(payload["localAuthorizationList"])))
    if errors:
        print("SendLocalList errors: %d, first %s" % (len(errors), errors[0]))
    print("p50 %.1f ms  p99 %.1f ms  max %.1f ms" % (pct(ms, 50), pct(ms, 99), max(ms)))


if __name__ == "__main__":
    main()
