"""tools/csms.py driven by a raw websockets client playing the charger."""
import asyncio
import base64
import json
import os
import ssl
import subprocess
import sys
import threading
import time

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import csms  # noqa: E402
from csms import CallErrorReceived, CallErrorReply, CallTimeout, CentralSystem, CsmsThread, DROP, Delayed  # noqa: E402

BOOT = {"chargePointVendor": "BrightBlu", "chargePointModel": "JOLT"}
TS = "2024-05-01T10:00:00Z"


def run(coro_fn, **kwargs):
    async def body():
        cs = CentralSystem(**kwargs)
        await cs.start()
        try:
            await asyncio.wait_for(coro_fn(cs), 10)
        finally:
            await cs.stop()
        return cs

    return asyncio.run(body())


def client(cs, cp_id="CP1", **kw):
    kw.setdefault("subprotocols", ["ocpp1.6"])
    return connect(cs.url + "/" + cp_id, **kw)


async def rpc(ws, uid, action, payload):
    await ws.send(json.dumps([2, uid, action, payload]))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def kinds(cs):
    return [v["kind"] for v in cs.violations]


def test_boot_accepted_and_recorded():
    async def body(cs):
        assert cs.url == "ws://127.0.0.1:%d/ocpp" % cs.port
        async with client(cs, "JOLT-7") as ws:
            assert ws.subprotocol == "ocpp1.6"
            r = await rpc(ws, "b1", "BootNotification", BOOT)
            assert r[0] == 3 and r[1] == "b1"
            assert r[2]["status"] == "Accepted" and r[2]["interval"] == 42
            assert r[2]["currentTime"].endswith("Z") and "T" in r[2]["currentTime"]
            hb = await rpc(ws, "h1", "Heartbeat", {})
            assert hb[0] == 3 and hb[2]["currentTime"].endswith("Z")
            assert cs.connected("JOLT-7")

    cs = run(body, heartbeat_interval=42)
    assert cs.violations == []
    m = cs.messages
    assert [(x["dir"], x["type"], x["action"], x["cp"]) for x in m] == [
        ("in", 2, "BootNotification", "JOLT-7"),
        ("out", 3, "BootNotification", "JOLT-7"),
        ("in", 2, "Heartbeat", "JOLT-7"),
        ("out", 3, "Heartbeat", "JOLT-7"),
    ]
    assert m[0]["payload"] == BOOT and m[0]["id"] == "b1" and json.loads(m[0]["raw"])[3] == BOOT
    assert m[1]["payload"]["interval"] == 42
    assert m[0]["t"] <= m[1]["t"] <= m[3]["t"]
    assert [c["event"] for c in cs.connections] == ["connect", "disconnect"]
    assert cs.connections[0]["path"] == "/ocpp/JOLT-7"


@pytest.mark.parametrize("status", ["Pending", "Rejected"])
def test_boot_status_configurable_and_requests_while_not_accepted_flagged(status):
    async def body(cs):
        async with client(cs) as ws:
            r = await rpc(ws, "b1", "BootNotification", BOOT)
            assert r[2]["status"] == status
            await rpc(ws, "h1", "Heartbeat", {})

    cs = run(body, boot_status=status)
    assert kinds(cs) == ["registration"]
    assert "Heartbeat" in cs.violations[0]["error"] and status in cs.violations[0]["error"]


def test_boot_retry_before_interval_flagged():
    async def body(cs):
        async with client(cs) as ws:
            r = await rpc(ws, "b1", "BootNotification", BOOT)
            assert r[2]["status"] == "Rejected" and r[2]["interval"] == 1
            await asyncio.sleep(1.0)
            await rpc(ws, "b2", "BootNotification", BOOT)  # after the interval: fine
            await rpc(ws, "b3", "BootNotification", BOOT)  # at once: too early

    cs = run(body, boot_status="Rejected", heartbeat_interval=1)
    assert kinds(cs) == ["registration"]
    assert "BootNotification retried" in cs.violations[0]["error"]
    assert json.loads(cs.violations[0]["message"])[1] == "b3"


