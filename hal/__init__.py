# The one place the firmware picks its hardware implementation (see docs/hal.md).
import sys


def load():
    if sys.platform == "esp32":
        from hal.esp32.board import Board
    else:
        from hal.sim.board import Board
    return Board()


def slots(running=None):
    """The application slots and the SD card root (boot.py's updater;
    docs/ota.md); slot `running` is refused to writers."""
    if sys.platform == "esp32":
        from hal.esp32.slots import Slots
    else:
        from hal.sim.slots import Slots
    return Slots(running)
