"""The installer flow on the bench: tools/commission.py talks the
commissioning protocol through the bench's BLE central to the firmware on
MicroPython; the result is seen by the central system."""
import time

from tests.integration.rig import Rig
from tools import commission


def test_installer_flow_through_the_bench(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        port, state = rig.bench.port, rig.bench.state_dir
        lines = []
        # no OTP: the charger id only
        assert commission.run(port, state, ["id"], out=lines.append)[0].startswith("OK ")
        # a wrong OTP: refused, nothing written
        answers = commission.run(port, state, ["set", "Phase", "Three.Phase"], code="000000", out=lines.append)
        assert answers == ["ERR otp", "ERR auth"]
        # support's OTP: written, visible to the central system at once (Phase applies without reboot)
        answers = commission.run(port, state, ["set", "Phase", "Three.Phase", "get", "Phase",
                                               "set", "WiFiPass", "fallback-secret", "get", "WiFiPass"],
                                 out=lines.append)
        assert answers == ["OK", "OK Accepted", "OK Three.Phase", "OK RebootRequired", "ERR secret"]
        conf = rig.call("GetConfiguration", {"key": ["Phase"]})["configurationKey"]
        assert conf == [{"key": "Phase", "readonly": False, "value": "Three.Phase"}]
        # the same OTP again: the tool's counter moved on, so replay it by hand
        used = [ln.split(" ")[1] for ln in lines if ln.startswith("AUTH ")][-1]
        assert commission.run(port, state, ["get", "Phase"], code=used, out=lines.append)[0] == "ERR otp"
        # reboot: the firmware restarts
        boots = rig.status()["boots"]
        assert commission.run(port, state, ["reboot"], out=lines.append) == ["OK", "OK"]
        end = time.monotonic() + 20
        while rig.status()["boots"] == boots and time.monotonic() < end:
            time.sleep(0.2)
        assert rig.status()["boots"] == boots + 1
