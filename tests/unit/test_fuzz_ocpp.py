"""Fuzzing the OCPP-J decoder and the request dispatcher (issue 15).

Random text, random JSON and requests of every action the central system may
send, with wrong types in every field, fields missing and extra, huge strings
and deep nesting, go through the charger's own receive path (ChargePoint's
reader: lib/ocppj.parse, the schema check, the handlers) of the whole App on
CPython with hal.mock. The answer must be the spec-correct one: a CALLRESULT
valid against the official OCPP 1.6 response schema, or the CALLERROR code the
violation calls for (the official request schema, checked by jsonschema, is
the oracle); never an exception out of the reader, never InternalError."""
import asyncio
import datetime
import gc
import json
import os
import random
import tracemalloc

import jsonschema
import ocpp
import pytest
from hypothesis import given, strategies as st

from firmware import ocpp_schemas
from firmware.app import App
from hal.mock.board import Board
from lib import ocppj
from lib.ws import WSClosed
from tests.unit.fuzzing import fuzz

SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")
ACTIONS = sorted(ocpp_schemas.actions())
# What a schema violation is answered with (OCPP-J 1.6 4.2.3; a missing
# required field is ProtocolError, "payload incomplete": docs/decisions.md).
VIOLATION = {"type": "TypeConstraintViolation", "required": "ProtocolError",
             "additionalProperties": "FormationViolation", "maxLength": "PropertyConstraintViolation",
             "enum": "PropertyConstraintViolation", "format": "PropertyConstraintViolation"}
CODES = {"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
         "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
         "TypeConstraintViolation", "GenericError"}


def _official(name):
    with open(os.path.join(SCHEMA_DIR, name + ".json")) as f:
        return json.load(f)


_formats = jsonschema.FormatChecker(())


@_formats.checks("date-time")
def _is_datetime(text):
    if not isinstance(text, str):
        return True
    try:
        datetime.datetime.strptime(text.replace("Z", "+00:00")[:19], "%Y-%m-%dT%H:%M:%S")
        return len(text) >= 20  # with a time zone
    except ValueError:
        return False


REQUEST = {a: jsonschema.Draft4Validator(_official(a), format_checker=_formats) for a in ACTIONS}
RESPONSE = {a: jsonschema.Draft4Validator(_official(a + "Response")) for a in ACTIONS}

# ---------------------------------------------------------------- strategies

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_any = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)), max_leaves=12)
DATES = st.sampled_from(["2026-11-25T11:40:00Z", "2030-01-01T00:00:00.500Z", "2026-11-25T12:40:00+01:00",
                         "1999-12-31T23:59:59Z", "1960-01-01T00:00:00Z", "2200-01-01T00:00:00Z",
                         "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
# Integers at the edges of the fields they may end up in (int32, uint32, int64).
EDGES = st.sampled_from([0, -1, 2**31 - 1, 2**31, -2**31 - 1, 2**32, 2**63, -2**63 - 1, 10**30])


def valid(ftype, extra):
    """A value of field type ftype (lib/schema.py) that the schema allows."""
    if ftype in ("s", "u", "as"):
        n = extra or 60
        s = st.text(min_size=1 if ftype == "u" else 0, max_size=n)
        return st.lists(st.text(max_size=n), max_size=3) if ftype == "as" else s
    if ftype == "i":
        return st.one_of(st.integers(-3, 3), EDGES, st.integers(-2**40, 2**40))
    if ftype == "n":
        return st.one_of(st.integers(-100, 100), st.floats(-1e6, 1e6))
    if ftype == "b":
        return st.booleans()
    if ftype == "t":
        return DATES
    if ftype == "e":
        return st.sampled_from(extra)
    if ftype == "o":
        return payloads(extra, 0.0)
    return st.lists(payloads(extra, 0.0), max_size=3)  # ao


WRONG = {"s": st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.text(max_size=3), max_size=2)),
         "i": st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.booleans(), st.none()),
         "n": st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)),
         "b": st.one_of(st.integers(), st.text(max_size=5), st.none()),
         "t": st.one_of(st.integers(), st.text(max_size=25), st.none()),
         "e": st.one_of(st.text(max_size=12), st.integers(), st.none()),
         "o": st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.none()),
         "ao": st.one_of(st.integers(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
                         st.lists(json_leaf, min_size=1, max_size=2)),
         "as": st.one_of(st.text(max_size=5), st.lists(st.integers(), min_size=1, max_size=2), st.none())}
