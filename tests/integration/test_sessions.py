"""Charging sessions end to end: every way to start and stop a charge the guide
and OCPP 1.6 Core describe, checked on the wire (strict central system) and on
the bench's relay, lock and pilot duty."""
import time

import pytest

from tests.integration.rig import Rig

SINGLE_PHASE_DUTY = 50.0   # 7 kW / 230 V -> 30 A offered -> 30 / 0.6 % duty


def charging(rig, tag="TAG1", plug_first=True):
    """Plug + card (in either order) + EV asks for energy. Returns the StartTransaction payload."""
    t0 = time.monotonic()
    if plug_first:
        rig.plug()
        rig.wait_status(1, "Preparing", since_t=t0)
        rig.card(tag)
    else:
        rig.card(tag)
        rig.wait_status(1, "Preparing", since_t=t0)
        rig.plug()
    start = rig.wait_call("StartTransaction", since_t=t0)
    rig.wait_bench(lambda s: s["lock"] and s["duty"] == SINGLE_PHASE_DUTY, what="lock + PWM")
    rig.ev("C")
    rig.wait_relay(True)
    rig.wait_status(1, "Charging", since_t=t0)
    return start


def stop_of(rig, since_t):
    return rig.wait_call("StopTransaction", since_t=since_t)


BENCH_LAG_S = 0.05  # the bench stamps an output when its loop reads it off the HAL link


def relay_opened_before(rig, t_wire):
    """The contactor opened before the StopTransaction reached the central system
    (bench and CSMS share the host's monotonic clock)."""
    rig.wait_relay(False, timeout=1)
    evs, _ = rig.bench.events(0)
    opens = [e for e in evs if e["kind"] == "relay" and e["value"] is False]
    assert opens, "relay never opened"
    assert opens[-1]["t"] <= t_wire + BENCH_LAG_S, (opens[-1]["t"], t_wire)


