#!/usr/bin/env python3
"""Copy the built .mpy tree (`make mpy` -> build/) onto a board with mpremote.

    tools/deploy.py --port /dev/ttyUSB0 --build build [--dry-run]

What it does (see `plan()`; docs/csms.md has a section on deploy):

1. `mpremote connect PORT exec <prep>`: a small MicroPython snippet run on the
   board that creates the code directories (parents first, existing ones
   kept) and deletes every *.py / *.mpy file under firmware/, lib/, hal/ that
   is not part of this build. Decision: MicroPython imports `x.py` in
   preference to `x.mpy`, so a stale source file left by an earlier
   source-based install would silently shadow the new bytecode; stale .mpy of
   deleted modules would stay importable. The code directories therefore
   mirror the build exactly. Nothing else is touched: the filesystem root
   (config.json, provision.json, journal files, staged updates) and any
   non-code file are never removed or overwritten.
2. `mpremote connect PORT fs cp SRC :DST + fs cp ...`: every built file, modules
   first and the entry points (boot.py, main.py) last, so an interrupted
   deploy never boots new entry points over old modules. mpremote skips files
   whose hash on the board is unchanged.
3. `mpremote connect PORT reset`.

hal/sim and hal/mock are never deployed, even if the build dir has them.
"""
import argparse
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIRS = ("firmware", "lib", "hal")
ENTRY_POINTS = ("boot.py", "main.py")
HOST_ONLY = ("hal/sim", "hal/mock")


def mpremote_path():
    """The venv's mpremote (pinned in requirements.txt), never one from PATH."""
    venv = os.path.join(ROOT, ".venv", "bin", "mpremote")
    if os.path.exists(venv):
        return venv
    return os.path.join(os.path.dirname(sys.executable), "mpremote")


def deployable_files(build_dir):
    """Relative paths (with '/') of the files of `build_dir` that go on the board."""
    out = []
    for dirpath, dirnames, filenames in os.walk(build_dir):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, build_dir).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        for f in sorted(filenames):
            rel = rel_dir + "/" + f if rel_dir else f
            if not rel_dir:
                if f in ENTRY_POINTS:
                    out.append(rel)
                continue
            top = rel.split("/", 1)[0]
            if top not in CODE_DIRS or not f.endswith(".mpy"):
                continue
            if any(rel == h or rel.startswith(h + "/") for h in HOST_ONLY):
                continue
            out.append(rel)
    return out


def directories(files):
    """Every directory the files need, parents before children."""
    dirs = set()
    for rel in files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


PREP = """import os
D = %(dirs)r
K = %(keep)s
def isdir(p):
    try:
        return os.stat(p)[0] & 0x4000
    except OSError:
        return None
for d in D:
    if isdir(d) is None:
        os.mkdir(d)
def prune(d):
    for n in os.listdir(d):
        p = d + "/" + n
        if isdir(p):
            prune(p)
        elif (n.endswith(".py") or n.endswith(".mpy")) and p not in K:
            os.remove(p)
            print("removed stale", p)
for r in %(roots)r:
    if isdir(r):
        prune(r)
"""


def prep_snippet(files):
    keep = sorted(f for f in files if "/" in f)
    keep_src = "{" + ", ".join(repr(k) for k in keep) + "}" if keep else "set()"
    return PREP % {"dirs": directories(files), "keep": keep_src, "roots": CODE_DIRS}


def plan(build_dir, port, mpremote=None):
    """The mpremote command lines (argv lists) that deploy `build_dir` to `port`."""
    exe = mpremote or mpremote_path()
    files = deployable_files(build_dir)
    if not files:
        raise ValueError("nothing to deploy in %s (run make mpy)" % build_dir)
    ordered = [f for f in files if f not in ENTRY_POINTS] + [f for f in ENTRY_POINTS if f in files]
    copy = [exe, "connect", port]
    for i, rel in enumerate(ordered):
        if i:
            copy.append("+")
        copy += ["fs", "cp", os.path.join(build_dir, *rel.split("/")), ":" + rel]
    return [
        [exe, "connect", port, "exec", prep_snippet(files)],
        copy,
        [exe, "connect", port, "reset"],
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description="Deploy the .mpy build to a board with mpremote")
    ap.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--build", default="build", help="build dir from tools/mpy_build.py --out")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    a = ap.parse_args(argv)
    try:
        cmds = plan(a.build, a.port)
    except ValueError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
        if a.dry_run:
            continue
        rc = subprocess.call(cmd)
        if rc:
            print("deploy: command failed with exit code %d" % rc, file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
