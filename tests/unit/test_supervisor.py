"""Fault supervisor on CPython with hal.mock: the table's invariants, filter
times, latching and the manual reset, severity, and the ResetFailure fallback.
(Behaviour on the wire: tests/integration/test_faults.py.)"""
import asyncio
import types

import pytest

import firmware.outputs as O
import firmware.supervisor as S
from firmware import faults as F
from firmware.connector import Connector, TX
from hal.mock.board import Board


class Clock:
    def __init__(self):
        self.now = 1000

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b


class Cfg(dict):
    def get(self, k):
        return dict.get(self, k)


class Station:
    """The connector's context and what the supervisor sets on the station."""

    def __init__(self, board, outputs):
        self.board = board
        self.out = outputs
        self.cp_fault = None
        self.stops = []
        self.pokes = 0

    def tx_energy_allowed(self, tx):
        return True

    def open_contactor(self):
        self.out.open()

    def contactor_closed(self):
        return self.out.relay

    def stop_tx(self, conn, tx, reason, id_tag):
        self.stops.append(reason)

    def start_tx(self, conn, session):
        return {"l": 1}

    def poke_status(self):
        self.pokes += 1

    def signal(self, name):
        pass

    def authorize(self, *a):
        pass


@pytest.fixture
def rig(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(S, "time", clock)
    monkeypatch.setattr(O, "time", clock)
    monkeypatch.setattr(F, "T", dict(F.T))
    board = Board(flash_root=str(tmp_path) + "/", sd_root=str(tmp_path) + "/sd/")
    board.sensors.set("supply_ok", 1)
    board.sensors.set("phase_ok", 1)
    board.sensors.set("temperature_dc", 250)
    cfg = Cfg(MaxCurrentLimit=32, Phase="Single.Phase", StopTransactionOnEVSideDisconnect=True,
              UnlockConnectorOnEVSideDisconnect=True, FreeMode=False, WiFiConnect=False,
              ResetRetries=0)
    out = O.Outputs(board)
    st = Station(board, out)
    conn = Connector(1, cfg, st)
    meter = types.SimpleNamespace(ok=True, refused=False, values={("Voltage", None): 230.0, ("Frequency", None): 50.0,
                                                   ("Current.Import", None): 0.0})
    sup = S.Supervisor(cfg, st, out, meter)
    r = types.SimpleNamespace(clock=clock, board=board, st=st, conn=conn, sup=sup, meter=meter, cfg=cfg, out=out)

    def step(ms=20):
        # one control cycle (firmware/control.py) without the pilot debounce
        clock.now += ms
        conn.on_ev(conn.ev, out.check_diode(conn.ev))
        sup.evaluate(conn, board)
        out.apply(conn, sup.state_f(), sup.lock_hold, sup.supply_in_range(board))

    def hold(ms):
        # a condition seen at one cycle, still there ms later
        step()
        step(ms)

    r.step = step
    r.hold = hold
    return r


def charging(r):
    r.board.pilot.set_levels(6000, -12000)  # EV in C, healthy diode
    r.conn.on_ev("B", True)
    r.conn.on_authorized("TAG1", ("start", {"status": "Accepted"}, "AUTH_OK", None), "start")
    assert r.conn.phase == TX
    r.conn.on_ev("C", True)
    r.step()
    assert not r.out.relay  # the diode is not verified yet
    r.step(120)
    assert r.out.relay and r.board.relay.command


def test_table_rows_are_well_formed_and_blocking_rows_outrank_reporting_rows(rig):
    keys = [r[0] for r in F.FAULTS]
    assert len(set(keys)) == len(keys)
    for row in F.FAULTS:
        assert len(row) == 8
        assert row[7] is None or len(row[7]) <= 50
    # Every row has its condition: one control cycle samples each of them.
    r = rig
    unset = object()
    for k in keys:
        r.sup._now[k] = unset
    r.step()
    assert sorted(r.sup._now) == sorted(keys)
    assert [k for k in keys if r.sup._now[k] is unset] == []
    blocking = [r[3] for r in F.FAULTS if r[4] & F.BLOCK]
    reporting = [r[3] for r in F.FAULTS if not r[4] & F.BLOCK]
    assert min(blocking) > max(reporting)
    assert len(set(r[3] for r in F.FAULTS)) == len(F.FAULTS)


def test_documented_production_thresholds():
    t = F.T
    assert (t["ne_mv"], t["t_stop"], t["v_min"], t["v_max"], t["i_max"]) == (8000, 800, 184, 276, 32000)
    assert (t["leak_ac_ua"], t["leak_dc_ua"], t["evc_wait_s"], t["lock_retries"]) == (30000, 6000, 30, 3)


def test_contactor_opens_in_the_cycle_that_raises_a_blocking_fault(rig):
    charging(rig)
    rig.board.sensors.set("ne_mv", 9000)
    rig.step()
    assert rig.board.relay.command is False
    assert rig.conn.status()[:2] == ("Faulted", "GroundFailure")
    assert rig.st.stops == ["Other"]
    assert rig.st.cp_fault[:2] == ("Faulted", "GroundFailure")


def test_filter_time_must_elapse_before_raising_and_clearing(rig):
    charging(rig)
    rig.board.sensors.set("phase_ok", 0)
    rig.step(20)
    assert "vpr" not in rig.sup.active
    rig.step(400)
    assert "vpr" not in rig.sup.active
    rig.step(120)
    assert "vpr" in rig.sup.active and not rig.out.relay
    rig.board.sensors.set("phase_ok", 1)
    rig.step(1000)
    rig.board.sensors.set("phase_ok", 0)  # a relapse restarts the clear filter
    rig.step(20)
    rig.board.sensors.set("phase_ok", 1)
    rig.step(20)
    rig.step(1990)
    assert "vpr" in rig.sup.active
    rig.step(20)
    assert "vpr" not in rig.sup.active and not rig.out.relay  # a new PWM run: its diode check first
    rig.step(120)
    assert rig.out.relay
    assert rig.st.stops == []


def test_latched_fault_needs_a_manual_reset_and_survives_a_reboot(rig, tmp_path):
    rig.board.sensors.set("ne_mv", 9000)
    rig.step()
    rig.board.sensors.set("ne_mv", 0)
    for _ in range(50):
        rig.step(100)
    assert "ground" in rig.sup.active
    assert (tmp_path / S._LATCH_FILE).read_text() == "ground"
    again = S.Supervisor(rig.cfg, rig.st, rig.out, rig.meter)  # reboot
    assert "ground" in again.active
    rig.sup.manual_reset()
    rig.step()
    assert rig.sup.active == {}
    assert not (tmp_path / S._LATCH_FILE).exists()


def test_button_cycle_is_a_manual_reset_only_for_conditions_that_are_gone(rig):
    rig.board.sensors.set("ne_mv", 9000)
    rig.step()
    rig.board.button.set(True)
    rig.hold(20)  # the button's debounce
    assert "button" in rig.sup.active
    assert rig.conn.status()[1] == "GroundFailure"  # the most severe decides
    rig.board.button.set(False)
    rig.hold(600)
    rig.step()
    assert list(rig.sup.active) == ["ground"]
    rig.board.sensors.set("ne_mv", 0)
    rig.board.button.set(True)
    rig.hold(20)
    rig.board.button.set(False)
    rig.hold(600)
    rig.step()
    assert rig.sup.active == {}
    assert rig.conn.status()[:2] == ("Available", "NoError")


def test_clearing_the_worst_fault_shows_the_next(rig):
    rig.board.sensors.set("supply_ok", 0)
    rig.board.button.set(True)
    rig.hold(20)
    assert rig.conn.status()[2] == "EmergencyButton"
    rig.board.button.set(False)
    rig.hold(600)
    assert rig.conn.status()[:3] == ("Faulted", "OtherError", "PowerFailure")


def test_derating_curve_with_hysteresis(rig):
    charging(rig)
    for temp, amps in ((590, None), (600, 24), (640, 24), (650, 16), (760, 6), (730, 6), (719, 10),
                       (575, 24), (569, None)):
        rig.board.sensors.set("temperature_dc", temp)
        rig.step()
        assert rig.conn.derate_a == amps, temp
        assert rig.out.relay, temp  # a lower offer does not interrupt charging


def test_voltage_band_hysteresis_and_meter_values_only_once_per_poll(rig):
    charging(rig)
    rig.meter.values = {("Voltage", None): 183.0}
    rig.hold(1000)
    assert "uv" in rig.sup.active
    rig.meter.values = {("Voltage", None): 188.0}  # inside, within the 6 V hysteresis
    rig.step(5000)
    assert "uv" in rig.sup.active
    rig.meter.values = {("Voltage", None): 191.0}
    rig.hold(2980)
    assert "uv" in rig.sup.active
    rig.step(20)
    assert "uv" not in rig.sup.active


def test_meter_down_keeps_charging_and_freezes_grid_faults(rig):
    charging(rig)
    rig.meter.ok = False
    rig.hold(5000)
    assert rig.conn.status()[:3] == ("Charging", "OtherError", "ModBusComsFailure")
    assert rig.out.relay


def test_weak_signal_never_replaces_another_state(rig):
    rig.board.net.set_rssi(-95)
    rig.hold(5000)
    assert rig.conn.status()[:2] == ("Available", "WeakSignal")
    rig.conn.on_ev("B", True)
    assert rig.conn.status()[:2] == ("Preparing", "NoError")


def test_status_light_follows_the_state_and_shows_weak_signal(rig):
    # firmware/control.py picks what the light shows (Connector.light()); the
    # board blinks it (hal/esp32 patterns, tests/unit/test_hal_esp32.py).
    from firmware.control import Control

    ctl = Control(rig.board, rig.conn, rig.sup, rig.out, rig.st)
    ctl.apply()
    rig.board.net.set_rssi(-95)
    rig.hold(5000)
    ctl.apply()
    rig.conn.on_ev("B", True)
    ctl.apply()
    rig.conn.on_ev("D", True)  # the EV asks for ventilation: the guide's VentError
    rig.hold(5000)
    ctl.apply()
    assert rig.conn.status()[:3] == ("Faulted", "OtherError", "VentError")
    assert rig.board.signal.leds == ["Available", "WeakSignal", "Preparing", "VentError"]


def test_lock_is_driven_again_three_times_then_reported(rig):
    rig.board.lock.jam(True)
    rig.board.pilot.set_levels(9000, -12000)  # EV in B, healthy diode
    rig.conn.on_ev("B", True)
    rig.conn.on_authorized("TAG1", ("start", {"status": "Accepted"}, "AUTH_OK", None), "start")
    rig.step()
    rig.step()
    for _ in range(3):
        rig.step(500)
        assert "lock" not in rig.sup.active
    rig.step(500)
    assert rig.conn.status()[:2] == ("Faulted", "ConnectorLockFailure")
    # driven, then again three times; released once the fault has ended the transaction
    assert rig.board.lock.history == [True] + [False, True] * 3 + [False]
    assert rig.st.stops == ["Other"]


def test_reset_failure_reported_then_watchdog(rig):
    rig.sup.t["reset_wait_s"] = 0.01

    async def go():
        await rig.sup.before_reset("Soft")
        await asyncio.sleep(0.05)

    asyncio.run(go())
    assert rig.board.wdt.timeout_ms == 1000
    rig.step()
    assert rig.st.cp_fault == ("Available", "ResetFailure", None, None)


def test_reset_is_attempted_reset_retries_more_times(tmp_path):
    """Operations: a Reset that does not take is tried ResetRetries more times."""
    from firmware.operations import Operations

    class CP:
        def on(self, action, fn):
            pass

    board = Board(flash_root=str(tmp_path) + "/")
    board.system.reset = lambda: setattr(board.system, "resets", board.system.resets + 1)  # never takes
    cfg = Cfg(ResetRetries=2)
    ops = Operations(CP(), cfg, board)

    async def go():
        await ops.reset({"type": "Soft"})
        await asyncio.sleep(3.5)

    asyncio.run(go())
    assert board.system.resets == 3


def test_link_down_on_the_esp32_hal_is_no_weak_signal_and_no_alternation(rig, tmp_path):
    """hal/esp32's Net over the fakes: a link that is down reads -127 dBm, which
    is no WeakSignal (netmgr handles an outage); nothing but netmgr chooses
    the network, and the guide's default WiFiSsid "N/A" is no network."""
    import time as real_time
    from firmware import netmgr as N
    from tests.unit import fakes_esp32
    from tests.unit.fakes_esp32 import network as fnet

    with fakes_esp32.installed():
        from hal.esp32.board import Net
        net = Net()
        w = fnet.wlans[-1]
        fnet.aps["hot"] = {"password": "p1", "rssi": -60}
        rig.board.net = net
        rig.cfg.update(WiFiConnect=True, WiFiSsid="N/A", WiFiPass="N/A",
                       WiFiPrimarySsid="hot", WiFiPrimaryPass="p1")
        nm = N.NetManager(net, N.networks(rig.cfg), lambda: "weak" in rig.sup.active)
        t = real_time.ticks_ms()
        nm.start(t)
        w.step()
        assert net.up() and rig.conn.status()[:2] == ("Available", "NoError")
        del fnet.aps["hot"]  # the hotspot dies for 10 minutes
        w.step()
        assert not net.up() and net.rssi() == -127
        for s in range(600):
            for _ in range(50):
                rig.step(20)
            t = real_time.ticks_add(t, 1000)
            nm.step(t)
            w.step()
            assert "weak" not in rig.sup.active
        assert rig.conn.status()[:2] == ("Available", "NoError")
        assert {c for c in w.connects} == {("hot", "p1")} and len(w.connects) > 1  # joined again, nothing else
        fnet.aps["hot"] = {"password": "p1", "rssi": -95}  # back, but weak: now it is WeakSignal
        w.step()  # the WiFi driver rejoins by itself
        assert net.up()
        rig.hold(5000)
        assert "weak" in rig.sup.active and rig.conn.status()[:2] == ("Available", "WeakSignal")


def test_weak_signal_only_while_available(rig):
    """The guide: WeakSignal only in Available; while charging a weak signal
    is no fault, so netmgr starts no reconnect in the middle of a session."""
    charging(rig)
    rig.board.net.set_rssi(-95)
    rig.hold(10000)
    assert "weak" not in rig.sup.active
    assert rig.conn.status()[:2] == ("Charging", "NoError")
    rig.board.net.set_up(False)
    rig.board.net.set_rssi(-127)
    rig.hold(10000)
    assert "weak" not in rig.sup.active


@pytest.fixture
def esp32_button(rig):
    """hal/esp32's Button over the machine fake, in the supervisor rig."""
    from tests.unit import fakes_esp32
    with fakes_esp32.installed() as world:
        from hal.esp32 import board as B
        from hal.esp32 import pins as P
        rig.board.button = B.Button()

        def press(on):
            world.levels[P.EMERGENCY] = P.EMERGENCY_PRESSED if on else 1 - P.EMERGENCY_PRESSED
        press(False)
        yield press


def test_button_glitch_of_one_sample_neither_stops_nor_resets(rig, esp32_button):
    charging(rig)
    esp32_button(True)  # a 10 ms glitch: seen in one control cycle (10 ms on the board)
    rig.step(10)
    esp32_button(False)
    for _ in range(100):
        rig.step(10)
    assert rig.out.relay and rig.board.relay.command  # the session goes on
    assert rig.st.stops == [] and rig.conn.status()[:2] == ("Charging", "NoError")
    assert "button" not in rig.sup.active
    # nor is it a button cycle: a latched fault whose condition is gone stays
    rig.board.sensors.set("ne_mv", 9000)
    rig.step(10)
    rig.board.sensors.set("ne_mv", 0)
    rig.step(10)
    assert "ground" in rig.sup.active
    for _ in range(3):  # glitches, each one sample, 100 ms apart
        esp32_button(True)
        rig.step(10)
        esp32_button(False)
        for _ in range(10):
            rig.step(10)
    rig.hold(600)
    assert list(rig.sup.active) == ["ground"]


def test_button_press_opens_the_contactor_within_its_debounce_and_a_cycle(rig, esp32_button):
    charging(rig)
    esp32_button(True)
    elapsed = 0
    while rig.out.relay:
        rig.step(10)  # the board's control cycle (wait_input: POLL_MS)
        elapsed += 10
        assert elapsed <= F.FAULTS[[r[0] for r in F.FAULTS].index("button")][5] + 10
    assert rig.board.relay.command is False
    assert rig.st.stops == ["EmergencyStop"]
    assert rig.conn.status()[:3] == ("Faulted", "OtherError", "EmergencyButton")
    esp32_button(False)
    rig.hold(500)
    assert "button" not in rig.sup.active


def test_button_debounce_delays_no_other_fault(rig, esp32_button):
    charging(rig)
    esp32_button(True)
    rig.board.sensors.set("ne_mv", 9000)  # ground fault in the same cycle as the press
    rig.step(10)
    assert rig.board.relay.command is False and "ground" in rig.sup.active
    assert "button" not in rig.sup.active  # still being debounced
