"""firmware.metervalues / firmware.metering: sampledValue content (units, phases,
deadband, the estimate while the meter is down) against the official OCPP 1.6
MeterValues and StopTransaction schemas."""
import json
import os

import jsonschema
import ocpp
import pytest

from firmware import metervalues as MV
from firmware.metering import Metering
from firmware.stopdata import _KEEP, StopData
from lib import ocppj

SCHEMAS = os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")
ALL = "Energy.Active.Import.Register,Energy.Reactive.Import.Register,Voltage,Current.Import," \
      "Power.Active.Import,Power.Reactive.Import,Power.Factor,Frequency,Temperature,Current.Offered," \
      "Power.Offered,SoC"


def schema(name):
    with open(os.path.join(SCHEMAS, name + ".json")) as f:
        return json.load(f)


class Cfg:
    def __init__(self, variant="business", **kw):
        self.variant = variant
        self.v = {"Phase": "Three.Phase"}
        self.v.update(kw)

    def get(self, k):
        return self.v[k]


class Sensors:
    def read(self, name):
        assert name == "temperature_dc"
        return 287


class Relay:
    def closed(self):
        return True


class Board:
    meter_uart = None
    sensors = Sensors()
    relay = Relay()


class Outputs:
    offered_a = 16  # the PWM offers 16 A


def meter(phase="Three.Phase", variant="business", ok=True):
    m = Metering.__new__(Metering)  # the real class without its Modbus master
    m.board, m.cfg = Board(), Cfg(variant, Phase=phase)
    m._phase = phase
    m.three = phase == "Three.Phase"
    m.outputs = Outputs()
    m.cp = BusyCP()
    m.ok, m.down, m.est_wh, m._wh, m._hb = ok, not ok, 12.7, 1000, None
    m.values = {("Voltage", "L1"): 230.04, ("Voltage", "L2"): 231.0, ("Voltage", "L3"): 229.5,
                ("Current.Import", "L1"): 16.004, ("Current.Import", "L2"): 15.5,
                ("Current.Import", "L3"): 16.0, ("Power.Active.Import", None): 11000.4,
                ("Power.Reactive.Import", None): -12.6, ("Power.Factor", None): 0.9876,
                ("Frequency", None): 50.012, ("Energy.Reactive.Import.Register", None): 321.5,
                ("Energy.Active.Import.Register", None): 1000.2}
    return m


class BusyCP:
    def writer(self):
        return None  # a send holds the message buffer: the sample gets one of its own


def written(m, csl, ctx, ts, energy, last=None):
    """MV.sample's JSON text and where its energy entries end (None: nothing written)."""
    out = ocppj.Out(4096)
    out.write(b"xx")  # written from where the stream is, the offset counted from there
    cut = MV.sample(m, csl, ctx, ts, energy, out, last)
    if cut < 0:
        assert out.n == 2
        return None
    return bytes(memoryview(out.buf)[2:out.n]), cut


def sample(m, csl, ctx, ts, energy, last=None):
    w = written(m, csl, ctx, ts, energy, last)
    return None if w is None else json.loads(w[0])


def payload(mv, tx=None):
    p = {"connectorId": 1 if tx else 0, "meterValue": [mv]}
    if tx:
        p["transactionId"] = tx
    jsonschema.validate(p, schema("MeterValues"))
    return p


def by(mv):
    return {(s["measurand"], s.get("phase")): s for s in mv["sampledValue"]}


