"""Foundation: boot, heartbeat, reconnect and spec-correct CALLERRORs, with the
firmware on the real MicroPython interpreter against the strict central system."""
import json
import time

import pytest

from tests.integration.rig import Rig


def test_boot_notification_then_status_for_both_connectors(tmp_path, csms):
    t0 = time.monotonic()
    with Rig(tmp_path, csms) as rig:
        boot = rig.wait_call("BootNotification", since_t=t0)
        assert boot["chargePointVendor"] == "BrightBlu"
        assert boot["chargePointModel"] == "JOLT Business"
        assert boot["firmwareVersion"]
        rig.wait_status(0, "Available", since_t=t0)
        rig.wait_status(1, "Available", since_t=t0)
        first_status = min(m["t"] for m in csms.messages if m["action"] == "StatusNotification")
        accepted = [m for m in csms.messages if m["action"] == "BootNotification" and m["dir"] == "out"]
        assert accepted and accepted[0]["t"] <= first_status


def test_heartbeat_follows_the_interval_from_boot_notification(tmp_path, csms):
    csms.set_heartbeat_interval(2)
    with Rig(tmp_path, csms) as rig:
        t0 = time.monotonic()
        for _ in range(3):
            rig.wait_call("Heartbeat", timeout=6, since_t=time.monotonic())
        beats = [m["t"] for m in csms.messages if m["action"] == "Heartbeat" and m["dir"] == "in" and m["t"] >= t0]
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        assert gaps and all(1.5 <= g <= 3.0 for g in gaps), gaps
        # The interval the central system gave is kept as HeartbeatInterval.
        res = rig.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert res["configurationKey"] == [{"key": "HeartbeatInterval", "readonly": False, "value": "2"}]


def test_change_configuration_heartbeat_interval_takes_effect(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        res = rig.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "1"})
        assert res["status"] == "Accepted"
        t0 = time.monotonic()
        rig.wait_call("Heartbeat", timeout=4, since_t=t0)
        rig.wait_call("Heartbeat", timeout=4, since_t=time.monotonic())


def test_pending_registration_retries_at_the_given_interval(tmp_path, csms):
    csms.set_boot_status("Pending")
    csms.set_heartbeat_interval(2)
    rig = Rig(tmp_path, csms)
    with rig.bench:
        rig.wait_call("BootNotification", timeout=30)
        t1 = csms.wait_message("BootNotification", since_t=time.monotonic() + 0.1, timeout=6)["t"]
        csms.set_boot_status("Accepted")
        rig.wait_status(1, "Available", timeout=10)
        boots = [m["t"] for m in csms.messages if m["action"] == "BootNotification" and m["dir"] == "in"]
        assert len(boots) >= 2
        assert 1.5 <= boots[1] - boots[0] <= 3.5, boots
        # Nothing but BootNotification while not accepted.
        before = [m for m in csms.messages if m["dir"] == "in" and m["type"] == 2 and m["t"] < t1]
        assert {m["action"] for m in before} == {"BootNotification"}


def test_rejected_registration_sends_nothing_else_until_accepted(tmp_path, csms):
    csms.set_boot_status("Rejected")
    csms.set_heartbeat_interval(2)
    rig = Rig(tmp_path, csms)
    with rig.bench:
        rig.wait_call("BootNotification", timeout=30)
        time.sleep(2.5)
        calls = [m["action"] for m in csms.messages if m["dir"] == "in" and m["type"] == 2]
        assert set(calls) == {"BootNotification"} and len(calls) >= 2
        csms.set_boot_status("Accepted")
        rig.wait_status(1, "Available", timeout=10)


