"""WiFi failover and WeakSignal recovery (firmware/netmgr.py, docs/network.md)
over a fake WiFi link whose quality the test controls."""
import asyncio
import json

from firmware import app as app_mod
from firmware import netmgr as N
from firmware.app import App
from firmware.config import Config
from hal.mock.board import Board
from tests.unit.test_watchdog import boot_main

S = 1000  # ms


class Link:
    """The HAL net interface over networks the test switches on and off."""

    def __init__(self, **nets):
        self.nets = {k: dict(v) for k, v in nets.items()}  # ssid -> {"pw", "up", "rssi"}
        self.current = None
        self.configured = []

    def configure(self, ssid, password):
        self.configured.append(ssid)
        self.current = ssid if self.nets.get(ssid, {}).get("pw") == password else None

    def up(self):
        return self.current is not None and self.nets[self.current]["up"]

    def rssi(self):
        return self.nets[self.current]["rssi"] if self.up() else -127

    def set(self, ssid, **kw):
        self.nets[ssid].update(kw)


def weak_of(link):
    return lambda: link.up() and link.rssi() < -85


def cfg_with(tmp_path, **kv):
    cfg = Config(root=str(tmp_path) + "/", device_id="X")
    for k, v in kv.items():
        assert cfg.set(k, v) in ("Accepted", "RebootRequired")
    return cfg


def run_for(nm, t, seconds):
    for _ in range(seconds):
        t += S
        nm.step(t)
    return t


def two(tmp_path, link):
    cfg = cfg_with(tmp_path, WiFiPrimarySsid="sim-hotspot", WiFiPrimaryPass="p1",
                   WiFiConnect="true", WiFiSsid="site", WiFiPass="p2")
    nm = N.NetManager(link, N.networks(cfg), weak_of(link))
    nm.start(0)
    return nm


def test_networks_from_the_configuration(tmp_path):
    assert N.networks(cfg_with(tmp_path)) == []  # nothing commissioned
    c = cfg_with(tmp_path, WiFiPrimarySsid="hot", WiFiPrimaryPass="p1")
    assert N.networks(c) == [("hot", "p1")]  # WiFiConnect=false: primary only
    c.set("WiFiSsid", "site")
    c.set("WiFiPass", "p2")
    assert N.networks(c) == [("hot", "p1")]
    c.set("WiFiConnect", "true")
    assert N.networks(c) == [("hot", "p1"), ("site", "p2")]
    # the guide's defaults ("N/A") or empty: no fallback network, never joined literally
    for ssid in ("N/A", ""):
        c.set("WiFiSsid", ssid)
        assert N.networks(c) == [("hot", "p1")]
    (tmp_path / "d").mkdir()
    d = cfg_with(tmp_path / "d", WiFiConnect="true")
    assert d.get("WiFiSsid") == "N/A" and N.networks(d) == []


def test_one_network_down_is_joined_again(tmp_path, capsys):
    """Without a fallback the network is joined again every 30 s down (the
    HAL never does it: WLAN.connect() may have raised)."""
    link = Link(**{"hot": {"pw": "p1", "up": True, "rssi": -60}})
    nm = N.NetManager(link, N.networks(cfg_with(tmp_path, WiFiPrimarySsid="hot", WiFiPrimaryPass="p1")),
                      weak_of(link))
    nm.start(0)
    t = run_for(nm, 0, 5)
    link.set("hot", up=False)
    t = run_for(nm, t, N._FAIL_S - 2)
    assert link.configured == ["hot"]
    t = run_for(nm, t, 3)
    assert link.configured == ["hot", "hot"]
    assert "hot unreachable for 30 s: joining again" in capsys.readouterr().out
    link.set("hot", up=True)
    run_for(nm, t, 5 * N._FAIL_S)
    assert link.configured == ["hot", "hot"]


def test_primary_failure_switches_to_the_fallback(tmp_path, capsys):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": True, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -70}})
    nm = two(tmp_path, link)
    assert link.configured == ["sim-hotspot"]
    t = run_for(nm, 0, 10)
    link.set("sim-hotspot", up=False)  # the SIM hotspot dies
    t = run_for(nm, t, N._FAIL_S - 2)
    assert link.current == "sim-hotspot"  # not yet
    t = run_for(nm, t, 3)
    assert link.current == "site" and link.up()
    assert "sim-hotspot unreachable for 30 s: switching sim-hotspot -> site" in capsys.readouterr().out


