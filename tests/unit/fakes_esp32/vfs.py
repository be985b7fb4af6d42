"""vfs.mount as on the port: mounting a block device that does not answer
raises OSError (EIO / ENODEV). vfs.rom_ioctl as ports/esp32/esp32_partition.c
(mp_vfs_rom_ioctl) has it: one segment, the data partition labelled "romfs",
answered for any index (`port.segments = "stock"`); `"all"` models a port
that exposes every data partition of the romfs subtype 0x8f, in table order,
as segments 0, 1, ..."""
import errno

from . import esp32

mounts = {}


class Port:
    def reset(self):
        self.segments = "stock"
        self._romfs = None


port = Port()


def _fake_reset():
    mounts.clear()
    port.reset()


def mount(dev, path):
    dev.ioctl(1, 0)  # init: raises when no card
    dev.readblocks(0, bytearray(512))
    mounts[path] = dev


def umount(path):
    mounts.pop(path)


def _segments():
    if port.segments == "stock":
        if port._romfs is None:  # found once, by label, any data subtype
            port._romfs = (esp32.Partition.find(esp32.Partition.TYPE_DATA, label="romfs") or [None])[0]
        return [port._romfs] if port._romfs else []
    return esp32.Partition.find(esp32.Partition.TYPE_DATA, 0x8F)


def rom_ioctl(op, *args):
    segs = _segments()
    if op == 1:
        return len(segs)
    if op == 2:
        if not segs:
            return -errno.EINVAL
        if port.segments == "stock":
            return segs[0]  # the index is not looked at
        return segs[args[0]] if 0 <= args[0] < len(segs) else -errno.EINVAL
    return -errno.EINVAL
