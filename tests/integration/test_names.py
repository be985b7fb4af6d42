"""Interned names on the board-like interpreter (tools/bench/names.py;
docs/memory.md, "Interned names"): the firmware's names fit in six pools with
room to spare, and every module the application loads per use has its names
interned at boot, so no module loaded hours later interns names."""
import pytest

from tools.bench import names
from tools.simkit.bench import board32_binary


@pytest.fixture(scope="module")
def measured():
    return names.measure()  # one boot of the probe serves both tests (about 6 s)


@pytest.mark.skipif(not board32_binary(), reason="needs the board-like interpreter")
def test_no_module_interns_names_after_boot(measured):
    res = measured
    assert res["modules"] > 20  # the probe did load the other modules of the image
    assert res["late"] == {}, ("modules interning names after boot: list them in PER_USE "
                               "(firmware/app.py) or Board.PER_USE: %s" % res["late"])
    # the figures the bench reports are the interpreter's own
    assert res["names"] > 1000 and res["pool_bytes"] > 8000
    # The budget: boot (boot.py's names included, as on the board) stays in
    # six pools; the seventh is one block of about 9 KB, taken for good
    # (docs/memory.md, "Interned names: the budget"). The room is for names a
    # change adds; running makes none (tests/integration/test_hostile_names_micropython.py).
    # Short of it: cut names, or drop from firmware/names.py a text shared by
    # three modules (a slot back for 48 B).
    assert res["pools"] == 6, ("the names need a seventh pool (9 KB of heap): %d names, see "
                               "docs/memory.md for what to cut" % res["names"])
    assert res["room"] >= 10, res


@pytest.mark.skipif(not board32_binary(), reason="needs the board-like interpreter")
def test_the_long_names_are_interned_at_boot_and_their_module_dropped(measured):
    """firmware/names.py: a string constant over 10 characters whose text is
    interned costs no heap object; received keys with those texts are not copied."""
    res = measured
    assert res["long"] > 10
    assert res["long_not_interned"] == 0, res
    assert res["names_module_kept"] is False
