"""A MemoryError costs one operation, never the charger (issue 11).

The whole application runs on CPython with hal.mock and a fake central system
(the harness of test_charging_properties.py). The heap running out while the
20 ms control step starts or stops a session (the transaction queue journaling
its message) must not reach the control step: no exception out of step(), the
contactor does what the session asks, and the message reaches the central
system once memory is back."""
import asyncio

import firmware.outputs as O
import firmware.supervisor as S
from firmware.app import App
from hal.mock.board import Board
from tests.unit.test_charging_properties import CYCLE_MS, LEVELS, Clock, FakeCsms


class Harness:
    def __init__(self, tmp_path):
        root = str(tmp_path) + "/"
        self.board = Board(flash_root=root)
        with open(root + "provision.json", "w") as f:
            f.write('{"variant": "business", "config": {}}')
        self.clock = Clock()
        O.time = S.time = self.clock
        self.app = App(self.board)
        self.csms = FakeCsms()
        self.app.cp.call = self.csms.call
        self.app.cp.accepted = self.app.cp.registered = True
        self.no_memory = 0  # journal appends that fail with MemoryError from now on
        store = self.app.txs.store
        real_append = store.append

        def append(data, kind=0):
            if self.no_memory:
                self.no_memory -= 1
                raise MemoryError("memory allocation failed, allocating 512 bytes")
            return real_append(data, kind)

        store.append = append

    async def cycles(self, n):
        for _ in range(n):
            self.clock.now += CYCLE_MS
            self.app.control.step()  # raises if a MemoryError escapes
            await asyncio.sleep(0)

    def pilot(self, state):
        hi = LEVELS[state]
        self.board.pilot.set_levels(hi, hi if state == "A" else -12000)

    def sent(self, action):
        return [p for a, p in self.csms.calls if a == action]

    async def until(self, pred, cycles=400):
        for _ in range(cycles):
            if pred():
                return True
            await self.cycles(1)
            await asyncio.sleep(0.005)  # lets run()'s one-second retry come round
        return pred()


def test_no_memory_for_the_stop_costs_no_message_and_never_the_charger(tmp_path):
    async def main():
        h = Harness(tmp_path)
        task = asyncio.ensure_future(h.app.txs.run())
        h.pilot("B")
        await h.cycles(5)
        h.board.rfid.present("TAG1")
        await h.cycles(5)
        h.pilot("C")
        assert await h.until(lambda: h.board.relay.command)
        assert await h.until(lambda: h.sent("StartTransaction"))
        h.no_memory = 3  # the stop's journal write and two retries fail
        h.board.rfid.present("TAG1")  # the same card stops the session
        await h.cycles(10)
        assert not h.board.relay.command, "the stop opens the contactor as usual"
        assert h.app.station.connector.fault is None
        assert await h.until(lambda: h.sent("StopTransaction"), 600)
        task.cancel()
        return h

    h = asyncio.run(main())
    (stop,) = h.sent("StopTransaction")
    assert stop["transactionId"] == 1 and stop["reason"] == "Local"
    assert not h.board.relay.physical()


def test_no_memory_for_the_start_still_charges_and_sends_the_start_later(tmp_path):
    async def main():
        h = Harness(tmp_path)
        task = asyncio.ensure_future(h.app.txs.run())
        h.pilot("B")
        await h.cycles(5)
        h.no_memory = 2
        h.board.rfid.present("TAG1")
        await h.cycles(5)
        h.pilot("C")
        assert await h.until(lambda: h.board.relay.command)
        assert await h.until(lambda: h.sent("StartTransaction"), 600)
        h.pilot("A")  # unplugged: the session ends
        assert await h.until(lambda: h.sent("StopTransaction"), 600)
        task.cancel()
        return h

    h = asyncio.run(main())
    assert [a for a, p in h.csms.calls if a in ("StartTransaction", "StopTransaction")] == [
        "StartTransaction", "StopTransaction"]
    assert h.sent("StopTransaction")[0]["transactionId"] == 1



def test_no_memory_to_read_the_queue_costs_a_second_not_the_queue_task(tmp_path):
    """Reading the queue's oldest message (a flash read into a buffer of its
    own while a send holds the message buffer) raised MemoryError out of
    Transactions.run during a CALL burst on the board-like heap: the task died
    and was restarted by the application. It waits and reads again now."""
    async def main():
        h = Harness(tmp_path)
        task = asyncio.ensure_future(h.app.txs.run())
        store = h.app.txs.store
        real_first = store.first
        fails = [2]

        def first(*a, **k):
            if fails[0]:
                fails[0] -= 1
                raise MemoryError("memory allocation failed, allocating 508 bytes")
            return real_first(*a, **k)

        store.first = first
        h.pilot("B")
        await h.cycles(5)
        h.board.rfid.present("TAG1")
        await h.cycles(5)
        h.pilot("C")
        assert await h.until(lambda: h.sent("StartTransaction"), 600)
        assert fails[0] == 0 and not task.done(), "the queue task ended"
        task.cancel()
        return h

    h = asyncio.run(main())
    assert len(h.sent("StartTransaction")) == 1

