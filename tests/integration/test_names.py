"""Interned names on the board-like interpreter (tools/bench/names.py;
docs/memory.md, "Interned names"): every module the application loads per
use has its names interned at boot, while the heap is whole, so no module
loaded hours later needs a new pool of names (one block of ~9 KB)."""
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
    assert res["names"] > 1000 and res["pools"] >= 6
    assert res["pool_bytes"] > 8000
    # what running adds (names built at run time, characters of hostile input) has room
    assert res["room"] >= 200, res


@pytest.mark.skipif(not board32_binary(), reason="needs the board-like interpreter")
def test_the_long_names_are_interned_at_boot_and_their_module_dropped(measured):
    """firmware/names.py: a string constant over 10 characters whose text is
    interned costs no heap object; received keys with those texts are not copied."""
    res = measured
    assert res["long"] > 100
    assert res["long_not_interned"] == 0, res
    assert res["names_module_kept"] is False
