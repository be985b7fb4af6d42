"""A charger on the bench wired to the strict central system, for integration tests.

The firmware runs on the real MicroPython interpreter (tools/sim.py); the
central system is tools/csms.py on the `ocpp` package with schema validation
on. Tests speak only through the two public boundaries: OCPP messages on the
wire and the bench's hardware outputs (relay, lock, pilot duty, signals).
"""
import os
import time

from tools.simkit.bench import BOARD32_HEAP, MP64_HEAP, board32_binary
from tools.simkit.client import BenchProcess

# Every integration test runs the firmware inside a bounded heap, so memory
# growth shows up as failures (docs/memory.md). Where the board-like 32-bit
# interpreter is present the firmware runs on it from a ROMFS image, as on the
# board, in an 80K heap (the board's budget: docs/memory.md); else on the
# venv's 64-bit interpreter at 320K and the budget is not checked (conftest
# says so in one line). Tests against a wss:// central system need ssl, which
# only the 64-bit one has.
# JOLT_TEST_HEAP overrides the heap; "0" means the interpreter default.
BOARD32 = board32_binary()
RUNTIME = "board32" if BOARD32 else "micropython"
BUDGET = BOARD32_HEAP
TLS_HEAP = MP64_HEAP
HEAP = os.environ.get("JOLT_TEST_HEAP", BUDGET if BOARD32 else TLS_HEAP)
if HEAP == "0":
    HEAP = None


class Rig:
    def __init__(self, tmp_path, csms, cp_id="CP1", variant="business", config=None, heapsize=HEAP,
                 state=None, ota_key=None):
        self.csms = csms
        self.cp_id = cp_id
        self.state = state or (tmp_path / ("state-" + cp_id))
        runtime = RUNTIME
        if csms.url.startswith("wss://"):
            runtime = "micropython"
            heapsize = TLS_HEAP if heapsize == HEAP else heapsize
        self.bench = BenchProcess(self.state, csms.url, cp_id, variant=variant, config=config or {},
                                  heapsize=heapsize, runtime=runtime, ota_key=ota_key)

    # --- lifetime -----------------------------------------------------------

    def start(self, wait_boot=True, timeout=30):
        t0 = time.monotonic()
        self.bench.start()
        if wait_boot:
            self.wait_status(1, "Available", timeout=timeout, since_t=t0)
        return self

    def stop(self):
        self.bench.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- bench --------------------------------------------------------------

    def cmd(self, **kw):
        return self.bench.cmd(kw)

    def status(self):
        return self.bench.status()

    def plug(self):
        self.cmd(cmd="plug")

    def unplug(self):
        self.cmd(cmd="unplug")

    def ev(self, state):
        self.cmd(cmd="ev", state=state)

    def card(self, tag):
        self.cmd(cmd="rfid", id=tag)

    def wait_bench(self, pred, timeout=10, what="bench condition"):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status()
            if pred(st):
                return st
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; last status %s\nfirmware log:\n%s"
                             % (what, st, self.firmware_log()))

    def wait_relay(self, closed, timeout=10):
        return self.wait_bench(lambda s: s["relay"] is closed, timeout, "relay %s" % closed)

    def firmware_log(self, n=60):
        try:
            return "\n".join(self.bench.log(n))
        except Exception as e:  # the log is diagnostics only
            return "(no log: %r)" % (e,)

    # --- wire -----------------------------------------------------------------

    def now(self):
        return time.monotonic()

    def wait_status(self, connector, status, timeout=10, since_t=None, where=None):
        def ok(p):
            return (p.get("connectorId") == connector and p.get("status") == status
                    and (where is None or where(p)))
        return self.csms.wait_message("StatusNotification", timeout=timeout, since_t=since_t, where=ok)["payload"]

    def wait_call(self, action, timeout=10, since_t=None, where=None):
        return self.csms.wait_message(action, timeout=timeout, since_t=since_t,
                                      where=where or (lambda p: True))["payload"]

    def calls(self, action, since_t=None):
        return [m["payload"] for m in self.csms.messages
                if m["dir"] == "in" and m["type"] == 2 and m["action"] == action
                and (since_t is None or m["t"] >= since_t)]

    def call(self, action, payload, timeout=10):
        return self.csms.call(self.cp_id, action, payload, timeout)
