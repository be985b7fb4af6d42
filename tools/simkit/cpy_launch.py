"""Run the device tree on CPython (bench --runtime cpython).

Gives CPython the MicroPython builtins the firmware uses (time.ticks_*,
asyncio.sleep_ms, micropython.const), then runs the entry script from the
current directory (the board's flash). CPython cannot load .mpy files, so the
firmware's modules come from the source tree (JOLT_ROOT) first; data files
still live in the flash directory (the cwd).
"""
import asyncio
import os
import runpy
import sys
import time
import traceback
import types

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


def install():
    time.ticks_ms = ticks_ms
    time.ticks_us = ticks_us
    time.ticks_add = ticks_add
    time.ticks_diff = ticks_diff
    time.sleep_ms = lambda ms: time.sleep(ms / 1000)
    time.sleep_us = lambda us: time.sleep(us / 1000000)
    asyncio.sleep_ms = lambda ms: asyncio.sleep(ms / 1000)
    mp = types.ModuleType("micropython")
    mp.const = lambda x: x
    mp.native = lambda f: f
    mp.viper = lambda f: f
    mp.mem_info = lambda *a: None
    mp.alloc_emergency_exception_buf = lambda n: None
    sys.modules["micropython"] = mp
    import gc

    # CPython has no heap figures like MicroPython's; report "unknown but fine".
    if not hasattr(gc, "mem_alloc"):
        gc.mem_alloc = lambda: 0
        gc.mem_free = lambda: 1 << 30
        gc.threshold = lambda *a: -1
    sys.print_exception = lambda e, f=sys.stdout: traceback.print_exception(type(e), e, e.__traceback__, file=f)


def main():
    install()
    script = sys.argv[1] if len(sys.argv) > 1 else "main.py"
    root = os.environ.get("JOLT_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path[:0] = [root, os.getcwd()]
    sys.argv = [script]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