def test_tls(tmp_path):
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)

    async def body(cs):
        assert cs.url.startswith("wss://127.0.0.1:")
        async with client(cs, ssl=client_ctx) as ws:
            assert (await rpc(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"

    cs = run(body, ssl_context=server_ctx)
    assert cs.violations == []


def test_authorize_known_unknown_and_detailed_tags():
    tags = {"AA11": "Accepted", "BL0C": "Blocked",
            "CH1LD": {"status": "Accepted", "parentIdTag": "PARENT", "expiryDate": "2030-01-01T00:00:00Z"}}

    async def body(cs):
        async with client(cs) as ws:
            out = {}
            for i, tag in enumerate(["AA11", "BL0C", "CH1LD", "NOPE"]):
                r = await rpc(ws, "a%d" % i, "Authorize", {"idTag": tag})
                out[tag] = r[2]["idTagInfo"]
            return out

    result = {}

    async def capture(cs):
        result.update(await body(cs))

    cs = run(capture, tags=tags)
    assert result["AA11"] == {"status": "Accepted"}
    assert result["BL0C"] == {"status": "Blocked"}
    assert result["CH1LD"] == {"status": "Accepted", "parentIdTag": "PARENT", "expiryDate": "2030-01-01T00:00:00Z"}
    assert result["NOPE"] == {"status": "Invalid"}
    assert cs.violations == [] and cs.errors == []


def test_transactions_incrementing_ids_and_stop():
    async def body(cs):
        async with client(cs) as ws:
            start = {"connectorId": 1, "idTag": "AA11", "meterStart": 10, "timestamp": TS}
            r1 = await rpc(ws, "s1", "StartTransaction", start)
            r2 = await rpc(ws, "s2", "StartTransaction", dict(start, idTag="ZZ"))
            assert r1[2] == {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}
            assert r2[2] == {"transactionId": 8, "idTagInfo": {"status": "Invalid"}}
            mv = {"connectorId": 1, "transactionId": 7,
                  "meterValue": [{"timestamp": TS, "sampledValue": [{"value": "15"}]}]}
            assert (await rpc(ws, "m1", "MeterValues", mv))[2] == {}
            stop = await rpc(ws, "t1", "StopTransaction", {"transactionId": 7, "meterStop": 20, "timestamp": TS,
                                                          "idTag": "AA11", "reason": "Local"})
            assert stop[2] == {"idTagInfo": {"status": "Accepted"}}
            stop2 = await rpc(ws, "t2", "StopTransaction", {"transactionId": 8, "meterStop": 20, "timestamp": TS})
            assert stop2[2] == {}
            dt = await rpc(ws, "d1", "DataTransfer", {"vendorId": "x"})
            assert dt[2] == {"status": "UnknownVendorId"}
            for uid, action, payload in [
                ("n1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}),
                ("n2", "DiagnosticsStatusNotification", {"status": "Idle"}),
                ("n3", "FirmwareStatusNotification", {"status": "Installed"}),
            ]:
                r = await rpc(ws, uid, action, payload)
                assert r[0] == 3 and r[2] == {}

    cs = run(body, tags={"AA11": "Accepted"}, first_transaction_id=7)
    assert cs.violations == [] and cs.errors == []
    assert cs.transactions[7]["start"]["meterStart"] == 10
    assert cs.transactions[7]["stop"]["meterStop"] == 20
    assert cs.transactions[8]["cp"] == "CP1"


def test_resent_transaction_message_is_answered_again_not_processed_twice():
    """A charger that lost the answer resends under the same UniqueId on a new
    connection: same transactionId, one transaction; a new UniqueId is a new one."""
    async def body(cs):
        start = {"connectorId": 1, "idTag": "AA11", "meterStart": 10, "timestamp": TS}
        async with client(cs) as ws:
            r1 = await rpc(ws, "s1", "StartTransaction", start)
        async with client(cs) as ws:
            r2 = await rpc(ws, "s1", "StartTransaction", start)
            r3 = await rpc(ws, "s3", "StartTransaction", start)
        assert r1[2]["transactionId"] == r2[2]["transactionId"] == 1
        assert r3[2]["transactionId"] == 2

    cs = run(body, tags={"AA11": "Accepted"})
    assert cs.violations == [] and sorted(cs.transactions) == [1, 2]
    ins = [m for m in cs.messages if m["dir"] == "in" and m["action"] == "StartTransaction"]
    assert [bool(m.get("resent")) for m in ins] == [False, True, False]


def test_schema_invalid_call_is_violation_and_callerror():
    async def body(cs):
        async with client(cs) as ws:
            r = await rpc(ws, "b1", "BootNotification", {"chargePointVendor": "BrightBlu"})
            assert r[0] == 4 and r[1] == "b1" and r[2] == "ProtocolError"
            assert "chargePointModel" in r[4]["cause"]
            r = await rpc(ws, "s1", "StatusNotification", {"connectorId": "1", "errorCode": "NoError",
                                                          "status": "Available"})
            assert r[0] == 4 and r[2] == "TypeConstraintViolation"
            r = await rpc(ws, "s2", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                          "status": "Dancing"})
            assert r[0] == 4 and r[2] == "FormationViolation"  # the 1.6 spelling, not 2.x FormatViolation

    cs = run(body)
    assert kinds(cs) == ["schema", "schema", "schema"]
    v = cs.violations[0]
    assert v["action"] == "BootNotification" and "chargePointModel" in v["error"]
    assert json.loads(v["message"])[1] == "b1"
    assert cs.messages[1]["type"] == 4 and cs.messages[1]["action"] == "BootNotification"
    assert cs.messages[1]["payload"]["errorCode"] == "ProtocolError"


def test_unknown_and_wrong_direction_actions():
    async def body(cs):
        async with client(cs) as ws:
            r = await rpc(ws, "x1", "Teleport", {})
            assert r[0] == 4 and r[2] == "NotImplemented"
            r = await rpc(ws, "x2", "Reset", {"type": "Soft"})
            assert r[0] == 4 and r[2] == "NotSupported"

    cs = run(body)
    assert kinds(cs) == ["action", "action"]


def test_second_outstanding_call_flagged():
    async def body(cs):
        cs.responses["Authorize"] = Delayed(0.3)
        async with client(cs) as ws:
            await ws.send(json.dumps([2, "a1", "Authorize", {"idTag": "AA"}]))
            await asyncio.sleep(0.05)
            await ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
            got = {json.loads(await ws.recv())[1] for _ in range(2)}
            assert got == {"a1", "h1"}
            # Properly sequenced calls afterwards are fine.
            await rpc(ws, "h2", "Heartbeat", {})

    cs = run(body)
    assert kinds(cs) == ["outstanding"]
    assert "Heartbeat" in cs.violations[0]["error"] and "a1" in cs.violations[0]["error"]


def test_dropped_call_then_retry_respects_min_timeout():
    async def body(cs):
        cs.responses["StartTransaction"] = [DROP, DROP, None]
        start = {"connectorId": 1, "idTag": "AA", "meterStart": 0, "timestamp": TS}
        async with client(cs) as ws:
            await ws.send(json.dumps([2, "s1", "StartTransaction", start]))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.4)  # the charger's timeout (> min_charger_timeout)
            await ws.send(json.dumps([2, "s2", "StartTransaction", start]))
            await asyncio.sleep(0.05)  # retried too early: s2 is still "outstanding"
            r = await rpc(ws, "s3", "StartTransaction", start)
            assert r[1] == "s3" and r[2]["transactionId"] == 1

    cs = run(body, min_charger_timeout=0.3)
    assert kinds(cs) == ["outstanding"]
    assert "s3" in cs.violations[0]["error"] and "s2" in cs.violations[0]["error"]


def test_delayed_answer_abandoned_after_charger_timeout():
    async def body(cs):
        cs.responses["Authorize"] = [Delayed(0.6), None]
        async with client(cs) as ws:
            await ws.send(json.dumps([2, "a1", "Authorize", {"idTag": "AA"}]))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)  # charger timeout 0.25 s passed: a1 abandoned
            await ws.send(json.dumps([2, "a2", "Authorize", {"idTag": "AA"}]))
            got = [json.loads(await asyncio.wait_for(ws.recv(), 2))[1] for _ in range(2)]
            assert got == ["a1", "a2"]  # the late answer first, then the retry's

    cs = run(body, min_charger_timeout=0.25)
    assert cs.violations == []


