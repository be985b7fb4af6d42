"""Time stamps from the central system on MicroPython: a hostile one must not
grow the interpreter's interned names (indexing a str interns the character
it yields, and interned names are never freed; docs/memory.md)."""
import calendar

from tests.integration.test_hostile_names_micropython import run_counting_names

SCRIPT = r"""
import sys
sys.path.insert(0, @ROOT@)
import micropython
from lib import isotime
good = isotime.parse("2026-11-25T11:40:00.123+01:00")
isotime.parse("2026-11-25T11:40:00Z")
micropython.qstr_info()
bad = 0
for k in range(300):
    cp = 0x4e00 + k  # a character nobody interned (chr() would intern it), at each checked place
    c = bytes([0xE0 | cp >> 12, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F]).decode()
    for s in (c * 30, "2026" + c * 26, "2026-11" + c * 20, "2026-11-25" + c * 20,
              "2026-11-25T11" + c * 10, "2026-11-25T11:40" + c * 10,
              "2026-11-25T11:40:00" + c, "2026-11-25T11:40:00." + c,
              "2026-11-25T11:40:00.1" + c, "2026-11-25T11:40:00" + c + "01:00",
              "2026-11-25T11:40:00+01" + c + "00"):
        if isotime.parse(s) is None:
            bad += 1
print("RESULT", good, bad)
micropython.qstr_info()
"""


def test_hostile_time_stamps_intern_nothing():
    lines, pools = run_counting_names(SCRIPT)
    res = [ln for ln in lines if ln.startswith("RESULT")][0].split()
    assert res[1:] == [str(calendar.timegm((2026, 11, 25, 10, 40, 0))), str(300 * 11)]  # 11:40+01:00; all refused
    assert len(pools) == 2 and pools[0] == pools[1], lines
