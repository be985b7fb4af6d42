"""A hostile meter on the bench (issue 15): replies from another slave id,
too late, cut in half, garbage, and float registers holding NaN, every reply
for a while (tests/integration/test_metering.py covers every other reply
damaged, a dead meter and exception replies in test_faults.py). The charge
goes on, the charger reports ModBusComsFailure while the meter is unusable
and estimates the energy, every meter value on the wire is a number, and
the register wins again once the meter answers properly."""
import math
import time

from tests.integration.rig import Rig
from tests.integration.test_faults import back, reported
from tests.integration.test_metering import EAIR, FAST, one, start_charging, tx_meter_values, values


def numbers(rig, since_t):
    """Every sampledValue value of the MeterValues since since_t is a finite number."""
    n = 0
    for p in rig.calls("MeterValues", since_t=since_t):
        for mv in p["meterValue"]:
            for sv in mv["sampledValue"]:
                assert math.isfinite(float(sv["value"])), sv
                n += 1
    return n


def hold_relay(rig, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert rig.status()["relay"] is True, rig.firmware_log()
        time.sleep(0.1)


def test_hostile_meter_costs_readings_never_the_charge(tmp_path, csms):
    with Rig(tmp_path, csms, config=dict(FAST, ClockAlignedDataInterval="0")) as rig:
        start = start_charging(rig, amps=16)
        t0 = time.monotonic()
        reg0 = int(one(tx_meter_values(rig, "Sample.Periodic", t0)[0], EAIR)["value"])

        # Another slave id answers: no usable reply at all, as if the meter were gone.
        t1 = time.monotonic()
        rig.cmd(cmd="meter_fault", mode="wrong_slave")
        reported(rig, t1, "Available", "OtherError", "ModBusComsFailure", connector=0)
        down = tx_meter_values(rig, "Sample.Periodic", time.monotonic(), n=1)[0]
        assert values(down, "Energy.Active.Import.Interval"), down  # estimated while down
        assert not values(down, "Voltage")

        # Every reply too late, cut in half, or garbage: still unusable; the charge goes on.
        for mode in ("slow", "short", "noise"):
            rig.cmd(cmd="meter_fault", mode=mode)
            hold_relay(rig, 2.5)
        assert rig.cmd(cmd="meter")["tampered"] > 0

        # Float registers NaN: the meter answers again (the communication
        # failure clears), those values are left out, the energy waits for the register.
        t2 = time.monotonic()
        rig.cmd(cmd="meter_fault", mode="nan")
        back(rig, t2, "Available", connector=0)
        hold_relay(rig, 2)
        rig.cmd(cmd="meter_fault", mode=None)
        t3 = time.monotonic()
        good = tx_meter_values(rig, "Sample.Periodic", t3 + 1.5)[0]
        assert not values(good, "Energy.Active.Import.Interval")
        assert int(one(good, EAIR)["value"]) >= reg0
        assert numbers(rig, t0) > 0
        hold_relay(rig, 0.5)

        t4 = time.monotonic()
        rig.card("TAG1")
        stop = rig.wait_call("StopTransaction", since_t=t4)
        assert stop["meterStop"] >= start["meterStart"]
        assert stop["reason"] == "Local"
        assert rig.calls("StopTransaction", since_t=t0) == [stop]  # no stop but the owner's