def test_overrides_dict_callable_callerror_and_on_call():
    async def body(cs):
        cs.responses["Authorize"] = lambda p: {"idTagInfo": {"status": "Expired"}} if p["idTag"] == "OLD" else None
        cs.responses["Heartbeat"] = CallErrorReply("InternalError", "busy")
        cs.responses["DataTransfer"] = {"status": "Accepted", "data": "hi"}
        cs.on_call = lambda cp_id, action, p: ({"status": "Rejected", "currentTime": "2024-01-01T00:00:00Z",
                                                 "interval": 5} if action == "BootNotification" else None)
        async with client(cs) as ws:
            assert (await rpc(ws, "1", "Authorize", {"idTag": "OLD"}))[2]["idTagInfo"]["status"] == "Expired"
            assert (await rpc(ws, "2", "Authorize", {"idTag": "NEW"}))[2]["idTagInfo"]["status"] == "Accepted"
            r = await rpc(ws, "3", "Heartbeat", {})
            assert r[0] == 4 and r[2] == "InternalError" and r[3] == "busy"
            assert (await rpc(ws, "4", "DataTransfer", {"vendorId": "v"}))[2] == {"status": "Accepted", "data": "hi"}
            assert (await rpc(ws, "5", "BootNotification", BOOT))[2]["status"] == "Rejected"

    cs = run(body)
    assert cs.violations == [] and cs.errors == []
    assert cs.registration["CP1"] == "Rejected"


