"""Shared test set-up.

Device code is MicroPython code. To unit-test it on CPython we give CPython the
few MicroPython builtins it uses (time.ticks_*, micropython.const) and put the
project root on sys.path, exactly as the board's filesystem root is.
"""
import os
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

if not hasattr(time, "ticks_ms"):
    _T0 = time.monotonic()
    _PERIOD = 1 << 30

    def ticks_ms():
        return int((time.monotonic() - _T0) * 1000) & (_PERIOD - 1)

    def ticks_us():
        return int((time.monotonic() - _T0) * 1000000) & (_PERIOD - 1)

    def ticks_add(t, d):
        return (t + d) & (_PERIOD - 1)

    def ticks_diff(a, b):
        d = (a - b) & (_PERIOD - 1)
        return d - _PERIOD if d >= _PERIOD // 2 else d

    def sleep_ms(ms):
        time.sleep(ms / 1000)

    time.ticks_ms = ticks_ms
    time.ticks_us = ticks_us
    time.ticks_add = ticks_add
    time.ticks_diff = ticks_diff
    time.sleep_ms = sleep_ms

if "micropython" not in sys.modules:
    mp = types.ModuleType("micropython")
    mp.const = lambda x: x
    mp.native = lambda f: f
    mp.viper = lambda f: f
    sys.modules["micropython"] = mp
