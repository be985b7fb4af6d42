"""OCPP-J framing, ISO 8601 time and the guide's server URL rules."""
import datetime
import json

import pytest
from hypothesis import given, strategies as st

from lib import isotime, ocppj, url


def test_frames_round_trip():
    # Encoded as the charger sends them: through the message buffer.
    def wire(msg):
        return bytes(ocppj.Out(256).encode(msg)).decode()

    uid = ocppj.new_id()
    assert ocppj.parse(wire([ocppj.CALL, uid, "Heartbeat", {}])) == (2, uid, "Heartbeat", {})
    assert ocppj.parse(wire([ocppj.RESULT, uid, {"a": 1}])) == (3, uid, None, {"a": 1})
    kind, u, code, (desc, details) = ocppj.parse(wire(ocppj.error_msg(uid, "NotImplemented", "x")))
    assert (kind, u, code, desc, details) == (4, uid, "NotImplemented", "x", {})


def test_ids_are_unique_and_short():
    ids = {ocppj.new_id() for _ in range(1000)}
    assert len(ids) == 1000 and max(len(i) for i in ids) <= 36


@pytest.mark.parametrize("text,uid", [
    ('[2,"abc","Reset",{', "abc"),
    ('not json', None),
    ('[2, "abc", "Reset"]', "abc"),
    ('[2,"abc","Reset",[]]', "abc"),
    ('{"a":1}', None),
    ('[9,"abc",{}]', None),
    ('[2,"' + "x" * 40 + '","Reset",{}]', None),
])
def test_broken_frames_are_formation_violations(text, uid):
    with pytest.raises(ocppj.FrameError) as e:
        ocppj.parse(text)
    assert e.value.code == "FormationViolation"
    assert e.value.uid == uid


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2200, 1, 1)))
def test_isotime_round_trip_matches_cpython(dt):
    dt = dt.replace(microsecond=0, tzinfo=datetime.timezone.utc)
    epoch = int(dt.timestamp())
    text = isotime.format(epoch)
    assert text == dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert isotime.parse(text) == epoch


@pytest.mark.parametrize("text,expected", [
    ("2026-11-25T11:40:00Z", 1795606800),
    ("2026-11-25T11:40:00.123456Z", 1795606800),
    ("2026-11-25T12:40:00+01:00", 1795606800),
    ("2026-11-25T11:40:00", 1795606800),
    ("2026-13-25T11:40:00Z", None),
    ("2026-11-25 11:40", None),
    ("yesterday", None),
    ("2026-11-25T11:40:00+0100", None),
])
def test_isotime_parse(text, expected):
    assert isotime.parse(text) == expected


@pytest.mark.parametrize("u,expected", [
    ("ws://csms.example.com:80/ocpp", ("ws", "csms.example.com", 80, "/ocpp")),
    ("wss://10.0.0.1:443/a/b", ("wss", "10.0.0.1", 443, "/a/b")),
    ("ws://host:9000", ("ws", "host", 9000, "")),
    ("ws://[::1]:9000/x", ("ws", "::1", 9000, "/x")),
])
def test_url_accepts_guide_format(u, expected):
    assert url.parse(u) == expected


@pytest.mark.parametrize("u", [
    "ws://host/ocpp",            # port mandatory
    "ws://host:9000/ocpp/",      # no trailing slash
    "http://host:80/ocpp",       # ws or wss only
    "ws://host:0/x", "ws://host:70000/x", "ws://host:abc/x", "ws://:80/x", "",
    "ws://user:pw@host:80/x", "ws://host:80/x?y=1",
])
def test_url_rejects_what_the_guide_forbids(u):
    with pytest.raises(ValueError):
        url.parse(u)


def test_charger_id_is_appended():
    assert url.charger_url("ws://h:1/ocpp", "CP01") == "ws://h:1/ocpp/CP01"


def test_url_without_the_charger_id():
    assert url.parse("ws://h:1/ocpp", "CP01") == ("ws", "h", 1, "/ocpp")
    assert url.parse("ws://h:1/ocpp/CP012", "CP01")[3] == "/ocpp/CP012"
    assert url.parse("ws://cp01.example.com:1/ocpp", "cp01")[1] == "cp01.example.com"
    for bad in ("ws://h:1/ocpp/CP01", "ws://h:1/CP01", "ws://h:1/CP01/ocpp"):
        with pytest.raises(ValueError):
            url.parse(bad, "CP01")
