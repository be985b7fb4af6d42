"""The output interlock on the bench (firmware/outputs.py): the contactor
closes only once the EV's diode has been seen during the PWM of the current
offer, whatever the order of card, cable and EV state."""
import time

from tests.integration.rig import Rig

PWM_SETTLE_S = 0.1  # firmware/outputs.py PWM_SETTLE_MS
BENCH_LAG_S = 0.05  # the bench stamps an output when its loop reads it off the HAL link


def relay_closed_since(rig, mark):
    evs, _ = rig.bench.events(mark)
    return [e for e in evs if e["kind"] == "relay" and e["value"] is True]


def test_failed_diode_with_the_ev_in_c_at_once_never_closes_the_contactor(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        rig.cmd(cmd="fail", part="diode", active=True)
        mark = rig.bench.mark()
        t0 = time.monotonic()
        rig.plug()
        rig.ev("C")  # the EV asks for energy before anybody is authorized
        rig.card("TAG1")
        rig.wait_call("StartTransaction", since_t=t0)
        st = rig.wait_status(1, "Faulted", since_t=t0)
        assert st["errorCode"] == "OtherError" and st["vendorErrorCode"] == "DiodeError"
        assert rig.wait_call("StopTransaction", since_t=t0)["reason"] == "Other"
        time.sleep(0.5)
        assert relay_closed_since(rig, mark) == [], "the contactor closed with a failed diode"
        assert rig.status()["relay"] is False


def test_healthy_diode_closes_after_the_pwm_has_run(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        mark = rig.bench.mark()
        t0 = time.monotonic()
        rig.plug()
        rig.ev("C")
        rig.card("TAG1")
        rig.wait_status(1, "Charging", since_t=t0)
        evs, _ = rig.bench.events(mark)
        pwm = [e for e in evs if e["kind"] == "duty" and e["value"]]
        closes = [e for e in evs if e["kind"] == "relay" and e["value"] is True]
        assert pwm and closes
        # the PWM ran (and the diode was measured) before the contactor closed
        # (before the interlock they came in the same control cycle)
        assert closes[0]["t"] - pwm[0]["t"] >= PWM_SETTLE_S - BENCH_LAG_S, (pwm[0], closes[0])