def test_reconnects_after_network_loss(tmp_path, csms):
    csms.set_heartbeat_interval(300)
    with Rig(tmp_path, csms) as rig:
        rig.cmd(cmd="network", up=False)
        deadline = time.monotonic() + 10
        while csms.connected("CP1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not csms.connected("CP1")
        time.sleep(2)
        t_up = time.monotonic()
        rig.cmd(cmd="network", up=True)
        csms.wait_connected("CP1", timeout=10)
        # Same boot: no new BootNotification, the current status is reported again.
        rig.wait_status(1, "Available", since_t=t_up, timeout=10)
        assert not [m for m in csms.messages if m["action"] == "BootNotification" and m["t"] >= t_up]
        # And the session works: the central system can ask something.
        res = rig.call("GetConfiguration", {"key": ["NumberOfConnectors"]})
        assert res


def test_reconnects_when_the_central_system_drops_the_connection(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        t0 = time.monotonic()
        csms.disconnect("CP1")
        csms.wait_connected("CP1", timeout=10)
        rig.wait_status(1, "Available", since_t=t0, timeout=10)


def _reply_to(csms, text):
    rep = csms.send_raw("CP1", text, wait_reply_timeout=5)
    assert rep is not None, "no reply to %s" % text
    return rep


@pytest.mark.parametrize("text,code", [
    ('[2,"m1","ChangeAvailability",{"connectorId":1,', "FormationViolation"),
    ('[2,"m2","FlyToTheMoon",{}]', "NotImplemented"),
    ('[2,"m3","ChangeAvailability",{"connectorId":"1","type":"Operative"}]', "TypeConstraintViolation"),
    ('[2,"m4","ChangeAvailability",{"connectorId":1}]', "ProtocolError"),
    ('[2,"m5","ChangeAvailability",{"connectorId":1,"type":"Sideways"}]', "PropertyConstraintViolation"),
    ('[2,"m6","Reset",{"type":"Hard","extra":true}]', "FormationViolation"),
    ('[2,"m7","ChangeConfiguration",{"key":"' + "K" * 51 + '","value":"1"}]', "PropertyConstraintViolation"),
])
def test_bad_requests_get_the_right_callerror_and_change_nothing(tmp_path, csms, text, code):
    with Rig(tmp_path, csms) as rig:
        rep = _reply_to(csms, text)
        assert rep["type"] == 4, rep
        assert rep["payload"]["errorCode"] == code, rep
        assert rep["id"] == text.split('"')[1]
        # The connection and the charger are unharmed.
        assert csms.connected("CP1")
        res = rig.call("GetConfiguration", {"key": ["NumberOfConnectors"]})
        assert res
        assert rig.status()["relay"] is False


def test_garbage_from_the_central_system_never_kills_the_charger(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        for text in ("", "[", "null", "[]", "[2]", '[3,"nobody",{}]', '[4,"x","GenericError","",{}]',
                     "\u00e9\u00e9", '{"a":1}', "[2,1,2,3]", "9" * 5000):
            csms.send_raw("CP1", text)
        time.sleep(1)
        assert csms.connected("CP1")
        assert rig.call("GetConfiguration", {"key": ["NumberOfConnectors"]})
        log = rig.firmware_log(400)
        assert "Traceback" not in log, log


def test_get_configuration_reads_back_provisioned_values(tmp_path, csms):
    with Rig(tmp_path, csms, config={"MeterValueSampleInterval": "30"}) as rig:
        res = rig.call("GetConfiguration", {"key": ["MeterValueSampleInterval", "OcppChargerId", "Nope"]})
        values = {k["key"]: k["value"] for k in res["configurationKey"]}
        assert values == {"MeterValueSampleInterval": "30", "OcppChargerId": "CP1"}
        assert res["unknownKey"] == ["Nope"]
        res = rig.call("ChangeConfiguration", {"key": "MeterValuesSampledData", "value": "Voltage"})
        assert res["status"] == "Rejected"  # read-only per the guide
        res = rig.call("ChangeConfiguration", {"key": "OcppServerAddress", "value": "ws://host/ocpp/"})
        assert res["status"] == "Rejected"
        # the guide: the charger ID is not part of the URL (the charger appends it)
        res = rig.call("ChangeConfiguration", {"key": "OcppServerAddress", "value": "ws://host:80/ocpp/CP1"})
        assert res["status"] == "Rejected"


def test_configuration_survives_reboot(tmp_path, csms):
    rig = Rig(tmp_path, csms)
    with rig:
        assert rig.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "17"})["status"] == "Accepted"
    t0 = time.monotonic()
    with Rig(tmp_path, csms, state=rig.state) as rig2:
        rig2.wait_call("BootNotification", since_t=t0)
        res = rig2.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
        assert res["configurationKey"][0]["value"] == "17"


def test_invalid_server_address_is_logged_not_a_crash_loop(tmp_path, csms):
    rig = Rig(tmp_path, csms, config={"OcppServerAddress": "ws://127.0.0.1/ocpp"})  # no port
    with rig.bench:
        time.sleep(3)
        st = rig.status()
        assert st["boots"] == 1 and st["running"]
        log = rig.firmware_log(200)
        assert "invalid OcppServerAddress" in log and "Traceback" not in log
        # The board still works locally.
        rig.plug()
        rig.wait_bench(lambda s: s["led"] == "Preparing", what="Preparing LED")


def test_a_hanging_central_system_does_not_block_the_charger(tmp_path, csms):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts the TCP connection, never answers the handshake
    url = "ws://127.0.0.1:%d/ocpp" % silent.getsockname()[1]
    try:
        rig = Rig(tmp_path, csms, config={"OcppServerAddress": url, "ConnectionTimeOut": "5"})
        with rig.bench:
            rig.plug()
            rig.wait_bench(lambda s: s["led"] == "Preparing", timeout=5, what="Preparing LED while connecting")
            deadline = time.monotonic() + 20
            while "connect failed" not in rig.firmware_log(200) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert "connect failed" in rig.firmware_log(200)
            assert rig.status()["boots"] == 1
    finally:
        silent.close()


def test_a_call_too_big_for_the_heap_costs_that_call_only(tmp_path, csms):
    # Under the 16 KiB message limit but more than a small heap holds at once:
    # dropped (the CSMS's call times out) or answered with a CALLERROR; the
    # connection, the charger and the next calls are unharmed.
    big = '[2,"big1","DataTransfer",{"vendorId":"X","data":"%s"}]' % ("d" * 15000)
    with Rig(tmp_path, csms) as rig:
        for _ in range(3):
            rep = csms.send_raw("CP1", big, wait_reply_timeout=3)
            assert rep is None or rep["id"] == "big1", rep
        assert csms.connected("CP1")
        assert rig.call("GetConfiguration", {"key": ["NumberOfConnectors"]})
        rig.plug()
        rig.card("TAG1")
        rig.ev("C")
        rig.wait_relay(True)
        log = rig.firmware_log(400)
        assert "Traceback" not in log, log
