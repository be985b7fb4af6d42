"""Hostile central systems (issue 15), on the bench against the strict
central system through a man-in-the-middle (tests/integration/hostile.py):
one that never answers, answers late or with the wrong message id, sends a
CALL while the charger's CALL is pending, closes mid-frame, sends a 1 MB
frame, binary frames, pings 100 times a second, accepts TCP and then says
nothing, or answers the WebSocket upgrade without the ocpp1.6 subprotocol.
The charger stays up, keeps charging (the contactor never opens while the EV
asks for energy), reconnects, and every transaction message arrives once."""
import time

import pytest

from tools.csms import DROP, Delayed
from tests.integration.hostile import HostileLink, frame
from tests.integration.rig import Rig


@pytest.fixture
def link(csms):
    h = HostileLink(csms)
    yield h
    h.close()


class Watch:
    """The contactor sampled while a step runs: it must stay closed."""

    def __init__(self, rig):
        self.rig = rig

    def hold(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            st = self.rig.status()
            assert st["relay"] is True, "contactor opened: %s\n%s" % (st, self.rig.firmware_log())
            time.sleep(0.1)


def reconnected(rig, link, since_t, timeout=20):
    """The charger dialled again after since_t and reported its state on the new connection."""
    rig.wait_status(1, "Charging", since_t=since_t, timeout=timeout)
    assert link.connections(since_t), "no new connection"


def exactly_once(csms):
    """Every transaction the central system opened has its one StopTransaction."""
    txs = csms.transactions
    assert len(txs) == 1, txs
    (tx,) = txs.values()
    assert tx["stop"] is not None, "StopTransaction lost"
    stops = [m for m in csms.messages if m["dir"] == "in" and m["type"] == 2
             and m["action"] == "StopTransaction" and not m.get("resent")]
    assert len(stops) == 1, stops


def test_hostile_frames_and_answers_cost_the_connection_never_the_charge(tmp_path, csms, link):
    cp = "CP1"
    csms.set_response("StartTransaction", [DROP])  # never answered on the first connection
    with Rig(tmp_path, link, cp_id=cp, config={"WebSocketPingInterval": "0"}) as rig:
        t0 = time.monotonic()
        rig.plug()
        rig.card("TAG1")
        rig.wait_call("StartTransaction", since_t=t0)
        rig.ev("C")
        rig.wait_relay(True)
        watch = Watch(rig)
        watch.hold(1)
        # Never answered: the link is cut, the StartTransaction is sent again and answered.
        t = time.monotonic()
        csms.disconnect(cp)
        reconnected(rig, link, t)
        rig.wait_call("StartTransaction", since_t=t, timeout=15)
        watch.hold(0.5)

        for what, data, close in (("binary frame", frame(2, b"\x00\x01\x02"), False),
                                  ("1 MB frame", frame(1, b"[" * (1 << 20)), False),
                                  ("closed mid-frame", frame(1, b"[" * 300)[:120], True)):
            t = time.monotonic()
            assert link.inject(data, close) == 1, what
            reconnected(rig, link, t)
            watch.hold(0.3)

        # 100 pings a second for 3 s: answered, the connection and the charge go on.
        t = time.monotonic()
        link.flood(frame(9, b"flood"), 100, 3)
        watch.hold(3.2)
        assert not link.connections(t), "the ping flood cost the connection"
        conf = rig.call("GetConfiguration", {"key": ["WebSocketPingInterval"]}, timeout=5)
        assert conf["configurationKey"][0]["value"] == "0"

        # Answered late (3 s), after a reply with a wrong message id; meanwhile
        # the central system's own CALL is answered at once.
        csms.set_response("Heartbeat", Delayed(3, None))
        t = time.monotonic()
        assert rig.call("TriggerMessage", {"requestedMessage": "Heartbeat"})["status"] == "Accepted"
        rig.wait_call("Heartbeat", since_t=t)
        csms.send_raw(cp, '[3,"no-such-call",{"currentTime":"2026-01-01T00:00:00Z"}]')
        t1 = time.monotonic()
        rig.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=2)
        assert time.monotonic() - t1 < 2
        watch.hold(3)
        log = rig.firmware_log(300)
        assert "stray reply no-such-call" in log and "<- Heartbeat result" in log, log
        assert not link.connections(t), "a late or stray answer cost the connection"

        t = time.monotonic()
        rig.ev("B")
        rig.unplug()
        rig.wait_call("StopTransaction", since_t=t, timeout=15)
        rig.wait_status(1, "Available", since_t=t)
    exactly_once(csms)


