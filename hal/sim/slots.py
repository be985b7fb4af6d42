# Application slots on the bench (docs/ota.md): files under the state dir that
# the board-like interpreter serves as ROMFS segments (MICROPY_ROMFS=A:B, the
# same paths in JOLT_SLOTS), and the SD card root. Loaded by boot.py without
# the rest of the board (no hardware link at that point).
import os

CAPACITY = 327680  # bytes: the board's romfs partition (boards/JOLT)


class Slots:
    def __init__(self, running=None):
        self.running = running  # the slot boot.py mounted: never written
        p = os.getenv("JOLT_SLOTS")
        self.paths = p.split(":") if p else []
        self.count = len(self.paths)
        self.capacity = CAPACITY
        self.sd = None  # a failed card (bench `fail sd_card`: JOLT_SD=0) or none
        if os.getenv("JOLT_SD") != "0":
            try:
                os.stat("../sd")
                self.sd = "../sd/"
            except OSError:
                pass

    def writer(self, i):
        """A file-like object with write() and close() over slot i, emptied."""
        if i == self.running:
            raise OSError(1, "slot %d is running" % i)  # EPERM
        return open(self.paths[i], "wb")

    def reader(self, i):
        """A file-like object with readinto() and close() over slot i."""
        return open(self.paths[i], "rb")

    def close(self):
        pass
