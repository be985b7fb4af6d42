#!/usr/bin/env python3
"""Write package.json, the manifest `mpremote mip install` reads, from the
device file list (tools/mpy_build.device_sources, board "esp32").

    tools/package_json.py [--check]

Install the application from a checkout or a repository with
`mpremote mip install --target / github:OWNER/REPO` (or a local path): the
files land at the filesystem root as the board expects (firmware/, lib/,
hal/esp32, boot.py, main.py). This installs *sources* that the board compiles
at import, into the heap: the product route is the ROMFS image (`make
deploy`); see docs/flashing.md. --check fails when package.json is stale.
"""
import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.mpy_build import device_sources  # noqa: E402

PATH = os.path.join(ROOT, "package.json")


def version(root=ROOT):
    with open(os.path.join(root, "firmware", "version.py")) as f:
        return re.search(r'^FIRMWARE = "([^"]+)"', f.read(), re.M).group(1)


def manifest(root=ROOT):
    """The package.json document: every device file, destination = source path
    (mip resolves relative sources against package.json's own location)."""
    return {"urls": [[rel, rel] for rel in device_sources(root, "esp32")], "deps": [], "version": version(root)}


def text(root=ROOT):
    return json.dumps(manifest(root), indent=2) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    want = text()
    if a.check:
        try:
            with open(PATH) as f:
                have = f.read()
        except OSError:
            have = None
        if have != want:
            print("package.json is stale: run tools/package_json.py", file=sys.stderr)
            return 1
        return 0
    with open(PATH, "w") as f:
        f.write(want)
    print("package.json: %d files" % len(manifest()["urls"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
