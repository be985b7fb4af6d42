"""The watchdog's per-cycle calls on the real MicroPython unix port: the
control loop calls checkin() and tick() every 20 ms, so they must not
allocate; and a late task stops the feeding there too."""
from tests.integration.test_config_micropython import ROOT, run_mp

SCRIPT = r"""
import sys
sys.path.insert(0, %(root)r)
import gc, json, time
from firmware import watchdog as W


class Wdt:
    def __init__(self):
        self.feeds = 0

    def start(self, ms):
        self.ms = ms

    def feed(self):
        self.feeds += 1


W.FEED_MS = 0
wdt = Wdt()
W.start(wdt, "")
for i in range(100):  # warm up
    W.checkin(W.CONTROL)
    W.tick()


def measure(n):
    # in a function: locals, so no module-global dict grows while measuring
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for i in range(n):
        W.checkin(W.CONTROL)
        W.tick()
    used = gc.mem_alloc() - a
    gc.enable()
    return used


used = measure(5000)
fed = wdt.feeds
W.expect(W.OCPP, 604800 * 1000)  # HeartbeatInterval's maximum: 7 days, more than half the ticks period
W.expect(W.TXQUEUE, 100 * 86400 * 1000)  # TransactionMessageRetryInterval * attempt
feeds = wdt.feeds
W.tick()
long_wait_fed = wdt.feeds - feeds
fed = wdt.feeds
W.DEADLINE_MS[W.METER] = 1
W.checkin(W.METER)
time.sleep_ms(5)
W.tick()
W.tick()
print("RESULT " + json.dumps({"alloc": used, "fed": fed, "fed_after_late": wdt.feeds - fed,
                              "long_wait_fed": long_wait_fed}))
"""


def test_checkin_and_tick_allocate_nothing_on_micropython(tmp_path):
    res, out = run_mp(tmp_path, SCRIPT % {"root": ROOT})
    assert res["alloc"] == 0, res
    assert res["fed"] >= 5000
    assert res["fed_after_late"] == 0
    # a 7-day wait is not "late" (this port's ticks period is longer than the ESP32's 2**30 ms:
    # the wrap itself is checked in tests/unit/test_watchdog.py, whose shim has that period)
    assert res["long_wait_fed"] == 1
    assert "task meter late: watchdog not fed" in out