@pytest.mark.parametrize("frame,expect", [
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "not a JSON array"),
    ('[5, "1", {}]', "MessageTypeId"),
    ('[2, 17, "Heartbeat", {}]', "UniqueId must be a string"),
    ('[2, "%s", "Heartbeat", {}]' % ("x" * 37), "longer than 36"),
    ('[2, "1", "Heartbeat"]', "must have 4 elements"),
    ('[2, "1", "Heartbeat", []]', "payload must be a JSON object"),
    ('[4, "1", "FormatViolation", "x", {}]', "not an OCPP 1.6 error code"),
    ('[2, "1", "MeterValues", {"connectorId": NaN}]', "not valid JSON"),
    (b"\x00\x01", "binary frame"),
])
def test_bad_framing_flagged(frame, expect):
    async def body(cs):
        async with client(cs) as ws:
            await ws.send(frame)
            # Connection stays usable; a bad CALL with a usable id is answered with a CALLERROR.
            r = await rpc(ws, "ok", "Heartbeat", {})
            if r[1] != "ok":
                assert r[0] == 4 and r[2] == "FormationViolation"
                r = json.loads(await ws.recv())
            assert r[1] == "ok" and r[0] == 3

    cs = run(body)
    expected = ["framing"]
    if isinstance(frame, str) and frame.startswith("[4"):
        expected.append("unexpected_result")  # and it answers no CALL of ours
    assert [v["kind"] for v in cs.violations] == expected, cs.violations
    assert expect in cs.violations[0]["error"]
    assert cs.messages[0]["dir"] == "in"


def test_check_frame_accepts_good_frames():
    for frame in ('[2,"abc","Heartbeat",{}]', '[3,"abc",{}]', '[4,"abc","GenericError","",{}]',
                  '[4,"abc","OccurenceConstraintViolation","x",{"a":1}]'):
        parsed, problems = csms.check_frame(frame)
        assert problems == [] and parsed == json.loads(frame)


def test_duplicate_call_id_on_same_connection():
    async def body(cs):
        async with client(cs) as ws:
            await rpc(ws, "same", "Heartbeat", {})
            await rpc(ws, "same", "Heartbeat", {})
        async with client(cs) as ws:  # a new connection may reuse ids
            await rpc(ws, "same", "Heartbeat", {})

    cs = run(body)
    assert kinds(cs) == ["duplicate_id"]


