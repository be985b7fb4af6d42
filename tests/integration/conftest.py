import os
import shutil

import pytest

from tests.integration import rig
from tests.integration.csms_harness import strict_csms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

TAGS = {
    "TAG1": "Accepted",
    "TAG2": "Accepted",
    "CHILD1": {"status": "Accepted", "parentIdTag": "FLEET"},
    "CHILD2": {"status": "Accepted", "parentIdTag": "FLEET"},
    "BLOCKED": "Blocked",
    "EXPIRED": "Expired",
}


@pytest.fixture(scope="session", autouse=True)
def _interpreter_present():
    # The integration suite is about the real interpreter: no silent fallback.
    assert os.path.exists(MICROPYTHON), "no MicroPython interpreter at %s: run `make setup`" % MICROPYTHON


@pytest.fixture
def csms():
    """The strict central system. Any schema or framing violation by the
    charger during a test fails that test."""
    with strict_csms(tags=dict(TAGS), heartbeat_interval=300) as cs:
        yield cs


def pytest_terminal_summary(terminalreporter):
    """One line: in which interpreter and heap the firmware ran (issue 11)."""
    if not terminalreporter.stats.get("passed") and not terminalreporter.stats.get("failed"):
        return
    if rig.BOARD32:
        terminalreporter.write_line("integration: firmware from ROMFS on the board-like interpreter %s, heap %s "
                                    "(wss:// tests on the 64-bit one at %s)" % (rig.BOARD32, rig.HEAP, rig.TLS_HEAP))
    else:
        terminalreporter.write_line("integration: MEMORY BUDGET NOT CHECKED: no board-like interpreter "
                                    "(MICROPYTHON_BOARD32 or ../shared/micropython-board32/micropython); "
                                    "ran on the 64-bit micropython at %s" % rig.HEAP)
