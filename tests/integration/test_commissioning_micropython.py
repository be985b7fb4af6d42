"""lib/otp.py (RFC 4226 / RFC 6238 vectors) and a commissioning session on
the real MicroPython unix port: what runs on the board (hashlib.sha1, big
integers for 64-bit counters, asyncio, the configuration store)."""
import json

from tests.integration.test_config_micropython import ROOT, run_mp
from tests.unit.test_commissioning import RFC4226, RFC6238, SECRET, URL

SCRIPT = r"""
import sys
sys.path.insert(0, %(root)r)
import asyncio, json
from lib import otp
from firmware.config import Config
from firmware.commissioning import Commissioning
import firmware.commissioning as C
C.POLL_S = 0.001

K = b"12345678901234567890"
out = {"hotp": [otp.hotp(K, c) for c in range(10)],
       "totp": [otp.totp(K, t, digits=8) for t in %(times)r]}


class Link:
    def __init__(self, lines):
        self.rx = "".join(l + "\n" for l in lines).encode()
        self.tx = b""
        self.up = True

    def linked(self):
        return self.up

    def recv(self):
        d, self.rx = self.rx, b""
        if not d:
            self.up = False  # everything answered: the app disconnects
        return d or None

    def send(self, data):
        self.tx += data

    def drop(self):
        self.up = False


class Clock:
    def now(self):
        return 1700000000


cfg = Config(root="", device_id="JOLT-MP-C")
memo = {}
lines = ["ID", "SET Phase Three.Phase", "AUTH " + otp.hotp(K, 0), "SET OcppServerAddress %(url)s",
         "SET WiFiPass secret-pw-1", "GET WiFiPass", "GET OcppServerAddress", "SET Phase Two.Phase"]
link = Link(lines)
asyncio.run(Commissioning(cfg, "AABBCCDDEEFF", Clock(), "", memo).serve(link))
out["answers"] = link.tx.decode().split("\n")[:-1]
link = Link(["AUTH " + otp.hotp(K, 0)] + ["AUTH 000000"] * 5 + ["AUTH " + otp.hotp(K, 1)])
asyncio.run(Commissioning(cfg, "AABBCCDDEEFF", Clock(), "", memo).serve(link))
out["replay"] = link.tx.decode().split("\n")[:-1]
out["stored"] = [Config(root="", device_id="X").get(k) for k in ("OcppServerAddress", "WiFiPass")]
print("RESULT " + json.dumps(out))
"""


def test_rfc_vectors_and_session_on_micropython(tmp_path):
    (tmp_path / "provision.json").write_text(json.dumps({"otp": {"secret": SECRET.hex()}}))
    res, _ = run_mp(tmp_path, SCRIPT % {"root": ROOT, "url": URL, "times": [t for t, _ in RFC6238]})
    assert res["hotp"] == RFC4226
    assert res["totp"] == [c for _, c in RFC6238]
    assert res["answers"] == ["OK AABBCCDDEEFF", "ERR auth", "OK", "OK RebootRequired", "OK RebootRequired",
                              "ERR secret", "OK " + URL, "ERR Rejected"]
    assert res["replay"][0] == "ERR otp"  # counter 0 was used in the first session
    assert res["replay"][1:5] == ["ERR otp"] * 4  # the fifth wrong OTP locks
    assert res["replay"][5].startswith("ERR locked ") and res["replay"][6].startswith("ERR locked ")
    assert res["stored"] == [URL, "secret-pw-1"]
