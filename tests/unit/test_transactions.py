"""Transaction messages through the journal: order, id mapping across reboots,
and what is dropped first when the journal is full. The central system is a
fake at the ChargePoint.call boundary; storage is the real journal on disk."""
import asyncio
import calendar
import json
import time

from firmware.chargepoint import NotConnected
from firmware.config import Config
from firmware.transactions import _K_METER, Transactions
from hal.mock.board import Board
from lib import ocppj
from lib.journal import Journal
from tests.unit.wire import as_sent


class FakeCP:
    def __init__(self):
        self.accepted = True
        self.sent = []
        self.next_id = 100
        self.uids = []
        self.lose_answers = 0

    def listen(self, fn):
        pass

    def writer(self):  # ChargePoint.writer: its message buffer, when free
        return ocppj.Out(4096)

    def scratch(self):  # ChargePoint.scratch: its message buffer, when free
        return bytearray(4096)

    async def call(self, action, payload, timeout_ms=None, uid=None):
        self.sent.append((action, as_sent(action, payload)))
        self.uids.append(uid)
        if self.lose_answers:
            self.lose_answers -= 1
            raise NotConnected()  # the link dropped before the answer came
        if action == "StartTransaction":
            self.next_id += 1
            return {"transactionId": self.next_id, "idTagInfo": {"status": "Accepted"}}
        return {}


class FakeMeter:
    def __init__(self):
        self.wh = 1000

    def register_wh(self):
        return self.wh

    def tx_data(self, tx, stop_wh, now):
        return None  # transactionData is firmware/metering.py's business (tested there)

    def session_wh(self, reg, base):
        return reg  # a Business unit: the register as it is


class FakeAuth:
    def remember(self, tag, info):
        pass


def make(tmp_path, cp=None, journal_bytes=65536, meter=None):
    root = str(tmp_path) + "/"
    board = Board(flash_root=root)
    cfg = Config(root=root, device_id="T")
    j = Journal(root + "j.bin", journal_bytes)
    return Transactions(cp or FakeCP(), cfg, board, meter or FakeMeter(), j, FakeAuth()), j


async def drain(txs, rounds=50):
    for _ in range(rounds):
        head = txs._head()
        if head is None:
            return
        await txs._deliver(*head)


def test_stop_queued_before_the_start_answer_carries_the_assigned_id(tmp_path):
    txs, _ = make(tmp_path)
    tx = txs.start(1, "TAG", None)
    txs.meter.wh = 1500
    txs.stop(tx, "Local", "TAG")
    asyncio.run(drain(txs))
    (a1, start), (a2, stop) = txs.cp.sent
    assert (a1, a2) == ("StartTransaction", "StopTransaction")
    assert start["meterStart"] == 1000 and stop["meterStop"] == 1500 and stop["transactionId"] == 101


def test_mapping_survives_a_reboot_between_start_answer_and_stop(tmp_path):
    txs, j = make(tmp_path)
    tx = txs.start(1, "TAG", None)
    asyncio.run(drain(txs))          # start answered: id 101
    txs.stop(tx, "Local", "TAG")     # queued, not sent: power cut now
    cp2 = FakeCP()
    txs2, _ = make(tmp_path, cp=cp2)  # reboot: same files
    assert txs2.open_at_boot is None
    asyncio.run(drain(txs2))
    assert cp2.sent == [("StopTransaction", cp2.sent[0][1])]
    assert cp2.sent[0][1]["transactionId"] == 101
    txs3, j3 = make(tmp_path, cp=FakeCP())
    assert j3.count() == 0           # nothing left to send again


