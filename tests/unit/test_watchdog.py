"""The task watchdog (firmware/watchdog.py, docs/watchdog.md): the hardware
watchdog is fed only while every critical task checks in; a hung task resets
the board and the next boot reports it."""
import asyncio
import time

import pytest

from firmware import app as app_mod
from firmware import watchdog as W
from firmware import wdt_report as R
from firmware.app import App
from hal.mock.board import Board

TASKS = (W.CONTROL, W.OCPP, W.METER, W.TXQUEUE)
NAMES = {W.CONTROL: "control", W.OCPP: "ocpp", W.METER: "meter", W.TXQUEUE: "txqueue"}


class HwWdt:
    """machine.WDT as the MicroPython docs describe it: once started, the
    board resets when feed() is not called within the timeout."""

    def __init__(self):
        self.timeout_ms = None
        self.feeds = []
        self.started_at = None

    def start(self, timeout_ms):
        self.timeout_ms = int(timeout_ms)
        self.started_at = time.monotonic()

    def feed(self):
        self.feeds.append(time.monotonic())

    def reset_due(self):
        last = self.feeds[-1] if self.feeds else self.started_at
        return self.timeout_ms is not None and (time.monotonic() - last) * 1000 > self.timeout_ms


@pytest.fixture(autouse=True)
def short(monkeypatch):
    monkeypatch.setattr(W, "DEADLINE_MS", [150, 300, 300, 300])
    monkeypatch.setattr(W, "_WDT_MS", 400)
    monkeypatch.setattr(W, "FEED_MS", 20)
    monkeypatch.setattr(W, "_MARGIN_MS", 100)
    yield
    W._dog[0] = None  # disarmed for the other tests


async def control_loop(stop, hang_after=None):
    """Stands in for firmware/control.py's loop: checks in and ticks every cycle."""
    end = None if hang_after is None else time.monotonic() + hang_after
    while not stop.is_set():
        if end is not None and time.monotonic() > end:
            await asyncio.Event().wait()  # hung
        W.checkin(W.CONTROL)
        W.tick()
        await asyncio.sleep(0.01)


async def worker(task, stop, hang_after=None):
    end = None if hang_after is None else time.monotonic() + hang_after
    while not stop.is_set():
        if end is not None and time.monotonic() > end:
            await asyncio.Event().wait()  # a task awaiting something that never comes
        W.checkin(task)
        await asyncio.sleep(0.02)


