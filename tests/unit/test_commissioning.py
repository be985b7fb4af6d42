"""BLE commissioning (docs/commissioning.md) through the app's wiring, over a
fake BLE link (hal.mock Ble): the installer's requests go in as bytes, the
answers and the stored configuration are what is checked."""
import asyncio
import json
import time

import pytest

from firmware import app as app_mod
from firmware import commissioning as C
from firmware.app import App
from firmware.config import Config
from hal.mock.board import Board, ResetRequested
from lib import otp

SECRET = b"12345678901234567890"
URL = "wss://csms.example.com:443/ocpp"


def provision(root, mode="hotp", secret=SECRET, digits=6):
    with open(root + "provision.json", "w") as f:
        json.dump({"variant": "business", "otp": {"secret": secret.hex(), "mode": mode, "digits": digits}}, f)


class Installer:
    """The install app's side of the link."""

    def __init__(self, board):
        self.ble = board.ble
        self.seen = 0

    async def ask(self, line, wait=2.0):
        self.ble.receive(line.encode() + b"\n")
        t0 = time.monotonic()
        while time.monotonic() - t0 < wait:
            text = self.ble.text()
            nl = text.find("\n", self.seen)
            if nl >= 0:
                answer = text[self.seen:nl]
                self.seen = nl + 1
                return answer
            await asyncio.sleep(0.01)
        raise AssertionError("no answer to %r" % line)


def run(tmp_path, scenario, mode="hotp", provisioned=True, monkeypatch=None, uid="A1B2C3D4E5F6"):
    root = str(tmp_path) + "/"
    if provisioned:
        provision(root, mode)
    board = Board(flash_root=root, uid=uid)
    app = App(board)

    async def main():
        task = asyncio.ensure_future(app._commissioning())
        await asyncio.sleep(0)
        try:
            await scenario(app, board, Installer(board))
        finally:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, ResetRequested):
                pass

    if monkeypatch is not None:
        monkeypatch.setattr(app_mod, "_BLE_POLL_S", 0.01)
    asyncio.run(main())
    return root


async def session(board, inst):
    board.ble.connect()
    await asyncio.sleep(0.05)
    return inst


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(app_mod, "_BLE_POLL_S", 0.01)
    monkeypatch.setattr(C, "POLL_S", 0.005)


