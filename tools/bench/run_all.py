#!/usr/bin/env python3
"""Run every benchmark in tools/bench and print their figures (make bench)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    failed = 0
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".py") or name == os.path.basename(__file__):
            continue
        print("== %s" % name, flush=True)
        r = subprocess.run([sys.executable, os.path.join(HERE, name)])
        failed += r.returncode != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