def test_silent_and_non_ocpp_servers_are_survived_offline(tmp_path, csms, link):
    link.mode = "silent"  # TCP accepted, then not a byte
    config = {"AllowOfflineTxForUnknownId": "true", "ConnectionTimeOut": "5"}
    rig = Rig(tmp_path, link, config=config)
    rig.start(wait_boot=False)
    try:
        rig.wait_bench(lambda s: link.connections(), 15, "a connection")
        t0 = time.monotonic()
        rig.plug()
        rig.card("TAG1")  # unknown offline: AllowOfflineTxForUnknownId
        rig.wait_bench(lambda s: s["lock"] and s["duty"], what="offline start")
        rig.ev("C")
        rig.wait_relay(True)
        watch = Watch(rig)
        # The handshake times out and the charger dials again.
        deadline = time.monotonic() + 20
        while len(link.connections()) < 2 and time.monotonic() < deadline:
            watch.hold(0.2)
        assert len(link.connections()) >= 2, link.accepted
        link.mode = "no_subprotocol"
        t = time.monotonic()
        deadline = time.monotonic() + 30
        while not link.connections(t) and time.monotonic() < deadline:
            watch.hold(0.2)
        assert "no_subprotocol" in link.connections(t)
        assert "bad subprotocol" in rig.firmware_log(300)
        link.mode = "forward"
        t = time.monotonic()
        start = rig.wait_call("StartTransaction", since_t=t0, timeout=40)
        assert start["idTag"] == "TAG1"
        watch.hold(0.5)
        t = time.monotonic()
        rig.ev("B")
        rig.unplug()
        rig.wait_call("StopTransaction", since_t=t, timeout=15)
    finally:
        rig.stop()
    exactly_once(csms)


DEVICE_CASES = [
    # (frame, CALLERROR code or None for a CALLRESULT, other answers the heap may force)
    ('[2,"d1","DataTransfer",{"vendorId":"x","data":' + "[" * 400 + "]" * 400 + "}]", "TypeConstraintViolation", ()),
    ('[2,"h1","ChangeConfiguration",{"key":"' + "A" * 12000 + '","value":"1"}]', "PropertyConstraintViolation",
     ("InternalError", "no answer")),  # a 12 KB message may not fit a fragmented 96K heap
    ('[2,"t1","Reset",{"type":1}]', "TypeConstraintViolation", ()),
    ('[2,"m1","Reset",{}]', "ProtocolError", ()),
    ('[2,"x1","Reset",{"type":"Hard","x":1}]', "FormationViolation", ()),
    ('[2,"e1","Reset",{"type":"Sideways"}]', "PropertyConstraintViolation", ()),
    ('[2,"j1","Reset",{"type":', "FormationViolation", ()),
    ('[2,"u1","FooBar",{}]', "NotImplemented", ()),
    ('[2,"n1","GetCompositeSchedule",{"connectorId":1,"duration":60}]', "NotSupported", ()),
    ('[2,"f1","ChangeAvailability",{"connectorId":1.0,"type":"Operative"}]', "TypeConstraintViolation", ()),
    ('[2,"b1","ChangeAvailability",{"connectorId":true,"type":"Operative"}]', "TypeConstraintViolation", ()),
    ('[2,"i1","ChangeAvailability",{"connectorId":99999999999999999999999,"type":"Operative"}]', None, ()),
    ('[2,"s1","GetConfiguration",{"key":["\\u0000\\"\\\\\\u00e9"]}]', None, ()),
    ('[2,"l1","SendLocalList",{"listVersion":2147483648,"updateType":"Full"}]', None, ()),
]


def test_hostile_requests_get_their_answer_on_the_device(tmp_path, csms):
    """The same decoder and dispatcher as the fuzz tests, on MicroPython in the
    board's heap: its JSON decoder, its memory, its answers."""
    with Rig(tmp_path, csms) as rig:
        before = len(csms.connections)
        for text, code, also in DEVICE_CASES:
            uid = text.split('"')[1]
            rec = csms.send_raw(rig.cp_id, text, wait_reply_timeout=5)
            if rec is None:
                assert "no answer" in also, (uid, rig.firmware_log())
                continue
            assert rec["id"] == uid, rec
            if code is None:
                assert rec["type"] == 3, (uid, rec)
            else:
                got = rec["payload"]["errorCode"] if rec["type"] == 4 else "CALLRESULT"
                assert got == code or got in also, (uid, got, rec)
        assert rig.call("GetConfiguration", {"key": ["HeartbeatInterval"]})["configurationKey"]
        assert len(csms.connections) == before, "a hostile request cost the connection"