def test_charger_id_readable_without_otp_and_advertised(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("ID") == "OK A1B2C3D4E5F6"
        assert board.ble.name == "JOLT-C3D4E5F6"
        keys = (await inst.ask("KEYS"))[3:].split(",")
        assert {"OcppChargerId", "OcppServerAddress", "WiFiPrimarySsid", "WiFiPrimaryPass",
                "WiFiConnect", "WiFiSsid", "WiFiPass", "Phase"} <= set(keys)
    run(tmp_path, sc)


def test_right_otp_allows_writes_that_persist_and_follow_config_rules(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("AUTH " + otp.hotp(SECRET, 0)) == "OK"
        assert await inst.ask("SET OcppServerAddress " + URL) == "OK RebootRequired"
        assert await inst.ask("GET OcppServerAddress") == "OK " + URL
        # the guide's URL rules (lib/url.py through the configuration store)
        assert await inst.ask("SET OcppServerAddress ws://host/ocpp") == "ERR Rejected"
        assert await inst.ask("SET OcppServerAddress ws://host:80/ocpp/") == "ERR Rejected"
        assert await inst.ask("SET OcppChargerId JOLT-Site-7") == "OK RebootRequired"
        assert await inst.ask("SET OcppChargerId bad:id") == "ERR Rejected"
        assert await inst.ask("SET WiFiPrimarySsid Depot WiFi 5G") == "OK RebootRequired"
        assert await inst.ask("SET WiFiPrimaryPass pa ss word") == "OK RebootRequired"
        assert await inst.ask("SET WiFiConnect true") == "OK RebootRequired"
        assert await inst.ask("SET Phase Three.Phase") == "OK Accepted"
        assert await inst.ask("SET Phase Two.Phase") == "ERR Rejected"
        assert await inst.ask("GET Phase") == "OK Three.Phase"
        # not a commissioning setting
        assert await inst.ask("SET HeartbeatInterval 10") == "ERR key"
        assert await inst.ask("GET HeartbeatInterval") == "ERR key"
        assert await inst.ask("FROB") == "ERR command"
    root = run(tmp_path, sc)
    cfg = Config(root=root, device_id="X")  # what the next boot reads
    assert cfg.get("OcppServerAddress") == URL
    assert cfg.get("OcppChargerId") == "JOLT-Site-7"
    assert cfg.get("WiFiPrimarySsid") == "Depot WiFi 5G"
    assert cfg.get("WiFiPrimaryPass") == "pa ss word"
    assert cfg.get("WiFiConnect") is True
    assert cfg.get("Phase") == "Three.Phase"
    assert cfg.get("HeartbeatInterval") == 300


def test_write_and_read_without_otp_refused(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("SET OcppServerAddress " + URL) == "ERR auth"
        assert await inst.ask("GET OcppServerAddress") == "ERR auth"
        assert await inst.ask("REBOOT") == "ERR auth"
        assert app.cfg.get("OcppServerAddress") == ""
    run(tmp_path, sc)


def test_wrong_otp_refused(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        right = otp.hotp(SECRET, 0)
        wrong = "%06d" % ((int(right) + 1) % 1000000)
        assert await inst.ask("AUTH " + wrong) == "ERR otp"
        assert await inst.ask("AUTH abcdef") == "ERR otp"
        assert await inst.ask("SET Phase Three.Phase") == "ERR auth"
        assert app.cfg.get("Phase") == "Single.Phase"
    run(tmp_path, sc)


def test_used_otp_never_works_twice_even_after_reboot(tmp_path):
    code = otp.hotp(SECRET, 1)  # look-ahead: support issued counter 1

    async def first(app, board, inst):
        await session(board, inst)
        assert await inst.ask("AUTH " + code) == "OK"
        assert await inst.ask("BYE") == "OK"
        await asyncio.sleep(0.05)
        await session(board, inst)
        assert await inst.ask("AUTH " + code) == "ERR otp"
        assert await inst.ask("AUTH " + otp.hotp(SECRET, 0)) == "ERR otp"  # older counter
        assert await inst.ask("SET Phase Three.Phase") == "ERR auth"

    async def second_boot(app, board, inst):
        await session(board, inst)
        assert await inst.ask("AUTH " + code) == "ERR otp"
        assert await inst.ask("AUTH " + otp.hotp(SECRET, 2)) == "OK"
        assert await inst.ask("SET Phase Three.Phase") == "OK Accepted"

    run(tmp_path, first)
    run(tmp_path, second_boot, provisioned=False)


def test_session_ends_on_disconnect(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("AUTH " + otp.hotp(SECRET, 0)) == "OK"
        board.ble.disconnect()
        await asyncio.sleep(0.05)
        await session(board, inst)
        assert await inst.ask("SET Phase Three.Phase") == "ERR auth"
        assert app.cfg.get("Phase") == "Single.Phase"
    run(tmp_path, sc)


def test_lockout_after_failed_attempts_survives_reconnect_and_reboot(tmp_path, monkeypatch):
    now = [time.ticks_ms()]
    monkeypatch.setattr(time, "ticks_ms", lambda: now[0])

    async def sc(app, board, inst):
        await session(board, inst)
        for _ in range(C._MAX_FAILS):
            assert await inst.ask("AUTH 000000") == "ERR otp"
        good = otp.hotp(SECRET, 0)
        assert (await inst.ask("AUTH " + good)).startswith("ERR locked ")
        board.ble.disconnect()
        await asyncio.sleep(0.05)
        await session(board, inst)
        assert await inst.ask("AUTH " + good) == "ERR locked %d" % C._LOCK_S
        now[0] += C._LOCK_S * 1000 + 1
        assert await inst.ask("AUTH 000000") == "ERR otp"  # one more wrong: a longer lock
        assert await inst.ask("AUTH " + good) == "ERR locked %d" % (2 * C._LOCK_S)

    async def reboot(app, board, inst):
        await session(board, inst)
        assert (await inst.ask("AUTH " + otp.hotp(SECRET, 0))).startswith("ERR locked ")

    run(tmp_path, sc)
    run(tmp_path, reboot, provisioned=False)


def test_secrets_never_readable(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("AUTH " + otp.hotp(SECRET, 0)) == "OK"
        for key, value in (("WiFiPass", "fallback-pw-1"), ("WiFiPrimaryPass", "primary-pw-1"),
                           ("AuthorizationKey", "0123456789abcdef0123")):
            assert (await inst.ask("SET %s %s" % (key, value))).startswith("OK ")
            assert await inst.ask("GET " + key) == "ERR secret"
            assert app.cfg.get(key) == value
        for key in ("OtpSecret", "otp", "secret"):
            assert await inst.ask("GET " + key) == "ERR key"
        text = board.ble.text()
        for s in ("fallback-pw-1\n", "primary-pw-1\n", "0123456789abcdef0123\n", SECRET.hex()):
            assert s not in text.replace("SET", "")
    run(tmp_path, sc)


def test_totp_mode_and_replay(tmp_path):
    async def sc(app, board, inst):
        now = board.clock.now()
        await session(board, inst)
        code = otp.totp(SECRET, now)
        assert await inst.ask("AUTH " + code) == "OK"
        assert await inst.ask("BYE") == "OK"
        await asyncio.sleep(0.05)
        await session(board, inst)
        assert await inst.ask("AUTH " + code) == "ERR otp"  # same time step: replay
        assert await inst.ask("AUTH " + otp.totp(SECRET, now - 300)) == "ERR otp"  # too old
    run(tmp_path, sc, mode="totp")


def test_no_secret_provisioned_refuses(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("ID") == "OK A1B2C3D4E5F6"
        assert await inst.ask("AUTH 123456") == "ERR no-secret"
        assert await inst.ask("SET Phase Three.Phase") == "ERR auth"
    run(tmp_path, sc, provisioned=False)


def test_reboot_after_otp(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        assert await inst.ask("AUTH " + otp.hotp(SECRET, 0)) == "OK"
        assert await inst.ask("REBOOT") == "OK"
        for _ in range(100):
            if board.system.resets:
                break
            await asyncio.sleep(0.02)
        assert board.system.resets == 1
    run(tmp_path, sc)


def test_long_garbage_line_answered_and_session_survives(tmp_path):
    async def sc(app, board, inst):
        await session(board, inst)
        board.ble.receive(b"x" * (C._LINE_MAX + 10))
        await asyncio.sleep(0.05)
        assert "ERR too-long\n" in board.ble.text()
        inst.seen = len(board.ble.text())
        assert await inst.ask("ID") == "OK A1B2C3D4E5F6"
    run(tmp_path, sc)


# ---- RFC test vectors --------------------------------------------------------

RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
RFC6238 = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
           (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")]


def test_rfc4226_appendix_d():
    assert [otp.hotp(SECRET, c) for c in range(10)] == RFC4226


def test_rfc6238_appendix_b_sha1():
    assert [otp.totp(SECRET, t, digits=8) for t, _ in RFC6238] == [c for _, c in RFC6238]


def test_hmac_sha1_rfc2202():
    # RFC 2202 test cases 1, 6 (key longer than the block)
    assert otp.hmac_sha1(b"\x0b" * 20, b"Hi There").hex() == "b617318655057264e28bc0b6fb378c8ef146be00"
    assert otp.hmac_sha1(b"\xaa" * 80, b"Test Using Larger Than Block-Size Key - Hash Key First").hex() == \
        "aa4ae5e15272d00e95705637ce8a3b55ed402112"
