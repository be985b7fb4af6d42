# The logger (docs/logging.md): one line per event on the console and, once
# files() names a folder (the SD card's), in rotating files there.
# A caller never waits on the card: its line is put in a small bounded ring
# (full: the line is counted as lost) and run(), a task of its own, writes the
# ring out in batches of at most BATCH bytes. A file error turns file logging
# off for good (until files() again): the console goes on, nothing is raised.
# Files: FOLDER/00000001.log, 00000002.log, ...; the current one grows to
# file_bytes, then the next is started and the oldest beyond `count` deleted,
# so the folder holds at most count * (file_bytes + BATCH) bytes. A file line
# is "2026-12-05T17:20:08Z INF tag: message" (UTC, from the board's clock).
# A level below `level` costs nothing: no formatting, no allocation.
import asyncio
import os
import time

from lib import isotime

DEBUG = 0
INFO = 1
level = INFO

QUEUE = 24            # lines waiting for the card, at most
QUEUE_BYTES = 2048    # and their bytes
BATCH = 512           # bytes written per step of run()
FILE_BYTES = 32768
FILES = 8
WAIT_S = 1

_NAMES = ("DBG", "INF", "WRN", "ERR")
_dir = None           # folder of the files; None: console only
_clock = None         # fn() -> UTC epoch seconds
_limit = FILE_BYTES
_count = FILES
_qt: list = []        # ring: epoch of each waiting line
_ql: list = []        # ring: the line (" INF tag: msg\n")
_h = _n = _bytes = _lost = 0
_f = None             # the current file, open for appending
_seq = 0              # its number
_size = 0
_st = -1              # the epoch of _stamp
_stamp = ""


def _seqs(folder):
    """Numbers of the log files in folder, oldest first."""
    s = []
    for n in os.listdir(folder):
        if n.endswith(".log") and n[:-4].isdigit():
            s.append(int(n[:-4]))
    s.sort()
    return s


def _path(seq):
    return "%s%08d.log" % (_dir, seq)


def paths():
    """The log files, oldest first ([] when file logging is off)."""
    if _dir is None:
        return []
    try:
        return [_path(s) for s in _seqs(_dir)]
    except OSError:
        return []


def files(folder, clock=None, file_bytes=FILE_BYTES, count=FILES):
    """Log into rotating files in folder ("/sd/log/"), stamped by clock();
    folder None: console only (the card failed or went)."""
    global _dir, _clock, _limit, _count, _qt, _ql, _seq, _f, _h, _n, _bytes, _lost
    if _f is not None:
        try:
            _f.close()
        except Exception:  # a dead card
            pass
    _f = _dir = None
    _h = _n = _bytes = _lost = 0
    _qt = _ql = []
    if folder is None:
        return
    try:
        try:
            os.mkdir(folder[:-1])
        except OSError:  # there already (or the card is gone: listdir says)
            pass
        old = _seqs(folder)
        _seq = old[-1] if old else 1
        for s in old:
            if s <= _seq - count:
                os.remove("%s%08d.log" % (folder, s))
    except OSError as e:
        warn("log", "no log files in %s: %r" % (folder, e))
        return
    _clock, _limit, _count = clock, file_bytes, count
    _qt = [0] * QUEUE
    _ql = [None] * QUEUE
    _dir = folder


def _off(e):
    files(None)
    warn("log", "log files off: %r" % (e,))


def write_some():
    """Write up to BATCH bytes of the waiting lines; True while more wait."""
    global _f, _seq, _size, _h, _n, _bytes, _lost, _st, _stamp
    if _dir is None or not (_n or _lost):
        return False
    try:
        if _f is None:
            p = _path(_seq)
            try:
                _size = os.stat(p)[6]
            except OSError:
                _size = 0
            _f = open(p, "a")
        f = _f
        done = 0
        while _n and done < BATCH:
            t = _qt[_h]
            line = _ql[_h]
            _ql[_h] = None
            _h = (_h + 1) % QUEUE
            _n -= 1
            _bytes -= len(line)
            if t != _st:
                _st = t
                _stamp = isotime.format(t)
            f.write(_stamp)
            f.write(line)
            done += 20 + len(line)
        if _lost and not _n:
            line = " WRN log: %d lines lost (queue full)\n" % _lost
            _lost = 0
            f.write(_stamp)
            f.write(line)
            done += 20 + len(line)
        f.flush()
        _size += done
        if _size >= _limit:
            f.close()
            _f = None
            _seq += 1
            try:
                os.remove(_path(_seq - _count))
            except OSError:  # not there
                pass
    except OSError as e:  # the card failed: console only
        _off(e)
        return False
    return _n > 0 or _lost > 0


async def run():
    """The writer task: the waiting lines go to the card a batch at a time."""
    while True:
        await asyncio.sleep(WAIT_S)
        while write_some():
            await asyncio.sleep(0)


def _emit(lvl, tag, msg):
    global _n, _bytes, _lost
    if lvl < level:
        return
    line = " %s %s: %s\n" % (_NAMES[lvl], tag, msg)
    print(time.ticks_ms(), end="")
    print(line, end="")
    if _dir is None:
        return
    if _n >= QUEUE or _bytes + len(line) > QUEUE_BYTES:
        _lost += 1
        return
    i = (_h + _n) % QUEUE
    _qt[i] = _clock() if _clock else 0
    _ql[i] = line
    _n += 1
    _bytes += len(line)


def debug(tag, msg):
    _emit(0, tag, msg)


def info(tag, msg):
    _emit(1, tag, msg)


def warn(tag, msg):
    _emit(2, tag, msg)


def error(tag, msg):
    _emit(3, tag, msg)
