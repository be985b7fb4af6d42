# Which WiFi network the controller uses (the guide's network rules; docs/network.md).
# The controller always uses WiFi: the primary network (WiFiPrimarySsid: the
# SIM module's hotspot or a site network) and, with WiFiConnect=true, the
# fallback network (WiFiSsid/WiFiPass; "N/A" or empty = none). This module is
# the one owner of the choice: the HAL joins the network last configure()d
# (its WiFi driver rejoins it after a drop) and never switches by itself.
#   - the current network down for _FAIL_S: the other one (one network: join
#     it again, e.g. after WLAN.connect() raised);
#   - unstable (_UNSTABLE_DROPS drops within _WINDOW_S) while the other one has
#     fewer: the other one;
#   - WeakSignal (the supervisor's fault: threshold, hysteresis, filter; only
#     while the link is up and the connector Available) for _WEAK_RECONNECT_S:
#     reconnect; still weak after _WEAK_SWITCH_S: the other one;
#   - on the fallback for the retry interval while the primary's record is
#     no worse: back to the primary (both keep being watched). The interval
#     starts at _RETRY_S and doubles (up to _RETRY_MAX_S) each time such a
#     return fails (the primary left again before _WINDOW_S): a dead primary
#     costs a _FAIL_S outage at 15 min, 30 min, 1 h, then every 2 h, not every
#     15 min. The primary up for _WINDOW_S after a return resets it.
# Loaded and started only when a primary or a fallback network is
# configured (firmware/app.py).
import asyncio
import time

from lib import log
from micropython import const

_TICK_MS = const(1000)
_FAIL_S = const(30)
_UNSTABLE_DROPS = const(3)
_WINDOW_S = const(600)
_WEAK_RECONNECT_S = const(60)
_WEAK_SWITCH_S = const(180)
_RETRY_S = const(900)
_RETRY_MAX_S = const(7200)
_TAG = const("wifi")


def networks(cfg):
    """[(ssid, password), ...]: the primary first, then the fallback if enabled."""
    nets = []
    for ssid, pw, on in ((cfg.get("WiFiPrimarySsid"), cfg.get("WiFiPrimaryPass"), True),
                         (cfg.get("WiFiSsid"), cfg.get("WiFiPass"), cfg.get("WiFiConnect"))):
        if on and ssid and ssid != "N/A":  # the guide's default "N/A": no network
            nets.append((ssid, pw))
    return nets


class NetManager:
    def __init__(self, net, nets, weak=None):
        self.net = net
        self.nets = nets
        self.weak = weak  # callable: WeakSignal active
        self.cur = 0
        self.events = [[] for _ in nets]  # ticks_ms of drops/failures/weak periods, per network, in _WINDOW_S
        self.switches = 0
        self._up = False
        self._down_ms = 0
        self._weak_ms = 0
        self._since = 0
        self._last = None
        self._retry_s = _RETRY_S  # current retry interval (backoff)
        self._returned = False    # on the primary after a return, not yet proven

    def start(self, now):
        self._since = now
        self._last = now
        if self.nets:
            log.info(_TAG, "using %s (%d network%s)" % (self.nets[0][0], len(self.nets),
                                                        "s, failover on" if len(self.nets) > 1 else ""))
            self.net.configure(self.nets[0][0], self.nets[0][1])

    def _event(self, i, now):
        ev = self.events[i]
        ev.append(now)
        while ev and time.ticks_diff(now, ev[0]) > _WINDOW_S * 1000:
            ev.pop(0)
        if len(ev) > 2 * _UNSTABLE_DROPS:
            ev.pop(0)

    def score(self, i, now):
        """Events of network i within _WINDOW_S (lower = more stable)."""
        return sum(1 for t in self.events[i] if time.ticks_diff(now, t) <= _WINDOW_S * 1000)

    def _switch(self, i, now, why):
        if self._returned:  # the return to the primary failed: wait longer next time
            self._returned = False
            self._retry_s = min(2 * self._retry_s, _RETRY_MAX_S)
            why += ", next try in %d s" % self._retry_s
        log.warn(_TAG, "%s: switching %s -> %s" % (why, self.nets[self.cur][0], self.nets[i][0]))
        self.cur = i
        self.switches += 1
        self._since = now
        self._down_ms = 0
        self._weak_ms = 0
        self._up = False
        self.net.configure(self.nets[i][0], self.nets[i][1])

    def step(self, now):
        """One look at the link (every _TICK_MS)."""
        if not self.nets:
            return
        dt = time.ticks_diff(now, self._last) if self._last is not None else 0
        self._last = now
        other = 1 - self.cur if len(self.nets) > 1 else -1
        cur = self.nets[self.cur][0]
        up = self.net.up()
        if self._up and not up:
            log.warn(_TAG, "%s dropped" % cur)
            self._event(self.cur, now)
        self._up = up
        if not up:
            self._down_ms += dt  # (a reconnect for WeakSignal keeps its weak time)
            if self._down_ms >= _FAIL_S * 1000:
                self._event(self.cur, now)
                self._down_ms = 0
                if other >= 0:
                    self._switch(other, now, "%s unreachable for %d s" % (cur, _FAIL_S))
                else:
                    log.warn(_TAG, "%s unreachable for %d s: joining again" % (cur, _FAIL_S))
                    self.net.configure(self.nets[self.cur][0], self.nets[self.cur][1])
            return
        self._down_ms = 0
        if self.weak is not None and self.weak():
            before = self._weak_ms
            self._weak_ms += dt
            if not before:
                log.warn(_TAG, "WeakSignal on %s (%d dBm): reconnect in %d s" % (cur, self.net.rssi(), _WEAK_RECONNECT_S))
            if before < _WEAK_RECONNECT_S * 1000 <= self._weak_ms:
                log.warn(_TAG, "WeakSignal on %s (%d dBm): reconnecting" % (cur, self.net.rssi()))
                self._event(self.cur, now)
                self.net.configure(self.nets[self.cur][0], self.nets[self.cur][1])
            elif before < _WEAK_SWITCH_S * 1000 <= self._weak_ms:
                self._event(self.cur, now)
                if other >= 0:
                    self._switch(other, now, "WeakSignal on %s after reconnecting" % cur)
                else:
                    log.warn(_TAG, "WeakSignal on %s, no fallback network (WiFiConnect=false)" % cur)
            return
        self._weak_ms = 0
        if other < 0:
            return
        if self._returned and time.ticks_diff(now, self._since) >= _WINDOW_S * 1000:
            self._returned = False  # the primary proved good: retries start over
            self._retry_s = _RETRY_S
        mine, theirs = self.score(self.cur, now), self.score(other, now)
        if mine >= _UNSTABLE_DROPS and theirs < mine:
            self._switch(other, now, "%s unstable (%d events in %d s)" % (cur, mine, _WINDOW_S))
        elif self.cur != 0 and time.ticks_diff(now, self._since) >= self._retry_s * 1000 and \
                self.score(0, now) <= mine:
            self._switch(0, now, "primary no less stable")
            self._returned = True

    async def run(self):
        self.start(time.ticks_ms())
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            self.step(time.ticks_ms())
