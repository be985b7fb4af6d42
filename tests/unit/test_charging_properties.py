"""Property test over random event sequences (the charging-session issue):
the relay never closes without an accepted authorization, and every
StartTransaction is followed by exactly one StopTransaction.

The whole application (App) runs on CPython with the HAL replaced by
hal.mock and the central system faked at ChargePoint.call; outputs are read
from the mock relay, events go in through the mock pilot, card reader and the
CSMS request handlers."""
import asyncio

from hypothesis import HealthCheck, given, settings, strategies as st

from firmware.app import App
from hal.mock.board import Board

LEVELS = {"A": 12000, "B": 9000, "C": 6000, "D": 3000}
ACCEPTED = {"TAG1", "TAG2"}

# Weighted so that plug -> card -> EV asks for energy happens often enough to
# matter; every other event can interleave anywhere.
EVENTS = (
    [("plug",)] * 3 + [("unplug",)] * 2 + [("ev", "C")] * 4 + [("ev", "B"), ("ev", "D")]
    + [("card", "TAG1")] * 3 + [("card", "TAG2"), ("card", "BLOCKED"), ("card", "NOBODY")]
    + [("remote_start", "TAG1"), ("remote_start", "NOBODY"), ("remote_stop",), ("unlock",)]
    + [("avail", True), ("avail", False), ("online", True), ("online", False)]
)
events = st.lists(st.sampled_from(EVENTS), min_size=1, max_size=30)


class FakeCsms:
    def __init__(self):
        self.calls = []
        self.next_id = 0
        self.online = True

    async def call(self, action, payload, timeout_ms=None):
        from firmware.chargepoint import NotConnected

        if not self.online:
            raise NotConnected()
        self.calls.append((action, dict(payload)))
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted" if payload["idTag"] in ACCEPTED else "Invalid"}}
        if action == "StartTransaction":
            self.next_id += 1
            return {"transactionId": self.next_id, "idTagInfo": {"status": "Accepted"}}
        return {}


async def scenario(tmp_path, seq, authorize_remote):
    root = str(tmp_path) + "/"
    board = Board(flash_root=root)
    with open(root + "provision.json", "w") as f:
        f.write('{"variant": "business", "config": {"AuthorizeRemoteTxRequests": "%s", '
                '"StopTransactionOnInvalidId": "true"}}' % ("true" if authorize_remote else "false"))
    app = App(board)
    csms = FakeCsms()
    app.cp.call = csms.call
    app.cp.accepted = app.cp.registered = True
    conn = app.station.connector
    tasks = [asyncio.ensure_future(app.txs.run()), asyncio.ensure_future(app.station.run_status())]
    pilot = "A"
    remote_ok = set()

    async def settle():
        for _ in range(6):
            app.control.step()
            await asyncio.sleep(0)

    def set_pilot(state):
        hi = LEVELS[state]
        board.pilot.set_levels(hi, -12000 if state != "A" else hi)

    for ev in seq:
        kind = ev[0]
        if kind == "plug":
            pilot = "B"
            set_pilot(pilot)
        elif kind == "unplug":
            pilot = "A"
            set_pilot(pilot)
        elif kind == "ev" and pilot != "A":
            pilot = ev[1]
            set_pilot(pilot)
        elif kind == "card":
            board.rfid.present(ev[1])
        elif kind == "remote_start":
            res = await app.cp._handlers["RemoteStartTransaction"]({"idTag": ev[1]})
            if res["status"] == "Accepted" and not authorize_remote:
                remote_ok.add(ev[1])
        elif kind == "remote_stop":
            s = conn.session
            tid = app.txs.transaction_id(s.tx) if s is not None and s.tx is not None else 12345
            await app.cp._handlers["RemoteStopTransaction"]({"transactionId": tid or 12345})
        elif kind == "unlock":
            await app.cp._handlers["UnlockConnector"]({"connectorId": 1})
        elif kind == "avail":
            await app.cp._handlers["ChangeAvailability"]({"connectorId": 1, "type": "Operative" if ev[1] else "Inoperative"})
        elif kind == "online":
            csms.online = ev[1]
            app.cp.accepted = ev[1]
            app.cp._emit("accepted" if ev[1] else "disconnected")
        await settle()
        if board.relay.physical():
            s = conn.session
            assert pilot == "C", "relay closed with the EV in %s" % pilot
            assert s is not None and s.tx is not None
            assert s.id_tag in ACCEPTED or s.id_tag in remote_ok, "relay closed for %s" % s.id_tag

    # End every session and let the queue drain.
    csms.online = True
    app.cp.accepted = True
    app.cp._emit("accepted")
    set_pilot("A")
    await settle()
    for _ in range(50):
        await settle()
        if app.txs._head() is None:
            break
    for t in tasks:
        t.cancel()
    starts = [p for a, p in csms.calls if a == "StartTransaction"]
    stops = [p["transactionId"] for a, p in csms.calls if a == "StopTransaction"]
    assert sorted(stops) == list(range(1, len(starts) + 1)), (len(starts), stops)
    assert not board.relay.physical()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=events, authorize_remote=st.booleans())
def test_relay_needs_authorization_and_every_start_has_one_stop(tmp_path_factory, seq, authorize_remote):
    tmp = tmp_path_factory.mktemp("prop")
    asyncio.run(scenario(tmp, seq, authorize_remote))