@pytest.mark.parametrize("phase", ["Single.Phase", "Three.Phase"])
def test_every_measurand_with_unit_and_phase(phase):
    mv = sample(meter(phase), ALL, "Sample.Periodic", 1764000000, 1000)
    payload(mv, 5)
    s = by(mv)
    n = 3 if phase == "Three.Phase" else 1
    assert [k for k in s if k[0] == "Voltage"] == [("Voltage", p) for p in ("L1", "L2", "L3")[:n]]
    assert [k for k in s if k[0] == "Current.Import"] == [("Current.Import", p) for p in ("L1", "L2", "L3")[:n]]
    assert s[("Energy.Active.Import.Register", None)]["value"] == "1000"
    assert s[("Energy.Active.Import.Register", None)]["unit"] == "Wh"
    assert s[("Energy.Reactive.Import.Register", None)]["unit"] == "varh"
    assert s[("Voltage", "L1")] == {"value": "230.0", "unit": "V", "phase": "L1",
                                    "context": "Sample.Periodic", "measurand": "Voltage"}
    assert s[("Current.Import", "L1")]["value"] == "16.00"
    assert s[("Power.Active.Import", None)]["value"] == "11000"
    assert s[("Power.Reactive.Import", None)] == {"value": "-13", "unit": "var", "context": "Sample.Periodic",
                                                  "measurand": "Power.Reactive.Import"}
    assert s[("Power.Factor", None)]["value"] == "0.988" and "unit" not in s[("Power.Factor", None)]
    assert s[("Frequency", None)]["value"] == "50.01" and "unit" not in s[("Frequency", None)]
    assert s[("Temperature", None)] == {"value": "28.7", "unit": "Celsius", "location": "Body",
                                        "context": "Sample.Periodic", "measurand": "Temperature"}
    assert s[("Current.Offered", None)]["value"] == "16"
    assert s[("Power.Offered", None)]["value"] == str(round(16 * 230.04 * n))
    assert ("SoC", None) not in s  # not measured by this charger
    assert mv["timestamp"] == "2025-11-24T16:00:00Z"


def test_deadband_leaves_out_unchanged_values_but_never_the_register():
    m = meter()
    last = {}
    first = sample(m, ALL, "Sample.Periodic", 0, 1000, last)
    assert len(first["sampledValue"]) == len(sample(m, ALL, "Sample.Periodic", 0, 1000)["sampledValue"])
    m.values[("Voltage", "L2")] = 231.0 + 1.9           # below the 2 V threshold
    m.values[("Current.Import", "L3")] = 16.0 + 0.25    # above 0.2 A
    again = sample(m, ALL, "Sample.Periodic", 2, 1000, last)
    payload(again, 5)
    assert set(by(again)) == {("Energy.Active.Import.Register", None), ("Current.Import", "L3")}