def test_csms_call_result_validated_and_errors():
    async def body(cs):
        async with client(cs) as ws:
            async def answer(reply):
                m = json.loads(await ws.recv())
                assert m[0] == 2
                await ws.send(json.dumps(reply(m)))
                return m

            t = asyncio.ensure_future(cs.call("CP1", "Reset", {"type": "Soft"}))
            m = await answer(lambda m: [3, m[1], {"status": "Accepted"}])
            assert m[2] == "Reset" and m[3] == {"type": "Soft"} and len(m[1]) <= 36
            assert await t == {"status": "Accepted"}
            assert cs.violations == []

            t = asyncio.ensure_future(cs.call("CP1", "ChangeConfiguration", {"key": "K", "value": "1"}))
            await answer(lambda m: [3, m[1], {"status": "Maybe"}])
            assert await t == {"status": "Maybe"}  # returned, but recorded as a violation
            assert kinds(cs) == ["schema"] and "ChangeConfiguration" in cs.violations[0]["error"]

            t = asyncio.ensure_future(cs.call("CP1", "UnlockConnector", {"connectorId": 1}))
            await answer(lambda m: [4, m[1], "NotSupported", "no lock", {}])
            with pytest.raises(CallErrorReceived) as ei:
                await t
            assert ei.value.code == "NotSupported" and ei.value.action == "UnlockConnector"

            t = asyncio.ensure_future(cs.call("CP1", "ClearCache", {}))
            await answer(lambda m: [4, m[1], "FormatViolation", "2.x spelling", {}])
            with pytest.raises(CallErrorReceived) as ei:
                await t  # delivered although badly framed ...
            assert ei.value.code == "FormatViolation"
            assert kinds(cs)[-1] == "framing"  # ... and recorded

            with pytest.raises(CallTimeout):
                await cs.call("CP1", "ClearCache", {}, timeout=0.2)
            late = json.loads(await ws.recv())
            await ws.send(json.dumps([3, late[1], {"status": "Accepted"}]))  # late answer: no violation

            with pytest.raises(ValueError):
                await cs.call("CP1", "Reset", {"type": "Sideways"})
            with pytest.raises(csms.NotConnected):
                await cs.call("CP9", "Reset", {"type": "Soft"})

            await ws.send(json.dumps([3, "never-asked", {}]))
            await rpc(ws, "h", "Heartbeat", {})

    cs = run(body)
    assert kinds(cs) == ["schema", "framing", "unexpected_result"]
    results = [m for m in cs.messages if m["dir"] == "in" and m["type"] in (3, 4)]
    assert [m["action"] for m in results[:5]] == ["Reset", "ChangeConfiguration", "UnlockConnector", "ClearCache",
                                                  "ClearCache"]
    assert results[0]["payload"] == {"status": "Accepted"}


def test_send_raw_reply_recorded():
    async def body(cs):
        async with client(cs) as ws:
            async def charger():
                for _ in range(2):
                    m = await ws.recv()
                    try:
                        uid = json.loads(m)[1]
                        await ws.send(json.dumps([4, uid, "NotImplemented", "what", {}]))
                    except ValueError:
                        await ws.send(json.dumps([4, "-1", "FormationViolation", "bad json", {}]))

            task = asyncio.ensure_future(charger())
            r = await cs.send_raw("CP1", '[2,"r1","FlyToMoon",{}]', wait_reply_timeout=2)
            assert r["type"] == 4 and r["id"] == "r1" and r["action"] == "FlyToMoon"
            assert r["payload"]["errorCode"] == "NotImplemented"
            r = await cs.send_raw("CP1", "[2, garbage", wait_reply_timeout=2)
            assert r["payload"]["errorCode"] == "FormationViolation"
            await task

    cs = run(body)
    assert cs.violations == []
    assert [m["raw"] for m in cs.messages if m["dir"] == "out"] == ['[2,"r1","FlyToMoon",{}]', "[2, garbage"]