def test_plug_in_first_then_card_then_same_card_stops(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        start = charging(rig)
        assert start["idTag"] == "TAG1" and start["connectorId"] == 1 and start["meterStart"] >= 0
        assert rig.calls("Authorize") == [{"idTag": "TAG1"}]
        rig.cmd(cmd="ev_current", amps=16)
        time.sleep(1.5)
        t0 = time.monotonic()
        rig.card("TAG1")
        stop = stop_of(rig, t0)
        assert stop["reason"] == "Local" and stop["transactionId"] == 1 and stop["idTag"] == "TAG1"
        assert stop["meterStop"] >= start["meterStart"]
        stop_msg = csms.wait_message("StopTransaction", since_t=t0)
        relay_opened_before(rig, stop_msg["t"])
        st = rig.wait_bench(lambda s: not s["lock"] and s["duty"] is None, what="unlock, no PWM")
        assert st["relay"] is False
        rig.wait_status(1, "Finishing", since_t=t0)
        t1 = time.monotonic()
        rig.unplug()
        rig.wait_status(1, "Available", since_t=t1)


def test_card_first_then_plug(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        start = charging(rig, plug_first=False)
        assert start["idTag"] == "TAG1"


def test_card_without_cable_times_out_after_connection_timeout(tmp_path, csms):
    with Rig(tmp_path, csms, config={"ConnectionTimeOut": "2"}) as rig:
        t0 = time.monotonic()
        rig.card("TAG1")
        rig.wait_status(1, "Preparing", since_t=t0)
        back = rig.csms.wait_message("StatusNotification", since_t=t0 + 0.5, timeout=6,
                                     where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
        assert 1.5 <= back["t"] - t0 <= 4.5
        rig.plug()
        rig.wait_status(1, "Preparing", since_t=back["t"])
        time.sleep(1)
        assert rig.calls("StartTransaction") == []
        assert rig.status()["relay"] is False


def test_unknown_and_blocked_cards_start_nothing(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        rig.plug()
        for tag in ("NOBODY", "BLOCKED", "EXPIRED"):
            rig.card(tag)
            rig.wait_call("Authorize", where=lambda p, tag=tag: p["idTag"] == tag)
        time.sleep(1)
        assert rig.calls("StartTransaction") == []
        st = rig.status()
        assert st["relay"] is False and st["lock"] is False and st["duty"] is None
        assert "AUTH_FAIL" in st["signals"]


@pytest.mark.parametrize("authorize_remote", [False, True])
def test_remote_start_and_stop(tmp_path, csms, authorize_remote):
    cfg = {"AuthorizeRemoteTxRequests": "true" if authorize_remote else "false"}
    with Rig(tmp_path, csms, config=cfg) as rig:
        rig.plug()
        t0 = time.monotonic()
        assert rig.call("RemoteStartTransaction", {"idTag": "TAG2", "connectorId": 1})["status"] == "Accepted"
        start = rig.wait_call("StartTransaction", since_t=t0)
        assert start["idTag"] == "TAG2"
        assert rig.calls("Authorize", since_t=t0) == ([{"idTag": "TAG2"}] if authorize_remote else [])
        rig.ev("C")
        rig.wait_relay(True)
        t1 = time.monotonic()
        assert rig.call("RemoteStopTransaction", {"transactionId": 999})["status"] == "Rejected"
        assert rig.call("RemoteStopTransaction", {"transactionId": 1})["status"] == "Accepted"
        stop = stop_of(rig, t1)
        assert stop["reason"] == "Remote" and stop["transactionId"] == 1
        relay_opened_before(rig, csms.wait_message("StopTransaction", since_t=t1)["t"])


def test_remote_start_for_unknown_tag_is_refused_when_authorization_is_required(tmp_path, csms):
    with Rig(tmp_path, csms, config={"AuthorizeRemoteTxRequests": "true"}) as rig:
        rig.plug()
        assert rig.call("RemoteStartTransaction", {"idTag": "NOBODY"})["status"] == "Accepted"
        rig.wait_call("Authorize", where=lambda p: p["idTag"] == "NOBODY")
        time.sleep(1)
        assert rig.calls("StartTransaction") == []


def test_remote_start_rejections(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        assert rig.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 2})["status"] == "Rejected"
        profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                   "chargingProfileKind": "Relative",
                   "chargingSchedule": {"chargingRateUnit": "A",
                                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}}
        assert rig.call("RemoteStartTransaction", {"idTag": "TAG1", "chargingProfile": profile})["status"] == "Rejected"
        assert rig.call("UnlockConnector", {"connectorId": 2})["status"] == "NotSupported"
        assert rig.call("ChangeAvailability", {"connectorId": 3, "type": "Inoperative"})["status"] == "Rejected"
        time.sleep(0.5)
        assert rig.calls("StartTransaction") == []


def test_card_of_the_same_group_stops(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig, "CHILD1")
        t0 = time.monotonic()
        rig.card("CHILD2")
        stop = stop_of(rig, t0)
        # OCPP: idTag is "the identifier which was used to stop the transaction"
        assert stop["reason"] == "Local" and stop["idTag"] == "CHILD2"
        relay_opened_before(rig, csms.wait_message("StopTransaction", since_t=t0)["t"])


@pytest.mark.parametrize("stop_on_invalid", [True, False])
def test_invalid_card_during_charging(tmp_path, csms, stop_on_invalid):
    cfg = {"StopTransactionOnInvalidId": "true" if stop_on_invalid else "false"}
    with Rig(tmp_path, csms, config=cfg) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.card("BLOCKED")
        rig.wait_call("Authorize", since_t=t0, where=lambda p: p["idTag"] == "BLOCKED")
        if stop_on_invalid:
            assert stop_of(rig, t0)["reason"] == "DeAuthorized"
            relay_opened_before(rig, csms.wait_message("StopTransaction", since_t=t0)["t"])
        else:
            time.sleep(1)
            assert rig.calls("StopTransaction") == []
            assert rig.status()["relay"] is True


def test_start_transaction_answered_invalid_stops_when_configured(tmp_path, csms):
    csms.set_response("StartTransaction", {"transactionId": 7, "idTagInfo": {"status": "Invalid"}})
    with Rig(tmp_path, csms) as rig:
        t0 = time.monotonic()
        rig.plug()
        rig.cmd(cmd="ev", state="C")
        rig.card("TAG1")
        stop = stop_of(rig, t0)
        assert stop["reason"] == "DeAuthorized" and stop["transactionId"] == 7
        rig.wait_bench(lambda s: s["relay"] is False and s["duty"] is None, what="energy off")


def test_start_transaction_invalid_limits_energy_when_not_stopping(tmp_path, csms):
    csms.set_response("StartTransaction", {"transactionId": 8, "idTagInfo": {"status": "Invalid"}})
    cfg = {"StopTransactionOnInvalidId": "false", "MaxEnergyOnInvalidId": "0"}
    with Rig(tmp_path, csms, config=cfg) as rig:
        t0 = time.monotonic()
        rig.plug()
        rig.card("TAG1")
        rig.wait_call("StartTransaction", since_t=t0)
        rig.ev("C")
        rig.wait_status(1, "SuspendedEVSE", since_t=t0)
        # The answer may come after the EV went to C (charging starts before it):
        # the contactor then opens as the limit is applied; the bench sees that
        # over its own link, so allow it the time to arrive.
        rig.wait_bench(lambda s: s["relay"] is False and s["duty"] is None, timeout=1, what="energy off")
        assert rig.calls("StopTransaction") == []


@pytest.mark.parametrize("unlock", [True, False])
def test_ev_side_disconnect_stops_and_unlocks_per_configuration(tmp_path, csms, unlock):
    cfg = {"UnlockConnectorOnEVSideDisconnect": "true" if unlock else "false"}
    with Rig(tmp_path, csms, config=cfg) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.unplug()
        stop = stop_of(rig, t0)
        assert stop["reason"] == "EVDisconnected"
        time.sleep(0.5)
        st = rig.status()
        assert st["relay"] is False and st["lock"] is (not unlock)
        if unlock:
            rig.wait_status(1, "Available", since_t=t0)
        else:
            # The owner's card releases the cable.
            rig.card("TAG1")
            rig.wait_bench(lambda s: not s["lock"], what="unlock by the owner's card")


def test_ev_side_disconnect_without_stop_keeps_the_transaction(tmp_path, csms):
    with Rig(tmp_path, csms, config={"StopTransactionOnEVSideDisconnect": "false"}) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.unplug()
        rig.wait_relay(False)
        rig.wait_status(1, "SuspendedEV", since_t=t0)
        assert rig.calls("StopTransaction") == []
        assert rig.status()["lock"] is True
        t1 = time.monotonic()
        rig.plug()
        rig.ev("C")
        rig.wait_relay(True)
        rig.wait_status(1, "Charging", since_t=t1)


def test_suspended_ev_times_out(tmp_path, csms):
    with Rig(tmp_path, csms, config={"suspendedEVTimeout": "2"}) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.ev("B")
        rig.wait_relay(False)
        rig.wait_status(1, "SuspendedEV", since_t=t0)
        stop = stop_of(rig, t0)
        assert stop["reason"] == "EVDisconnected"
        msg = csms.wait_message("StopTransaction", since_t=t0)
        assert 1.5 <= msg["t"] - t0 <= 4.5


def test_ev_pausing_and_resuming_returns_to_charging(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.ev("B")
        rig.wait_relay(False)
        rig.wait_status(1, "SuspendedEV", since_t=t0)
        rig.ev("C")
        rig.wait_relay(True)
        rig.wait_status(1, "Charging", since_t=t0)


def test_unlock_connector_during_transaction(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        t0 = time.monotonic()
        assert rig.call("UnlockConnector", {"connectorId": 1})["status"] == "Unlocked"
        assert stop_of(rig, t0)["reason"] == "UnlockCommand"
        relay_opened_before(rig, csms.wait_message("StopTransaction", since_t=t0)["t"])
        assert rig.status()["lock"] is False


def test_unlock_failure_is_reported(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        rig.cmd(cmd="fail", part="lock", active=True)
        assert rig.call("UnlockConnector", {"connectorId": 1}, timeout=15)["status"] == "UnlockFailed"
        assert rig.status()["relay"] is False


def test_change_availability_during_transaction_is_scheduled(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        t0 = time.monotonic()
        assert rig.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})["status"] == "Scheduled"
        assert rig.status()["relay"] is True
        rig.card("TAG1")
        assert stop_of(rig, t0)["reason"] == "Local"
        rig.unplug()
        rig.wait_status(1, "Unavailable", since_t=t0)
        rig.plug()
        rig.card("TAG1")
        time.sleep(1)
        assert len(rig.calls("StartTransaction")) == 1
        t1 = time.monotonic()
        assert rig.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})["status"] == "Accepted"
        rig.wait_status(1, "Preparing", since_t=t1)


@pytest.mark.parametrize("kind,reason", [("Soft", "SoftReset"), ("Hard", "HardReset")])
def test_reset_during_transaction(tmp_path, csms, kind, reason):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        t0 = time.monotonic()
        assert rig.call("Reset", {"type": kind})["status"] == "Accepted"
        stop = stop_of(rig, t0)
        assert stop["reason"] == reason
        boot = csms.wait_message("BootNotification", since_t=t0, timeout=20)
        assert boot["t"] > csms.wait_message("StopTransaction", since_t=t0)["t"]
        assert rig.status()["relay"] is False


def test_free_mode_charges_without_a_card(tmp_path, csms):
    with Rig(tmp_path, csms, config={"FreeMode": "true", "DefaultIdTag": "FREE"}) as rig:
        t0 = time.monotonic()
        rig.plug()
        start = rig.wait_call("StartTransaction", since_t=t0)
        assert start["idTag"] == "FREE"
        assert rig.calls("Authorize") == []
        rig.ev("C")
        rig.wait_relay(True)


def test_diode_failure_is_faulted_with_vendor_code_and_stops(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.cmd(cmd="fail", part="diode", active=True)
        rig.wait_relay(False)
        st = rig.wait_status(1, "Faulted", since_t=t0)
        assert st["errorCode"] == "OtherError" and st["vendorErrorCode"] == "DiodeError"
        assert stop_of(rig, t0)["reason"] == "Other"
        rig.cmd(cmd="fail", part="diode", active=False)
        t1 = time.monotonic()
        rig.unplug()
        rig.wait_status(1, "Available", since_t=t1)


def test_ventilation_request_is_vent_error_and_never_closes_the_relay(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        charging(rig)
        t0 = time.monotonic()
        rig.ev("D")
        rig.wait_relay(False)
        st = rig.wait_status(1, "Faulted", since_t=t0)
        assert st["errorCode"] == "OtherError" and st["vendorErrorCode"] == "VentError"
        time.sleep(0.5)
        assert rig.status()["relay"] is False
        t1 = time.monotonic()
        rig.ev("C")
        rig.wait_relay(True)
        rig.wait_status(1, "Charging", since_t=t1)
