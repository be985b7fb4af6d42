#!/usr/bin/env python3
"""Benchmark: heap cost of the bench HAL (hal/sim) on the MicroPython unix port.

Builds the sim tree with mpy-cross (as the bench installs it: .mpy modules),
starts a tiny fake bench (a TCP server speaking the hardware link protocol of
docs/simulator.md: full input snapshot on connect, then changed inputs and
card presentations), and runs a MicroPython worker against it that measures,
with gc.mem_alloc() deltas:

- import:  heap held after `from hal.sim import board` (after gc.collect())
- board:   heap held after Board() (link connected, first snapshot read)
- running: heap held while the supervisor-style loop runs (reader started,
           buffers, the HAL's tasks), i.e. everything the HAL keeps alive
- quiet:   bytes allocated per cycle with automatic collection disabled, over
           --cycles cycles of `await board.wait_input(5)` plus the reads the
           supervisor does every cycle (pilot high/low/duty, rfid.poll(),
           lock.locked(), relay.closed(), button.pressed(),
           sensors.read("temperature_dc")) and unchanged outputs
           (relay.set, pilot.set_duty, signal.led, wdt.feed) while the bench
           sends nothing, so every wait times out
- busy:    the same loop while the bench sends an input change every
           --period ms and a card every tenth message; also per message
- net, rare: heap held once the lazily imported parts are in use:
           net.open() through the bench's proxy (a CONNECT/OK exchange and an
           echo), then net.configure(), ble.advertise(), meter_uart.any()

The baseline for the held figures is taken after importing the modules the
firmware imports anyway (asyncio with its stream module, json, os, socket,
sys, time), so they are the HAL's own cost, including the qstrs of its names
(which the firmware's code shares in part). The import is measured in a
process of its own; the other figures inside the running event loop. The
qstr pool grows in steps, so figures move by a few hundred bytes when the
code before them changes. The unix port is 64-bit: objects are about twice
their size on the ESP32.

    .venv/bin/python tools/bench/hal_heap.py [--cycles 500] [--period 10] [--heapsize 128K]
        [--root OTHER_CHECKOUT]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools.mpy_build import build  # noqa: E402

SNAPSHOT = {
    "hi": 12000, "lo": 12000, "relay": False, "lock": False, "btn": False,
    "temp": 250, "ne": 0, "lac": 0, "ldc": 0, "phase": 1, "supply": 1,
    "net": True, "rssi": -60, "sd": True, "rfid_ok": True,
}

# The modules the firmware imports anyway; asyncio.StreamReader loads
# asyncio's stream module, which any connection needs (hal/esp32 too).
BASELINE = "import asyncio, gc, json, os, socket, sys, time; asyncio.StreamReader"

# Import cost in a process of its own with a fixed script, so that the
# benchmark's own code does not shift the qstr pools the HAL's names go into.
IMPORTER = BASELINE + """
gc.collect()
a0 = gc.mem_alloc()
from hal.sim import board
gc.collect()
print("RESULT", gc.mem_alloc() - a0)
"""

WORKER = BASELINE + r"""

N = %(cycles)d


async def main():
    gc.collect()
    a0 = gc.mem_alloc()
    from hal.sim import board as hb
    b = hb.Board()
    gc.collect()
    a2 = gc.mem_alloc()
    pilot = b.pilot
    rfid = b.rfid
    lock = b.lock
    relay = b.relay
    button = b.button
    sensors = b.sensors
    signal = b.signal
    wdt = b.wdt
    relay.set(False)
    pilot.set_duty(None)
    signal.led("Available")
    wdt.start(60000)
    for _ in range(20):  # warm up: the reader task starts on the first wait
        await b.wait_input(5)
    gc.collect()
    a3 = gc.mem_alloc()
    res = {"board": a2 - a0, "running": a3 - a0}

    for phase in ("quiet", "busy"):
        signal.show("BENCH_" + phase.upper())
        for _ in range(10):
            await b.wait_input(5)
        cards = 0
        changes = 0
        last = pilot.high_mv()
        it = range(N)
        gc.collect()
        gc.disable()
        m0 = gc.mem_alloc()
        t0 = time.ticks_ms()
        for _ in it:
            await b.wait_input(5)
            hi = pilot.high_mv()
            lo = pilot.low_mv()
            d = pilot.duty()
            card = rfid.poll()
            lk = lock.locked()
            cl = relay.closed()
            bt = button.pressed()
            t = sensors.read("temperature_dc")
            relay.set(False)
            pilot.set_duty(None)
            signal.led("Available")
            wdt.feed()
            if card is not None:
                cards += 1
            if hi != last:
                changes += 1
                last = hi
        m1 = gc.mem_alloc()
        ms = time.ticks_diff(time.ticks_ms(), t0)
        gc.enable()
        res[phase] = {"alloc": m1 - m0, "ms": ms, "cards": cards, "changes": changes}
    signal.show("BENCH_QUIET")
    for _ in range(5):
        await b.wait_input(5)
    gc.collect()
    res["after"] = gc.mem_alloc() - a0
    # the lazily imported parts: net.open through the proxy (hal/sim/_net.py),
    # then WiFi/BLE outputs and meter_uart.any() (hal/sim/_rare.py)
    r, w = await b.net.open("csms.example", 443)
    w.write(b"ping")
    await w.drain()
    echo = await r.read(4)
    w.close()
    del r, w
    gc.collect()
    res["net"] = gc.mem_alloc() - a0
    b.net.configure("ssid", "secret")
    b.ble.advertise("JOLT")
    res["any"] = b.meter_uart.any()
    gc.collect()
    res["rare"] = gc.mem_alloc() - a0
    res["echo"] = echo.decode()
    print("RESULT " + json.dumps(res))


