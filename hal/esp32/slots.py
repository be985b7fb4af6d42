# Application slots on the board (docs/ota.md): the ROMFS segments the port
# exposes, vfs.rom_ioctl(2, s), each an esp32.Partition; the SD card root.
# Loaded by boot.py without the rest of the board. Slot s is the very object
# boot.mount(s) hands to vfs.VfsRom, so what is written is what boots.
#
# The stock esp32 port (ports/esp32/esp32_partition.c, mp_vfs_rom_ioctl) has
# ONE segment, the data partition labelled "romfs", and answers it for any
# index; only that object is memory-mapped (the buffer protocol VfsRom
# needs). Segments at one flash address are one slot: on a stock build
# count = 1 and updates stay off instead of overwriting the running image.
#
# Blocking (called from boot.py before the charger starts, not from the event
# loop; outputs are at their power-on state then, contactor open): one
# write() flushes at most one 4 KiB flash sector, an erase (ioctl 6: typically
# ~45 ms, up to ~400 ms on SPI NOR flash) then its program (16 pages of 256 B,
# ~10 ms); code in flash stalls during both. A read is one readblocks of at
# most the caller's buffer (1 KiB: well under 1 ms).
import vfs

from hal.esp32 import pins


class Slots:
    def __init__(self, running=None):
        self.running = running  # the slot boot.py mounted: never written
        self.parts = []
        seen = []
        try:
            n = vfs.rom_ioctl(1)
            for s in range(min(n, 2)):
                p = vfs.rom_ioctl(2, s)
                if isinstance(p, int):  # -EINVAL: no such segment
                    break
                a = p.info()[2]
                if a in seen:  # the same partition under another index (stock port)
                    break
                seen.append(a)
                self.parts.append(p)
        except (AttributeError, OSError):  # a build without ROMFS
            pass
        self.count = len(self.parts)
        self.capacity = min([p.ioctl(4, 0) * p.ioctl(5, 0) for p in self.parts] or [0])
        self.sd = None
        self._card = False
        if self.count > 1:
            try:
                import machine

                card = machine.SDCard(slot=pins.SD_SLOT, sck=pins.SD_SCK, mosi=pins.SD_MOSI,
                                      miso=pins.SD_MISO, cs=pins.SD_CS)
                vfs.mount(card, pins.SD_MOUNT)
                self._card = True
                self.sd = pins.SD_MOUNT + "/"
            except (OSError, ValueError):
                pass

    def close(self):
        """Unmount the card again: the board (hal/esp32/board.Sd) mounts it."""
        if self._card:
            self._card = False
            try:
                vfs.umount(pins.SD_MOUNT)
            except OSError:
                pass

    def writer(self, i):
        """A file-like object with write() and close() over slot i."""
        if i == self.running:
            raise OSError(1, "slot %d is running" % i)  # EPERM
        return _Flash(self.parts[i], True)

    def reader(self, i):
        """A file-like object with readinto() and close() over slot i."""
        return _Flash(self.parts[i], False)


class _Flash:
    def __init__(self, p, w):
        self.p = p
        self.bs = p.ioctl(5, 0)  # block size: 4096, one flash sector
        self.end = p.ioctl(4, 0) * self.bs
        self.at = 0  # bytes of the partition written or read
        self.buf = bytearray(self.bs) if w else None
        self.k = 0  # bytes waiting in buf

    def write(self, b):
        buf = self.buf
        if buf is None:
            raise OSError(9, "read only")  # EBADF
        mv = memoryview(b)
        i = 0
        while i < len(mv):
            c = min(len(mv) - i, self.bs - self.k)
            buf[self.k:self.k + c] = mv[i:i + c]
            self.k += c
            i += c
            if self.k == self.bs:
                self._flush(buf)
        return i

    def _flush(self, buf):
        n = self.k
        self.k = 0
        if self.at + n > self.end:
            raise OSError(28, "slot full")  # ENOSPC
        blk = self.at // self.bs
        r = self.p.ioctl(6, blk)  # erase this sector (4096-byte blocks only)
        if r:
            raise OSError(-r, "erase")
        # The 4-argument form writes without erasing again.
        self.p.writeblocks(blk, memoryview(buf)[:n], 0)
        self.at += n

    def readinto(self, mv):
        n = min(len(mv), self.end - self.at)
        if n > 0:
            self.p.readblocks(self.at // self.bs, mv[:n], self.at % self.bs)
            self.at += n
        return n

    def close(self):
        buf = self.buf
        self.buf = None
        if self.k and buf is not None:
            self._flush(buf)
