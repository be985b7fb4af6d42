"""Shared test set-up.

Device code is MicroPython code. To unit-test it on CPython we give CPython the
few MicroPython builtins it uses (time.ticks_*, micropython.const, ...: the
same shims the bench's `--runtime cpython` uses) and put the project root on
sys.path, exactly as the board's filesystem root is.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.simkit import cpy_launch  # noqa: E402

if not hasattr(__import__("time"), "ticks_ms"):
    cpy_launch.install()