asyncio.run(main())
"""


class FakeBench:
    """The hardware side of the link: snapshot on connect, then (when the
    firmware raises the signal BENCH_BUSY) one input change every `period`
    seconds and a card every tenth message, until BENCH_QUIET."""

    def __init__(self, period):
        self.period = period
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.outputs = []
        self.busy = False
        self.sent = {"BENCH_BUSY": 0}
        self.stop = False
        self.proxy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.proxy.bind(("127.0.0.1", 0))
        self.proxy.listen(1)
        self.proxy_port = self.proxy.getsockname()[1]
        self.connects = []
        threading.Thread(target=self.run, daemon=True).start()
        threading.Thread(target=self.run_proxy, daemon=True).start()

    def run(self):
        self.srv.settimeout(60)
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        conn.sendall((json.dumps({"in": SNAPSHOT}) + "\n").encode())
        buf = b""
        hi = 6000
        n = 0
        due = time.monotonic()
        while not self.stop:
            now = time.monotonic()
            if self.busy and now >= due:
                hi = 9000 if hi == 6000 else 6000
                n += 1
                msg = {"rfid": "04a1b2%02x" % (n & 0xFF)} if n % 10 == 0 else {"in": {"hi": hi}}
                conn.sendall((json.dumps(msg) + "\n").encode())
                self.sent["BENCH_BUSY"] += 1
                due = max(due + self.period, now)
            conn.settimeout(max(0.001, due - now) if self.busy else 0.05)
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                self.outputs.append(msg)
                if msg.get("out") == "signal" and msg["v"].startswith("BENCH_"):
                    busy = msg["v"] == "BENCH_BUSY"
                    if busy and not self.busy:
                        due = time.monotonic()
                    self.busy = busy
        conn.close()

    def close(self):
        self.stop = True
        self.srv.close()
        self.proxy.close()

    def run_proxy(self):
        # The network proxy: "CONNECT host port" -> "OK", then an echo.
        self.proxy.settimeout(60)
        try:
            conn, _ = self.proxy.accept()
        except OSError:
            return
        with conn:
            f = conn.makefile("rb")
            self.connects.append(f.readline().decode().strip())
            conn.sendall(b"OK\n")
            while True:
                data = conn.recv(100)
                if not data:
                    break
                conn.sendall(data)


def run(cmd, cwd, env):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode or not lines:
        sys.exit("micropython worker failed:\n" + r.stdout + r.stderr)
    return lines[0][7:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--period", type=int, default=10, help="ms between input changes (busy phase)")
    ap.add_argument("--heapsize", default=None, help="micropython -X heapsize (default: the port's)")
    ap.add_argument("--root", default=ROOT, help="source tree to measure (e.g. an older checkout)")
    ap.add_argument("--micropython", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    args = ap.parse_args()
    if not os.path.exists(args.micropython):
        sys.exit("micropython not found at %s (run `make setup`)" % args.micropython)
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, root=os.path.abspath(args.root), board="sim")
        bench = FakeBench(args.period / 1000.0)
        env = dict(os.environ, JOLT_HW="127.0.0.1:%d" % bench.port, JOLT_UID="HEAPBENCH01",
                   JOLT_RESET_CAUSE="power", JOLT_NET="127.0.0.1:%d" % bench.proxy_port)
        env.pop("JOLT_METER", None)
        cmd = [args.micropython]
        if args.heapsize:
            cmd += ["-X", "heapsize=" + args.heapsize]
        try:
            imp = run(cmd + ["-c", IMPORTER], tmp, dict(os.environ))
            res = json.loads(run(cmd + ["-c", WORKER % {"cycles": args.cycles}], tmp, env))
            # The worker's last outputs may still be on their way to the fake
            # bench's thread when the worker exits (a loaded machine).
            deadline = time.monotonic() + 5
            while {"out": "ble", "v": "JOLT"} not in bench.outputs and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            bench.close()
    res["import"] = int(imp)
    n = args.cycles
    hello = [m for m in bench.outputs if m.get("out") == "hello"]
    assert hello and hello[0]["v"]["impl"] == "micropython", bench.outputs[:3]
    assert bench.connects == ["CONNECT csms.example 443"] and res["echo"] == "ping", (bench.connects, res)
    assert {"out": "ble", "v": "JOLT"} in bench.outputs and res["any"] == 0, bench.outputs[-3:]
    q, b = res["quiet"], res["busy"]
    msgs = max(1, bench.sent["BENCH_BUSY"])
    print("hal_heap import_heap: %d bytes (from hal.sim import board)" % res["import"])
    print("hal_heap board_heap: %d bytes (after Board(): link up, first snapshot)" % res["board"])
    print("hal_heap running_heap: %d bytes (reader task, buffers, everything the HAL holds)"
          % res["running"])
    print("hal_heap held_after_run: %d bytes" % res["after"])
    print("hal_heap held_with_net_open: %d bytes (net.open() used once, stream closed)" % res["net"])
    print("hal_heap held_with_rare_parts: %d bytes (and net.configure, ble.advertise, meter_uart.any)"
          % res["rare"])
    print("hal_heap alloc_per_cycle_quiet: %.1f bytes (%d cycles of wait_input(5) + reads, %.2f ms a cycle)"
          % (q["alloc"] / n, n, q["ms"] / n))
    print("hal_heap alloc_per_cycle_busy: %.1f bytes (%d cycles, bench sent %d messages every %d ms: "
          "%.0f bytes a message over the quiet cycle; %d pilot changes and %d cards seen)"
          % (b["alloc"] / n, n, msgs, args.period, (b["alloc"] - q["alloc"]) / msgs, b["changes"],
             b["cards"]))


if __name__ == "__main__":
    main()