def test_a_power_cut_while_the_stop_is_held_ends_the_transaction_with_power_loss(tmp_path):
    async def charge_then_stop_without_memory():
        h = Harness(tmp_path)
        task = asyncio.ensure_future(h.app.txs.run())
        h.pilot("B")
        await h.cycles(5)
        h.board.rfid.present("TAG1")
        await h.cycles(5)
        h.pilot("C")
        assert await h.until(lambda: h.sent("StartTransaction"))
        h.no_memory = 10 ** 6  # memory never comes back before the power cut
        h.board.rfid.present("TAG1")
        await h.cycles(10)
        assert not h.board.relay.command
        task.cancel()
        assert not h.sent("StopTransaction")  # only held in RAM

    async def reboot():
        h = Harness(tmp_path)  # same flash: the journal and state file survive, RAM does not
        task = asyncio.ensure_future(h.app.txs.run())
        h.app.txs.recover()
        assert await h.until(lambda: h.sent("StopTransaction"), 600)
        task.cancel()
        return h

    asyncio.run(charge_then_stop_without_memory())
    h = asyncio.run(reboot())
    (stop,) = h.sent("StopTransaction")
    assert stop["transactionId"] == 1 and stop["reason"] == "PowerLoss"


def test_no_memory_to_make_the_meter_plan_costs_a_poll_not_the_meter(tmp_path, monkeypatch):
    """The poll plan is made at the first poll from register maps loaded for
    the purpose. At 88 KiB on the board-like heap that load raised MemoryError
    once, and every later poll failed with AttributeError (the plan was noted
    as made): the meter was lost for good and the charger faulted. Now the
    next poll makes the plan and reads the meter."""
    import struct

    import firmware.metering as M
    from firmware import meter_maps
    from tests.unit.test_fuzz_modbus import reply_to

    h = Harness(tmp_path)
    meter = h.app.meter
    image = [0] * 512  # an SDM630 reading 0 everywhere but its energy register
    for e in meter_maps.get("SDM630")[4]:
        if e[0] == "Energy.Active.Import.Register":
            image[e[2]:e[2] + 2] = struct.unpack(">HH", struct.pack(">f", 12.5))  # kWh
    h.board.meter_uart.responder = lambda req: reply_to(req, image[struct.unpack(">H", req[2:4])[0]:])
    real_load = M.transient.load
    fails = [1]

    def load(name):
        if name == "firmware.meter_maps" and fails[0]:
            fails[0] -= 1
            raise MemoryError("memory allocation failed, allocating 164 bytes")
        return real_load(name)

    monkeypatch.setattr(M.transient, "load", load)

    async def main():
        try:
            await meter.poll_once()
        except MemoryError:
            pass
        else:
            raise AssertionError("the plan's MemoryError was not raised")
        return await meter.poll_once()

    assert asyncio.run(main()) is True
    assert fails[0] == 0
    assert meter.ok and meter.register_wh() == 12500


def test_a_task_restarts_even_when_its_failure_cannot_be_logged(monkeypatch):
    """On the board-like heap at 88 KiB, formatting the log line of a task's
    MemoryError raised MemoryError again inside _forever's handler, and the
    task (the metering loop, the connection) ended for good."""
    import firmware.app as A

    runs = []

    async def task():
        runs.append(1)
        if len(runs) < 3:
            raise MemoryError("memory allocation failed, allocating 164 bytes")
        raise asyncio.CancelledError  # (ends the test's loop)

    def no_memory(tag, msg):
        raise MemoryError("memory allocation failed, allocating 104 bytes")

    async def no_wait(s):
        return None

    monkeypatch.setattr(A.log, "error", no_memory)
    monkeypatch.setattr(A.asyncio, "sleep", no_wait)
    try:
        asyncio.run(A._forever("meter", task))
    except asyncio.CancelledError:
        pass
    assert len(runs) == 3


def test_the_control_loop_goes_on_when_its_failure_cannot_be_logged(tmp_path, monkeypatch):
    """A step that fails opens the contactor and logs; with no heap for the
    line the loop ended, and for a second nothing drove the outputs or fed
    the watchdog. It goes on now."""
    import firmware.control as C

    h = Harness(tmp_path)
    steps = []

    def step():
        steps.append(1)
        if len(steps) <= 3:
            raise MemoryError("memory allocation failed, allocating 96 bytes")

    def no_memory(tag, msg):
        raise MemoryError("memory allocation failed, allocating 104 bytes")

    h.app.control.step = step
    monkeypatch.setattr(C.log, "error", no_memory)

    async def main():
        h.app.outputs.relay = True  # (as if closed: a failed step must open it)
        task = asyncio.ensure_future(h.app.control.run())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(steps) > 4:
                break
        assert not task.done(), "the control loop ended"
        task.cancel()

    asyncio.run(main())
    assert len(steps) > 4
    assert not h.board.relay.command
