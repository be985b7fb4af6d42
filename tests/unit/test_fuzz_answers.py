"""Fuzzing what the central system answers (issue 15): every CALL the
charger makes (Authorize, StartTransaction, MeterValues, StopTransaction,
StatusNotification...) is answered with a random JSON object, a CALLERROR or
nothing, during a charging session, on the whole App (CPython, hal.mock,
the central system faked at ChargePoint.call). Nothing escapes the control
step or the transaction queue, the contactor follows the session, and once
the central system answers properly again every transaction it gave an id
gets exactly one StopTransaction: no transaction message is lost."""
import asyncio

from hypothesis import example, given, strategies as st

from firmware.chargepoint import CallError
from tests.unit.fuzzing import fuzz
from tests.unit.test_charging_properties import FakeCsms
from tests.unit.test_memory_errors import Harness

leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                 st.text(max_size=12))
junk = st.recursive(leaf, lambda k: st.one_of(st.lists(k, max_size=3), st.dictionaries(st.text(max_size=12), k, max_size=3)),
                    max_leaves=8)
answers = st.one_of(
    st.just("ok"), st.just("error"), st.just("timeout"),
    st.dictionaries(st.sampled_from(["transactionId", "idTagInfo", "status", "currentTime", "x"]), junk, max_size=3),
    st.fixed_dictionaries({"transactionId": junk, "idTagInfo": junk}),
    st.fixed_dictionaries({"transactionId": st.integers(1, 99), "idTagInfo": st.one_of(junk, st.fixed_dictionaries(
        {"status": junk}))}),
)


class HostileCsms(FakeCsms):
    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.ids = []       # transactionIds given in a valid StartTransaction answer
        self.stops = []     # transactionIds of the StopTransactions answered
        self.attempts = []  # every action sent, answered or not

    async def call(self, action, payload, timeout_ms=None, unique_id=None):
        mode = self.script.pop(0) if self.script else "ok"
        self.attempts.append(action)
        if mode == "error":
            raise CallError("InternalError", "hostile")
        if mode == "timeout":
            raise asyncio.TimeoutError()
        res = await super().call(action, payload, timeout_ms, unique_id)
        if action == "StopTransaction":
            self.stops.append(self.calls[-1][1]["transactionId"])
        if mode == "ok":
            if action == "StartTransaction":
                self.ids.append(res["transactionId"])
            return res
        if action == "StartTransaction" and isinstance(mode.get("transactionId"), int) \
                and not isinstance(mode["transactionId"], bool) and isinstance(mode.get("idTagInfo"), dict) \
                and isinstance(mode["idTagInfo"].get("status"), str):
            self.ids.append(mode["transactionId"])  # valid after all: the charger may use it
        return mode


def session(tmp_path, script):
    async def main():
        h = Harness(tmp_path)
        cfg = h.app.cfg
        cfg.set("TransactionMessageRetryInterval", "0")
        cfg.set("AllowOfflineTxForUnknownId", "true")
        h.csms = csms = HostileCsms(script)
        h.app.cp.call = csms.call
        tasks = [asyncio.ensure_future(h.app.txs.run()), asyncio.ensure_future(h.app.station.run_status())]
        h.pilot("B")
        await h.cycles(5)
        h.board.rfid.present("TAG1")
        await h.cycles(10)
        h.pilot("C")
        await h.until(lambda: h.board.relay.command, 100)
        charged = h.board.relay.command
        await h.cycles(50)
        h.pilot("A")  # unplugged: the session ends
        await h.cycles(20)
        assert not h.board.relay.command
        csms.script = []  # honest from now on
        drained = await h.until(lambda: h.app.txs.store.count() <= len(h.app.txs.map_seq) and not h.app.txs.by_local, 600)
        for t in tasks:
            assert not t.done(), t.exception()  # nothing escaped the queue or the status task
            t.cancel()
        return h, csms, charged, drained

    return asyncio.run(main())


@fuzz(25)
@given(st.lists(answers, max_size=12))
@example([{"transactionId": "7", "idTagInfo": {"status": "Accepted"}}] * 3)
@example(["ok", {"transactionId": 5, "idTagInfo": "Accepted"}])
@example(["ok", {"transactionId": True, "idTagInfo": {"status": "Accepted"}}])
@example([{"idTagInfo": ["Accepted"]}])
@example(["ok", "ok", "ok", "ok", "error", "error", "error"])  # the start given up: charged all the same
def test_hostile_answers_cost_no_transaction_message(tmp_path_factory, script):
    h, csms, charged, drained = session(tmp_path_factory.mktemp("a"), script)
    assert drained, "the transaction queue never emptied"
    for tid in csms.ids:
        assert csms.stops.count(tid) >= 1, "transaction %r never stopped" % (tid,)
    # The charge may begin before the answer (OCPP), never without the message.
    assert not charged or "StartTransaction" in csms.attempts, "charged without a StartTransaction"