WRONG["u"] = WRONG["s"]


def payloads(schema, p_bad):
    """Payloads for schema: every field valid, or (with probability p_bad
    each) of a wrong type, too long, missing, or joined by an unknown one."""

    @st.composite
    def build(draw):
        out = {}
        for name, ftype, required, extra in schema:
            roll = draw(st.floats(0, 1)) if p_bad else 1.0
            if roll < p_bad / 3:
                continue  # missing
            if roll < 2 * p_bad / 3:
                out[name] = draw(WRONG[ftype])
            elif roll < p_bad and ftype in ("s", "as") and extra:
                out[name] = "x" * (extra + draw(st.integers(1, 3000)))
            elif required or draw(st.booleans()):
                out[name] = draw(valid(ftype, extra))
        if p_bad and draw(st.floats(0, 1)) < p_bad / 2:
            out[draw(st.text(min_size=1, max_size=12))] = draw(json_leaf)
        return out

    return build()


def action_payloads(p_bad):
    return st.sampled_from(ACTIONS).flatmap(lambda a: st.tuples(st.just(a), payloads(ocpp_schemas.schema(a), p_bad)))


# ---------------------------------------------------------------- the charger


class Wire:
    """The WebSocket as the reader sees it: the central system's messages in,
    the charger's frames out (decoded: the spec says what they must be)."""

    def __init__(self, messages):
        self.inbox = list(messages)
        self.sent = []

    async def recv(self):
        if not self.inbox:
            raise WSClosed(1000, "done")
        m = self.inbox.pop(0)
        if isinstance(m, BaseException):
            raise m
        return m

    def rx_done(self):  # messages come as str here, never in a shared buffer
        pass

    async def send(self, data, opcode=1):
        self.sent.append(json.loads(bytes(data) if not isinstance(data, str) else data))

    async def close(self, *a):
        pass


class Charger:
    def __init__(self, root):
        self.board = Board(flash_root=root)
        with open(root + "provision.json", "w") as f:
            f.write('{"variant": "business", "config": {}}')
        self.loop = asyncio.new_event_loop()
        self.app = App(self.board)
        self.cp = self.app.cp
        self.cp.accepted = self.cp.registered = True
        self.calls = []
        self.resets = 0

        def reset():
            self.resets += 1

        self.board.system.reset = reset

        async def call(action, payload, timeout_ms=None, uid=None):
            self.calls.append(action)
            return {}

        self.cp.call = call

    def exchange(self, messages):
        """Feed messages through the reader; the frames the charger sent back."""
        wire = Wire(messages)

        async def run():
            self.cp._ws = wire
            await self.cp._reader(wire)  # returns when the wire closes
            for _ in range(200):  # the answers are sent from their own tasks
                if self.cp._incoming == 0:
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)

        self.loop.run_until_complete(run())
        assert self.cp._incoming == 0, "a request was never answered"
        return wire.sent

    def close(self):
        for t in asyncio.all_tasks(self.loop):
            t.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


@pytest.fixture
def charger(tmp_path):
    c = Charger(str(tmp_path) + "/")
    yield c
    c.close()


