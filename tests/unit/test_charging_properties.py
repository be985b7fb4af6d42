"""Property test over random event sequences (the charging-session and
safety-interlock issues): after every control cycle the HAL outputs obey the
interlock of firmware/outputs.py (the contactor is closed only for an
authorized transaction, EV in C, the diode seen healthy during the running
PWM, the lock confirmed, no blocking fault, the supply present, energy still
allowed), and every StartTransaction is followed by exactly one
StopTransaction.

The whole application (App) runs on CPython with the HAL replaced by
hal.mock and the central system faked at ChargePoint.call; outputs are read
from the mock relay, events go in through the mock pilot, card reader and the
CSMS request handlers."""
import asyncio

from hypothesis import HealthCheck, example, given, settings, strategies as st

import firmware.outputs as O
import firmware.supervisor as S
from firmware.app import App
from hal.mock.board import Board
from tests.unit.wire import as_sent

CYCLE_MS = 20
BUTTON_DEBOUNCE_MS = [r[5] for r in S.F.FAULTS if r[0] == "button"][0]

LEVELS = {"A": 12000, "B": 9000, "C": 6000, "D": 3000}
ACCEPTED = {"TAG1", "TAG2"}

# Weighted so that plug -> card -> EV asks for energy happens often enough to
# matter; every other event can interleave anywhere.
EVENTS = (
    [("plug",)] * 3 + [("unplug",)] * 2 + [("ev", "C")] * 4 + [("ev", "B"), ("ev", "D")]
    + [("card", "TAG1")] * 3 + [("card", "TAG2"), ("card", "BLOCKED"), ("card", "NOBODY")]
    + [("remote_start", "TAG1"), ("remote_start", "NOBODY"), ("remote_stop",), ("unlock",)]
    + [("avail", True), ("avail", False), ("online", True), ("online", False)]
    + [("diode", False), ("diode", True), ("lock_jam", True), ("lock_jam", False)]
    + [("supply", False), ("supply", True), ("button", True), ("button", False)]
    + [("start_answer", "Invalid"), ("start_answer", "Accepted")]
    + [("race", "stop_then_card"), ("race", "card_then_remote_start"), ("race", "unplug_then_card")]
    + [("race", "card_and_ev_c")]
)
events = st.lists(st.sampled_from(EVENTS), min_size=1, max_size=30)


class FakeCsms:
    def __init__(self):
        self.calls = []
        self.next_id = 0
        self.online = True
        self.start_answer = "Accepted"
        self.answered = {}  # transactionId -> idTagInfo status given

    async def call(self, action, payload, timeout_ms=None, unique_id=None):
        from firmware.chargepoint import NotConnected

        if not self.online:
            raise NotConnected()
        payload = as_sent(action, payload)
        self.calls.append((action, payload))
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted" if payload["idTag"] in ACCEPTED else "Invalid"}}
        if action == "StartTransaction":
            self.next_id += 1
            self.answered[self.next_id] = self.start_answer
            return {"transactionId": self.next_id, "idTagInfo": {"status": self.start_answer}}
        return {}


class Clock:
    """Control-loop time: the outputs' PWM settle and the supervisor's filter
    times run on it, one CYCLE_MS per control step."""

    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b