def test_a_message_resent_after_a_lost_answer_or_a_reboot_keeps_its_uniqueid(tmp_path):
    cp = FakeCP()
    cp.lose_answers = 1
    txs, _ = make(tmp_path, cp=cp)
    txs.start(1, "TAG", None)
    asyncio.run(drain(txs, rounds=1))    # sent, answer lost with the link
    asyncio.run(drain(txs, rounds=1))    # after the reconnect: the same message, same id
    assert [a for a, _ in cp.sent] == ["StartTransaction"] * 2
    assert cp.uids[0] and cp.uids[0] == cp.uids[1]
    cp.lose_answers = 1
    txs.start(1, "TAG", None)
    asyncio.run(drain(txs, rounds=1))    # the next one: its own id, answer lost...
    assert cp.sent[2][0] == "StartTransaction" and cp.uids[2] not in cp.uids[:2]
    cp2 = FakeCP()
    txs2, _ = make(tmp_path, cp=cp2)     # ...then a power cut
    asyncio.run(drain(txs2))
    assert cp2.sent == [cp.sent[2]] and cp2.uids == [cp.uids[2]]


def test_power_cut_mid_transaction_becomes_a_power_loss_stop(tmp_path):
    txs, _ = make(tmp_path)
    txs.start(1, "TAG", None)
    txs.meter.wh = 1800
    txs.checkpoint()
    cp2 = FakeCP()
    meter2 = FakeMeter()
    meter2.wh = 0                    # meter silent after the reboot: the floor holds
    txs2, _ = make(tmp_path, cp=cp2, meter=meter2)
    assert txs2.recover() is not None
    asyncio.run(drain(txs2))
    actions = [a for a, _ in cp2.sent]
    assert actions == ["StartTransaction", "StopTransaction"]
    stop = cp2.sent[1][1]
    assert stop["reason"] == "PowerLoss" and stop["meterStop"] == 1800
    assert txs2.register_wh() == 1800


def test_full_journal_drops_meter_values_never_start_or_stop(tmp_path):
    txs, j = make(tmp_path, journal_bytes=2048)
    tx = txs.start(1, "TAG", None)
    for i in range(40):
        queue_sample(txs, tx, json.dumps({"timestamp": "2026-11-25T00:00:00Z", "sampledValue": [{"value": str(i)}]}))
    txs.stop(tx, "Local", "TAG")
    kinds = [k for _, k, _ in j.pending()]
    assert kinds[0] == 1 and kinds[-1] == 2 and kinds.count(1) == 1 and kinds.count(2) == 1
    values = [json.loads(d)["p"]["meterValue"][0]["sampledValue"][0]["value"] for _, k, d in j.pending() if k == _K_METER]
    assert values and values[-1] == "39" and "0" not in values  # the oldest went first


def queue_sample(txs, tx, text):
    """A transaction sample queued as firmware/metering.py does: written
    straight into its journal record in the message buffer."""
    out = txs.cp.writer()
    txs.begin_meter_values(tx, out)
    out.write(text)
    txs.end_meter_values(tx, out)