def test_basic_auth_required_and_refused():
    def hdr(user, pw):
        return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}

    async def body(cs):
        for headers in (None, hdr("CP1", "wrong"), hdr("CP2", "s3cret"), {"Authorization": "Basic !!"}):
            with pytest.raises(InvalidStatus) as ei:
                async with client(cs, additional_headers=headers):
                    pass
            assert ei.value.response.status_code == 401
            assert "Basic" in ei.value.response.headers["WWW-Authenticate"]
        async with client(cs, additional_headers=hdr("CP1", "s3cret")) as ws:
            assert (await rpc(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"

    cs = run(body, auth_keys={"CP1": "s3cret"})
    ev = [(c["event"], c.get("status")) for c in cs.connections]
    assert ev == [("rejected", 401)] * 4 + [("connect", None), ("disconnect", None)]


def test_subprotocol_required():
    async def body(cs):
        with pytest.raises(InvalidStatus) as ei:
            async with client(cs, subprotocols=None):
                pass
        assert ei.value.response.status_code == 400
        with pytest.raises(InvalidStatus):
            async with client(cs, subprotocols=["ocpp2.0.1"]):
                pass

    run(body)

    async def lenient(cs):
        async with client(cs, subprotocols=None) as ws:
            assert ws.subprotocol is None
            assert (await rpc(ws, "h", "Heartbeat", {}))[0] == 3

    run(lenient, subprotocol_required=False)


def test_charger_id_is_last_path_segment_and_reconnect_replaces():
    async def body(cs):
        async with connect("ws://127.0.0.1:%d/any/prefix/JOLT%%2042" % cs.port, subprotocols=["ocpp1.6"]):
            assert cs.connected("JOLT 42")
            async with connect("ws://127.0.0.1:%d/x/JOLT%%2042" % cs.port, subprotocols=["ocpp1.6"]) as ws2:
                await asyncio.sleep(0.1)
                assert cs.connected("JOLT 42")
                assert cs.chargers["JOLT 42"].ws.request.path == "/x/JOLT%2042"
                await cs.disconnect("JOLT 42")
                await ws2.wait_closed()
                assert ws2.close_code == 1000
        for _ in range(100):
            if not cs.connected("JOLT 42"):
                break
            await asyncio.sleep(0.01)
        assert not cs.connected("JOLT 42")

    cs = run(body)
    assert [c["event"] for c in cs.connections] == ["connect", "connect", "disconnect", "disconnect"]


def test_csms_thread_wait_message_and_clean_shutdown():
    before = set(threading.enumerate())
    with CsmsThread(tags={"AA": "Accepted"}, heartbeat_interval=11) as cs:
        got = {}

        def charger():
            async def go():
                async with connect(cs.url + "/T1", subprotocols=["ocpp1.6"]) as ws:
                    got["boot"] = await rpc(ws, "b", "BootNotification", BOOT)
                    m = json.loads(await ws.recv())  # the CSMS-initiated call below
                    await ws.send(json.dumps([3, m[1], {"status": "Accepted"}]))
                    got["auth"] = await rpc(ws, "a", "Authorize", {"idTag": "BB"})
                    await ws.wait_closed()

            asyncio.run(go())

        th = threading.Thread(target=charger)
        th.start()
        boot = cs.wait_message("BootNotification", timeout=5)
        assert boot["payload"] == BOOT and boot["cp"] == "T1"
        ans = cs.wait_message("BootNotification", dir="out", timeout=5)
        assert ans["payload"]["interval"] == 11 and ans["t"] >= boot["t"]
        assert cs.connected("T1")
        cs.set_tags({"BB": "Blocked"})
        assert cs.call("T1", "RemoteStopTransaction", {"transactionId": 3}, timeout=5) == {"status": "Accepted"}
        auth = cs.wait_message("Authorize", dir="out", timeout=5, where=lambda p: "idTagInfo" in p)
        assert auth["payload"]["idTagInfo"]["status"] == "Blocked"
        t0 = time.monotonic()
        with pytest.raises(AssertionError) as ei:
            cs.wait_message("StopTransaction", timeout=0.3, since_t=boot["t"])
        assert 0.25 <= time.monotonic() - t0 < 2
        assert "BootNotification" in str(ei.value)  # the dump of recent messages
        cs.disconnect("T1")
        th.join(5)
        assert not th.is_alive()
        assert not cs.connected("T1")
        assert cs.violations == []
        assert [m["action"] for m in cs.messages] == ["BootNotification"] * 2 + ["RemoteStopTransaction"] * 2 + [
            "Authorize"] * 2
    time.sleep(0.05)
    leftovers = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftovers == []


def test_cli_parsing():
    assert csms.parse_tags("A1,B2:Blocked, C3:Expired") == {"A1": "Accepted", "B2": "Blocked", "C3": "Expired"}
    assert csms.parse_tags("") is None
    assert csms.parse_command('Reset {"type":"Hard"}', {"CP1"}, "CP1") == ("call", "CP1", "Reset", {"type": "Hard"})
    assert csms.parse_command("CP2 ClearCache", {"CP1", "CP2"}, "CP1") == ("call", "CP2", "ClearCache", {})
    assert csms.parse_command("raw CP2 [2,x", {"CP2"}, "CP1") == ("raw", "CP2", "[2,x")
    assert csms.parse_command("help", set(), None) == ("help",)
    with pytest.raises(ValueError):
        csms.parse_command("Bogus {}", {"CP1"}, "CP1")


def test_cli_prints_messages_and_sends_console_commands():
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "csms.py"), "--port", "0", "--tags", "AA", "--heartbeat", "9"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on ws://127.0.0.1:" in line
        url = line.split()[2].split("/<")[0]

        async def go():
            async with connect(url + "/CLI1", subprotocols=["ocpp1.6"]) as ws:
                r = await rpc(ws, "b", "BootNotification", BOOT)
                assert r[2]["interval"] == 9
                proc.stdin.write('Reset {"type": "Hard"}\n')
                proc.stdin.flush()
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert m[0] == 2 and m[2] == "Reset" and m[3] == {"type": "Hard"}
                await ws.send(json.dumps([3, m[1], {"status": "Accepted"}]))
                await asyncio.sleep(0.2)

        asyncio.run(go())
        proc.stdin.close()
        lines = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("Reset.conf" in x for x in lines):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert "CLI1 --> BootNotification" in text and '"chargePointModel":"JOLT"' in text
        assert "CLI1 <-- Reset" in text and "CLI1 --> Reset.conf" in text
    finally:
        proc.terminate()
        proc.wait(5)


def test_strict_harness_fails_on_violation_and_passes_clean_runs():
    from tests.integration.csms_harness import strict_csms

    def charger(url, frames):
        async def go():
            async with connect(url + "/H1", subprotocols=["ocpp1.6"]) as ws:
                for f in frames:
                    await ws.send(f)
                    await ws.recv()
        asyncio.run(go())

    with strict_csms() as cs:
        charger(cs.url, [json.dumps([2, "1", "BootNotification", BOOT])])
        cs.wait_message("BootNotification", dir="out", timeout=5)

    with pytest.raises(AssertionError) as ei:
        with strict_csms() as cs:
            charger(cs.url, [json.dumps([2, "1", "BootNotification", {"chargePointVendor": "x"}])])
            cs.wait_message("BootNotification", dir="out", timeout=5)
    assert "[schema]" in str(ei.value) and "chargePointModel" in str(ei.value)

    with strict_csms(allow=("schema",)) as cs:
        charger(cs.url, [json.dumps([2, "1", "BootNotification", {"chargePointVendor": "x"}])])
        cs.wait_message("BootNotification", dir="out", timeout=5)


# ---- tools/run_sim.py helpers (the `make sim` front end of the development CSMS)

def test_run_sim_helpers(tmp_path):
    import run_sim

    assert run_sim.parse_bench_command("plug") == {"cmd": "plug"}
    assert run_sim.parse_bench_command("rfid id=04E91C2A") == {"cmd": "rfid", "id": "04E91C2A"}
    assert run_sim.parse_bench_command("ev_current amps=16 force=true") == {"cmd": "ev_current", "amps": 16,
                                                                            "force": True}
    assert run_sim.parse_bench_command('{"cmd": "ev", "state": "C"}') == {"cmd": "ev", "state": "C"}
    assert run_sim.dev_csms_port("ws://127.0.0.1:4567/ocpp") == 4567
    assert run_sim.dev_csms_port("wss://csms.example.com/ocpp") is None

    state = str(tmp_path / "board")
    assert run_sim.remembered_url(state) is None
    os.makedirs(os.path.join(state, "flash"))
    with open(os.path.join(state, "flash", "provision.json"), "w") as f:
        json.dump({"config": {"OcppServerAddress": "ws://127.0.0.1:1111/ocpp"}}, f)
    assert run_sim.remembered_url(state) == "ws://127.0.0.1:1111/ocpp"
    run_sim.remember_url(state, "ws://127.0.0.1:2222/ocpp")
    assert run_sim.remembered_url(state) == "ws://127.0.0.1:2222/ocpp"
