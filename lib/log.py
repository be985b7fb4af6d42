# The logger (docs/logging.md): one line per event on the console and, once
# files() names a folder (the SD card's), in rotating files there.
# A caller never waits on the card: its line goes into a small bounded ring
# (full: the line is counted as lost) and run(), a task of its own, writes the
# ring out in batches of at most 512 bytes. A file error turns file logging
# off (until files() again): the console goes on, nothing is raised.
# Files: FOLDER/00000001.log, 00000002.log, ...; the current one grows to
# file_bytes, then the next is started and the oldest beyond `count` deleted,
# so the folder holds at most count * (file_bytes + 512) bytes. A file line
# is "2026-12-05T17:20:08Z INF tag: message" (UTC, from the board's clock).
# A level below `level` costs nothing: no formatting, no allocation.
# Memory: few names (each global is an interned name and a dict slot): the
# writer's numbers live in one list, _s.
import asyncio
import os
import time

from micropython import const

from lib import isotime

level = 1  # 0 debug, 1 info, 2 warnings, 3 errors

_QUEUE = const(16)         # lines waiting for the card, at most
_QUEUE_BYTES = const(1024)  # and their characters (the heap at a burst: docs/memory.md)
_BATCH = const(512)        # bytes written per step of run()
_H = const(0)      # _s[]: ring head,
_N = const(1)      # lines in the ring,
_B = const(2)      # their characters,
_LOST = const(3)   # lines lost since the last write,
_SEQ = const(4)    # number of the current file,
_SIZE = const(5)   # its size,
_LIMIT = const(6)  # file_bytes,
_COUNT = const(7)  # count,
_T = const(8)      # epoch of _stamp

_NAMES = const(("DBG", "INF", "WRN", "ERR"))
_dir = None   # folder of the files; None: console only
_clock = None  # fn() -> UTC epoch seconds
_q: list = []  # the ring: epoch, line, epoch, line, ...
_s = [0] * 9
_f = None     # the current file, open for appending
_stamp = ""


def _seqs(folder):
    """Numbers of the log files in folder, oldest first."""
    s = []
    for n in os.listdir(folder):
        if n.endswith(".log") and n[:-4].isdigit():
            s.append(int(n[:-4]))
    s.sort()
    return s


def paths():
    """The log files, oldest first ([] when file logging is off)."""
    try:
        return ["%s%08d.log" % (_dir, n) for n in _seqs(_dir)] if _dir else []
    except OSError:
        return []


def files(folder, clock=None, file_bytes=32768, count=8):
    """Log into rotating files in folder ("/sd/log/"), stamped by clock();
    folder None: console only (the card failed or went)."""
    global _dir, _clock, _q, _f
    if _f is not None:
        try:
            _f.close()
        except Exception:  # a dead card
            pass
    _f = _dir = None
    _q = []
    s = _s
    s[_H] = s[_N] = s[_B] = s[_LOST] = 0
    if folder is None:
        return
    try:
        try:
            os.mkdir(folder[:-1])
        except OSError:  # there already (or the card is gone: listdir says)
            pass
        old = _seqs(folder)
        s[_SEQ] = old[-1] if old else 1
        for n in old:
            if n <= s[_SEQ] - count:
                os.remove("%s%08d.log" % (folder, n))
    except OSError as e:
        warn("log", "no log files in %s: %r" % (folder, e))
        return
    _clock = clock
    s[_LIMIT] = file_bytes
    s[_COUNT] = count
    s[_T] = -1
    _q = [None] * (2 * _QUEUE)
    _dir = folder


def write_some():
    """Write up to 512 bytes of the waiting lines; True while more wait."""
    global _f, _stamp
    s = _s
    if _dir is None or not (s[_N] or s[_LOST]):
        return False
    try:
        if _f is None:
            p = "%s%08d.log" % (_dir, s[_SEQ])
            try:
                s[_SIZE] = os.stat(p)[6]
            except OSError:
                s[_SIZE] = 0
            _f = open(p, "a")
        f = _f
        q = _q
        done = 0
        while s[_N] and done < _BATCH:
            h = s[_H]
            t = q[h]
            line = q[h + 1]
            q[h + 1] = None
            s[_H] = (h + 2) % (2 * _QUEUE)
            s[_N] -= 1
            s[_B] -= len(line)
            if t != s[_T]:
                s[_T] = t
                _stamp = isotime.format(t)
            f.write(_stamp)
            f.write(line)
            done += 20 + len(line)
        if s[_LOST] and not s[_N]:
            line = " WRN log: %d lines lost (queue full or no memory)\n" % s[_LOST]
            s[_LOST] = 0
            f.write(_stamp)
            f.write(line)
            done += 20 + len(line)
        f.flush()
        s[_SIZE] += done
        if s[_SIZE] >= s[_LIMIT]:
            f.close()
            _f = None
            s[_SEQ] += 1
            try:
                os.remove("%s%08d.log" % (_dir, s[_SEQ] - s[_COUNT]))
            except OSError:  # not there
                pass
    except OSError as e:  # the card failed: console only
        files(None)
        warn("log", "log files off: %r" % (e,))
        return False
    return s[_N] > 0 or s[_LOST] > 0


async def run():
    """The writer task: the waiting lines go to the card a batch at a time."""
    while True:
        await asyncio.sleep_ms(500)
        while write_some():
            await asyncio.sleep_ms(0)


def _emit(lvl, tag, msg):
    if lvl < level:
        return
    s = _s
    try:
        line = " %s %s: %s\n" % (_NAMES[lvl], tag, msg)
    except MemoryError:
        # No heap for the line: logging must not cost the caller its operation
        # (at 80 KiB an update failed here). The console gets the parts, the
        # file counts the line lost.
        if _dir is not None:
            s[_LOST] += 1
        try:
            print(time.ticks_ms(), _NAMES[lvl], tag, msg)
        except MemoryError:
            pass
        return
    print(time.ticks_ms(), end="")
    print(line, end="")
    if _dir is None:
        return
    if s[_N] >= _QUEUE or s[_B] + len(line) > _QUEUE_BYTES:
        s[_LOST] += 1
        return
    i = (s[_H] + 2 * s[_N]) % (2 * _QUEUE)
    t = _clock() if _clock else 0
    # An epoch is a big int on the board (over 2**30): 32 bytes of heap each.
    # A line of the same second as the one before shares its epoch.
    p = _q[i - 2]  # (i = 0: the ring's last slot)
    _q[i] = p if p == t else t
    # A burst repeats a few lines ("<- TriggerMessage" and its answer): the
    # same text already waiting is kept once, this copy goes to the collector.
    for j in range(1, 2 * _QUEUE, 2):
        if _q[j] == line:
            line = _q[j]
            break
    _q[i + 1] = line
    s[_N] += 1
    s[_B] += len(line)


def debug(tag, msg):
    _emit(0, tag, msg)


def info(tag, msg):
    _emit(1, tag, msg)


def warn(tag, msg):
    _emit(2, tag, msg)


def error(tag, msg):
    _emit(3, tag, msg)