async def until_reset(wdt, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if wdt.reset_due():
            return True
        await asyncio.sleep(0.01)
    return False


def scenario(root, wdt, make_tasks, seconds, stop_fn=None, between=None):
    """Arm the watchdog (as App.main does), start the tasks, wait for a reset."""
    async def main():
        stop = asyncio.Event()
        W.start(wdt, root, stop_fn)
        ts = [asyncio.ensure_future(t) for t in make_tasks(stop)]
        first = None
        if between is not None:
            first = await until_reset(wdt, between[0])
            between[1]()
        reset = await until_reset(wdt, seconds)
        stop.set()
        for t in ts:
            t.cancel()
        await asyncio.gather(*ts, return_exceptions=True)
        await asyncio.sleep(0.05)  # the report task writes its file
        return reset if between is None else (first, reset)
    return asyncio.run(main())


def test_fed_while_every_task_checks_in(tmp_path):
    wdt = HwWdt()
    reset = scenario(str(tmp_path) + "/", wdt, lambda s: [control_loop(s)] + [worker(t, s) for t in TASKS[1:]], 1.0)
    assert reset is False
    assert wdt.timeout_ms == 400
    assert len(wdt.feeds) >= 20  # about every FEED_MS


@pytest.mark.parametrize("hung", TASKS[1:])
def test_a_hung_task_stops_feeding_and_resets_the_board(tmp_path, hung, capsys):
    wdt = HwWdt()
    t0 = time.monotonic()
    reset = scenario(str(tmp_path) + "/", wdt, lambda s: [control_loop(s)] + [
        worker(t, s, 0.2 if t == hung else None) for t in TASKS[1:]], 3.0)
    assert reset is True
    assert wdt.feeds and wdt.feeds[-1] - t0 >= 0.2  # fed while the task was alive, then starved
    assert "task %s late: watchdog not fed" % NAMES[hung] in capsys.readouterr().out
    assert (tmp_path / R._FILE).read_text() == NAMES[hung]


def test_a_hung_control_loop_stops_feeding(tmp_path):
    wdt = HwWdt()
    reset = scenario(str(tmp_path) + "/", wdt, lambda s: [control_loop(s, 0.2)] + [worker(t, s) for t in TASKS[1:]], 3.0)
    assert reset is True
    assert len(wdt.feeds) >= 5


def test_next_boot_reports_the_watchdog_reset_and_the_task(tmp_path, capsys, monkeypatch):
    root = str(tmp_path) + "/"
    (tmp_path / R._FILE).write_text("meter")
    app = App(Board(flash_root=root, reset_cause="watchdog"))
    monkeypatch.setattr(app_mod, "_forever", _never)
    boot_main(app, 0.2)
    out = capsys.readouterr().out
    assert "reset=watchdog" in out
    assert "reset by the watchdog: task meter hung" in out
    assert not (tmp_path / R._FILE).exists()  # reported once
    assert app.board.wdt.timeout_ms == W._WDT_MS  # armed at boot


async def _never(name, fn):
    await asyncio.Event().wait()


def boot_main(app, seconds):
    """Run App.main for a while (its tasks as the test's _forever makes them)."""
    async def boot():
        try:
            await asyncio.wait_for(app.main(), seconds)
        except asyncio.TimeoutError:
            pass

    asyncio.run(boot())


def test_boot_without_a_record_after_a_watchdog_reset(tmp_path, capsys):
    assert R.boot(str(tmp_path) + "/", "watchdog") == "control loop or event loop"
    assert "reset by the watchdog: task control loop or event loop hung" in capsys.readouterr().out


def test_a_power_on_boot_does_not_blame_a_task(tmp_path, capsys):
    (tmp_path / R._FILE).write_text("ocpp")  # a task was late, then recovered
    assert R.boot(str(tmp_path) + "/", "power") is None
    assert "reset by the watchdog" not in capsys.readouterr().out
    assert not (tmp_path / R._FILE).exists()


def test_parked_and_expected_waits_are_not_late(tmp_path):
    async def idle_queue():
        W.checkin(W.TXQUEUE)
        W.park(W.TXQUEUE)  # an idle queue waits for work without a bound
        await asyncio.sleep(10)

    async def long_heartbeat_wait():
        W.expect(W.OCPP, 900)  # a wait whose length the task knows
        await asyncio.sleep(10)

    wdt = HwWdt()
    reset = scenario(str(tmp_path) + "/", wdt, lambda s: [
        control_loop(s), worker(W.METER, s), idle_queue(), long_heartbeat_wait()], 0.8)
    assert reset is False


def test_expected_wait_overrun_is_late(tmp_path):
    async def stuck():
        W.expect(W.OCPP, 100)
        await asyncio.Event().wait()

    wdt = HwWdt()
    reset = scenario(str(tmp_path) + "/", wdt, lambda s: [
        control_loop(s), worker(W.METER, s), worker(W.TXQUEUE, s), stuck()], 2.0)
    assert reset is True
    assert (tmp_path / R._FILE).read_text() == "ocpp"


def test_the_real_control_loop_feeds_and_a_stopped_one_resets(tmp_path):
    """The App's control loop (firmware/control.py) checks in and feeds."""
    root = str(tmp_path) + "/"
    app = App(Board(flash_root=root))
    wdt = HwWdt()

    async def main():
        stop = asyncio.Event()
        W.start(wdt, root)
        ctl = asyncio.ensure_future(app.control.run())
        ts = [asyncio.ensure_future(worker(t, stop)) for t in TASKS[1:]]
        alive = await until_reset(wdt, 0.6)
        fed = len(wdt.feeds)
        ctl.cancel()  # the control loop stops
        reset = await until_reset(wdt, 2.0)
        for t in ts:
            t.cancel()
        await asyncio.gather(ctl, *ts, return_exceptions=True)
        return alive, fed, reset

    alive, fed, reset = asyncio.run(main())
    assert alive is False and fed >= 10
    assert reset is True


def test_a_failed_reset_starves_the_watchdog(tmp_path):
    failed = {"v": False}
    wdt = HwWdt()
    first, second = scenario(str(tmp_path) + "/", wdt,
                             lambda s: [control_loop(s)] + [worker(t, s) for t in TASKS[1:]], 2.0,
                             stop_fn=lambda: failed["v"], between=(0.5, lambda: failed.update(v=True)))
    assert (first, second) == (False, True)


def test_a_seven_day_heartbeat_wait_is_not_late(tmp_path):
    """HeartbeatInterval may be 7 days: more than half the 2**30 ms ticks
    period of the ESP32 (and of the CPython shim), where a deadline would wrap
    and look late at once."""
    wdt = HwWdt()
    W.start(wdt, str(tmp_path) + "/")
    W._dog[3] = time.ticks_ms()  # a feed is due
    W.expect(W.OCPP, 604800 * 1000)
    W.tick()
    assert len(wdt.feeds) == 1
