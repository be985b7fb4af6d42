"""The authorization decision (firmware/auth.py): the guide's diagram and table
with a local list present, the reservation rule, the invalid-id policy. Each
case is the verdict for one card and whether the central system was asked."""
import asyncio

import pytest

from firmware import auth, locallist
from firmware.chargepoint import NotConnected
from firmware.config import Config
from firmware.connector import Session
from firmware.idtags import IdTags
from hal.mock.board import Board

NOW = 1_800_000_000


class FakeCp:
    def __init__(self, online, answer):
        self.accepted = online
        self.answer = answer   # idTagInfo, or an exception to raise
        self.asked = []

    def on(self, action, fn):
        pass

    async def call(self, action, payload, timeout_ms=None):
        self.asked.append(payload["idTag"])
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"idTagInfo": self.answer}


class Conn:
    def __init__(self, reserved=None, session=None):
        self.cid = 1
        self.reserved = reserved
        self.session = session


def make(tmp_path, online=True, answer=None, config=None, listed=(), cached=()):
    board = Board(flash_root=str(tmp_path) + "/")
    board.clock.set(NOW)
    cfg = Config(root=board.flash.root, device_id="T")
    for k, v in (config or {}).items():
        assert cfg.set(k, v) == "Accepted", k
    cp = FakeCp(online, answer if answer is not None else {"status": "Accepted"})
    a = IdTags(cp, cfg, board)
    if listed:
        lst = locallist.LocalList(a.list_path, board.clock)
        assert lst.update(True, 1, [{"idTag": t, "idTagInfo": i} for t, i in listed], 1000) == "Accepted"
    for t, i in cached:
        a.cache.put(t, i)
    return a, cp


def decide(a, tag, purpose="start", conn=None):
    return asyncio.run(a.run("decide", tag, purpose, conn or Conn()))


OK = {"status": "Accepted"}
EXPIRED_DATE = {"status": "Accepted", "expiryDate": "2020-01-01T00:00:00Z"}


@pytest.mark.parametrize("online,config,listed,cached,answer,want,asked", [
    # LocalPreAuthorize: a listed Accepted card starts without asking; off: the central system decides.
    (True, {"LocalPreAuthorize": "true"}, [("C", OK)], [], {"status": "Blocked"}, "start", False),
    (True, {}, [("C", OK)], [], {"status": "Blocked"}, "refuse", True),
    # Blocked / Expired (by status or expiryDate) / Invalid in the list: refused locally, online or not.
    (True, {}, [("C", {"status": "Blocked"})], [], OK, "refuse", False),
    (True, {}, [("C", EXPIRED_DATE)], [], OK, "refuse", False),
    (False, {"AllowOfflineTxForUnknownId": "true"}, [("C", {"status": "Invalid"})], [], OK, "refuse", False),
    # The list has priority over the cache.
    (False, {}, [("C", {"status": "Blocked"})], [("C", OK)], OK, "refuse", False),
    (True, {"LocalPreAuthorize": "true"}, [("C", {"status": "Expired"})], [("C", OK)], OK, "refuse", False),
    # Offline: LocalAuthorizeOffline checks the list; AllowOfflineTxForUnknownId for the rest.
    (False, {}, [("C", OK)], [], OK, "start", False),
    (False, {"LocalAuthorizeOffline": "false"}, [("C", OK)], [], OK, "refuse", False),
    (False, {"LocalAuthorizeOffline": "false", "AllowOfflineTxForUnknownId": "true"}, [("C", OK)], [], OK,
     "start", False),
    (False, {}, [("OTHER", OK)], [], OK, "refuse", False),
    (False, {"AllowOfflineTxForUnknownId": "true"}, [("OTHER", OK)], [], OK, "start", False),
    # The central system does not answer: the offline rules.
    (True, {}, [("C", OK)], [], asyncio.TimeoutError(), "start", True),
    (True, {}, [], [], NotConnected(), "refuse", True),
    # LocalAuthListEnabled false: the list is not consulted.
    (False, {"LocalAuthListEnabled": "false"}, [("C", OK)], [], OK, "refuse", False),
    (True, {"LocalAuthListEnabled": "false"}, [("C", {"status": "Blocked"})], [], OK, "start", True),
])
def test_card_decision(tmp_path, online, config, listed, cached, answer, want, asked):
    a, cp = make(tmp_path, online, answer, config, listed, cached)
    action, info, signal, resid = decide(a, "C")
    assert action == want
    assert signal == ("AUTH_OK" if want == "start" else "AUTH_FAIL")
    assert (cp.asked == ["C"]) is asked
    assert resid is None