def test_meter_down_sends_register_and_estimate_only_from_the_meter():
    m = meter(ok=False)
    mv = sample(m, ALL, "Sample.Periodic", 0, 1000)
    payload(mv, 5)
    s = by(mv)
    assert s[("Energy.Active.Import.Register", None)]["value"] == "1000"
    assert s[("Energy.Active.Import.Interval", None)] == {
        "value": "12", "unit": "Wh", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Interval"}
    # nothing the meter would have to say; the charger's own figures stay
    assert {k[0] for k in s} == {"Energy.Active.Import.Register", "Energy.Active.Import.Interval",
                                 "Temperature", "Current.Offered", "Power.Offered"}


def test_estimate_from_last_voltage_and_current():
    m = meter(phase="Single.Phase", ok=False)
    m.est_wh = 0.0
    m.values[("Current.Import", "L1")] = 10.0
    m._estimate(3600 * 1000)  # one hour at the measured 10 A x 230.04 V
    assert abs(m.est_wh - 2300.4) < 0.01
    m.values[("Current.Import", "L1")] = 20.0  # more than offered: the offer caps it
    m.est_wh = 0.0
    m._estimate(3600 * 1000)
    assert abs(m.est_wh - 230.04 * 16) < 0.01
    m.values[("Current.Import", "L1")] = 0.0  # nothing measured: the offered current
    m.est_wh = 0.0
    m._estimate(1800 * 1000)
    assert abs(m.est_wh - 230.04 * 16 / 2) < 0.01


def test_home_plus_energy_is_session_energy():
    m = meter(variant="homeplus")
    assert m.energy({"base": 400}) == 600
    assert m.energy(None) == 0       # no session yet
    m._hb = 700
    assert m.energy(None) == 300     # the last session's counter until the next one
    assert meter().energy(None) == 1000


def test_registers_only_keeps_the_register_and_drops_empty_entries():
    m = meter(ok=False)
    text, cut = written(m, ALL, "Sample.Clock", 0, 1000)
    full = json.loads(text)
    kept = json.loads(MV.registers_only(text, cut))
    payload(kept, 5)
    assert kept["timestamp"] == full["timestamp"]
    assert {s["measurand"] for s in kept["sampledValue"]} == {
        "Energy.Active.Import.Register", "Energy.Active.Import.Interval"}
    assert len(full["sampledValue"]) > len(kept["sampledValue"])
    assert MV.registers_only(*written(meter(), "Voltage", "Sample.Clock", 0, 1000)) is None
    assert written(meter(), "SoC", "Sample.Clock", 0, 1000) is None  # nothing this charger measures


def tx_data(m, tx, stop_wh, now):
    """StopTransaction.transactionData as the journal record carries it."""
    return ocppj.built({}, "d", m.tx_data(tx, stop_wh, now))["d"]


def validate_stop(data):
    jsonschema.validate({"transactionId": 1, "meterStop": 1000, "timestamp": "2025-01-01T00:00:00Z",
                         "transactionData": data}, schema("StopTransaction"))


def test_stop_transaction_data_is_schema_valid(tmp_path):
    m = meter()
    m._stop = StopData(str(tmp_path) + "/")
    tx = {"ts": 100, "start": 900, "base": 900, "l": 1}
    m._stop.begin(1, written(m, "Energy.Active.Import.Register,Voltage", "Transaction.Begin", 100, 900)[0])
    m._stop.clock(written(m, "Energy.Active.Import.Register", "Sample.Clock", 120, 950)[0])
    m.cfg.v["StopTxnSampledData"] = "Energy.Active.Import.Register,Voltage"
    data = tx_data(m, tx, 1000, 200)
    validate_stop(data)
    assert [mv["sampledValue"][0]["context"] for mv in data] == ["Transaction.Begin", "Sample.Clock", "Transaction.End"]
    assert by(data[-1])[("Energy.Active.Import.Register", None)]["value"] == "1000"
    assert len([s for s in data[-1]["sampledValue"] if s["measurand"] == "Voltage"]) == 3


def test_stop_data_keeps_the_newest_clock_entries_and_survives_a_reboot(tmp_path):
    m = meter()
    root = str(tmp_path) + "/"
    m._stop = StopData(root)
    m.cfg.v["StopTxnSampledData"] = "Energy.Active.Import.Register"
    m._stop.begin(7, written(m, "Energy.Active.Import.Register", "Transaction.Begin", 100, 900)[0])
    for i in range(_KEEP + 5):
        m._stop.clock(written(m, "Energy.Active.Import.Register", "Sample.Clock", 200 + i, 901 + i)[0])
    tx = {"ts": 100, "start": 900, "base": 900, "l": 7}
    data = tx_data(m, tx, 1000, 300)
    validate_stop(data)
    values = [(mv["sampledValue"][0]["context"], int(mv["sampledValue"][0]["value"])) for mv in data]
    assert values == [("Transaction.Begin", 900)] + [("Sample.Clock", 901 + i) for i in range(5, _KEEP + 5)] + [
        ("Transaction.End", 1000)]
    # After a power cut the PowerLoss stop of transaction 7 finds them; another transaction does not.
    m2 = meter()
    m2._stop = StopData(root)
    m2.cfg.v["StopTxnSampledData"] = "Energy.Active.Import.Register"
    assert tx_data(m2, tx, 1000, 300) == data
    other = dict(tx, l=8)
    assert [mv["sampledValue"][0]["context"] for mv in tx_data(m2, other, 1000, 300)] == [
        "Transaction.Begin", "Transaction.End"]


def test_stop_data_without_a_begin_entry_drops_the_oldest_clock_entry(tmp_path):
    m = meter()
    m._stop = StopData(str(tmp_path) + "/")
    m.cfg.v["StopTxnSampledData"] = "Voltage"
    m._stop.begin(3, None)
    for i in range(_KEEP + 2):
        m._stop.clock(written(m, "Energy.Active.Import.Register", "Sample.Clock", 200 + i, 901 + i)[0])
    data = tx_data(m, {"ts": 100, "start": 900, "base": 900, "l": 3}, 1000, 300)
    validate_stop(data)
    assert [int(mv["sampledValue"][0]["value"]) for mv in data[:-1]] == [901 + i for i in range(2, _KEEP + 2)]
    assert {s["measurand"] for s in data[-1]["sampledValue"]} == {"Voltage"}


def test_stop_transaction_data_after_a_reboot_begins_with_meter_start(tmp_path):
    m = meter()
    m._stop = StopData(str(tmp_path) + "/")  # nothing on file
    m._tx = None
    tx = {"ts": 100, "start": 900, "base": 900, "l": 1}  # not the one metering followed
    m.cfg.v["StopTxnSampledData"] = "Energy.Active.Import.Register"
    data = tx_data(m, tx, 1000, 200)
    validate_stop(data)
    assert [(mv["sampledValue"][0]["context"], mv["sampledValue"][0]["value"]) for mv in data] == [
        ("Transaction.Begin", "900"), ("Transaction.End", "1000")]
