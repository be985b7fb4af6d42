# The watchdog's reports (firmware/watchdog.py), loaded only when needed: a
# task found late (logged, its name kept on flash for the next boot) and the
# boot after a watchdog reset (which task it was).
import asyncio

from lib import fsutil, log
from micropython import const

_FILE = const("watchdog.txt")
_NAMES = const("control,ocpp,meter,txqueue")


def late(root, task):
    name = _NAMES.split(",")[task]
    log.error("wdt", "task %s late: watchdog not fed" % name)
    try:
        # Written by a task of its own: flash I/O never blocks the control loop.
        asyncio.create_task(_record(root + _FILE, name))
    except RuntimeError:  # no event loop
        pass


async def _record(path, name):
    try:
        fsutil.write_atomic(path, name)
    except OSError:
        pass


def boot(root, cause):
    """At boot: log which task hung before a watchdog reset; the name of the
    task, or None."""
    data = fsutil.read(root + _FILE)
    if data is not None:
        try:
            import os

            os.remove(root + _FILE)
        except OSError:
            pass
    if cause != "watchdog":
        return None  # a task was late, then recovered, or the power went
    # No name: the control loop (which feeds the watchdog) or the whole
    # event loop stopped, or a failed Reset starved it on purpose.
    task = data.decode() if data is not None else "control loop or event loop"
    log.error("wdt", "reset by the watchdog: task %s hung" % task)
    return task