def test_central_system_answers_refresh_the_cache_but_never_shadow_the_list(tmp_path):
    a, cp = make(tmp_path, True, {"status": "Blocked"}, {}, [("L", OK)])
    decide(a, "L")
    decide(a, "U")
    assert a.cache.lookup("L") is None and a.cache.lookup("U") == {"status": "Blocked"}


def test_reservation_rule(tmp_path):
    res = {"id": 5, "cid": 1, "tag": "R", "parent": None, "exp": NOW + 600}
    a, cp = make(tmp_path, True, {"status": "Accepted", "parentIdTag": "G"})
    assert decide(a, "X", conn=Conn(res)) == ("refuse", auth.INVALID, "FAUTH1", None)
    assert cp.asked == []  # the guide's rule needs nobody
    v = decide(a, "R", conn=Conn(res))
    assert v[0] == "start" and v[3] == 5
    grouped = dict(res, parent="G")
    v = decide(a, "MATE", conn=Conn(grouped))
    assert v[0] == "start" and v[3] == 5
    v = decide(a, "MATE", conn=Conn(dict(res, parent="OTHER")))
    assert v[0] == "refuse" and v[2] == "FAUTH1"
    cp.answer = {"status": "Blocked"}
    v = decide(a, "R", conn=Conn(res))  # the reserved card still has to be valid
    assert v[0] == "refuse" and v[2] == "AUTH_FAIL"
    # RemoteStartTransaction at a reserved connector.
    assert a.run("remote_reservation", "R", res) == (True, 5)
    assert a.run("remote_reservation", "X", res) == (False, None)
    assert a.run("remote_reservation", "X", None) == (True, None)


@pytest.mark.parametrize("stop_on_invalid,answer,want", [
    ("true", {"status": "Accepted", "parentIdTag": "G"}, "stop"),     # same group ends it
    ("true", {"status": "Accepted", "parentIdTag": "H"}, "refuse"),   # another group's valid card
    ("true", {"status": "Invalid"}, "deauth"),                         # guide: StopTransactionOnInvalidId
    ("false", {"status": "Invalid"}, "refuse"),
])
def test_card_during_a_transaction(tmp_path, stop_on_invalid, answer, want):
    a, cp = make(tmp_path, True, answer, {"StopTransactionOnInvalidId": stop_on_invalid})
    conn = Conn(session=Session("OWNER", "G"))
    assert decide(a, "OTHER", "stop", conn)[0] == want


def test_start_transaction_answer_policy(tmp_path):
    a, _ = make(tmp_path, config={"StopTransactionOnInvalidId": "true"})
    assert a.run("start_answer", {"status": "Accepted"}, False) is None
    assert a.run("start_answer", {"status": "Invalid"}, True) is None  # FreeMode charges anyway
    assert a.run("start_answer", {"status": "Blocked"}, False) == "deauth"
    (tmp_path / "b").mkdir()
    b, _ = make(tmp_path / "b", config={"StopTransactionOnInvalidId": "false", "MaxEnergyOnInvalidId": "250"})
    assert b.run("start_answer", {"status": "Blocked"}, False) == 250


def test_no_memory_for_the_decision_costs_that_card_only(tmp_path, monkeypatch):
    """A MemoryError loading the decision refuses that card (AUTH_FAIL); the
    next card is decided normally (the connector is not left waiting)."""
    from firmware.app import App
    from lib import transient

    board = Board(flash_root=str(tmp_path) + "/")
    app = App(board)
    cp = FakeCp(True, {"status": "Accepted"})
    app.cp.call = cp.call
    app.cp.accepted = True
    conn = app.station.connector
    real = transient.load

    def no_memory(name):
        if name == "firmware.auth":
            raise MemoryError()
        return real(name)

    async def card(tag):
        conn.on_card(tag)
        for _ in range(20):
            await asyncio.sleep(0)

    monkeypatch.setattr(transient, "load", no_memory)
    asyncio.run(card("TAG1"))
    assert board.signal.history == ["AUTH_FAIL"] and conn.session is None and cp.asked == []
    monkeypatch.setattr(transient, "load", real)
    asyncio.run(card("TAG1"))
    assert board.signal.history == ["AUTH_FAIL", "AUTH_OK"] and cp.asked == ["TAG1"]
    assert conn.session is not None and conn.session.id_tag == "TAG1"
