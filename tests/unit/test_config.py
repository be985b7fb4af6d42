"""Configuration store (firmware/config.py, firmware/params.py) on CPython."""
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import config as config_mod
from firmware import params
from firmware.config import Config
from lib import fsutil

DEV = "JOLT-1234"

ALIGNED_BUSINESS = (
    "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Energy.Reactive.Import.Register,Temperature,Power.Reactive.Import,Frequency,"
    "Power.Factor,Current.Offered,Power.Offered"
)
ALIGNED_HOMEPLUS = (
    "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Temperature,Current.Offered,Power.Offered"
)
SAMPLED = (
    "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Temperature,Frequency,Power.Factor,Current.Offered"
)

# The integration guide's table, written out independently of params.py.
GUIDE = {
    "AllowOfflineTxForUnknownId": False,
    "AuthorizationCacheEnabled": True,
    "AuthorizeRemoteTxRequests": False,
    "MaxCurrentLimit": 32,
    "ClockAlignedDataInterval": 0,
    "ConnectionTimeOut": 60,
    "ConnectorPhaseRotation": "NotApplicable",
    "ConnectorPhaseRotationMaxLength": 25,
    "DefaultIdTag": "",
    "FreeMode": False,
    "GetConfigurationMaxKeys": 50,
    "HeartbeatInterval": 300,
    "LocalAuthListEnabled": True,
    "LocalAuthListMaxLength": 1000,
    "LocalAuthorizeOffline": True,
    "LocalPreAuthorize": False,
    "MaxEnergyOnInvalidId": 0,
    "MeterValuesAlignedData": None,  # per variant
    "MeterValuesAlignedDataMaxLength": 500,
    "MeterValueSampleInterval": 60,
    "MeterValuesSampledData": SAMPLED,
    "MeterValuesSampledDataMaxLength": 500,
    "NumberOfConnectors": 1,
    "OcppChargerId": DEV,
    "OcppServerAddress": "",
    "OnPowerLossRestart": False,
    "Phase": "Single.Phase",
    "ResetRetries": 1,
    "SendLocalListMaxLength": 30,
    "StopTransactionOnEVSideDisconnect": True,
    "StopTransactionOnInvalidId": True,
    "StopTxnAlignedData": "Energy.Active.Import.Register",
    "StopTxnAlignedDataMaxLength": 500,
    "StopTxnSampledData": "Energy.Active.Import.Register",
    "StopTxnSampledDataMaxLength": 500,
    "SupportedFeatureProfiles": "Core,FirmwareManagement,LocalAuthListManagement,Reservation,RemoteTrigger",
    "SupportedFeatureProfilesMaxLength": 15,
    "suspendedEVTimeout": 900,
    "TransactionMessageAttempts": 3,
    "TransactionMessageRetryInterval": 30,
    "UnlockConnectorOnEVSideDisconnect": True,
    "WiFiConnect": False,
    "WiFiPass": "N/A",
    "WiFiSsid": "N/A",
}
EXTRA = {"AuthorizationKey": "", "WebSocketPingInterval": 60, "ReserveConnectorZeroSupported": False,
         "WiFiPrimarySsid": "", "WiFiPrimaryPass": "", "FirmwareAllowDowngrade": False,
         "FirmwareTrialOffline": 600}
SECRETS = ("AuthorizationKey", "WiFiPass", "WiFiPrimaryPass")

READ_ONLY = {
    "MeterValuesSampledData", "NumberOfConnectors", "ConnectorPhaseRotationMaxLength",
    "MeterValuesAlignedDataMaxLength", "MeterValuesSampledDataMaxLength",
    "StopTxnAlignedDataMaxLength", "StopTxnSampledDataMaxLength",
    "SupportedFeatureProfilesMaxLength", "GetConfigurationMaxKeys", "LocalAuthListMaxLength",
    "SendLocalListMaxLength", "SupportedFeatureProfiles", "ReserveConnectorZeroSupported",
}
UNITS = {
    "MaxCurrentLimit": "A", "ClockAlignedDataInterval": "s", "ConnectionTimeOut": "s",
    "HeartbeatInterval": "s", "MaxEnergyOnInvalidId": "Wh", "MeterValueSampleInterval": "s",
    "suspendedEVTimeout": "s", "TransactionMessageRetryInterval": "s", "WebSocketPingInterval": "s",
    "FirmwareTrialOffline": "s",
}
URL = "wss://csms.example.com:443/ocpp"


def mk(root, variant=None, device_id=DEV):
    return Config(root=str(root) + "/", device_id=device_id, variant=variant)


