"""Meter values on the wire (strict central system, OCPP 1.6 schemas checked by
the csms fixture): sampled, clock-aligned and StopTransaction data for both
variants and both phase settings; the meter failing and coming back; damaged
Modbus frames; samples bundled while the link is down (docs/metering.md)."""
import calendar
import time

import pytest

from tests.integration.rig import Rig

EAIR = "Energy.Active.Import.Register"
FAST = {"MeterValueSampleInterval": "2", "ClockAlignedDataInterval": "2"}
UNITS = {EAIR: "Wh", "Energy.Reactive.Import.Register": "varh", "Voltage": "V", "Current.Import": "A",
         "Power.Active.Import": "W", "Power.Reactive.Import": "var", "Temperature": "Celsius",
         "Current.Offered": "A", "Power.Offered": "W", "Energy.Active.Import.Interval": "Wh"}
PER_PHASE = ("Voltage", "Current.Import")
OFFERED = {"Single.Phase": 30, "Three.Phase": 31}   # docs/decisions.md


def epoch(ts):
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def values(mv, measurand=None, context=None):
    return [s for s in mv["sampledValue"]
            if (measurand is None or s["measurand"] == measurand) and (context is None or s.get("context") == context)]


def one(mv, measurand, phase=None):
    hits = [s for s in mv["sampledValue"] if s["measurand"] == measurand and s.get("phase") == phase]
    assert len(hits) == 1, (measurand, phase, mv)
    return hits[0]


def check_units(mv):
    for s in mv["sampledValue"]:
        assert s.get("unit") == UNITS.get(s["measurand"]), s
        assert (s.get("location") == "Body") == (s["measurand"] == "Temperature"), s


def check_phases(mv, phase_cfg):
    for s in mv["sampledValue"]:
        if s["measurand"] in PER_PHASE:
            assert s.get("phase") in (("L1",) if phase_cfg == "Single.Phase" else ("L1", "L2", "L3")), s
        else:
            assert "phase" not in s, s


def start_charging(rig, amps=16):
    t0 = time.monotonic()
    rig.cmd(cmd="ev_current", amps=amps)
    rig.plug()
    rig.wait_status(1, "Preparing", since_t=t0)
    rig.card("TAG1")
    start = rig.wait_call("StartTransaction", since_t=t0)
    rig.wait_bench(lambda s: s["lock"] and s["duty"], what="lock + PWM")
    rig.ev("C")
    rig.wait_relay(True)
    return start


