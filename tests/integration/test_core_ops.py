"""Core-profile requests that are not about a running charge: ClearCache,
DataTransfer, TriggerMessage, and configuration that survives power cuts."""
import random
import time

import pytest

from tests.integration.rig import Rig
from tests.integration.test_never_lose import cache_tag1, go_offline


def test_clear_cache_forgets_cached_cards(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        cache_tag1(rig)
        assert rig.call("ClearCache", {})["status"] == "Accepted"
        go_offline(rig)
        rig.plug()
        rig.card("TAG1")  # no longer known locally, and unknown cards are refused offline
        time.sleep(1.5)
        st = rig.status()
        assert not st["lock"] and st["duty"] is None and "AUTH_FAIL" in st["signals"]


@pytest.mark.parametrize("payload,status", [
    ({"vendorId": "com.example"}, "UnknownVendorId"),
    ({"vendorId": "BrightBlu", "messageId": "NoSuchThing", "data": "x"}, "UnknownMessageId"),
])
def test_data_transfer_answers_cleanly(tmp_path, csms, payload, status):
    with Rig(tmp_path, csms) as rig:
        assert rig.call("DataTransfer", payload)["status"] == status


def test_trigger_message(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        for what in ("Heartbeat", "StatusNotification", "BootNotification"):
            t0 = time.monotonic()
            assert rig.call("TriggerMessage", {"requestedMessage": what})["status"] == "Accepted"
            rig.wait_call(what, since_t=t0)
        t0 = time.monotonic()
        assert rig.call("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1})["status"] == "Accepted"
        st = rig.wait_call("StatusNotification", since_t=t0)
        assert st["connectorId"] == 1 and st["status"] == "Available"


def test_write_only_keys_are_known_keys_without_a_value(tmp_path, csms):
    with Rig(tmp_path, csms, config={"AuthorizationKey": "0123456789abcdef", "WiFiPass": "hunter2hunter2"}) as rig:
        every = {e["key"]: e for e in rig.call("GetConfiguration", {})["configurationKey"]}
        named = rig.call("GetConfiguration", {"key": ["AuthorizationKey", "WiFiPass"]})
        for res in (every, {e["key"]: e for e in named["configurationKey"]}):
            assert res["AuthorizationKey"] == {"key": "AuthorizationKey", "readonly": False}
            assert res["WiFiPass"] == {"key": "WiFiPass", "readonly": False}
        assert "unknownKey" not in named
        assert every["HeartbeatInterval"]["value"]


def test_configuration_survives_power_cuts_at_random_moments(tmp_path, csms):
    rng = random.Random(7)
    rig = Rig(tmp_path, csms)
    with rig:
        for i in range(6):
            value = str(10 + i)
            # Fire the change and cut the power a random moment later: the value is
            # either the old or the new one afterwards, never lost or garbage.
            try:
                csms.send_raw(rig.cp_id, '[2,"c%d","ChangeConfiguration",{"key":"MeterValueSampleInterval","value":"%s"}]'
                              % (i, value))
            except Exception:
                pass
            time.sleep(rng.uniform(0, 0.05))
            t_cut = time.monotonic()
            rig.cmd(cmd="power", on=False)
            rig.cmd(cmd="power", on=True)
            rig.wait_status(1, "Available", since_t=t_cut, timeout=30)
            got = rig.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})["configurationKey"][0]["value"]
            assert got in (value, str(10 + i - 1) if i else "60"), (i, got)
            if got != value:
                assert rig.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": value})["status"] == "Accepted"
        assert "Traceback" not in rig.firmware_log(500)