def sample(wh):
    return json.dumps({"timestamp": "2026-11-25T00:00:00Z", "sampledValue": [
        {"value": str(wh), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]})


def test_power_loss_meter_stop_is_never_below_a_value_already_reported(tmp_path):
    """Issue 10: a sample of 35 Wh went out, the power was cut before the next
    checkpoint, and the PowerLoss meterStop was the older saved 33 Wh."""
    txs, _ = make(tmp_path)
    tx = txs.start(1, "TAG", None)
    asyncio.run(drain(txs))
    txs.meter.wh = 1003               # polled after the start; no checkpoint since
    queue_sample(txs, tx, sample(1003))
    asyncio.run(drain(txs))           # the central system has 1003 Wh
    cp2 = FakeCP()
    meter2 = FakeMeter()
    meter2.wh = 0                     # not polled yet after the reboot
    txs2, _ = make(tmp_path, cp=cp2, meter=meter2)
    txs2.recover()
    asyncio.run(drain(txs2))
    (action, stop), = cp2.sent
    assert action == "StopTransaction" and stop["reason"] == "PowerLoss"
    assert stop["meterStop"] >= 1003
    txs2.meter.wh = 0
    assert txs2.start(1, "TAG", None)["start"] >= stop["meterStop"]  # and the next meterStart


def test_a_transaction_started_before_the_boot_recovery_is_not_lost_in_the_next_cut(tmp_path):
    """Issue 10: after a power cut a new transaction started (card at boot)
    before the power-loss recovery ran; the recovery then recorded "no open
    transaction", and a power cut during the new one lost it: acknowledged by
    the central system, never stopped."""
    txs, _ = make(tmp_path)
    txs.start(1, "TAG", None)
    asyncio.run(drain(txs))                 # transaction 101 charging: power cut
    cp2 = FakeCP()
    cp2.next_id = 101
    txs2, _ = make(tmp_path, cp=cp2)
    b = txs2.start(1, "TAG", None)          # a card at boot: transaction 102
    txs2.recover()                          # the boot's recovery (station.recover)
    asyncio.run(drain(txs2))
    cp3 = FakeCP()
    txs3, _ = make(tmp_path, cp=cp3)        # power cut while 102 charges
    assert txs3.recover() is not None
    asyncio.run(drain(txs3))
    stops = [p for a, p in cp2.sent + cp3.sent if a == "StopTransaction"]
    assert sorted((p["transactionId"], p["reason"]) for p in stops) == [(101, "PowerLoss"), (102, "PowerLoss")]
    assert b["l"] == 2 and [a for a, _ in cp2.sent] == ["StopTransaction", "StartTransaction"]


def test_a_cut_right_after_the_stop_was_queued_sends_one_stop(tmp_path):
    """Cut between queuing the StopTransaction and recording the transaction
    closed: the reboot must not add a PowerLoss stop for it."""
    txs, _ = make(tmp_path)
    tx = txs.start(1, "TAG", None)
    asyncio.run(drain(txs))
    state = tmp_path / "tx_state.json"
    before = state.read_bytes()
    txs.stop(tx, "Local", "TAG")
    state.write_bytes(before)               # the state write did not happen
    cp2 = FakeCP()
    txs2, _ = make(tmp_path, cp=cp2)
    assert txs2.recover() is None
    asyncio.run(drain(txs2))
    assert [(a, p["reason"]) for a, p in cp2.sent] == [("StopTransaction", "Local")]


def test_a_cut_before_the_start_was_queued_sends_nothing(tmp_path):
    """Cut between recording a transaction open and queuing its
    StartTransaction: the central system never heard of it, nothing is sent."""
    txs, _ = make(tmp_path)
    journal = tmp_path / "j.bin"
    before = journal.read_bytes()
    txs.start(1, "TAG", None)
    journal.write_bytes(before)             # the journal append did not happen
    cp2 = FakeCP()
    txs2, _ = make(tmp_path, cp=cp2)
    assert txs2.recover() is None
    asyncio.run(drain(txs2))
    assert cp2.sent == []


def test_power_loss_stop_is_not_above_a_sample_reported_after_its_time(tmp_path):
    """Chaos run (issue 10): the PowerLoss stop took the meter's reading after
    the reboot (622) at the last saved time, before a sample of 620 reported a
    second later: the register ran backwards on the central system's time line.
    It gives the register saved with that time."""
    txs, _ = make(tmp_path)
    t0 = txs.board.clock.now()
    tx = txs.start(1, "TAG", None)          # saved: 1000 Wh at t0
    asyncio.run(drain(txs))
    txs.board.clock.set(t0 + 5)
    queue_sample(txs, tx, sample(1000))  # reported at t0 + 5: still 1000 Wh
    asyncio.run(drain(txs))
    cp2 = FakeCP()
    meter2 = FakeMeter()
    meter2.wh = 1002                         # charged on until the cut, time unknown
    txs2, _ = make(tmp_path, cp=cp2, meter=meter2)
    txs2.recover()
    asyncio.run(drain(txs2))
    (action, stop), = cp2.sent
    stop_t = calendar.timegm(time.strptime(stop["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert action == "StopTransaction" and stop["meterStop"] >= 1000
    assert stop_t >= t0 + 5 or stop["meterStop"] <= 1000, (stop, t0)
    assert txs2.start(1, "TAG", None)["start"] == 1002  # the next one counts from the meter


def big_sample(i):
    # a three-phase sample with every measurand is about 1.7 KB of JSON
    return json.dumps({"timestamp": "2026-11-25T00:00:%02dZ" % i, "sampledValue": [
        {"value": "%d" % (1000 + i), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "unit": "Wh"}] + [{"value": "230.0", "context": "Sample.Periodic", "measurand": "Voltage", "unit": "V",
                            "phase": "L%d" % (k % 3 + 1)} for k in range(14)]})


class BigMeter(FakeMeter):
    def tx_data(self, tx, stop_wh, now):
        return [big_sample(i) for i in range(3)]


def test_a_stop_bigger_than_a_journal_record_goes_without_its_transaction_data(tmp_path):
    txs, _ = make(tmp_path, meter=BigMeter())
    tx = txs.start(1, "TAG", None)
    txs.meter.wh = 1300
    txs.stop(tx, "Local", "TAG")
    asyncio.run(drain(txs))
    (_, stop), = [x for x in txs.cp.sent if x[0] == "StopTransaction"]
    assert stop == {"transactionId": 101, "meterStop": 1300, "timestamp": stop["timestamp"],
                    "reason": "Local", "idTag": "TAG"}


class SmallMeter(FakeMeter):
    def tx_data(self, tx, stop_wh, now):
        return [big_sample(1)]


def test_a_stop_carries_its_transaction_data_and_its_answer_updates_the_card(tmp_path):
    remembered = []
    txs, _ = make(tmp_path, meter=SmallMeter())
    txs.auth.remember = lambda tag, info: remembered.append((tag, info["status"]))
    tx = txs.start(1, "TAG", None)
    txs.stop(tx, "Local", "TAG2")
    asyncio.run(drain(txs))
    (_, stop), = [x for x in txs.cp.sent if x[0] == "StopTransaction"]
    assert stop["transactionData"] == [json.loads(big_sample(1))] and stop["idTag"] == "TAG2"
    assert remembered == [("TAG", "Accepted")]  # the start's answer; the stop's has no idTagInfo here


class BusyCP(FakeCP):
    def writer(self):
        return None  # a send holds the message buffer


def test_queued_while_a_send_holds_the_buffer(tmp_path):
    txs, j = make(tmp_path, cp=BusyCP(), meter=SmallMeter())
    tx = txs.start(1, "TAG", None)
    txs.stop(tx, "Local", "TAG")
    asyncio.run(drain(txs))
    assert [a for a, _ in txs.cp.sent] == ["StartTransaction", "StopTransaction"]
    assert txs.cp.sent[1][1]["transactionData"] == [json.loads(big_sample(1))]


def test_records_written_by_earlier_firmware_are_still_delivered(tmp_path):
    """Journals on chargers in the field hold {"a","p","l","u"} records in any order."""
    root = str(tmp_path) + "/"
    j = Journal(root + "j.bin", 65536)
    j.append(json.dumps({"p": {"connectorId": 1, "idTag": "OLD", "meterStart": 5,
                               "timestamp": "2026-11-25T00:00:00Z"}, "a": "StartTransaction", "l": 7, "u": "u-1"}), 1)
    j.append(json.dumps({"l": 7, "u": "u-2", "a": "StopTransaction", "p": {
        "transactionId": 0, "meterStop": 9, "timestamp": "2026-11-25T00:01:00Z", "reason": "Local"}}), 2)
    txs, _ = make(tmp_path)
    assert txs.next_local == 8
    asyncio.run(drain(txs))
    (a1, start), (a2, stop) = txs.cp.sent
    assert (a1, start["idTag"], a2, stop["transactionId"], stop["meterStop"]) == (
        "StartTransaction", "OLD", "StopTransaction", 101, 9)
    assert txs.cp.uids == ["u-1", "u-2"]


class NoMemoryOnceCP(FakeCP):
    def __init__(self):
        super().__init__()
        self.fail = 1

    async def call(self, action, payload, timeout_ms=None, uid=None):
        if self.fail:
            self.fail -= 1
            raise MemoryError("memory allocation failed")
        return await super().call(action, payload, timeout_ms, uid)


def test_no_memory_while_sending_keeps_the_message_queued(tmp_path, monkeypatch):
    import firmware.transactions as T

    real_sleep = asyncio.sleep

    async def no_sleep(s):
        await real_sleep(0)  # the queue's pause after a MemoryError, without the second

    monkeypatch.setattr(T.asyncio, "sleep", no_sleep)
    txs, j = make(tmp_path, cp=NoMemoryOnceCP())
    txs.start(1, "TAG", None)

    async def run_queue():
        task = asyncio.ensure_future(txs.run())
        for _ in range(200):
            await asyncio.sleep(0)
            if txs.cp.sent:
                break
        task.cancel()

    asyncio.run(run_queue())
    assert [a for a, _ in txs.cp.sent] == ["StartTransaction"]
    assert j.count() == 1  # its map record: the start was answered and acked


class SilentCP(FakeCP):
    """A CALL that gets no answer: from a link that died silently (nothing
    heard since), or from a central system that answers other things."""

    def __init__(self, heard, silent_calls):
        super().__init__()
        self.heard = heard
        self.silent_calls = silent_calls
        self.dropped = []

    async def call(self, action, payload, timeout_ms=None, uid=None):
        if self.silent_calls:
            self.silent_calls -= 1
            self.sent.append((action, as_sent(action, payload)))
            raise asyncio.TimeoutError()
        return await super().call(action, payload, timeout_ms, uid)

    def heard_since(self, t):
        return self.heard

    def drop_link(self, why):
        self.dropped.append(why)
        self.accepted = False


def _no_sleep(monkeypatch):
    import firmware.transactions as T

    real_sleep = asyncio.sleep

    async def no_sleep(s):
        await real_sleep(0)

    monkeypatch.setattr(T.asyncio, "sleep", no_sleep)


def test_no_answer_on_a_silent_link_is_not_an_attempt(tmp_path, monkeypatch):
    # More silent CALLs than TransactionMessageAttempts: with nothing heard,
    # each one drops the connection and the message waits for the next.
    _no_sleep(monkeypatch)
    cp = SilentCP(heard=False, silent_calls=5)
    txs, j = make(tmp_path, cp=cp)
    txs.cfg.set("TransactionMessageAttempts", "2")
    tx = txs.start(1, "TAG", None)
    for _ in range(5):
        cp.accepted = True  # reconnected
        asyncio.run(drain(txs, rounds=1))
        assert cp.accepted is False and txs._head() is not None  # dropped the link, kept the message
    assert len(cp.dropped) == 5 and "no answer to StartTransaction" in cp.dropped[0]
    cp.accepted = True
    txs.meter.wh = 1200
    txs.stop(tx, "Local", "TAG")
    asyncio.run(drain(txs))
    assert [a for a, _ in cp.sent] == ["StartTransaction"] * 6 + ["StopTransaction"]
    assert cp.sent[-1][1]["transactionId"] == 101 and txs._head() is None


def test_no_answer_from_a_central_system_heard_otherwise_counts_as_attempts(tmp_path, monkeypatch):
    # The guide's TransactionMessageAttempts: the central system is there (it
    # answered something since) but never answers this message: given up.
    _no_sleep(monkeypatch)
    cp = SilentCP(heard=True, silent_calls=5)
    txs, j = make(tmp_path, cp=cp)
    txs.cfg.set("TransactionMessageAttempts", "2")
    txs.start(1, "TAG", None)
    asyncio.run(drain(txs, rounds=1))
    assert [a for a, _ in cp.sent] == ["StartTransaction"] * 2
    assert cp.dropped == [] and cp.accepted is True and txs._head() is None
