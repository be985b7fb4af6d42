#!/usr/bin/env python3
"""Build the application's ROMFS image: what the board executes in place from flash.

    tools/romfs.py --out build/jolt.romfs [--board esp32|sim] [--march xtensawin]

The image holds the compiled modules (`firmware/`, `lib/`, `hal/` as .mpy, built
by tools/mpy_build.py) at its root; mounted at /rom with /rom on sys.path they
import as `firmware.app`, `lib.ws`... On the board (MicroPython >= 1.25 with
MICROPY_VFS_ROM) the image goes into the `romfs` partition and its bytecode runs
from memory-mapped flash instead of being copied into the GC heap. The entry
points (`boot.py`, `main.py`) stay on the littlefs filesystem, with the
configuration, the journal and the other data files: `LITTLEFS_CODE` lists them.

The image format is MicroPython's VfsRom (extmod/vfs_rom.c); the writer is
mpremote's (`mpremote romfs build` uses the same one), fed with our .mpy tree
so tracebacks name `firmware/x.py`, not a host path.
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.mpy_build import ENTRY_POINTS, build  # noqa: E402

LITTLEFS_CODE = ENTRY_POINTS  # the only code files the board keeps on littlefs
MOUNT = "/rom/"  # where the board mounts the image (boot.py mounts every slot there)
# sys.path the firmware runs with, as the esp32 port builds it once /rom is
# mounted ('' is the cwd: the littlefs root on the board, DIR/flash on the bench).
SYS_PATH = ("", ".frozen", "/rom", "/rom/lib")


def image_from_tree(tree):
    """ROMFS image (bytes) of every file under `tree`, directories sorted."""
    from mpremote.romfs import VfsRomWriter

    w = VfsRomWriter()

    def walk(d):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isdir(p):
                w.opendir(name)
                walk(p)
                w.closedir()
            else:
                with open(p, "rb") as f:
                    w.mkfile(name, f.read())

    walk(tree)
    return w.finalise()


def rom_files(board="esp32", march=None, root=None):
    """(image bytes, relative paths in the image) of the application's modules
    (of the project tree, or of `root`, a copy of it)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = [f for f in build(tmp, root=root or ROOT, board=board, march=march, mount=MOUNT) if f not in LITTLEFS_CODE]
        for f in LITTLEFS_CODE:
            p = os.path.join(tmp, f)
            if os.path.exists(p):
                os.remove(p)
        return image_from_tree(tmp), files


def build_image(out_path, board="esp32", march=None):
    """Write the image to `out_path`; return the relative paths it holds."""
    img, files = rom_files(board, march)
    d = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(d, exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(img)
    os.replace(tmp, out_path)
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="image file, e.g. build/jolt.romfs")
    ap.add_argument("--board", default="esp32", choices=("esp32", "sim"))
    ap.add_argument("--march", default=None, help="xtensawin for the ESP32 (native code is not used: "
                                                   "plain bytecode runs on every target)")
    a = ap.parse_args(argv)
    files = build_image(a.out, a.board, a.march)
    print("ROMFS image %s: %d modules, %d bytes" % (a.out, len(files), os.path.getsize(a.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
