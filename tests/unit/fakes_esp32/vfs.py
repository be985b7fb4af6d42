"""vfs.mount as on the port: mounting a block device that does not answer
raises OSError (EIO / ENODEV)."""
mounts = {}


def _fake_reset():
    mounts.clear()


def mount(dev, path):
    dev.ioctl(1, 0)  # init: raises when no card
    dev.readblocks(0, bytearray(512))
    mounts[path] = dev


def umount(path):
    mounts.pop(path)
