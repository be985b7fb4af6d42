"""The chaos run's checker (tools/chaos.py check) on hand-made central-system
records: it must report each broken promise, and not report a record that
keeps them."""
import calendar
import time

from tools.chaos import check

T0 = calendar.timegm((2026, 12, 5, 10, 0, 0, 0, 0, 0))
_ids = iter(range(1, 10 ** 6))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def call(action, payload, answer):
    uid = "m%d" % next(_ids)
    return [{"dir": "in", "type": 2, "id": uid, "action": action, "payload": payload},
            {"dir": "out", "type": 3, "id": uid, "action": action, "payload": answer}]


def start(tid, tag, meter, t):
    return call("StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": meter,
                                     "timestamp": iso(t)},
                {"transactionId": tid, "idTagInfo": {"status": "Accepted"}})


def stop(tid, meter, t, reason="Local"):
    return call("StopTransaction", {"transactionId": tid, "meterStop": meter, "timestamp": iso(t),
                                    "reason": reason}, {})


def sample(tid, wh, t):
    return call("MeterValues", {"connectorId": 1, "transactionId": tid, "meterValue": [
        {"timestamp": iso(t), "sampledValue": [{"value": str(wh)}]}]}, {})


def good_record():
    return start(1, "CHAOS01", 100, T0) + sample(1, 104, T0 + 2) + stop(1, 110, T0 + 5) \
        + start(2, "CHAOS02", 110, T0 + 20) + sample(2, 115, T0 + 22) \
        + stop(2, 115, T0 + 24, "PowerLoss")


def test_a_record_that_keeps_every_promise_passes():
    assert check(good_record(), [], [("CHAOS02", T0 + 24.5)]) == []


def test_an_acknowledged_start_without_stop_is_reported():
    msgs = good_record()[:-2]  # the StopTransaction of transaction 2 never came
    v = check(msgs, [], [])
    assert any("transaction 2" in x and "no StopTransaction" in x for x in v), v


def test_energy_running_backwards_is_reported():
    msgs = start(1, "CHAOS01", 33, T0) + sample(1, 35, T0 + 2) + stop(1, 33, T0 + 4, "PowerLoss")
    v = check(msgs, [], [])
    assert any("energy backwards" in x and "35 above meterStop 33" in x for x in v), v


def test_a_stop_delivered_twice_is_reported():
    msgs = good_record() + stop(1, 110, T0 + 5)
    v = check(msgs, [], [])
    assert any("StopTransaction processed twice" in x for x in v), v
    assert any("two StopTransactions for transaction 1" in x for x in v), v


def test_a_charging_cut_must_end_its_transaction_with_powerloss():
    msgs = start(1, "CHAOS01", 100, T0) + stop(1, 104, T0 + 6, "Local")
    v = check(msgs, [], [("CHAOS01", T0 + 5.0)])
    assert any("cut while charging" in x and "ended with Local" in x for x in v), v


def test_a_charging_cut_with_no_transaction_at_all_is_reported():
    v = check(good_record(), [], [("CHAOS09", T0 + 100.0)])
    assert any("no transaction found" in x for x in v), v


def test_a_cut_transaction_started_by_the_previous_sessions_card_is_found():
    # Seed 5: a card shown after session 11 ended authorized the next plug-in,
    # so the transaction charging in session 12 carries session 11's card.
    msgs = start(1, "CHAOS11", 100, T0) + stop(1, 105, T0 + 4) \
        + start(2, "CHAOS11B", 105, T0 + 10) + stop(2, 108, T0 + 13, "PowerLoss")
    assert check(msgs, [], [("CHAOS12", T0 + 13.2)]) == []
    # ... and that transaction still has to end with PowerLoss.
    msgs = msgs[:-2] + stop(2, 108, T0 + 13, "EVDisconnected")
    v = check(msgs, [], [("CHAOS12", T0 + 13.2)])
    assert any("transaction 2" in x and "ended with EVDisconnected" in x for x in v), v


def test_the_relay_closing_without_a_card_is_reported():
    events = [{"seq": 1, "t": 1.0, "kind": "input", "value": {"cmd": "plug"}},
              {"seq": 2, "t": 1.5, "kind": "input", "value": {"cmd": "ev", "state": "C"}},
              {"seq": 3, "t": 2.0, "kind": "relay", "value": True}]
    v = check([], events, [])
    assert v == ["relay closed outside an authorized session (event 3)"]
    events.insert(1, {"seq": 9, "t": 1.2, "kind": "input", "value": {"cmd": "rfid", "id": "CHAOS01"}})
    assert check([], events, []) == []
