#!/usr/bin/env python3
"""`make sim`: development CSMS + bench + firmware on real MicroPython, one timeline.

    tools/run_sim.py --id ID --variant V --state DIR [--csms URL] [--duration S] [--fresh]

Starts tools/csms.py on a free port (heartbeat 10 s, tag 04E91C2A accepted)
unless --csms points at a real central system, then the bench
(tools/sim.py). Every line of both goes to stdout, prefixed "csms  |" or
"bench |", with the seconds since start; bench events (relay, LED, boots...)
are polled from the control channel and shown as "bench | * kind value".

Console (stdin): lines go to the CSMS console (`help`, `list`,
`<ACTION> <json>`, see docs/csms.md), except `bench <cmd> [k=v ...]` or
`bench {json}`, which go to the bench control channel, e.g.
`bench plug`, `bench rfid id=04E91C2A`, `bench unplug`.

Reusing --state is a reboot of the same board; --fresh wipes it first. The
board keeps the CSMS URL it was provisioned with on first boot, so the
development CSMS is started on the same port again (remembered in
DIR/run_sim.json).
Ctrl-C (or --duration) stops everything: each child runs in its own process
group, which gets SIGTERM, then SIGKILL.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools.simkit.client import free_port  # noqa: E402

DEV_TAGS = "04E91C2A,DEADBEEF:Blocked"
DEV_HEARTBEAT = 10


def venv_python():
    exe = os.path.join(ROOT, ".venv", "bin", "python")
    return exe if os.path.exists(exe) else sys.executable


class Timeline:
    """One merged, line-buffered stdout for every source."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def line(self, source, text):
        with self.lock:
            self.out.write("%8.3f %-5s | %s\n" % (time.monotonic() - self.t0, source, text.rstrip("\n")))
            self.out.flush()


def pump(stream, source, timeline, on_line=None):
    """Copy a child's output lines to the timeline (in a daemon thread)."""
    def run():
        for line in iter(stream.readline, ""):
            if on_line is not None:
                on_line(line)
            timeline.line(source, line)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def spawn(cmd, stdin):
    return subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True, cwd=ROOT)


def stop_process(proc, grace=5.0):
    """SIGTERM the child's process group, then SIGKILL what is left of it."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        break
    try:  # grandchildren that outlived their parent in the same group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def parse_bench_command(text):
    """`plug` / `rfid id=04E91C2A` / `{"cmd": "plug"}` -> control request dict."""
    text = text.strip()
    if text.startswith("{"):
        return json.loads(text)
    parts = text.split()
    if not parts:
        raise ValueError("empty bench command")
    req = {"cmd": parts[0]}
    for kv in parts[1:]:
        k, _, v = kv.partition("=")
        try:
            req[k] = json.loads(v)
        except ValueError:
            req[k] = v
    return req


class Control:
    """Newline-delimited JSON client of the bench control channel."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.file = None
        self.lock = threading.Lock()

    def request(self, req, timeout=5.0):
        with self.lock:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
                self.file = self.sock.makefile("rb")
            try:
                self.sock.sendall((json.dumps(req) + "\n").encode())
                line = self.file.readline()
                if not line:
                    raise ConnectionError("control channel closed")
                return json.loads(line)
            except (OSError, ValueError):
                self.close()
                raise

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.file = None


def poll_events(control, timeline, stop, interval=0.5):
    def run():
        nxt = 0
        while not stop.is_set():
            try:
                r = control.request({"cmd": "events", "since": nxt})
                if r.get("ok"):
                    for e in r.get("events", []):
                        timeline.line("bench", "* %s %s" % (e.get("kind"), json.dumps(e.get("value"))))
                    nxt = r.get("next", nxt)
            except (OSError, ValueError):
                pass  # bench not up yet, or restarting
            stop.wait(interval)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def console(csms_proc, control, timeline):
    def run():
        for line in iter(sys.stdin.readline, ""):
            if line.strip().startswith("bench"):
                try:
                    req = parse_bench_command(line.strip()[5:])
                    timeline.line("bench", "> %s" % json.dumps(control.request(req)))
                except (OSError, ValueError) as e:
                    timeline.line("bench", "> error: %s" % e)
            elif csms_proc is not None and csms_proc.poll() is None:
                try:
                    csms_proc.stdin.write(line)
                    csms_proc.stdin.flush()
                except (OSError, ValueError):
                    pass
            else:
                timeline.line("csms", "(external central system: no console)")
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


STATE_FILE = "run_sim.json"  # in the state dir: the CSMS URL this board was provisioned with