def write(path, data):
    with open(str(path), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def saved(root):
    with open(os.path.join(str(root), "config.json")) as f:
        return json.load(f)


# ---- table ----------------------------------------------------------------

@pytest.mark.parametrize("variant,aligned", [("business", ALIGNED_BUSINESS), ("homeplus", ALIGNED_HOMEPLUS)])
def test_every_guide_parameter_with_default(tmp_path, variant, aligned):
    cfg = mk(tmp_path, variant)
    assert cfg.variant == variant
    expected = dict(GUIDE, MeterValuesAlignedData=aligned, **EXTRA)
    assert sorted(cfg.keys()) == sorted(expected)
    for key, value in expected.items():
        got = cfg.get(key)
        assert got == value and type(got) is type(value), key
    assert not os.path.exists(os.path.join(str(tmp_path), "config.json"))


def test_table_shape_units_and_flags(tmp_path):
    cfg = mk(tmp_path)
    for row in params.TABLE:
        assert len(row) == 8
        key = row[0]
        assert cfg.unit(key) == UNITS.get(key, ""), key
        assert cfg.readonly(key) == (key in READ_ONLY), key
    assert len(params.MEASURANDS) == 22
    assert "MaxCurrentLimit(A)" not in cfg.keys()


def test_unknown_key(tmp_path):
    cfg = mk(tmp_path)
    with pytest.raises(KeyError):
        cfg.get("NoSuchKey")
    assert cfg.set("NoSuchKey", "1") == "NotSupported"
    assert cfg.set("heartbeatinterval", "1") == "NotSupported"  # keys are case-sensitive
    with pytest.raises(KeyError):
        cfg.set_internal("NoSuchKey", 1)


# ---- ChangeConfiguration validation ------------------------------------------

@pytest.mark.parametrize("key", sorted(READ_ONLY))
def test_read_only_rejected(tmp_path, key):
    cfg = mk(tmp_path)
    before = cfg.get(key)
    value = "true" if isinstance(before, bool) else ("5" if isinstance(before, int) else "Voltage")
    assert cfg.set(key, value) == "Rejected"
    assert cfg.get(key) == before
    assert not os.path.exists(os.path.join(str(tmp_path), "config.json"))


def test_bool(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("FreeMode", "TRUE") == "Accepted"
    assert cfg.get("FreeMode") is True
    assert cfg.set("FreeMode", "False") == "Accepted"
    assert cfg.get("FreeMode") is False
    for bad in ("1", "yes", "", " true", "truee", "0"):
        assert cfg.set("FreeMode", bad) == "Rejected", bad
    assert cfg.get("FreeMode") is False


def test_int_and_ranges(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("HeartbeatInterval", "0") == "Accepted"
    assert cfg.get("HeartbeatInterval") == 0
    assert cfg.set("HeartbeatInterval", "0120") == "Accepted"
    assert cfg.get("HeartbeatInterval") == 120
    for bad in ("-1", "+5", "1.5", "", " 5", "5 ", "1e3", "0x10", "abc", "99999999999"):
        assert cfg.set("HeartbeatInterval", bad) == "Rejected", bad
    assert cfg.get("HeartbeatInterval") == 120
    assert cfg.set("MeterValueSampleInterval", "0") == "Accepted"
    # MaxCurrentLimit: 6..32 A, the guide says it will not exceed 32 A
    assert cfg.set("MaxCurrentLimit", "33") == "Rejected"
    assert cfg.set("MaxCurrentLimit", "5") == "Rejected"
    assert cfg.set("MaxCurrentLimit", "6") == "Accepted"
    assert cfg.set("MaxCurrentLimit", "32") == "Accepted"
    assert cfg.get("MaxCurrentLimit") == 32
    assert cfg.set("ResetRetries", "11") == "Rejected"
    assert cfg.set("ConnectionTimeOut", "0") == "Rejected"
    assert cfg.set("WebSocketPingInterval", "0") == "Accepted"
    assert cfg.get("WebSocketPingInterval") == 0


def test_value_must_be_str(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("HeartbeatInterval", 120) == "Rejected"
    assert cfg.set("FreeMode", True) == "Rejected"
    assert cfg.set("DefaultIdTag", None) == "Rejected"


def test_measurand_lists(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("MeterValuesAlignedData", "Voltage,SoC,RPM") == "Accepted"
    assert cfg.get("MeterValuesAlignedData") == "Voltage,SoC,RPM"
    assert cfg.set("StopTxnSampledData", "Energy.Active.Import.Register, Current.Import") == "Accepted"
    assert cfg.get("StopTxnSampledData") == "Energy.Active.Import.Register,Current.Import"
    assert cfg.set("StopTxnAlignedData", "") == "Accepted"
    assert cfg.get("StopTxnAlignedData") == ""
    assert cfg.set("StopTxnAlignedData", ",".join(params.MEASURANDS)) == "Accepted"
    for bad in ("Voltage,Bogus", "voltage", "Voltage,,SoC", "Voltage,", "Voltage,Voltage", "Voltage;SoC"):
        assert cfg.set("MeterValuesAlignedData", bad) == "Rejected", bad
    assert cfg.get("MeterValuesAlignedData") == "Voltage,SoC,RPM"


def test_list_length_bounded_by_companion_max_length(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("MeterValuesAlignedData", "Voltage") == "Accepted"
    cfg.set_internal("MeterValuesAlignedDataMaxLength", 2)
    assert cfg.set("MeterValuesAlignedData", "Voltage,SoC,RPM") == "Rejected"
    assert cfg.set("MeterValuesAlignedData", "Voltage,SoC") == "Accepted"
    cfg.set_internal("StopTxnSampledDataMaxLength", 1)
    assert cfg.set("StopTxnSampledData", "Voltage,SoC") == "Rejected"
    assert cfg.set("StopTxnSampledData", "Voltage") == "Accepted"
    cfg.set_internal("StopTxnAlignedDataMaxLength", 1)
    assert cfg.set("StopTxnAlignedData", "Voltage,SoC") == "Rejected"
    # lowering a MaxLength below the items already configured is refused
    with pytest.raises(ValueError):
        cfg.set_internal("MeterValuesAlignedDataMaxLength", 1)
    assert cfg.get("MeterValuesAlignedDataMaxLength") == 2
    with pytest.raises(ValueError):
        cfg.set_internal("MeterValuesSampledDataMaxLength", 3)  # 8 sampled measurands
    with pytest.raises(ValueError):
        cfg.set_internal("SupportedFeatureProfilesMaxLength", 4)  # 5 profiles


def test_read_only_lists_validated_internally(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set_internal("SupportedFeatureProfiles", "Core,SmartCharging") is True
    assert cfg.get("SupportedFeatureProfiles") == "Core,SmartCharging"
    with pytest.raises(ValueError):
        cfg.set_internal("SupportedFeatureProfiles", "Core,Bogus")
    assert cfg.set_internal("MeterValuesSampledData", "Voltage") is True
    with pytest.raises(ValueError):
        cfg.set_internal("MeterValuesSampledData", "Voltage,Nope")


def test_phase(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("Phase", "Three.Phase") == "Accepted"
    assert cfg.get("Phase") == "Three.Phase"
    for bad in ("three.phase", "Three", "", "Split.Phase", "Single.Phase "):
        assert cfg.set("Phase", bad) == "Rejected", bad
    assert cfg.set("Phase", "Single.Phase") == "Accepted"


def test_connector_phase_rotation(tmp_path):
    cfg = mk(tmp_path)
    for good in ("Unknown", "NotApplicable", "0.RST", "0.RST,1.TSR", "1.NotApplicable", "1.Unknown"):
        assert cfg.set("ConnectorPhaseRotation", good) == "Accepted", good
        assert cfg.get("ConnectorPhaseRotation") == good
    for bad in ("", "RST", "1.XYZ", "2.RST", "a.RST", "1.RST,1.RTS", ".RST", "1RST", "NotApplicable,0.RST"):
        assert cfg.set("ConnectorPhaseRotation", bad) == "Rejected", bad
    cfg.set_internal("NumberOfConnectors", 2)
    assert cfg.set("ConnectorPhaseRotation", "0.RST,1.RST,2.SRT") == "Accepted"
    with pytest.raises(ValueError):
        cfg.set_internal("NumberOfConnectors", 1)  # would orphan connector 2's entry
    cfg.set_internal("ConnectorPhaseRotationMaxLength", 3)
    cfg.set_internal("NumberOfConnectors", 8)
    assert cfg.set("ConnectorPhaseRotation", "0.RST,1.RST,2.RST,3.RST") == "Rejected"


def test_ocpp_server_address(tmp_path, capsys):
    cfg = mk(tmp_path)
    assert cfg.set("OcppServerAddress", URL) == "RebootRequired"
    assert cfg.get("OcppServerAddress") == URL
    assert cfg.set("OcppServerAddress", "ws://10.0.0.2:80") == "RebootRequired"
    capsys.readouterr()
    cases = {
        "ws://host/ocpp": "port",                  # port mandatory
        "wss://host:443/ocpp/": "trailing slash",  # no trailing slash
        "http://host:80/ocpp": "scheme",           # ws/wss only
        "https://host:443": "scheme",
        "ws://host:99999/x": "port",
    }
    for bad, reason in cases.items():
        assert cfg.set("OcppServerAddress", bad) == "Rejected", bad
        out = capsys.readouterr().out
        assert "OcppServerAddress" in out and reason in out, (bad, out)
    assert cfg.get("OcppServerAddress") == "ws://10.0.0.2:80"
    assert cfg.set("OcppServerAddress", "") == "RebootRequired"  # empty = not configured
    assert cfg.get("OcppServerAddress") == ""
    assert cfg.set("OcppServerAddress", "ws://h:80/" + "a" * 500) == "Rejected"


def test_ocpp_server_address_without_the_charger_id(tmp_path, capsys):
    """The guide: "Do not include ... the charger ID in the URL" (it is appended)."""
    cfg = mk(tmp_path)
    assert cfg.get("OcppChargerId") == DEV
    for bad in ("ws://host:80/ocpp/" + DEV, "wss://host:443/" + DEV, "ws://host:80/" + DEV + "/ocpp"):
        assert cfg.set("OcppServerAddress", bad) == "Rejected", bad
        assert "charger ID" in capsys.readouterr().out
    assert cfg.get("OcppServerAddress") == ""
    for good in ("ws://host:80/ocpp/" + DEV + "0", "ws://" + DEV.lower() + ".example.com:80/ocpp"):
        assert cfg.set("OcppServerAddress", good) == "RebootRequired", good
    assert cfg.set("OcppServerAddress", URL) == "RebootRequired"
    # nor may the charger ID become a segment of the configured URL
    assert cfg.set("OcppChargerId", "ocpp") == "Rejected"
    assert cfg.get("OcppChargerId") == DEV
    assert cfg.set("OcppChargerId", "CP-7") == "RebootRequired"
    assert cfg.set("OcppServerAddress", "wss://csms.example.com:443/CP-7") == "Rejected"
    assert cfg.set("OcppServerAddress", "") == "RebootRequired"  # clearing it stays possible


def test_strings_bounded(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("DefaultIdTag", "A" * 20) == "Accepted"
    assert cfg.set("DefaultIdTag", "A" * 21) == "Rejected"
    assert cfg.set("DefaultIdTag", "bad\nline") == "Rejected"
    assert cfg.set("WiFiSsid", "S" * 33) == "Rejected"
    assert cfg.set("WiFiSsid", "Home WiFi") == "RebootRequired"
    assert cfg.set("OcppChargerId", "") == "Rejected"
    assert cfg.set("OcppChargerId", "A" * 49) == "Rejected"
    assert cfg.set("OcppChargerId", "with space") == "Rejected"
    assert cfg.set("OcppChargerId", "user:colon") == "Rejected"
    assert cfg.set("OcppChargerId", "CP_01-a.b") == "RebootRequired"
    assert cfg.get("OcppChargerId") == "CP_01-a.b"


def test_authorization_key(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("AuthorizationKey", "short") == "Rejected"
    assert cfg.set("AuthorizationKey", "x" * 41) == "Rejected"
    assert cfg.set("AuthorizationKey", "0123456789abcdef") == "RebootRequired"
    assert cfg.get("AuthorizationKey") == "0123456789abcdef"
    assert cfg.set("AuthorizationKey", "") == "RebootRequired"
    assert cfg.get("AuthorizationKey") == ""


@pytest.mark.parametrize("key,value", [
    ("OcppChargerId", "NEW-ID"), ("OcppServerAddress", URL), ("AuthorizationKey", "k" * 20),
    ("WiFiConnect", "true"), ("WiFiSsid", "ssid"), ("WiFiPass", "password1"),
])
def test_reboot_required_keys_store_the_value(tmp_path, key, value):
    cfg = mk(tmp_path)
    assert cfg.set(key, value) == "RebootRequired"
    again = mk(tmp_path)
    assert config_mod._to_str(params.T_BOOL if key == "WiFiConnect" else params.T_STR, again.get(key)) == value
    # unchanged value: nothing to restart
    assert again.set(key, value) == "Accepted"


def test_number_of_connectors_reboot_flag():
    row = [r for r in params.TABLE if r[0] == "NumberOfConnectors"][0]
    assert row[4] & params.F_REBOOT and row[4] & params.F_RO


# ---- set_internal -------------------------------------------------------------

def test_set_internal_types(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set_internal("HeartbeatInterval", 900) is True
    assert cfg.get("HeartbeatInterval") == 900
    assert cfg.set_internal("HeartbeatInterval", 900) is False
    for bad in ("900", 9.0, True, None, -1):
        with pytest.raises(ValueError):
            cfg.set_internal("HeartbeatInterval", bad)
    with pytest.raises(ValueError):
        cfg.set_internal("FreeMode", 1)
    with pytest.raises(ValueError):
        cfg.set_internal("Phase", "Two.Phase")
    assert cfg.set_internal("NumberOfConnectors", 2) is True  # read-only bypassed
    assert mk(tmp_path).get("HeartbeatInterval") == 900
    assert mk(tmp_path).get("NumberOfConnectors") == 2


# ---- persistence --------------------------------------------------------------

def test_persist_only_differences(tmp_path):
    cfg = mk(tmp_path, "homeplus")
    cfg.set("HeartbeatInterval", "120")
    cfg.set("FreeMode", "true")
    cfg.set("MeterValuesAlignedData", ALIGNED_BUSINESS)  # differs from the homeplus default
    assert saved(tmp_path) == {"HeartbeatInterval": 120, "FreeMode": True,
                               "MeterValuesAlignedData": ALIGNED_BUSINESS}
    cfg.set("HeartbeatInterval", "300")  # back to default: no longer stored
    assert saved(tmp_path) == {"FreeMode": True, "MeterValuesAlignedData": ALIGNED_BUSINESS}
    again = mk(tmp_path, "homeplus")
    assert again.get("HeartbeatInterval") == 300
    assert again.get("FreeMode") is True
    assert again.get("MeterValuesAlignedData") == ALIGNED_BUSINESS
    assert not os.path.exists(os.path.join(str(tmp_path), "config.json.new"))


def test_writes_only_on_change(tmp_path, monkeypatch):
    calls = []
    real = fsutil.write_atomic
    monkeypatch.setattr(fsutil, "write_atomic", lambda p, d: (calls.append(p), real(p, d)))
    cfg = mk(tmp_path)
    assert calls == []  # loading never writes
    cfg.set("HeartbeatInterval", "120")
    cfg.set("HeartbeatInterval", "120")
    cfg.set("FreeMode", "false")  # already the value
    cfg.set("Phase", "Bogus")
    cfg.set("NumberOfConnectors", "2")
    cfg.set_internal("HeartbeatInterval", 120)
    assert calls == [str(tmp_path) + "/config.json"]


def test_failed_write_rejects_and_keeps_old(tmp_path, monkeypatch):
    cfg = mk(tmp_path)
    cfg.set("HeartbeatInterval", "120")
    seen = []
    cfg.subscribe(lambda k, v: seen.append(k))

    def boom(src, dst):
        raise OSError(28, "no space")

    monkeypatch.setattr(os, "rename", boom)
    monkeypatch.setattr(os, "remove", lambda p: None)
    assert cfg.set("HeartbeatInterval", "240") == "Rejected"
    assert cfg.get("HeartbeatInterval") == 120
    assert seen == []
    monkeypatch.undo()
    os.remove(os.path.join(str(tmp_path), "config.json.new"))
    assert mk(tmp_path).get("HeartbeatInterval") == 120


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00garbage\x80",
    b'{"HeartbeatInterval": 12',
    b"",
    b"[1, 2, 3]",
    b"null",
    b'"text"',
])
def test_corrupt_config_json_falls_back(tmp_path, capsys, content):
    write(tmp_path / "config.json", content)
    cfg = mk(tmp_path)
    assert cfg.get("HeartbeatInterval") == 300
    assert cfg.get("MeterValuesAlignedData") == ALIGNED_BUSINESS
    if content != b"null":
        assert "WRN config" in capsys.readouterr().out
    assert cfg.set("HeartbeatInterval", "60") == "Accepted"
    assert mk(tmp_path).get("HeartbeatInterval") == 60


def test_bad_entries_dropped_good_kept(tmp_path, capsys):
    write(tmp_path / "config.json", json.dumps({
        "HeartbeatInterval": "120",         # wrong type (str for int)
        "FreeMode": 1,                      # wrong type (int for bool)
        "MaxCurrentLimit": 99,              # out of range
        "MeterValueSampleInterval": 1.5,    # float
        "Phase": "Three.Phase",             # good
        "Unknown": 5,                       # unknown key
        "MeterValuesAlignedData": "Voltage,Bogus",
        "ConnectionTimeOut": True,          # bool is not an int
        "ResetRetries": 2,                  # good
        "DefaultIdTag": ["x"],
        "StopTxnSampledData": "Voltage",    # good
    }))
    cfg = mk(tmp_path)
    assert cfg.get("HeartbeatInterval") == 300
    assert cfg.get("FreeMode") is False
    assert cfg.get("MaxCurrentLimit") == 32
    assert cfg.get("MeterValueSampleInterval") == 60
    assert cfg.get("MeterValuesAlignedData") == ALIGNED_BUSINESS
    assert cfg.get("ConnectionTimeOut") == 60
    assert cfg.get("DefaultIdTag") == ""
    assert cfg.get("Phase") == "Three.Phase"
    assert cfg.get("ResetRetries") == 2
    assert cfg.get("StopTxnSampledData") == "Voltage"
    out = capsys.readouterr().out
    for key in ("HeartbeatInterval", "FreeMode", "MaxCurrentLimit", "Unknown", "MeterValuesAlignedData"):
        assert key in out


def test_saved_list_checked_against_saved_max_length(tmp_path):
    cfg = mk(tmp_path)
    assert cfg.set("MeterValuesAlignedData", "Voltage,SoC") == "Accepted"
    cfg.set_internal("MeterValuesAlignedDataMaxLength", 3)
    again = mk(tmp_path)
    assert again.get("MeterValuesAlignedDataMaxLength") == 3
    assert again.get("MeterValuesAlignedData") == "Voltage,SoC"
    write(tmp_path / "config.json", json.dumps({"MeterValuesAlignedDataMaxLength": 1,
                                                "MeterValuesAlignedData": "Voltage,SoC"}))
    third = mk(tmp_path)  # the saved list is too long and the default too: both reset
    assert third.get("MeterValuesAlignedDataMaxLength") == 500
    assert third.get("MeterValuesAlignedData") == ALIGNED_BUSINESS
    write(tmp_path / "config.json", json.dumps({"MeterValuesAlignedDataMaxLength": 2,
                                                "NumberOfConnectors": 1,
                                                "ConnectorPhaseRotation": "0.RST,1.RST,2.RST"}))
    fourth = mk(tmp_path)
    assert fourth.get("MeterValuesAlignedDataMaxLength") == 500
    assert fourth.get("ConnectorPhaseRotation") == "NotApplicable"


def test_inconsistent_provisioning_repaired(tmp_path, capsys):
    provision(tmp_path, {"config": {"SupportedFeatureProfilesMaxLength": "2",
                                    "NumberOfConnectors": "2",
                                    "ConnectorPhaseRotation": "0.RST,1.RST,2.TSR"}})
    cfg = mk(tmp_path)
    assert cfg.get("SupportedFeatureProfilesMaxLength") == 15
    assert cfg.get("SupportedFeatureProfiles") == GUIDE["SupportedFeatureProfiles"]
    assert cfg.get("NumberOfConnectors") == 2
    assert cfg.get("ConnectorPhaseRotation") == "0.RST,1.RST,2.TSR"
    assert "SupportedFeatureProfiles inconsistent" in capsys.readouterr().out


def test_leftover_new_file_with_config_missing(tmp_path):
    # power cut between remove(config.json) and rename(config.json.new)
    write(tmp_path / "config.json.new", json.dumps({"HeartbeatInterval": 77}))
    cfg = mk(tmp_path)
    assert cfg.get("HeartbeatInterval") == 77
    cfg.set("FreeMode", "true")
    again = mk(tmp_path)
    assert again.get("HeartbeatInterval") == 77 and again.get("FreeMode") is True
    assert not os.path.exists(os.path.join(str(tmp_path), "config.json.new"))


def test_truncated_new_file_with_config_present(tmp_path):
    # power cut while writing config.json.new: config.json is the truth
    write(tmp_path / "config.json", json.dumps({"HeartbeatInterval": 55}))
    write(tmp_path / "config.json.new", b'{"HeartbeatInterval": 9')
    cfg = mk(tmp_path)
    assert cfg.get("HeartbeatInterval") == 55
    cfg.set("FreeMode", "true")
    assert saved(tmp_path) == {"HeartbeatInterval": 55, "FreeMode": True}


def test_corrupt_config_with_complete_new_file(tmp_path):
    write(tmp_path / "config.json", b'{"Heartbeat')
    write(tmp_path / "config.json.new", json.dumps({"HeartbeatInterval": 42}))
    assert mk(tmp_path).get("HeartbeatInterval") == 42


# ---- provisioning ---------------------------------------------------------------

def provision(root, obj):
    write(root / "provision.json", obj if isinstance(obj, bytes) else json.dumps(obj))


def test_provisioning_sets_baseline(tmp_path):
    provision(tmp_path, {"variant": "homeplus", "config": {
        "OcppServerAddress": URL,
        "NumberOfConnectors": "2",                # read-only key: factory may set it
        "ConnectorPhaseRotation": "0.RST,1.RST,2.RTS",
        "MeterValuesSampledData": "Energy.Active.Import.Register,Voltage",
        "SupportedFeatureProfiles": "Core,SmartCharging",
        "Phase": "Three.Phase",
        "AuthorizationKey": "factory-key-0123456",
        "FreeMode": "TRUE",
    }})
    cfg = mk(tmp_path)
    assert cfg.variant == "homeplus"
    assert cfg.get("MeterValuesAlignedData") == ALIGNED_HOMEPLUS
    assert cfg.get("OcppServerAddress") == URL
    assert cfg.get("NumberOfConnectors") == 2
    assert cfg.get("ConnectorPhaseRotation") == "0.RST,1.RST,2.RTS"
    assert cfg.get("MeterValuesSampledData") == "Energy.Active.Import.Register,Voltage"
    assert cfg.get("SupportedFeatureProfiles") == "Core,SmartCharging"
    assert cfg.get("Phase") == "Three.Phase"
    assert cfg.get("AuthorizationKey") == "factory-key-0123456"
    assert cfg.get("FreeMode") is True
    assert cfg.get("OcppChargerId") == DEV
    assert not os.path.exists(os.path.join(str(tmp_path), "config.json"))
    # runtime changes are stored against the provisioned baseline
    cfg.set("Phase", "Single.Phase")
    cfg.set("FreeMode", "true")  # equal to provisioned value: no change
    assert saved(tmp_path) == {"Phase": "Single.Phase"}
    cfg.set("Phase", "Three.Phase")
    assert saved(tmp_path) == {}
    assert mk(tmp_path).get("Phase") == "Three.Phase"


def test_provisioning_invalid_entries(tmp_path, capsys):
    provision(tmp_path, {"variant": "business", "config": {
        "OcppServerAddress": "ws://no-port/x",
        "HeartbeatInterval": 120,            # not a string
        "Bogus": "1",
        "MaxCurrentLimit": "16",
        "OcppChargerId": "FACTORY-7",
    }})
    cfg = mk(tmp_path)
    assert cfg.get("OcppServerAddress") == ""
    assert cfg.get("HeartbeatInterval") == 300
    assert cfg.get("MaxCurrentLimit") == 16
    assert cfg.get("OcppChargerId") == "FACTORY-7"
    out = capsys.readouterr().out
    assert "port is mandatory" in out and "Bogus" in out and "HeartbeatInterval" in out


@pytest.mark.parametrize("content", [
    b"\x00\x01not json", b'{"variant": "homeplus", "con', b"[]",
    json.dumps({"variant": "deluxe"}).encode(), json.dumps({"variant": "homeplus", "config": []}).encode(),
])
def test_corrupt_provision_json(tmp_path, capsys, content):
    provision(tmp_path, content)
    cfg = mk(tmp_path)
    homeplus = content.startswith(b'{"variant": "homeplus", "config"')
    assert cfg.variant == ("homeplus" if homeplus else "business")
    assert cfg.get("MeterValuesAlignedData") == (ALIGNED_HOMEPLUS if homeplus else ALIGNED_BUSINESS)
    assert cfg.get("HeartbeatInterval") == 300
    assert "WRN config" in capsys.readouterr().out


def test_variant_argument_overrides_provisioning(tmp_path):
    provision(tmp_path, {"variant": "homeplus"})
    assert mk(tmp_path, "business").variant == "business"
    assert mk(tmp_path).variant == "homeplus"
    with pytest.raises(ValueError):
        mk(tmp_path, "deluxe")


def test_default_variant_without_provisioning(tmp_path):
    assert mk(tmp_path).variant == "business"


def test_root_prefix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config(root="", device_id=DEV)
    cfg.set("HeartbeatInterval", "61")
    assert os.path.exists(os.path.join(str(tmp_path), "config.json"))
    assert Config(root="", device_id=DEV).get("HeartbeatInterval") == 61


# ---- GetConfiguration --------------------------------------------------------------

def test_get_configuration_all(tmp_path):
    cfg = mk(tmp_path)
    cfg.set("AuthorizationKey", "s3cret-s3cret-s3cret")
    for keys in (None, []):
        known, unknown = cfg.get_configuration(keys)
        assert unknown == []
        by_key = {e["key"]: e for e in known}
        assert len(by_key) == len(known)
        assert set(by_key) == set(cfg.keys())
        for e in known:
            if e["key"] in SECRETS:
                assert set(e) == {"key", "readonly"}  # write-only: listed without a value
                continue
            assert set(e) == {"key", "readonly", "value"}
            assert isinstance(e["value"], str)
            assert e["readonly"] == (e["key"] in READ_ONLY)
        assert by_key["FreeMode"]["value"] == "false"
        assert by_key["AuthorizationCacheEnabled"]["value"] == "true"
        assert by_key["HeartbeatInterval"]["value"] == "300"
        assert by_key["OcppChargerId"]["value"] == DEV
        assert "s3cret" not in json.dumps(known)


def test_get_configuration_keys(tmp_path):
    cfg = mk(tmp_path)
    known, unknown = cfg.get_configuration(["HeartbeatInterval", "Nope", "NumberOfConnectors",
                                            "AuthorizationKey", "HeartbeatInterval"])
    # A write-only key is a known key: listed without its value (issue 9).
    assert known == [{"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                     {"key": "NumberOfConnectors", "readonly": True, "value": "1"},
                     {"key": "AuthorizationKey", "readonly": False}]
    assert unknown == ["Nope"]


def test_get_configuration_max_keys(tmp_path):
    cfg = mk(tmp_path)
    cfg.set_internal("GetConfigurationMaxKeys", 3)
    req = ["FreeMode", "X1", "Phase", "HeartbeatInterval", "X2"]
    known, unknown = cfg.get_configuration(req)
    assert [e["key"] for e in known] == ["FreeMode", "Phase"]
    assert unknown == ["X1"]
    known, unknown = cfg.get_configuration(None)  # all keys: not limited
    assert len(known) == len(cfg.keys())  # every key, the write-only secrets without value
    secrets = [e for e in known if e["key"] in SECRETS]
    assert sorted(secrets, key=lambda e: e["key"]) == [{"key": "AuthorizationKey", "readonly": False},
                                                       {"key": "WiFiPass", "readonly": False},
                                                       {"key": "WiFiPrimaryPass", "readonly": False}]


# ---- subscribe -------------------------------------------------------------------

def test_subscribe(tmp_path):
    cfg = mk(tmp_path)
    seen = []
    cfg.subscribe(lambda k, v: seen.append((k, v)))

    def broken(k, v):
        raise RuntimeError("subscriber bug")

    cfg.subscribe(broken)
    cfg.subscribe(lambda k, v: seen.append(("2nd", k)))
    assert cfg.set("HeartbeatInterval", "30") == "Accepted"
    cfg.set("HeartbeatInterval", "30")        # unchanged: no callback
    cfg.set("HeartbeatInterval", "x")         # rejected: no callback
    cfg.set("NumberOfConnectors", "2")        # read-only: no callback
    cfg.set_internal("NumberOfConnectors", 2)
    assert cfg.set("OcppServerAddress", URL) == "RebootRequired"
    assert seen == [("HeartbeatInterval", 30), ("2nd", "HeartbeatInterval"),
                    ("NumberOfConnectors", 2), ("2nd", "NumberOfConnectors"),
                    ("OcppServerAddress", URL), ("2nd", "OcppServerAddress")]


# ---- property ----------------------------------------------------------------------

KEYS = [r[0] for r in params.TABLE]
PLAUSIBLE = ["true", "FALSE", "0", "6", "32", "33", "120", "-1", "", "Three.Phase", "Single.Phase",
             "Voltage,SoC", "Energy.Active.Import.Register", "0.RST,1.TSR", "Unknown", URL,
             "ws://h/x", "0123456789abcdef0123", "N/A", "Core", ",".join(params.MEASURANDS)]
values = st.one_of(st.sampled_from(PLAUSIBLE), st.text(max_size=40),
                   st.text(alphabet="0123456789,.RSTUnknow", max_size=12))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["business", "homeplus"]), st.lists(st.tuples(keys, values), max_size=25))
def test_property_random_sets_survive_reload(variant, ops):
    with tempfile.TemporaryDirectory() as d:
        cfg = Config(root=d + "/", device_id=DEV, variant=variant)
        for k, v in ops:
            before = cfg.get(k) if k in KEYS else None
            r = cfg.set(k, v)
            assert r in ("Accepted", "Rejected", "RebootRequired", "NotSupported")
            if k not in KEYS:
                assert r == "NotSupported"
            elif r == "Rejected":
                assert cfg.get(k) == before
        again = Config(root=d + "/", device_id=DEV, variant=variant)
        for k in KEYS:
            assert again.get(k) == cfg.get(k), k
            assert type(again.get(k)) is type(cfg.get(k))


# ---- compact table (params.TAB / NAMES) and the key index -----------------------

def test_config_codes_match_params():
    for name in ("T_BOOL", "T_INT", "T_STR", "T_CSL", "F_RO", "F_WO", "F_REBOOT", "F_EMPTY",
                 "C_URL", "C_ID", "C_PHASE", "C_PROFILE", "C_ROTATION"):
        assert getattr(config_mod, "_" + name) == getattr(params, name), name
    assert params.VALUE_MAX == 500 and params.DAY == 86400 and params.INT32_MAX == 2 ** 31 - 1


def test_public_names_of_params():
    from firmware.params import MEASURANDS, VARIANTS  # module __getattr__
    assert MEASURANDS == params.MEASURANDS and len(set(MEASURANDS)) == 22
    assert VARIANTS == ("business", "homeplus") and params.DEFAULT_VARIANT == "business"
    assert params.PHASES == ("Single.Phase", "Three.Phase")
    assert len(params.ROTATIONS) == 8 and len(params.FEATURE_PROFILES) == 6
    assert params.ALIGNED_BUSINESS == ALIGNED_BUSINESS and params.ALIGNED_HOMEPLUS == ALIGNED_HOMEPLUS
    assert params.SAMPLED_DEFAULT == SAMPLED and params.DEVICE_ID is None
    assert params.VARIANT_DEFAULTS == (("homeplus", "MeterValuesAlignedData", ALIGNED_HOMEPLUS),)
    with pytest.raises(AttributeError):
        params.NoSuchName
    with pytest.raises(AttributeError):
        params.T_
    for item in ALIGNED_BUSINESS.split(",") + SAMPLED.split(","):
        assert item in params.MEASURANDS


def test_table_rows_decode():
    keys = [r[0] for r in params.TABLE]
    assert len(keys) == len(set(keys)) == params.TAB.count("\n")
    for r in params.TABLE:
        assert type(r[1]) is int and type(r[3]) is str and type(r[4]) is int
        if r[1] == params.T_CSL:
            assert r[6] == r[0] + "MaxLength" and r[6] in keys  # companion exists
            assert r[7] in (params.C_MEASURAND, params.C_PROFILE, params.C_ROTATION)
        else:
            assert type(r[5]) is int and type(r[6]) is int and r[5] <= r[6]
        assert params.find(params.TAB, r[0], "\n", "|") >= 0


def test_find_whole_fields_only():
    s = "ab,abc,x.y,abcd"
    assert params.find(s, "ab", ",", ",") == 0
    assert params.find(s, "abc", ",", ",") == 3
    assert params.find(s, "abcd", ",", ",") == 11
    for bad in ("a", "bc", "x", "y", "b,abc", "", "abcde", None, 5):
        assert params.find(s, bad, ",", ",") == -1, bad


@pytest.mark.parametrize("key", ["HeartbeatInterval|1", "Heartbeat", "HeartbeatIntervalX", "\nPhase",
                                 "Phase\n", "|", "", "MeterValuesAlignedDataMaxLength|1|500",
                                 "StopTxnAlignedDataMax", "phase"])
def test_near_miss_keys_are_unknown(tmp_path, key):
    cfg = mk(tmp_path)
    with pytest.raises(KeyError):
        cfg.get(key)
    assert cfg.set(key, "1") == "NotSupported"
    assert cfg.get_configuration([key]) == ([], [key])
    with pytest.raises(KeyError):
        cfg.unit(key)


def test_non_str_keys(tmp_path):
    cfg = mk(tmp_path)
    for key in (None, 5, 1.5, b"Phase"):
        with pytest.raises(KeyError):
            cfg.get(key)
        assert cfg.set(key, "1") == "NotSupported"
    assert cfg.get_configuration([5, "Phase"]) == (
        [{"key": "Phase", "readonly": False, "value": "Single.Phase"}], [5])


def test_every_key_found_despite_shared_hash_slots(tmp_path, monkeypatch):
    # All keys hashed to one slot: the probe sequence still finds each one.
    monkeypatch.setattr(config_mod, "hash", lambda s: 7, raising=False)
    cfg = mk(tmp_path)
    for key in KEYS:
        assert cfg.get(key) == mk(tmp_path).get(key)
    with pytest.raises(KeyError):
        cfg.get("NoSuchKey")
    assert cfg.set("HeartbeatInterval", "42") == "Accepted"
    assert cfg.get("HeartbeatInterval") == 42


def test_charger_id_characters_reported(tmp_path, capsys):
    cfg = mk(tmp_path)
    for bad, ch in (("CP-\u00e9t\u00e9", "'\u00e9'"), ("CP 1", "' '"), ("a/b", "'/'"), ("x\u20ac", "'\u20ac'")):
        capsys.readouterr()
        assert cfg.set("OcppChargerId", bad) == "Rejected"
        assert "character %s not allowed" % ch in capsys.readouterr().out, bad
    assert cfg.set("OcppChargerId", "AZaz09*-_=+|@.") == "RebootRequired"
    assert cfg.set("DefaultIdTag", "tag\x7f") == "Rejected"
    assert cfg.set("DefaultIdTag", "caf\u00e9\u0085") == "Accepted"  # only C0 and DEL are control characters here


def test_keys_in_table_order(tmp_path):
    assert mk(tmp_path).keys() == KEYS


def test_message_table_lines():
    m = config_mod._m
    assert m(config_mod._K_CONNECTORS) == "NumberOfConnectors"
    assert m(config_mod._K_MAXKEYS) == "GetConfigurationMaxKeys"
    assert m(config_mod._K_CHARGERID) == "OcppChargerId"
    assert m(config_mod._S_CONFIG) == "config.json" and m(config_mod._S_PROVISION) == "provision.json"
    assert m(config_mod._M_REJECTED) == "ChangeConfiguration %s rejected: %s"
    assert m(config_mod._M_INVALID + 1).endswith("default used")
    assert m(config_mod._M_MEASURAND + 1) == "unknown feature profile %s"


@pytest.mark.parametrize("keys", [None, [], ["HeartbeatInterval", "Nope", "AuthorizationKey", "Nope", "Phase"],
                                  ["X1", "X2"], ["FreeMode"]])
@pytest.mark.parametrize("size", [4096, 256])
def test_get_configuration_answer_written_into_the_send_buffer(tmp_path, keys, size):
    # The CALLRESULT as the charger encodes it: streamed entry by entry into
    # the send buffer, or built whole when it does not fit (size 256).
    import asyncio
    from firmware.operations import Operations
    from lib import ocppj

    class _Cp:
        def on(self, action, handler):
            self.__dict__[action] = handler

    cfg = mk(tmp_path)
    cfg.set("AuthorizationKey", "s3cret-s3cret-s3cret")
    cp = _Cp()
    Operations(cp, cfg, None)
    payload = cp.GetConfiguration({} if keys is None else {"key": keys})
    if hasattr(payload, "send"):  # an async handler (ChargePoint.on takes both)
        payload = asyncio.run(payload)
    wire = ocppj.Out(size).encode([ocppj.RESULT, "id-1", payload])
    text = bytes(wire).decode() if not isinstance(wire, str) else wire
    assert isinstance(wire, str) == (size == 256 and keys in (None, []))
    kind, uid, _, got = ocppj.parse(text)
    known, unknown = cfg.get_configuration(keys)
    want = {"configurationKey": known}
    if unknown:
        want["unknownKey"] = unknown
    assert (kind, uid, got) == (ocppj.RESULT, "id-1", want)
    assert "s3cret" not in text