def expect_answer(charger, reply, uid, action, payload):
    """The spec-correct answer to CALL [2, uid, action, payload]."""
    assert isinstance(reply, list) and reply[1] == uid, reply
    if action not in REQUEST:
        assert reply[0] == 4 and reply[2] == "NotImplemented", reply
        return
    if action not in charger.cp._handlers:
        # A feature this charger lacks: refused whatever the payload says.
        assert reply[0] == 4 and reply[2] == "NotSupported", reply
        return
    # multipleOf (a charging profile's limit in tenths) is not checked by
    # the charger; RemoteStartTransaction takes its profile as a whole.
    errors = [e for e in REQUEST[action].iter_errors(payload) if e.validator != "multipleOf"]
    if errors:
        allowed = {VIOLATION.get(e.validator, e.validator) for e in errors}
        assert reply[0] == 4 and reply[2] in allowed, (reply, [e.message for e in errors])
    else:
        assert reply[0] == 3, reply
        RESPONSE[action].validate(reply[2])
    if reply[0] == 4:
        assert len(reply) == 5 and isinstance(reply[3], str) and len(reply[3]) <= 255
        assert isinstance(reply[4], dict) and reply[2] in CODES


def request(charger, uid, action, payload):
    (reply,) = charger.exchange([json.dumps([2, uid, action, payload])])
    expect_answer(charger, reply, uid, action, payload)
    return reply


# ---------------------------------------------------------------- properties


@fuzz(150)
@given(action_payloads(0.0))
def test_every_valid_request_gets_a_schema_valid_answer(charger, ap):
    action, payload = ap
    request(charger, "v1", action, payload)


@fuzz(300)
@given(action_payloads(0.4))
def test_every_broken_request_gets_the_violation_it_commits(charger, ap):
    action, payload = ap
    request(charger, "b1", action, payload)


@fuzz(40)
@given(st.text(min_size=1, max_size=40), st.dictionaries(st.text(max_size=10), json_any, max_size=4))
def test_unknown_actions_are_not_implemented(charger, action, payload):
    reply = request(charger, "u1", action, payload)
    if action not in REQUEST:
        assert reply[2] == "NotImplemented"


@fuzz(300)
@given(st.one_of(json_any.map(json.dumps), st.text(max_size=80),
                 st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
                 st.tuples(st.sampled_from([2, 3, 4, 2.0, "2", None]), st.one_of(st.text(max_size=40), json_leaf),
                           json_any, json_any).map(lambda t: json.dumps(list(t)))))
def test_random_frames_never_escape_the_reader(charger, text):
    sent = charger.exchange([text, json.dumps([2, "after", "ClearCache", {}])])
    # The reader stays in step: the request after the rubbish is answered.
    assert sent[-1] == [3, "after", {"status": "Accepted"}]
    for reply in sent[:-1]:
        # Only a CALL (or what starts like one) is answered, with a CALLERROR.
        assert reply[0] == 4 and reply[2] in CODES - {"InternalError"}, reply
        assert isinstance(reply[1], str) and 0 < len(reply[1]) <= 36


def test_deep_nesting_is_a_formation_violation_not_a_crash(charger):
    for depth in (100, 2000, 8000):
        text = '[2,"deep","DataTransfer",{"vendorId":"x","data":' + "[" * depth + "]" * depth + "}]"
        sent = charger.exchange([text, json.dumps([2, "after", "ClearCache", {}])])
        assert sent[-1][1] == "after"
        if depth <= 100:
            assert sent[0][:3] == [4, "deep", "TypeConstraintViolation"]
        else:
            assert sent[0][:3] in ([4, "deep", "FormationViolation"], [4, "deep", "TypeConstraintViolation"])


def test_no_memory_to_decode_deep_nesting_is_still_the_senders_error(charger, monkeypatch):
    """MicroPython's decoder keeps its nesting on the heap: on the board a
    400-deep request runs it out of memory. Nested deeper than any OCPP
    message, it is answered TypeConstraintViolation as when it decodes; a
    shallow request the heap could not decode is InternalError."""
    real = ocppj.loads

    def loads(data):
        text = data if isinstance(data, str) else bytes(data).decode()
        if text.replace(" ", "").startswith('[2,"m'):  # the heap has no room for these
            raise MemoryError
        return real(data)

    monkeypatch.setattr(ocppj, "loads", loads)
    deep = '[2,"m1","DataTransfer",{"vendorId":"x","data":' + "[" * 400 + "]" * 400 + "}]"
    quoted = '[2,"m3","DataTransfer",{"vendorId":"x","data":"' + "[" * 400 + '"}]'  # a string, not nesting
    sent = charger.exchange([deep, json.dumps([2, "m2", "Reset", {"type": "Soft"}]), quoted,
                             json.dumps([2, "after", "ClearCache", {}])])
    assert [r[:3] for r in sent[:3]] == [[4, "m1", "TypeConstraintViolation"], [4, "m2", "InternalError"],
                                         [4, "m3", "InternalError"]]
    assert sent[3] == [3, "after", {"status": "Accepted"}]