def test_failover_disabled_stays_on_the_primary(tmp_path):
    link = Link(**{"hot": {"pw": "p1", "up": False, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -60}})
    cfg = cfg_with(tmp_path, WiFiPrimarySsid="hot", WiFiPrimaryPass="p1", WiFiSsid="site", WiFiPass="p2")
    nm = N.NetManager(link, N.networks(cfg), weak_of(link))
    nm.start(0)
    run_for(nm, 0, 5 * N._FAIL_S)
    assert set(link.configured) == {"hot"}


def test_unstable_primary_loses_to_a_stable_fallback(tmp_path, capsys):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": True, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -70}})
    nm = two(tmp_path, link)
    t = 0
    for _ in range(N._UNSTABLE_DROPS):  # drops of a few seconds: never FAIL_S long
        t = run_for(nm, t, 20)
        link.set("sim-hotspot", up=False)
        t = run_for(nm, t, 3)
        link.set("sim-hotspot", up=True)
    t = run_for(nm, t, 2)
    assert link.current == "site"
    assert "unstable" in capsys.readouterr().out


def test_back_to_the_primary_when_it_is_no_less_stable(tmp_path, capsys):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": True, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -70}})
    nm = two(tmp_path, link)
    t = run_for(nm, 0, 3)
    link.set("sim-hotspot", up=False)
    t = run_for(nm, t, N._FAIL_S + 2)
    assert link.current == "site"
    link.set("sim-hotspot", up=True)  # back, but the fallback stays for RETRY_S
    t = run_for(nm, t, N._RETRY_S - 10)
    assert link.current == "site"
    assert nm.score(0, t) == 0  # the primary's failure is older than WINDOW_S now
    t = run_for(nm, t, 12)
    assert link.current == "sim-hotspot"
    assert "primary no less stable: switching site -> sim-hotspot" in capsys.readouterr().out


def test_a_fallback_that_keeps_dropping_hands_back_to_the_primary(tmp_path):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": True, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -70}})
    nm = two(tmp_path, link)
    link.set("sim-hotspot", up=False)
    t = run_for(nm, 0, N._FAIL_S + 2)
    assert link.current == "site" and nm.score(0, t) == 1
    link.set("sim-hotspot", up=True)
    for _ in range(N._UNSTABLE_DROPS):  # the fallback drops, more often than the primary failed
        link.set("site", up=False)
        t = run_for(nm, t, 2)
        link.set("site", up=True)
        t = run_for(nm, t, 5)
    assert link.current == "sim-hotspot"


def test_weak_signal_reconnects_then_fails_over(tmp_path, capsys):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": True, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -65}})
    nm = two(tmp_path, link)
    t = run_for(nm, 0, 5)
    link.set("sim-hotspot", rssi=-92)
    t = run_for(nm, t, N._WEAK_RECONNECT_S + 1)
    assert link.configured == ["sim-hotspot", "sim-hotspot"]  # reconnected
    out = capsys.readouterr().out
    assert "WeakSignal on sim-hotspot (-92 dBm): reconnecting" in out
    t = run_for(nm, t, N._WEAK_SWITCH_S - N._WEAK_RECONNECT_S)
    assert link.current == "site"
    assert "WeakSignal on sim-hotspot after reconnecting: switching sim-hotspot -> site" in capsys.readouterr().out


def test_weak_signal_without_fallback_only_reconnects(tmp_path, capsys):
    link = Link(hot={"pw": "p1", "up": True, "rssi": -95})
    cfg = cfg_with(tmp_path, WiFiPrimarySsid="hot", WiFiPrimaryPass="p1")
    nm = N.NetManager(link, N.networks(cfg), weak_of(link))
    nm.start(0)
    run_for(nm, 0, N._WEAK_SWITCH_S + 5)
    assert link.configured == ["hot", "hot"]
    assert "no fallback network (WiFiConnect=false)" in capsys.readouterr().out


def test_good_signal_again_resets_the_weak_timer(tmp_path):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": True, "rssi": -90}, "site": {"pw": "p2", "up": True, "rssi": -65}})
    nm = two(tmp_path, link)
    t = run_for(nm, 0, N._WEAK_RECONNECT_S - 10)
    link.set("sim-hotspot", rssi=-70)
    t = run_for(nm, t, 5)
    link.set("sim-hotspot", rssi=-90)
    run_for(nm, t, N._WEAK_RECONNECT_S - 10)
    assert link.configured == ["sim-hotspot"]