def remembered_url(state):
    """The central system URL a reused board was provisioned with (the bench
    writes it into the board's flash on first boot only), or None."""
    for path, key in ((os.path.join(state, STATE_FILE), "csms_url"),
                      (os.path.join(state, "flash", "provision.json"), None)):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        url = data.get(key) if key else data.get("config", {}).get("OcppServerAddress")
        if url:
            return url
    return None


def remember_url(state, url):
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(state, STATE_FILE), "w") as f:
        json.dump({"csms_url": url}, f)


def dev_csms_port(url):
    """The port of a URL our development CSMS served (ws://127.0.0.1:PORT/ocpp), else None."""
    try:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "ws" and parsed.hostname == "127.0.0.1" and parsed.path.rstrip("/") == "/ocpp":
            return parsed.port
    except ValueError:
        pass
    return None


def start_csms(py, timeline, port=0, timeout=15.0):
    proc = spawn([py, os.path.join(ROOT, "tools", "csms.py"), "--port", str(port), "--heartbeat", str(DEV_HEARTBEAT),
                  "--tags", DEV_TAGS, "--no-time"], subprocess.PIPE)
    found = threading.Event()
    url = {}

    def on_line(line):
        if not found.is_set() and line.startswith("listening on "):
            url["url"] = line.split()[2].split("/<")[0]
            found.set()

    pump(proc.stdout, "csms", timeline, on_line)
    deadline = time.monotonic() + timeout
    while not found.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError("the development CSMS did not start (port %s in use?)" % port)
    return proc, url["url"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--id", default="JOLT-SIM-01")
    ap.add_argument("--variant", default="business")
    ap.add_argument("--state", default="sim-state")
    ap.add_argument("--csms", default=None, help="use this central system instead of the development CSMS")
    ap.add_argument("--duration", type=float, default=None, help="stop everything after SECONDS")
    ap.add_argument("--fresh", action="store_true", help="wipe the state dir first (a new board)")
    a = ap.parse_args(argv)

    timeline = Timeline()
    py = venv_python()
    if a.fresh and os.path.isdir(a.state):
        shutil.rmtree(a.state)
        timeline.line("sim", "wiped %s (a new board)" % a.state)
    elif os.path.isdir(a.state):
        timeline.line("sim", "reusing %s: this is a reboot of the same board" % a.state)

    csms_proc = bench_proc = control = None
    stop = threading.Event()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (background jobs)
    rc = 0
    try:
        old = remembered_url(a.state) if os.path.isdir(a.state) else None
        if a.csms:
            url = a.csms
            timeline.line("sim", "central system: %s" % url)
        else:
            # A reused board keeps the URL it was provisioned with: serve the same port again.
            port = dev_csms_port(old) if old else 0
            try:
                csms_proc, url = start_csms(py, timeline, port or 0)
            except RuntimeError:
                if port:
                    raise RuntimeError("port %d (the board in %s was provisioned for %s) is busy: free it or "
                                       "use --fresh" % (port, a.state, old))
                raise
        if old and old != url:
            timeline.line("sim", "warning: the board in %s was provisioned for %s, not %s; --fresh re-provisions"
                          % (a.state, old, url))
        remember_url(a.state, url)
        control_port = free_port()
        bench_proc = spawn([py, os.path.join(ROOT, "tools", "sim.py"), "--csms", url, "--id", a.id,
                            "--control", str(control_port), "--state", a.state, "--variant", a.variant],
                           subprocess.DEVNULL)
        pump(bench_proc.stdout, "bench", timeline)
        control = Control(control_port)
        poll_events(control, timeline, stop)
        console(csms_proc, control, timeline)
        timeline.line("sim", "charger %s (%s) -> %s; Ctrl-C stops; `bench plug`, `bench rfid id=04E91C2A`, "
                             "`RemoteStartTransaction {\"idTag\":\"04E91C2A\"}`, `help`" % (a.id, a.variant, url))
        deadline = None if a.duration is None else time.monotonic() + a.duration
        while deadline is None or time.monotonic() < deadline:
            if bench_proc.poll() is not None:
                timeline.line("sim", "bench exited with code %s" % bench_proc.returncode)
                rc = 1
                break
            if csms_proc is not None and csms_proc.poll() is not None:
                timeline.line("sim", "csms exited with code %s" % csms_proc.returncode)
                rc = 1
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        timeline.line("sim", str(e))
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the clean-up
        stop.set()
        if control is not None:
            time.sleep(0.1)
            control.close()  # hang up before the bench goes down
        stop_process(bench_proc)
        stop_process(csms_proc)
        time.sleep(0.2)  # let the pump threads print the last lines
        timeline.line("sim", "stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