def test_huge_strings_are_property_violations(charger):
    big = "A" * 15000
    for action, payload in (("ChangeConfiguration", {"key": big, "value": "1"}),
                            ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": big}),
                            ("RemoteStartTransaction", {"idTag": big}),
                            ("DataTransfer", {"vendorId": big}),
                            ("GetConfiguration", {"key": [big]})):
        reply = request(charger, "h1", action, payload)
        assert reply[2] == "PropertyConstraintViolation"
    # No maxLength on DataTransfer.data: a big one is taken.
    request(charger, "h2", "DataTransfer", {"vendorId": "x", "data": big})


def test_hostile_traffic_retains_nothing(charger):
    # The same hostile batch twice: what the second pass leaves allocated
    # (after the first warmed every cache) is what the charger keeps per message.
    rnd = random.Random(15)
    batch = []
    for i in range(300):
        a = rnd.choice(ACTIONS + ["Nope"])
        p = {"key": "x" * rnd.randint(0, 3000), "connectorId": rnd.choice([1, "1", None, 2**40])}
        batch.append(json.dumps([2, "m%d" % i, a, p]))
        batch.append(json.dumps([3, "r%d" % i, {"x": i}]))  # stray replies
        batch.append("[2,\"g%d\",\"Reset\"," % i + "{" * rnd.randint(1, 50))
    charger.exchange(batch)
    # Counted: what device code allocated (not the test's, nor CPython's own caches).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    mine = [tracemalloc.Filter(True, os.path.join(root, d, "*")) for d in ("firmware", "lib", "hal")]
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.take_snapshot().filter_traces(mine)
        sent = len(charger.exchange(batch))
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
    grown = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert sent == 600  # every CALL and every broken CALL answered, stray replies ignored
    assert grown < 8000, grown


# ---------------------------------------------------------------- defects found


def test_list_version_beyond_int32_is_refused_not_a_crash(charger):
    # Found by the property above: struct.error out of the handler (InternalError).
    for v in (2**31, -5, 10**30):
        for kind in ("Full", "Differential"):
            reply = request(charger, "lv", "SendLocalList", {"listVersion": v, "updateType": kind})
            assert reply[:2] == [3, "lv"] and reply[2]["status"] in ("Failed", "VersionMismatch"), reply
    assert request(charger, "g", "GetLocalListVersion", {})[2] == {"listVersion": 0}
    request(charger, "ok", "SendLocalList", {"listVersion": 2**31 - 1, "updateType": "Full"})
    assert request(charger, "g", "GetLocalListVersion", {})[2] == {"listVersion": 0}  # empty list: 0


def test_expiry_dates_outside_the_files_range_are_kept_safely(charger):
    # struct.error packing an expiry after 2106 or before 1970 (InternalError).
    entries = [{"idTag": "LATE", "idTagInfo": {"status": "Accepted", "expiryDate": "2200-01-01T00:00:00Z"}},
               {"idTag": "PAST", "idTagInfo": {"status": "Accepted", "expiryDate": "1960-01-01T00:00:00Z"}}]
    reply = request(charger, "e", "SendLocalList",
                    {"listVersion": 3, "updateType": "Full", "localAuthorizationList": entries})
    assert reply[2] == {"status": "Accepted"}
    assert charger.app.auth.listed("LATE")["status"] == "Accepted"
    assert charger.app.auth.listed("PAST")["status"] == "Expired"