def test_app_starts_it_with_the_supervisors_weak_signal(tmp_path, monkeypatch):
    """Through App.main on the mock board: the commissioned primary network is
    configured at boot; the WeakSignal judgement is the supervisor's."""
    root = str(tmp_path) + "/"
    with open(root + "provision.json", "w") as f:
        json.dump({"config": {"WiFiPrimarySsid": "hot", "WiFiPrimaryPass": "p1"}}, f)
    board = Board(flash_root=root)
    app = App(board)
    started = []

    async def forever(name, fn):
        started.append(name)
        if name == "wifi":
            await fn()
        await asyncio.Event().wait()

    monkeypatch.setattr(app_mod, "_forever", forever)
    boot_main(app, 0.3)
    assert "wifi" in started
    assert board.net.primary == ("hot", "p1")
    assert app._weak() is False
    app.supervisor.active["weak"] = None
    assert app._weak() is True


def test_app_without_wifi_configuration_starts_nothing(tmp_path, monkeypatch):
    board = Board(flash_root=str(tmp_path) + "/")
    app = App(board)
    started = []

    async def forever(name, fn):
        started.append(name)
        await asyncio.Event().wait()

    monkeypatch.setattr(app_mod, "_forever", forever)
    boot_main(app, 0.2)
    assert "wifi" not in started and board.net.primary is None


def outages(link, nm, t, seconds):
    """Run netmgr for `seconds`; the link's outages as (start s, length s)."""
    out = []
    start = None
    for s in range(seconds):
        t += S
        nm.step(t)
        if not link.up():
            start = s if start is None else start
        elif start is not None:
            out.append((start, s - start))
            start = None
    if start is not None:
        out.append((start, seconds - start))
    return t, out


def test_primary_permanently_down_for_3_hours_backs_off(tmp_path, capsys):
    """A dead primary is tried again after 15 min, 30 min, 1 h, then every 2 h
    (each try a 30 s outage), not every 15 min (12 outages in 3 h)."""
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": False, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -70}})
    nm = two(tmp_path, link)
    t, outs = outages(link, nm, 0, 3 * 3600)
    assert [n for _, n in outs[1:]] == [N._FAIL_S] * (len(outs) - 1)  # each a failed join of the primary
    assert outs[0][0] == 0 and outs[0][1] <= N._FAIL_S  # at boot
    starts = [s for s, _ in outs]
    assert len(outs) == 4, outs  # boot, then tries at ~15 min, ~45 min, ~1 h 45
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert abs(gaps[0] - (N._FAIL_S + N._RETRY_S)) <= 1  # (the boot outage began before s 0)
    assert gaps[1:] == [N._FAIL_S + 2 * N._RETRY_S, N._FAIL_S + 4 * N._RETRY_S]
    assert sum(n for _, n in outs) <= 4 * N._FAIL_S  # 2 min of 3 h (6 min without the backoff)
    assert "next try in 3600 s" in capsys.readouterr().out
    # capped: with the primary still dead the tries come every _RETRY_MAX_S
    t, outs = outages(link, nm, t, 5 * 3600)
    starts = [s for s, _ in outs]
    assert [b - a for a, b in zip(starts, starts[1:])] == [N._FAIL_S + N._RETRY_MAX_S] * (len(starts) - 1)
    assert len(outs) >= 2


def test_primary_back_resets_the_backoff(tmp_path):
    link = Link(**{"sim-hotspot": {"pw": "p1", "up": False, "rssi": -60}, "site": {"pw": "p2", "up": True, "rssi": -70}})
    nm = two(tmp_path, link)
    t, outs = outages(link, nm, 0, 2 * 3600)  # retry interval doubled twice by now
    link.set("sim-hotspot", up=True)  # the hotspot is back
    for _ in range(N._RETRY_MAX_S + N._FAIL_S):
        t += S
        nm.step(t)
        if link.current == "sim-hotspot":
            break
    assert link.current == "sim-hotspot"  # found again within the cap
    t = run_for(nm, t, N._WINDOW_S + 5)  # and proves good
    assert link.current == "sim-hotspot"
    link.set("sim-hotspot", up=False)  # a new failure: the first retry is at _RETRY_S again
    t = run_for(nm, t, N._FAIL_S + 1)
    assert link.current == "site"
    t, outs = outages(link, nm, t, N._RETRY_S + N._FAIL_S + 5)
    assert len(outs) == 1 and outs[0][1] == N._FAIL_S  # tried once, after _RETRY_S (not 4 x)
    assert N._RETRY_S - 3 <= outs[0][0] <= N._RETRY_S
