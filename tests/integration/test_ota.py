"""Signed updates from the SD card into the second application slot, on the
bench (docs/ota.md): the board-like interpreter runs the slots as ROMFS
segments, boot.py installs a package found in DIR/sd/update/, a new version
boots on trial and is rolled back when it never comes up. Packages are made
by tools/ota.py with a key pair from `keygen` in a tmp dir; the board gets the
public key with `tools/sim.py --ota-key`."""
import json
import os
import random
import shutil
import threading
import time

import pytest

from tests.integration import rig as rigmod
from tests.integration.httpd import LocalHTTP, Quiet
from tests.integration.rig import Rig
from tools import ota
from tools.simkit.client import Control
from tools.mpy_build import DEVICE_DIRS, ENTRY_POINTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The slots are ROMFS segments: only the board-like interpreter serves them.
pytestmark = pytest.mark.skipif(not rigmod.BOARD32, reason="A/B slots need the board-like interpreter "
                                "(../shared/micropython-board32/micropython)")


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ota")
    priv, pub = ota.keygen(str(d / "keys"))
    good = str(d / "good.jolt")
    ota.build(priv, "0.2.0", good, board="sim")
    # A version that dies at start: run() raises before anything talks.
    src = d / "src"
    src.mkdir()
    for rel in ENTRY_POINTS:
        shutil.copyfile(os.path.join(ROOT, rel), str(src / rel))
    for sub in DEVICE_DIRS:
        shutil.copytree(os.path.join(ROOT, sub), str(src / sub), ignore=shutil.ignore_patterns("__pycache__"))
    with open(str(src / "firmware" / "app.py"), "a") as f:
        f.write("\n\ndef run():\n    raise RuntimeError('broken build')\n")
    older = str(d / "older.jolt")
    ota.build(priv, "0.0.5", older, board="sim", variant="business")
    crash = str(d / "crash.jolt")
    ota.build(priv, "0.3.0", crash, board="sim", src=str(src))
    data = open(good, "rb").read()
    raw, sig, img = ota.parse(data)
    head = len(data) - len(img)
    bad_sig = bytearray(data)
    bad_sig[head - 1] ^= 1
    corrupt = bytearray(data)
    corrupt[head + len(img) // 2] ^= 0x10
    old_raw, old_sig = ota.sign_manifest(ota.load_private(priv), dict(json.loads(raw), version="0.0.5"))
    return {"pub": pub, "priv": priv, "good": data, "older": open(older, "rb").read(), "crash": open(crash, "rb").read(),
            "bad": {"a-badsig.jolt": (bytes(bad_sig), "bad signature"),
                    "b-corrupt.jolt": (bytes(corrupt), "image hash mismatch"),
                    "c-truncated.jolt": (data[:-4096], "truncated package"),
                    "d-older.jolt": (ota.pack(old_raw, old_sig, img), "older than the running 0.1.0")}}


def board(tmp_path, csms, pkgs, files, config=None):
    state = tmp_path / "state"
    upd = state / "sd" / "update"
    upd.mkdir(parents=True)
    for name, data in files.items():
        (upd / name).write_bytes(data)
    return Rig(tmp_path, csms, ota_key=pkgs["pub"], state=state, config=config), state


def versions(rig):
    return [p["firmwareVersion"] for p in rig.calls("BootNotification")]


def test_signed_package_on_the_sd_card_is_installed_at_boot(tmp_path, csms, pkgs):
    rig, state = board(tmp_path, csms, pkgs, {"new.jolt": pkgs["good"]})
    with rig:
        rig.wait_call("BootNotification", timeout=20)
        assert versions(rig) == ["0.2.0"]
        assert sorted(os.listdir(str(state / "sd" / "update"))) == ["new.jolt.done"]  # not applied twice
        log = rig.firmware_log(400)
        assert "version 0.2.0 installed in slot 1: trial boot" in log, log
        rig.wait_bench(lambda s: "version 0.2.0 healthy after 1 trial boot(s)" in rig.firmware_log(400),
                       what="trial boot ended")
        # A healthy version stays through power cycles (no trial left to count).
        for _ in range(2):
            t0 = rig.now()
            rig.cmd(cmd="power", on=False)
            rig.cmd(cmd="power", on=True)
            rig.wait_call("BootNotification", timeout=20, since_t=t0)
        assert versions(rig) == ["0.2.0"] * 3
        assert "boot: trial boot" not in rig.firmware_log(1000)
        assert json.loads((state / "flash" / "boot.json").read_text()) == {"slot": 1}


def test_bad_packages_are_refused_with_nothing_changed(tmp_path, csms, pkgs):
    rig, state = board(tmp_path, csms, pkgs, {n: v[0] for n, v in pkgs["bad"].items()})
    with rig:
        rig.wait_call("BootNotification", timeout=20)
        assert versions(rig) == ["0.1.0"]
        log = rig.firmware_log(400)
        for name, (_, reason) in pkgs["bad"].items():
            line = [x for x in log.splitlines() if name in x and "refused" in x]
            assert line and reason in line[0], (name, log)
        assert sorted(os.listdir(str(state / "sd" / "update"))) == sorted(n + ".refused" for n in pkgs["bad"])
        # Nothing written: no second slot, no slot record.
        assert not (state / "romfs_b.img").exists()
        assert not (state / "flash" / "boot.json").exists()


def test_version_that_crashes_at_start_is_rolled_back_after_three_trial_boots(tmp_path, csms, pkgs):
    rig, state = board(tmp_path, csms, pkgs, {"crash.jolt": pkgs["crash"]})
    with rig:
        rig.wait_call("BootNotification", timeout=60)
        assert versions(rig) == ["0.1.0"]  # 0.3.0 never talked
        log = rig.firmware_log(1000)
        assert log.count("broken build") == 3, log
        assert "version 0.3.0 not healthy after 3 trial boots: back to slot 0" in log
        rig.wait_bench(lambda s: "update to 0.3.0 rolled back" in rig.firmware_log(400), what="rollback reported")
        assert rig.status()["boots"] == 4
        assert json.loads((state / "flash" / "boot.json").read_text()) == {"slot": 0}
        assert os.listdir(str(state / "sd" / "update")) == ["crash.jolt.done"]



def test_power_cuts_during_an_update_leave_a_charger_that_boots(tmp_path, csms, pkgs):
    """Power off at seeded moments after power-on, through a second control
    connection while the first is still starting the board: in boot.py
    (checking the package, writing the slot, switching the record) or in the
    trial boot. Each time the charger boots again and connects with the old
    or the new version, never neither. Each round offers a newer package (the
    same image re-signed as 0.2.N, so every round installs)."""
    rng = random.Random(int(os.environ.get("JOLT_OTA_SEED", "13")))
    raw, sig, img = ota.parse(pkgs["good"])
    rig, state = board(tmp_path, csms, pkgs, {})
    upd = state / "sd" / "update"
    cut_in_boot = 0
    with rig:
        for i in range(10):
            if not [n for n in os.listdir(str(upd)) if n.endswith(".jolt")]:
                m, s = ota.sign_manifest(ota.load_private(pkgs["priv"]), dict(json.loads(raw), version="0.2.%d" % (i + 1)))
                (upd / ("u%02d.jolt" % i)).write_bytes(ota.pack(m, s, img))
            rig.cmd(cmd="power", on=False)
            _, seen = rig.bench.events()
            on = threading.Thread(target=rig.cmd, kwargs={"cmd": "power", "on": True})
            on.start()
            time.sleep(rng.uniform(0, 0.02) if i % 2 == 0 else rng.uniform(0.02, 0.8))
            cut = Control(rig.bench.port)
            cut.cmd({"cmd": "power", "on": False})
            cut.close()
            on.join()
            evs, _ = rig.bench.events(seen)
            cut_in_boot += any(e["kind"] == "boot.py" and e["value"]["cut"] for e in evs)
            t0 = rig.now()
            rig.cmd(cmd="power", on=True)
            p = rig.wait_call("BootNotification", timeout=30, since_t=t0)
            assert p["firmwareVersion"] in ("0.1.0", "0.2.0")
            assert json.loads((state / "flash" / "boot.json").read_text())["slot"] in (0, 1)
    print("cuts in boot.py: %d of 10" % cut_in_boot)
    assert cut_in_boot >= 1, "no cut reached boot.py"


def test_failed_sd_card_turns_updates_from_the_card_off(tmp_path, csms, pkgs):
    rig, state = board(tmp_path, csms, pkgs, {})
    with rig:
        rig.wait_call("BootNotification", timeout=20)
        rig.cmd(cmd="fail", part="sd_card", active=True)
        (state / "sd" / "update" / "new.jolt").write_bytes(pkgs["good"])
        t0 = rig.now()
        rig.cmd(cmd="power", on=False)
        rig.cmd(cmd="power", on=True)
        rig.wait_call("BootNotification", timeout=20, since_t=t0)
        assert versions(rig) == ["0.1.0", "0.1.0"]
        assert "updates from the card off" in rig.firmware_log(400)
        assert os.listdir(str(state / "sd" / "update")) == ["new.jolt"]
        # The card back: the next boot installs it.
        rig.cmd(cmd="fail", part="sd_card", active=False)
        t0 = rig.now()
        rig.cmd(cmd="power", on=False)
        rig.cmd(cmd="power", on=True)
        assert rig.wait_call("BootNotification", timeout=20, since_t=t0)["firmwareVersion"] == "0.2.0"


def test_older_version_installed_when_the_configuration_allows_downgrades(tmp_path, csms, pkgs):
    rig, state = board(tmp_path, csms, pkgs, {"old.jolt": pkgs["older"]},
                       config={"FirmwareAllowDowngrade": "true"})
    with rig:
        rig.wait_call("BootNotification", timeout=20)
        assert versions(rig) == ["0.0.5"]
        assert os.listdir(str(state / "sd" / "update")) == ["old.jolt.done"]


class Files(LocalHTTP):
    """A local HTTP server for UpdateFirmware: path -> bytes; `fail` first
    requests answered 503. Records every request path."""

    def __init__(self, files, fail=0):
        outer = self
        self.files = files
        self.fail = fail
        self.requests = []

        class H(Quiet):
            def do_GET(self):
                outer.requests.append(self.path)
                if outer.fail > 0:
                    outer.fail -= 1
                    self.send_error(503)
                    return
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(H)


def update_firmware(rig, location, retries=2, interval=1):
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rig.call("UpdateFirmware", {"location": location, "retrieveDate": now, "retries": retries,
                                       "retryInterval": interval}) == {}


def fw_statuses(rig, since_t):
    return [p["status"] for p in rig.calls("FirmwareStatusNotification", since_t=since_t)]


def test_update_firmware_over_ocpp_with_a_retried_download(tmp_path, csms, pkgs):
    srv = Files({"/fw/jolt-0.2.0.jolt": pkgs["good"]}, fail=1)
    try:
        rig, state = board(tmp_path, csms, pkgs, {})
        with rig:
            t0 = rig.now()
            update_firmware(rig, srv.url + "/fw/jolt-0.2.0.jolt")
            rig.wait_call("BootNotification", timeout=40, since_t=t0)
            rig.wait_call("FirmwareStatusNotification", timeout=20, since_t=t0,
                          where=lambda p: p["status"] == "Installed")
            assert versions(rig) == ["0.1.0", "0.2.0"]
            assert fw_statuses(rig, t0) == ["Downloading", "Downloading", "Downloaded", "Installing", "Installed"]
            assert srv.requests == ["/fw/jolt-0.2.0.jolt"] * 2
            # Idle once done (TriggerMessage reports the current state).
            t1 = rig.now()
            rig.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
            assert rig.wait_call("FirmwareStatusNotification", since_t=t1)["status"] == "Idle"
    finally:
        srv.close()


def test_update_firmware_refused_or_not_downloaded_changes_nothing(tmp_path, csms, pkgs):
    bad = pkgs["bad"]["a-badsig.jolt"][0]
    srv = Files({"/bad.jolt": bad})
    try:
        rig, state = board(tmp_path, csms, pkgs, {})
        with rig:
            t0 = rig.now()
            update_firmware(rig, srv.url + "/missing.jolt", retries=2, interval=1)
            rig.wait_call("FirmwareStatusNotification", timeout=20, since_t=t0,
                          where=lambda p: p["status"] == "DownloadFailed")
            assert fw_statuses(rig, t0) == ["Downloading", "Downloading", "DownloadFailed"]
            assert srv.requests == ["/missing.jolt"] * 2
            assert rig.status()["boots"] == 1 and os.listdir(str(state / "sd" / "update")) == []
            # A bad signature: boot.py refuses it after the reboot, before anything changes.
            t1 = rig.now()
            update_firmware(rig, srv.url + "/bad.jolt")
            rig.wait_call("FirmwareStatusNotification", timeout=30, since_t=t1,
                          where=lambda p: p["status"] == "InstallationFailed")
            assert fw_statuses(rig, t1) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
            assert "ota.jolt refused: bad signature" in rig.firmware_log(300)
            assert versions(rig) == ["0.1.0", "0.1.0"]
            assert os.listdir(str(state / "sd" / "update")) == ["ota.jolt.refused"]
            assert not (state / "romfs_b.img").exists()
            assert not (state / "flash" / "boot.json").exists()
    finally:
        srv.close()


def test_update_firmware_waits_for_the_running_transaction(tmp_path, csms, pkgs):
    from tests.integration.test_sessions import charging

    srv = Files({"/p.jolt": pkgs["good"]})
    try:
        rig, state = board(tmp_path, csms, pkgs, {})
        with rig:
            charging(rig)
            t0 = rig.now()
            update_firmware(rig, srv.url + "/p.jolt")
            time.sleep(4)  # nothing while charging, not even the download
            assert fw_statuses(rig, t0) == [] and srv.requests == []
            assert rig.status()["relay"] is True and rig.status()["boots"] == 1
            t1 = rig.now()
            rig.card("TAG1")  # the driver ends the session
            rig.wait_call("StopTransaction", since_t=t1)
            rig.wait_call("FirmwareStatusNotification", timeout=30, since_t=t0,
                          where=lambda p: p["status"] == "Installed")
            assert fw_statuses(rig, t0) == ["Downloading", "Downloaded", "Installing", "Installed"]
            assert versions(rig) == ["0.1.0", "0.2.0"]
    finally:
        srv.close()


def test_update_firmware_to_a_version_that_crashes_reports_installation_failed(tmp_path, csms, pkgs):
    srv = Files({"/crash.jolt": pkgs["crash"]})
    try:
        rig, state = board(tmp_path, csms, pkgs, {})
        with rig:
            t0 = rig.now()
            update_firmware(rig, srv.url + "/crash.jolt")
            rig.wait_call("FirmwareStatusNotification", timeout=60, since_t=t0,
                          where=lambda p: p["status"] == "InstallationFailed")
            assert fw_statuses(rig, t0) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
            assert versions(rig) == ["0.1.0", "0.1.0"]  # 0.3.0 never came up; rolled back
            assert "not healthy after 3 trial boots" in rig.firmware_log(1000)
    finally:
        srv.close()


def test_package_on_a_card_inserted_while_running_is_installed(tmp_path, csms, pkgs):
    rig, state = board(tmp_path, csms, pkgs, {})
    with rig:
        rig.wait_call("BootNotification", timeout=20)
        rig.cmd(cmd="fail", part="sd_card", active=True)  # the card out
        time.sleep(3)
        (state / "sd" / "update" / "new.jolt").write_bytes(pkgs["good"])
        t0 = rig.now()
        rig.cmd(cmd="fail", part="sd_card", active=False)  # and in again, with the package
        assert rig.wait_call("BootNotification", timeout=30, since_t=t0)["firmwareVersion"] == "0.2.0"
        assert "card inserted with an update" in rig.firmware_log(400)
        assert os.listdir(str(state / "sd" / "update")) == ["new.jolt.done"]


def test_trial_without_a_central_system_is_healthy_after_the_configured_time(tmp_path, pkgs):
    from tools.simkit.client import BenchProcess

    state = tmp_path / "state"
    (state / "sd" / "update").mkdir(parents=True)
    (state / "sd" / "update" / "new.jolt").write_bytes(pkgs["good"])
    # Nobody listens there: the charger stays without a central system.
    bench = BenchProcess(state, "ws://127.0.0.1:9/ocpp", "CP1", config={"FirmwareTrialOffline": "3"},
                         heapsize=rigmod.HEAP, runtime=rigmod.RUNTIME, ota_key=pkgs["pub"])
    bench.start()
    try:
        deadline = time.monotonic() + 30
        while "healthy: " not in "\n".join(bench.log(300)) and time.monotonic() < deadline:
            time.sleep(0.2)
        log = "\n".join(bench.log(300))
        assert "version 0.2.0 healthy: 3 s without a central system, no fault" in log, log
        assert json.loads((state / "flash" / "boot.json").read_text()) == {"slot": 1}
        # Later boots stay on it: no trial left to fail.
        for _ in range(3):
            bench.cmd({"cmd": "power", "on": False})
            bench.cmd({"cmd": "power", "on": True})
        time.sleep(1)
        assert json.loads((state / "flash" / "boot.json").read_text()) == {"slot": 1}
        assert "app: boot 0.2.0" in "\n".join(bench.log(30))
    finally:
        bench.stop()
