"""Client for the bench's control channel, for tests and scripts.

    with BenchProcess(tmp_path / "state", "ws://127.0.0.1:9/ocpp", "CP1") as bench:
        bench.cmd({"cmd": "plug"})
        bench.wait_event("duty", lambda v: v is not None, timeout=5)

`Control(port)` is the bare JSON-lines connection; `BenchProcess` starts
tools/sim.py on a free port in its own process group and tears the whole
group down on exit.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIM = os.path.join(ROOT, "tools", "sim.py")


class BenchError(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Control:
    """One connection to the control channel: a request line, a response line."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rwb")

    def cmd(self, req, check=True):
        if isinstance(req, str):
            req = {"cmd": req}
        self.file.write((json.dumps(req) + "\n").encode())
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise BenchError("bench closed the control channel")
        resp = json.loads(line)
        if check and not resp.get("ok"):
            raise BenchError("%s -> %s" % (req, resp.get("error")))
        return resp

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()


class BenchProcess:
    def __init__(self, state_dir, csms_url, charger_id, variant="business", config=None, heapsize=None,
                 runtime=None, log_path=None, start_timeout=20, ota_key=None):
        self.state_dir = str(state_dir)
        self.csms_url = csms_url
        self.charger_id = charger_id
        self.variant = variant
        self.config = dict(config or {})
        self.heapsize = heapsize
        self.runtime = runtime
        self.ota_key = ota_key
        self.log_path = log_path or os.path.join(os.path.dirname(os.path.abspath(self.state_dir)),
                                                 os.path.basename(self.state_dir.rstrip("/")) + "-bench.log")
        self.start_timeout = start_timeout
        self.port = None
        self.proc = None
        self.ctl = None
        self._seq = 0

    # ---- lifetime
    def start(self):
        self.port = free_port()
        args = [sys.executable, SIM, "--csms", self.csms_url, "--id", self.charger_id,
                "--control", str(self.port), "--state", self.state_dir, "--variant", self.variant]
        for k, v in self.config.items():
            args += ["--config", "%s=%s" % (k, v)]
        if self.heapsize:
            args += ["--heapsize", str(self.heapsize)]
        if self.runtime:
            args += ["--runtime", self.runtime]
        if self.ota_key:
            args += ["--ota-key", str(self.ota_key)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("bench exited with %s; see %s" % (self.proc.returncode, self.log_path))
            try:
                self.ctl = Control(self.port)
                self.ctl.cmd("status")
                return self
            except (OSError, BenchError):
                if self.ctl is not None:
                    self.ctl.close()
                    self.ctl = None
                if time.monotonic() > deadline:
                    self.stop()
                    raise BenchError("bench did not answer on port %d; see %s" % (self.port, self.log_path))
                time.sleep(0.05)

    def stop(self):
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:  # anything left in the group (a wedged firmware): gone
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- requests
    def cmd(self, req, check=True):
        return self.ctl.cmd(req, check)

    def status(self):
        return self.cmd({"cmd": "status"})

    def events(self, since=0):
        r = self.cmd({"cmd": "events", "since": since})
        return r["events"], r["next"]

    def log(self, lines=200):
        return self.cmd({"cmd": "log", "lines": lines})["lines"]

    def wait_event(self, kind, pred=None, timeout=10, since=None):
        """First event of `kind` (with pred(value) true) at or after `since`
        (default: after the last event this method returned)."""
        since = self._seq if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            evs, nxt = self.events(since)
            for e in evs:
                if e["kind"] == kind and (pred is None or pred(e["value"])):
                    self._seq = e["seq"] + 1
                    return e
            since = nxt
            if time.monotonic() > deadline:
                raise BenchError("no %r event within %ss; firmware log tail:\n%s"
                                 % (kind, timeout, "\n".join(self.log(30))))
            time.sleep(0.02)

    def mark(self):
        """Sequence number of the next event (pass as since= to wait for new ones)."""
        return self.cmd({"cmd": "events", "since": 0, "limit": 0})["head"]