async def scenario(tmp_path, seq, authorize_remote, stop_on_invalid):
    root = str(tmp_path) + "/"
    board = Board(flash_root=root)
    with open(root + "provision.json", "w") as f:
        f.write('{"variant": "business", "config": {"AuthorizeRemoteTxRequests": "%s", '
                '"StopTransactionOnInvalidId": "%s", "MaxEnergyOnInvalidId": "0"}}'
                % ("true" if authorize_remote else "false", "true" if stop_on_invalid else "false"))
    clock = Clock()
    O.time = S.time = clock
    app = App(board)
    csms = FakeCsms()
    app.cp.call = csms.call
    app.cp.accepted = app.cp.registered = True
    conn = app.station.connector
    tasks = [asyncio.ensure_future(app.txs.run()), asyncio.ensure_future(app.station.run_status())]
    pilot = "A"
    remote_ok = set()
    model = {"diode": True, "supply": True, "button": None}  # button: control time it was pressed
    pwm = {"since": None}  # control time the HAL pilot started oscillating

    def check_interlock():
        """The interlock, on the HAL outputs and the test's model of the world."""
        duty = board.pilot.duty()
        running = duty is not None and duty != 0
        if not running:
            pwm["since"] = None
        elif pwm["since"] is None:
            pwm["since"] = clock.now
        if not board.relay.command:
            return
        s = conn.session
        assert s is not None and s.tx is not None, "relay closed outside a transaction"
        assert s.id_tag in ACCEPTED or s.id_tag in remote_ok, "relay closed for %s" % s.id_tag
        tid = app.txs.transaction_id(s.tx)
        assert tid is None or csms.answered[tid] == "Accepted", "relay closed after StartTransaction %s" % (
            csms.answered.get(tid),)
        assert pilot == "C", "relay closed with the EV in %s" % pilot
        assert running and clock.now - pwm["since"] >= O._PWM_SETTLE_MS, "relay closed before the diode check"
        assert model["diode"], "relay closed with a failed diode"
        assert board.lock.locked(), "relay closed without the lock confirmed"
        assert model["supply"], "relay closed with %s" % model
        # the button is debounced (its fault row's raise filter): pressed for
        # that long from the first cycle that sees it, the relay is open
        assert model["button"] is None or clock.now - model["button"] < CYCLE_MS + BUTTON_DEBOUNCE_MS, \
            "relay closed with the button pressed since %d ms" % (clock.now - model["button"])

    async def settle():
        for _ in range(6):
            clock.now += CYCLE_MS
            app.control.step()
            check_interlock()
            await asyncio.sleep(0)

    def set_pilot(state):
        hi = LEVELS[state]
        # while oscillating, a failed diode shows the positive level mirrored
        lo = hi if state == "A" else (-12000 if model["diode"] else -hi)
        board.pilot.set_levels(hi, lo)

    async def card_or_remote(kind, tag):
        if kind == "card":
            board.rfid.present(tag)
            return
        res = await app.cp._handlers["RemoteStartTransaction"]({"idTag": tag})
        if res["status"] == "Accepted" and not authorize_remote:
            remote_ok.add(tag)

    async def remote_stop():
        s = conn.session
        tid = app.txs.transaction_id(s.tx) if s is not None and s.tx is not None else 12345
        await app.cp._handlers["RemoteStopTransaction"]({"transactionId": tid or 12345})

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
        elif kind in ("card", "remote_start"):
            await card_or_remote(kind, ev[1])
        elif kind == "remote_stop":
            await remote_stop()
        elif kind == "unlock":
            await app.cp._handlers["UnlockConnector"]({"connectorId": 1})
        elif kind == "avail":
            await app.cp._handlers["ChangeAvailability"]({"connectorId": 1, "type": "Operative" if ev[1] else "Inoperative"})
        elif kind == "online":
            csms.online = ev[1]
            app.cp.accepted = ev[1]
            app.cp._emit("accepted" if ev[1] else "disconnected")
        elif kind == "diode":
            model["diode"] = ev[1]
            set_pilot(pilot)
        elif kind == "lock_jam":
            board.lock.jam(ev[1])
            if ev[1]:
                board.lock.set_position(False)  # the lock gave way and stays open
        elif kind == "supply":
            model["supply"] = ev[1]
            board.sensors.set("supply_ok", 1 if ev[1] else 0)
        elif kind == "button":
            if ev[1] != (model["button"] is not None):
                model["button"] = clock.now if ev[1] else None
            board.button.set(ev[1])
        elif kind == "start_answer":
            csms.start_answer = ev[1]
        elif kind == "race":
            # two things at once, no control cycle in between
            if ev[1] == "stop_then_card":
                await remote_stop()
                board.rfid.present("TAG1")
            elif ev[1] == "card_then_remote_start":
                board.rfid.present("TAG2")
                await card_or_remote("remote_start", "TAG1")
            elif ev[1] == "card_and_ev_c":
                board.rfid.present("TAG1")  # the EV asks for energy as the card is read
                if pilot != "A":
                    pilot = "C"
                    set_pilot(pilot)
            elif pilot != "A":
                pilot = "A"
                set_pilot(pilot)
                board.rfid.present("TAG1")
        await settle()

    # End every session and let the queue drain.
    board.button.set(False)
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
    return board, csms


CHARGE = [("plug",), ("card", "TAG1"), ("ev", "C")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=events, authorize_remote=st.booleans(), stop_on_invalid=st.booleans())
# Each condition of the interlock failing where it matters, always tried:
@example(seq=[("diode", False), ("plug",), ("race", "card_and_ev_c")], authorize_remote=False, stop_on_invalid=True)
@example(seq=[("plug",), ("race", "card_and_ev_c")], authorize_remote=False, stop_on_invalid=True)
@example(seq=CHARGE + [("diode", False), ("diode", True)], authorize_remote=False, stop_on_invalid=True)
@example(seq=CHARGE + [("lock_jam", True)], authorize_remote=False, stop_on_invalid=True)
@example(seq=CHARGE + [("supply", False), ("supply", True)], authorize_remote=False, stop_on_invalid=True)
@example(seq=CHARGE + [("button", True), ("button", False)], authorize_remote=False, stop_on_invalid=True)
@example(seq=[("start_answer", "Invalid")] + CHARGE, authorize_remote=False, stop_on_invalid=False)
@example(seq=[("start_answer", "Invalid")] + CHARGE, authorize_remote=False, stop_on_invalid=True)
@example(seq=CHARGE + [("race", "stop_then_card"), ("ev", "C")], authorize_remote=False, stop_on_invalid=True)
def test_outputs_obey_the_interlock_and_every_start_has_one_stop(tmp_path_factory, seq, authorize_remote,
                                                                 stop_on_invalid):
    run(tmp_path_factory.mktemp("prop"), seq, authorize_remote, stop_on_invalid)


def test_the_scenario_charges_when_everything_is_in_order(tmp_path):
    """The property above is not vacuous: its harness does close the contactor."""
    board, csms = run(tmp_path, CHARGE + [("card", "TAG1")], False, True)
    assert board.relay.history == [True, False]
    assert [a for a, p in csms.calls if a in ("StartTransaction", "StopTransaction")] == [
        "StartTransaction", "StopTransaction"]


def run(tmp, seq, authorize_remote, stop_on_invalid):
    saved = (O.time, S.time)
    try:
        return asyncio.run(_guarded(tmp, seq, authorize_remote, stop_on_invalid))
    finally:
        O.time, S.time = saved


async def _guarded(*args):
    try:
        return await scenario(*args)
    finally:
        # A failed scenario leaves the app's tasks running; a task inside
        # wait_for can miss one cancel (CPython 3.11), so cancel until they end.
        me = asyncio.current_task()
        for _ in range(100):
            pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.sleep(0)