def tx_meter_values(rig, context, since_t, n=1, timeout=12):
    """The meterValue entries of `context` in transaction MeterValues, at least n."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [mv for p in rig.calls("MeterValues", since_t=since_t) if "transactionId" in p
               for mv in p["meterValue"] if values(mv, context=context)]
        if len(got) >= n:
            return got
        time.sleep(0.2)
    raise AssertionError("no %d %s meter values\n%s" % (n, context, rig.csms.dump()))


@pytest.mark.parametrize("variant", ["business", "homeplus"])
@pytest.mark.parametrize("phase", ["Single.Phase", "Three.Phase"])
def test_sampled_clock_aligned_and_stop_data(tmp_path, csms, variant, phase):
    cfg = dict(FAST, Phase=phase, StopTxnSampledData="Energy.Active.Import.Register,Current.Import,Voltage",
               StopTxnAlignedData="Energy.Active.Import.Register,Current.Import")
    with Rig(tmp_path, csms, variant=variant, config=cfg) as rig:
        rig.cmd(cmd="sensor", name="temperature", value=31.5)
        # Clock-aligned values without a transaction: connector 0, no transactionId.
        t0 = time.monotonic()
        idle = rig.wait_call("MeterValues", since_t=t0, timeout=6)
        assert idle["connectorId"] == 0 and "transactionId" not in idle
        mv = idle["meterValue"][0]
        assert epoch(mv["timestamp"]) % 2 == 0
        assert {s["context"] for s in mv["sampledValue"]} == {"Sample.Clock"}
        check_units(mv)
        check_phases(mv, phase)
        aligned = rig.status()  # the configured aligned list: the variant's default
        names = {s["measurand"] for s in mv["sampledValue"]}
        expect = {EAIR, "Voltage", "Current.Import", "Power.Active.Import", "Temperature",
                  "Current.Offered", "Power.Offered"}
        if variant == "business":
            expect |= {"Energy.Reactive.Import.Register", "Power.Reactive.Import", "Frequency", "Power.Factor"}
        assert names == expect, (names, aligned)
        assert one(mv, "Temperature")["value"] == "31.5"
        assert one(mv, "Current.Offered")["value"] == "0"  # nothing offered without a transaction

        start = start_charging(rig)
        t1 = time.monotonic()
        if variant == "homeplus":
            assert start["meterStart"] == 0
        periodic = tx_meter_values(rig, "Sample.Periodic", t1, n=2)
        first = periodic[0]
        check_units(first)
        check_phases(first, phase)
        names = {s["measurand"] for s in first["sampledValue"]}
        # MeterValuesSampledData default (docs/configuration.md)
        assert names == {EAIR, "Voltage", "Current.Import", "Power.Active.Import", "Temperature",
                         "Frequency", "Power.Factor", "Current.Offered"}, names
        n_phases = 1 if phase == "Single.Phase" else 3
        assert len(values(first, "Voltage")) == n_phases and len(values(first, "Current.Import")) == n_phases
        assert one(first, "Current.Offered")["value"] == str(OFFERED[phase])
        assert abs(float(one(first, "Current.Import", "L1")["value"]) - 16.0) < 0.01
        assert abs(float(one(first, "Voltage", "L1")["value"]) - 230.0) < 0.1
        assert abs(float(one(first, "Power.Active.Import")["value"]) - 230 * 16 * n_phases) <= 1
        for mv in periodic:
            assert len(values(mv, EAIR)) == 1  # always there, even when others are unchanged
        wh = [int(one(mv, EAIR)["value"]) for mv in periodic]
        assert wh == sorted(wh)
        # Clock-aligned values during the transaction go with the transactionId.
        clock = tx_meter_values(rig, "Sample.Clock", t1)
        assert epoch(clock[0]["timestamp"]) % 2 == 0
        assert len(values(clock[0], "Power.Offered")) == 1
        time.sleep(2.5)  # let the energy register move

        t2 = time.monotonic()
        rig.card("TAG1")
        stop = rig.wait_call("StopTransaction", since_t=t2)
        data = stop["transactionData"]
        begin = [mv for mv in data if values(mv, context="Transaction.Begin")]
        end = [mv for mv in data if values(mv, context="Transaction.End")]
        clk = [mv for mv in data if values(mv, context="Sample.Clock")]
        assert len(begin) == 1 and len(end) == 1 and clk
        assert data[0] is begin[0] and data[-1] is end[0]
        assert int(one(begin[0], EAIR)["value"]) == start["meterStart"]
        assert int(one(end[0], EAIR)["value"]) == stop["meterStop"]
        assert len(values(end[0], "Current.Import")) == n_phases
        assert len(values(end[0], "Voltage")) == n_phases
        for mv in clk:
            assert {s["measurand"] for s in mv["sampledValue"]} == {EAIR, "Current.Import"}
            check_phases(mv, phase)
        # meter values reached the central system before the StopTransaction
        last_mv = max(m["t"] for m in csms.messages if m["action"] == "MeterValues" and m["dir"] == "in"
                      and m["type"] == 2 and "transactionId" in m["payload"])
        assert last_mv < csms.wait_message("StopTransaction", since_t=t2)["t"]
        energy = stop["meterStop"] - start["meterStart"]
        assert energy > 0
        bench_wh = rig.status()["energy_wh"]
        if variant == "business":
            # the cumulative register itself, as last polled (once a second)
            lag = 230 * 16 * n_phases * 1.5 / 3600 + 1
            assert stop["meterStop"] <= bench_wh + 1 and bench_wh - stop["meterStop"] <= lag
        else:
            assert stop["meterStop"] < bench_wh or bench_wh < 2  # session energy from 0
        for p in rig.calls("MeterValues", since_t=t1):
            if "transactionId" in p:
                assert p["transactionId"] == stop["transactionId"] and p["connectorId"] == 1


def test_meter_failure_estimates_and_recovery(tmp_path, csms):
    with Rig(tmp_path, csms, config=dict(FAST, ClockAlignedDataInterval="0")) as rig:
        start_charging(rig, amps=20)
        t0 = time.monotonic()
        good = tx_meter_values(rig, "Sample.Periodic", t0)[0]
        reg0 = int(one(good, EAIR)["value"])
        assert not values(good, "Energy.Active.Import.Interval")

        rig.cmd(cmd="fail", part="meter", active=True)
        t1 = time.monotonic() + 1.5  # a poll in flight may still have been answered
        down = tx_meter_values(rig, "Sample.Periodic", t1, n=3, timeout=15)
        est = []
        for mv in down:
            names = {s["measurand"] for s in mv["sampledValue"]}
            # only the meter's last register, the estimate and the charger's own figures
            assert names <= {EAIR, "Energy.Active.Import.Interval", "Temperature", "Current.Offered"}, names
            est.append(int(one(mv, "Energy.Active.Import.Interval")["value"]))
        frozen = {int(one(mv, EAIR)["value"]) for mv in down}
        assert len(frozen) == 1 and frozen.pop() >= reg0
        assert est == sorted(est) and est[-1] > est[0]
        # 20 A x 230 V for 2 s between samples ~ 2.6 Wh
        assert 1 <= (est[-1] - est[0]) / (len(est) - 1) <= 5, est

        rig.cmd(cmd="fail", part="meter", active=False)
        t2 = time.monotonic() + 1.5
        back = tx_meter_values(rig, "Sample.Periodic", t2, n=1)[0]
        assert not values(back, "Energy.Active.Import.Interval")
        reg = int(one(back, EAIR)["value"])
        assert abs(reg - rig.status()["energy_wh"]) <= 4  # the register wins
        assert reg >= reg0
        t3 = time.monotonic()
        rig.card("TAG1")
        stop = rig.wait_call("StopTransaction", since_t=t3)
        assert stop["meterStop"] >= reg


def test_damaged_frames_are_retried_without_a_gap(tmp_path, csms):
    with Rig(tmp_path, csms, config=dict(FAST, ClockAlignedDataInterval="0")) as rig:
        start_charging(rig)
        t0 = time.monotonic()
        for mode in ("crc", "short", "noise"):
            # every other reply damaged: the master's retries absorb it
            rig.cmd(cmd="meter_fault", mode=mode, every=2)
            time.sleep(2.5)
        rig.cmd(cmd="meter_fault", mode=None)
        got = tx_meter_values(rig, "Sample.Periodic", t0, n=3)
        for mv in got:
            assert not values(mv, "Energy.Active.Import.Interval"), mv
        assert rig.cmd(cmd="meter")["tampered"] > 0


def test_samples_taken_offline_all_arrive_in_order_with_their_values(tmp_path, csms):
    """Transaction samples are journaled as they are taken: after an outage
    every one of them arrives, oldest first, with all its measurands."""
    with Rig(tmp_path, csms, config=dict(FAST, ClockAlignedDataInterval="0")) as rig:
        start = start_charging(rig)
        tx_meter_values(rig, "Sample.Periodic", time.monotonic())
        rig.cmd(cmd="network", up=False)
        t_down = time.time()
        time.sleep(4)
        rig.cmd(cmd="ev_current", amps=10)  # a change the samples taken offline must carry
        time.sleep(5)
        t_up = time.time()
        t0 = time.monotonic()
        rig.cmd(cmd="network", up=True)
        rig.wait_call("MeterValues", since_t=t0, timeout=30)
        time.sleep(3)
        offline = [mv for p in rig.calls("MeterValues", since_t=t0) if "transactionId" in p
                   for mv in p["meterValue"] if t_down + 1 <= epoch(mv["timestamp"]) <= t_up - 1]
        assert len(offline) >= 3, rig.csms.dump()  # one every 2 s while the link was down
        ts = [epoch(mv["timestamp"]) for mv in offline]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
        wh = [int(one(mv, EAIR)["value"]) for mv in offline]
        assert wh == sorted(wh) and wh[0] >= start["meterStart"]
        # the deadband leaves out unchanged values, never the register, and
        # nothing is cut down for having waited
        changed = [mv for mv in offline if values(mv, "Current.Import")]
        assert changed and abs(float(one(changed[0], "Current.Import", "L1")["value"]) - 10.0) < 0.01
        assert all(len(values(mv, EAIR)) == 1 for mv in offline)