def test_tags_longer_than_a_record_are_refused_and_never_crash_a_lookup(charger):
    # 20 characters that are 40 UTF-8 bytes were cut to 20 bytes on file (two
    # tags could become one), and looking such a tag up raised ValueError.
    wide = "\u00e9" * 20
    for entry in ({"idTag": wide, "idTagInfo": {"status": "Accepted"}},
                  {"idTag": "A", "idTagInfo": {"status": "Accepted", "parentIdTag": wide}}):
        reply = request(charger, "w", "SendLocalList",
                        {"listVersion": 4, "updateType": "Full", "localAuthorizationList": [entry]})
        assert reply[2] == {"status": "Failed"}
    request(charger, "k", "SendLocalList", {"listVersion": 5, "updateType": "Full",
                                            "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}]})
    assert charger.app.auth.listed(wide) is None
    assert charger.app.auth.listed("A") == {"status": "Accepted"}


# ---------------------------------------------------------------- the local list store

TAGS = ["", "A", "B", "KID", "FLEET", "T" * 20, "0123456789ABCDEFGHIJ"]
list_info = st.fixed_dictionaries({"status": st.sampled_from(["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"])},
                                  optional={"parentIdTag": st.sampled_from(TAGS), "expiryDate": DATES})
list_entry = st.fixed_dictionaries({"idTag": st.sampled_from(TAGS)}, optional={"idTagInfo": list_info})
updates = st.lists(st.tuples(st.sampled_from(["Full", "Differential"]), st.integers(-1, 12),
                             st.lists(list_entry, max_size=6)), min_size=1, max_size=6)


def epoch_of(text):
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@fuzz(40)
@given(updates, st.integers(1, 5))
def test_local_list_store_follows_its_updates(charger, ups, max_total):
    cfg = charger.app.cfg
    assert cfg.set("LocalAuthListEnabled", "true") == "Accepted"
    # Read-only keys (factory values): set as the factory preset would.
    cfg.set_internal("SendLocalListMaxLength", 1)
    cfg.set_internal("LocalAuthListMaxLength", max_total)
    cfg.set_internal("SendLocalListMaxLength", max_total)
    assert cfg.get("LocalAuthListMaxLength") == cfg.get("SendLocalListMaxLength") == max_total
    request(charger, "f", "SendLocalList", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": []})
    model, version = {}, 0
    for kind, v, entries in ups:
        reply = request(charger, "s", "SendLocalList",
                        {"listVersion": v, "updateType": kind, "localAuthorizationList": entries})
        listed = version if model else 0
        tags = [e["idTag"] for e in entries]
        new = {} if kind == "Full" else dict(model)
        for e in entries:
            if "idTagInfo" in e:
                new[e["idTag"]] = e["idTagInfo"]
            else:
                new.pop(e["idTag"], None)
        if kind == "Differential" and v <= listed:
            expected = "VersionMismatch"
        elif v < 0 or len(tags) > max_total or len(tags) != len(set(tags)) or kind == "Full" and any("idTagInfo" not in e for e in entries) \
                or len(new) > max_total:
            expected = "Failed"
        else:
            expected = "Accepted"
            model, version = new, v
        assert reply[2] == {"status": expected}, (kind, v, entries, model)
        got = request(charger, "g", "GetLocalListVersion", {})[2]["listVersion"]
        assert got == (version if model else 0)
    now = charger.board.clock.now()
    for tag in TAGS:
        info = charger.app.auth.listed(tag)
        if tag not in model:
            assert info is None, tag
            continue
        want = model[tag]
        status = want["status"]
        if status == "Accepted" and "expiryDate" in want and epoch_of(want["expiryDate"]) <= now:
            status = "Expired"
        assert info["status"] == status, (tag, info, want)
        assert info.get("parentIdTag") == (want.get("parentIdTag") or None), (tag, info, want)
        assert ("expiryDate" in info) == ("expiryDate" in want), (tag, info, want)
