# Task watchdog (docs/watchdog.md): the hardware watchdog (board.wdt) is fed
# only while every critical task has checked in within its deadline. A hung
# task (awaiting something that never comes, or looping without yielding)
# stops the feeding and the board resets; the task's name is written to
# flash first and logged by the next boot, whose reset cause is "watchdog"
# (firmware/wdt_report.py, loaded only then).
#
# The control loop feeds it (tick(), every FEED_MS): if the control loop
# itself, or the whole asyncio loop, stops, nothing feeds it either.
# Tasks check in with checkin(task) (allocation-free: the control loop calls
# it every cycle); before a wait whose length they know they call
# expect(task, ms); before a wait for work with no bound (an idle queue) they
# call park(task): a parked task is not late until its next checkin().
# Resident on the heap all the time: kept small.
import time

from micropython import const

CONTROL = const(0)   # control loop and fault supervisor (firmware/control.py)
OCPP = const(1)      # OCPP link (firmware/chargepoint.py)
METER = const(2)     # meter poll (firmware/metering.py)
TXQUEUE = const(3)   # transaction message queue (firmware/transactions.py)
# Default deadline of each task (ms): longest time between two check-ins.
DEADLINE_MS = [1000, 120000, 30000, 60000]
_MARGIN_MS = const(5000)      # added to an expect()ed wait
# A longer expected wait is parked instead: ticks differences are only
# meaningful within half the ticks period (2**29 ms, 6.2 days on the ports),
# and HeartbeatInterval alone may be 7 days.
_EXPECT_MAX_MS = const(86400000)
_WDT_MS = const(8000)         # hardware timeout: a task late this long resets the board
FEED_MS = 1000

_due: list = [0, 0, 0, 0]   # ticks_ms by which each task checks in again; None: parked
_dog = [None, "", None, 0, False]  # wdt, flash root, stop(), next feed (ticks), reported


def checkin(task):
    _due[task] = time.ticks_add(time.ticks_ms(), DEADLINE_MS[task])


def expect(task, ms):
    if ms > _EXPECT_MAX_MS:
        _due[task] = None
    else:
        _due[task] = time.ticks_add(time.ticks_ms(), int(ms) + _MARGIN_MS)


def park(task):
    _due[task] = None


def start(wdt, root, stop=None):
    """Arm before the watched tasks start (firmware/app.py): each task gets
    its default deadline, then the hardware watchdog starts. stop(): True
    when the board must be reset by starving the watchdog (a failed Reset,
    firmware/supervisor.py)."""
    for i in range(4):
        checkin(i)
    _dog[0] = wdt
    _dog[1] = root
    _dog[2] = stop
    _dog[3] = time.ticks_ms()
    _dog[4] = False
    wdt.start(_WDT_MS)


def tick():
    """Every control cycle; feeds the watchdog every FEED_MS while no task
    is late. Allocation-free unless a task is late."""
    wdt = _dog[0]
    now = time.ticks_ms()
    if wdt is None or time.ticks_diff(now, _dog[3]) < 0:
        return
    _dog[3] = time.ticks_add(now, FEED_MS)
    late = -1
    for i in range(4):
        d = _due[i]
        if d is not None and time.ticks_diff(now, d) > 0:
            late = i
            break
    if late < 0:
        _dog[4] = False
        stop = _dog[2]
        if stop is None or not stop():
            wdt.feed()
    elif not _dog[4]:
        _dog[4] = True
        from lib import transient

        transient.load("firmware.wdt_report").late(_dog[1], late)
        transient.drop("firmware.wdt_report")
