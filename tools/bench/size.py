#!/usr/bin/env python3
"""Benchmark: code size. The .mpy bytes of every device module for the ESP32
(esp32 board tree, -march=xtensawin, as `make mpy`/`make romfs` build it) and
in total, and the size of the ROMFS image the board runs (tools/romfs.py).

    .venv/bin/python tools/bench/size.py [--all]     (--all: every module, else the 12 largest)
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def measure(march="xtensawin"):
    from tools.mpy_build import build
    from tools.romfs import image_from_tree, LITTLEFS_CODE

    with tempfile.TemporaryDirectory() as tmp:
        files = build(tmp, board="esp32", march=march)
        sizes = {f: os.path.getsize(os.path.join(tmp, f)) for f in files}
        for f in LITTLEFS_CODE:
            p = os.path.join(tmp, f)
            if os.path.exists(p):
                os.remove(p)
        image = image_from_tree(tmp)
    mpy = {f: n for f, n in sizes.items() if f.endswith(".mpy")}
    return {"march": march, "mpy": mpy, "entry": {f: n for f, n in sizes.items() if not f.endswith(".mpy")},
            "mpy_total": sum(mpy.values()), "romfs": len(image)}


def table(res, top=None):
    rows = sorted(res["mpy"].items(), key=lambda kv: -kv[1])
    lines = ["code size for the ESP32 (-march=%s): %d .mpy modules, %d bytes; ROMFS image %d bytes; "
             "entry points as source on littlefs: %s" % (
                 res["march"], len(rows), res["mpy_total"], res["romfs"],
                 ", ".join("%s %d B" % kv for kv in sorted(res["entry"].items()))),
             "%-36s %8s %6s" % ("module", "bytes", "share")]
    shown = rows if top is None else rows[:top]
    for f, n in shown:
        lines.append("%-36s %8d %5.1f%%" % (f, n, 100.0 * n / res["mpy_total"]))
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        lines.append("%-36s %8d %5.1f%%" % ("(%d smaller modules)" % len(rest), sum(n for _, n in rest),
                                           100.0 * sum(n for _, n in rest) / res["mpy_total"]))
    lines.append("%-36s %8d" % ("total .mpy", res["mpy_total"]))
    lines.append("%-36s %8d" % ("ROMFS image (build/jolt.romfs)", res["romfs"]))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true")
    a = ap.parse_args()
    print("\n".join(table(measure(), None if a.all else 12)))


if __name__ == "__main__":
    main()
