"""The firmware's compact request schemas must say what the official OCPP 1.6
JSON schemas (shipped with the `ocpp` package) say, field by field."""
import json
import os

import ocpp
import pytest

from firmware import ocpp_schemas
from lib.schema import SchemaError, validate

SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")
CSMS_INITIATED = [
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
    "ClearChargingProfile", "DataTransfer", "GetCompositeSchedule", "GetConfiguration",
    "GetDiagnostics", "GetLocalListVersion", "RemoteStartTransaction", "RemoteStopTransaction",
    "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "TriggerMessage",
    "UnlockConnector", "UpdateFirmware",
]
TYPE_OF = {"s": "string", "u": "string", "t": "string", "e": "string", "i": "integer",
           "n": "number", "b": "boolean", "o": "object", "ao": "array", "as": "array"}


def compare(compact, official, where):
    props = official.get("properties", {})
    required = set(official.get("required", []))
    assert official.get("additionalProperties") is False, where
    assert sorted(f[0] for f in compact) == sorted(props), where
    for name, ftype, req, extra in compact:
        spec = props[name]
        here = where + "." + name
        assert bool(req) == (name in required), here
        assert TYPE_OF[ftype] == spec["type"], here
        if ftype == "e":
            assert sorted(extra) == sorted(spec["enum"]), here
        if ftype in ("s", "u") and extra:
            assert extra == spec.get("maxLength"), here
        if ftype == "s" and not extra:
            assert "maxLength" not in spec, here
        if ftype == "t":
            assert spec.get("format") == "date-time", here
        if ftype == "u":
            assert spec.get("format") == "uri", here
        if ftype == "o":
            compare(extra, spec, here)
        if ftype == "ao":
            compare(extra, spec["items"], here)
        if ftype == "as":
            assert spec["items"]["type"] == "string" and spec["items"].get("maxLength") == extra, here


@pytest.mark.parametrize("action", CSMS_INITIATED)
def test_compact_schema_matches_official(action):
    with open(os.path.join(SCHEMA_DIR, action + ".json")) as f:
        official = json.load(f)
    compare(ocpp_schemas.schema(action), official, action)


def test_every_csms_initiated_action_is_known():
    assert sorted(ocpp_schemas.actions()) == sorted(CSMS_INITIATED)
    assert ocpp_schemas.schema("Authorize") is None  # charger-initiated: not ours to receive


@pytest.mark.parametrize("payload,code", [
    ({"connectorId": "1", "type": "Operative"}, "TypeConstraintViolation"),
    ({"connectorId": True, "type": "Operative"}, "TypeConstraintViolation"),
    ({"connectorId": 1.5, "type": "Operative"}, "TypeConstraintViolation"),
    ({"connectorId": 1}, "ProtocolError"),
    ({"connectorId": 1, "type": "Sideways"}, "PropertyConstraintViolation"),
    ({"connectorId": 1, "type": "Operative", "extra": 1}, "FormationViolation"),
])
def test_violations_map_to_ocpp_error_codes(payload, code):
    with pytest.raises(SchemaError) as e:
        validate(ocpp_schemas.schema("ChangeAvailability"), payload)
    assert e.value.code == code


def test_nested_and_length_rules():
    ok = {"connectorId": 1, "expiryDate": "2026-11-25T12:00:00Z", "idTag": "A" * 20, "reservationId": 3}
    validate(ocpp_schemas.schema("ReserveNow"), ok)
    with pytest.raises(SchemaError) as e:
        validate(ocpp_schemas.schema("ReserveNow"), dict(ok, idTag="A" * 21))
    assert e.value.code == "PropertyConstraintViolation"
    with pytest.raises(SchemaError) as e:
        validate(ocpp_schemas.schema("ReserveNow"), dict(ok, expiryDate="tomorrow"))
    assert e.value.code == "PropertyConstraintViolation"
    bad_list = {"listVersion": 1, "updateType": "Full",
                "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Nope"}}]}
    with pytest.raises(SchemaError) as e:
        validate(ocpp_schemas.schema("SendLocalList"), bad_list)
    assert "localAuthorizationList[0].idTagInfo.status" in e.value.description


def test_check_gives_the_callerror_to_answer():
    # What ChargePoint answers, loaded per request (firmware/chargepoint.py).
    assert ocpp_schemas.check("Authorize", {}, True)[0] == "NotImplemented"
    assert ocpp_schemas.check("Reset", {"type": "Hard"}, False)[0] == "NotSupported"
    assert ocpp_schemas.check("Reset", {"type": "Hard"}, True) is None
    assert ocpp_schemas.check("Reset", {"type": "Warm"}, True)[0] == "PropertyConstraintViolation"
    assert ocpp_schemas.check("Reset", {}, True)[0] == "ProtocolError"


@pytest.mark.parametrize("action", ["", "Rese", "eset", "Reset ", " Reset", "Reset\nClearCache",
                                    "ClearCache []\nReset", "[]", "\n"])
def test_an_action_that_is_only_part_of_a_known_one_is_unknown(action):
    # the schemas are one text, a line per action: no piece of it is an action
    assert ocpp_schemas.check(action, {}, True)[0] == "NotImplemented"
    assert ocpp_schemas.schema(action) is None
