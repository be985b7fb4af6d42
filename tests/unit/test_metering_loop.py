"""firmware/metering.py's periodic samples: the metering loop (Metering.run)
with the HAL mocked and its time faked, the MeterValues counted where they are
queued for the central system (the transaction journal, replayed after an
outage)."""
import asyncio
import json
import types

import pytest

import firmware.metering as M
from firmware.chargepoint import ChargePoint
from firmware.config import Config
from firmware.metering import Metering
from firmware.transactions import _K_METER, Transactions
from hal.mock.board import Board
from lib import isotime
from lib.journal import Journal

T0 = 1764000000  # wall clock (s) at ticks 0


class Ticks:
    """firmware.metering's time: milliseconds moved on by the fake poll and sleep."""

    def __init__(self, now):
        self.now = now

    def ticks_ms(self):
        return self.now

    def ticks_add(self, a, b):
        return a + b

    def ticks_diff(self, a, b):
        return a - b


class Done(Exception):
    pass


def run_loop(tmp_path, monkeypatch, interval, polls, poll_ms, late_ms=0, t0=5000):
    """The metering loop through `polls` polls during a transaction, poll i
    taking poll_ms[i % len(poll_ms)] ms on the Modbus line, each sleep
    waking late_ms late; it begins at ticks t0 (wall clock T0 + t0 // 1000).
    Returns the queued MeterValues' sample times (s)."""
    root = str(tmp_path) + "/"
    board = Board(flash_root=root)
    cfg = Config(root=root, device_id="T")
    assert cfg.set("MeterValueSampleInterval", str(interval)) == "Accepted"
    ticks = Ticks(t0)
    board.clock.now = lambda: T0 + ticks.now // 1000
    cp = ChargePoint(board, cfg, {})
    m = Metering(board, cfg, types.SimpleNamespace(offered_a=16), cp)
    journal = Journal(root + "tx_journal.bin")
    txs = Transactions(cp, cfg, board, m, journal, None)
    tx = txs.start(1, "TAG1", None)
    m.attach(types.SimpleNamespace(connector=types.SimpleNamespace(
        phase=3, session=types.SimpleNamespace(tx=tx))), txs)
    n = [0]

    async def poll_once():
        ticks.now += poll_ms[n[0] % len(poll_ms)]
        m.values = {("Energy.Active.Import.Register", None): 1000 + n[0]}
        m._wh = 1000 + n[0]
        m.ok = True
        return True

    async def sleep_ms(ms):
        n[0] += 1
        if n[0] >= polls:
            raise Done()
        ticks.now += int(ms) + late_ms

    m.poll_once = poll_once
    monkeypatch.setattr(M, "time", ticks)
    monkeypatch.setattr(M, "asyncio", types.SimpleNamespace(
        sleep_ms=sleep_ms, sleep=lambda s: sleep_ms(s * 1000), create_task=asyncio.create_task))
    with pytest.raises(Done):
        asyncio.run(m.run())
    out = []
    for _, kind, data in journal.records():
        if kind == _K_METER:
            mv = json.loads(bytes(data))["p"]["meterValue"]
            assert len(mv) == 1 and mv[0]["sampledValue"][0]["context"] == "Sample.Periodic"
            out.append(isotime.parse(mv[0]["timestamp"]))
    return out


@pytest.mark.parametrize("poll_ms", [(133, 132), (133, 131, 134, 132), (133,)])
@pytest.mark.parametrize("interval", [1, 2, 5])
def test_a_sample_every_interval_when_polls_end_a_millisecond_apart(tmp_path, monkeypatch, interval, poll_ms):
    """Benchmark 'meter readings survive network loss' (throughput.py): with
    MeterValueSampleInterval 1 s, one second in a 240 s outage had no
    MeterValues; the firmware had not lost it but never taken it. The next
    sample was due exactly one interval after the poll that took the last
    one, and the loop polls once a second: a poll ending 1 ms earlier than
    the one before (the poll or the wake-up a millisecond shorter) found it not
    yet due, and the sample came one poll (a second) late. Now a sample is
    taken at the poll nearest to when it is due: one every interval."""
    polls = 61
    got = run_loop(tmp_path, monkeypatch, interval, polls, poll_ms)
    # the first sample one interval after the start (poll 0), then one every interval
    assert len(got) == (polls - 1) // interval, got
    gaps = [b - a for a, b in zip(got, got[1:])]
    assert gaps == [interval] * (len(got) - 1), gaps


def test_the_loop_keeps_to_its_grid_when_it_wakes_late(tmp_path, monkeypatch):
    """Each poll was timed from when the loop woke, so every wake-up's delay
    (on the board-like interpreter asyncio.sleep(0.867) takes 868 ms) moved
    the polls, and the samples taken at them, later: with samples every second
    time-stamped in whole seconds, one second got none each time the drift
    crossed a second. The polls keep to a 1 s grid: samples exactly one interval
    apart however late each wake-up is (here 1 ms, the polls ending 40 ms
    before a second)."""
    got = run_loop(tmp_path, monkeypatch, 1, 121, (133,), late_ms=1, t0=5000 - 133 - 40)
    assert len(got) == 120, got
    gaps = [b - a for a, b in zip(got, got[1:])]
    assert gaps == [1] * (len(got) - 1), gaps


def test_transaction_begin_is_kept_while_a_send_holds_the_buffer_and_memory_is_short(tmp_path, monkeypatch):
    """The Transaction.Begin value of StopTransaction.transactionData was
    encoded into a 2 KB buffer of its own when a send held the message
    buffer; during a burst of CALLs on the board-like heap that allocation
    failed (MemoryError at the first report of the transaction) and the stop
    went out without it. It waits for the message buffer now."""
    root = str(tmp_path) + "/"
    board = Board(flash_root=root)
    cfg = Config(root=root, device_id="T")
    cp = ChargePoint(board, cfg, {})
    m = Metering(board, cfg, types.SimpleNamespace(offered_a=16), cp)
    journal = Journal(root + "tx_journal.bin")
    txs = Transactions(cp, cfg, board, m, journal, None)
    m.values = {("Energy.Active.Import.Register", None): 1234.0}
    m._wh = 1234
    m.ok = True
    tx = txs.start(1, "TAG1", None)
    m.attach(types.SimpleNamespace(connector=types.SimpleNamespace(
        phase=3, session=types.SimpleNamespace(tx=tx))), txs)

    def no_memory(*a):
        raise MemoryError("memory allocation failed, allocating 2048 bytes")

    async def main():
        await cp.buffer.__aenter__()  # a send holds the message buffer
        monkeypatch.setattr(M.ocppj, "Out", no_memory)
        report = asyncio.create_task(m.report(0))
        await asyncio.sleep(0.01)
        assert not report.done()  # waits for the buffer, allocates none
        await cp.buffer.__aexit__(None, None, None)
        await report

    asyncio.run(main())
    monkeypatch.undo()
    txs.stop(tx, "Local")
    stops = [json.loads(bytes(d))["p"] for _, kind, d in journal.records() if kind == 2]
    assert len(stops) == 1, stops
    data = stops[0]["transactionData"]
    assert data[0]["sampledValue"][0]["context"] == "Transaction.Begin", data
    assert data[0]["sampledValue"][0]["value"] == "1234", data
