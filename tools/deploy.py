#!/usr/bin/env python3
"""Put the application on a board with mpremote (docs/flashing.md).

    tools/deploy.py --port /dev/ttyUSB0 --build build --romfs build/jolt.romfs [--dry-run]
    tools/deploy.py --port /dev/ttyUSB0 --build build [--dry-run]

With --romfs (what `make deploy` does) the board is asked whether its
MicroPython has a ROMFS partition (`probe_command()`), then:

- ROMFS (the JOLT board build, boards/JOLT): `romfs_plan()`: the image goes into
  the romfs partition (`mpremote romfs deploy`), every code file left on the
  littlefs filesystem under firmware/, lib/, hal/ is removed (the cwd comes
  before /rom on sys.path: a stale copy would shadow the image), boot.py and
  main.py are copied, the board is reset. Data files are never touched.
- no ROMFS (a stock build): the .mpy copy below, with a warning of what it
  costs in RAM (`NO_ROMFS`).

Without --romfs, the .mpy tree (`make mpy` -> build/) is copied (`plan()`):

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
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the board answers to PROBE: "ROMFS <bytes of partition 0>" (0: none).
PROBE = """import vfs
try:
    d = vfs.rom_ioctl(2, 0)
    n = 0 if isinstance(d, int) else len(memoryview(d))
except Exception:
    n = 0
print("ROMFS", n)
"""
NO_ROMFS = ("deploy: this board's MicroPython has no ROMFS partition (a stock build): copying .mpy "
            "files instead. Their bytecode is then loaded into the GC heap: about 134 KB live after "
            "importing the firmware instead of about 48 KB from ROMFS (tools/bench/heap_imports.py on "
            "the board-like interpreter), more than an ESP32 without PSRAM has left. Flash the JOLT "
            "board build (boards/JOLT, docs/flashing.md) or use a board with PSRAM.")
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


def probe_command(port, mpremote=None):
    return [mpremote or mpremote_path(), "connect", port, "exec", PROBE]


def romfs_size(probe_output):
    """Bytes of the board's romfs partition from the probe's output (0: none)."""
    m = re.search(r"^ROMFS (\d+)\s*$", probe_output, re.M)
    return int(m.group(1)) if m else 0


def romfs_plan(image, build_dir, port, mpremote=None):
    """The mpremote command lines that install the ROMFS image `image` and the
    entry points of `build_dir` on `port`."""
    exe = mpremote or mpremote_path()
    if not image.endswith((".romfs", ".img")):
        raise ValueError("%s: mpremote romfs deploy takes a .romfs or .img image" % image)
    entries = [f for f in ENTRY_POINTS if os.path.exists(os.path.join(build_dir, f))]
    if "main.py" not in entries:
        raise ValueError("no main.py in %s (run make mpy)" % build_dir)
    copy = [exe, "connect", port]
    for i, rel in enumerate(entries):
        if i:
            copy.append("+")
        copy += ["fs", "cp", os.path.join(build_dir, rel), ":" + rel]
    return [
        [exe, "connect", port, "romfs", "deploy", image],
        [exe, "connect", port, "exec", prep_snippet([])],  # no code left on littlefs
        copy,
        [exe, "connect", port, "reset"],
    ]


def run(cmds, dry_run):
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
        if dry_run:
            continue
        rc = subprocess.call(cmd)
        if rc:
            print("deploy: command failed with exit code %d" % rc, file=sys.stderr)
            return rc
    return 0


def deploy_romfs(image, build_dir, port, dry_run=False, ask=None):
    """Probe the board, then the ROMFS plan or the .mpy copy. ask(cmd) -> the
    probe's output (tests give their own; default: run mpremote)."""
    try:
        rom = romfs_plan(image, build_dir, port)
        mpy = plan(build_dir, port)
    except ValueError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    probe = probe_command(port)
    print(shlex.join(probe[:4]) + " <probe: ROMFS partition size>", flush=True)
    if dry_run:
        print("# with a ROMFS partition:")
        run(rom, True)
        print("# without (%s):" % NO_ROMFS.split(":")[0].replace("deploy: ", ""))
        return run(mpy, True)
    if ask is None:
        def ask(cmd):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise OSError("probe failed (%d): %s" % (r.returncode, (r.stdout + r.stderr).strip()))
            return r.stdout
    try:
        size = romfs_size(ask(probe))
    except OSError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 1
    need = os.path.getsize(image)
    if size >= need:
        print("deploy: ROMFS partition of %d bytes, image %d bytes" % (size, need), flush=True)
        return run(rom, False)
    if size:
        print("deploy: the ROMFS partition (%d bytes) is smaller than the image (%d bytes)" % (size, need),
              file=sys.stderr)
        return 1
    print(NO_ROMFS, file=sys.stderr, flush=True)
    return run(mpy, False)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Deploy the application to a board with mpremote")
    ap.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--build", default="build", help="build dir from tools/mpy_build.py --out")
    ap.add_argument("--romfs", help="ROMFS image from tools/romfs.py: installed when the board has ROMFS")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    a = ap.parse_args(argv)
    if a.romfs:
        return deploy_romfs(a.romfs, a.build, a.port, a.dry_run)
    try:
        cmds = plan(a.build, a.port)
    except ValueError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    return run(cmds, a.dry_run)


if __name__ == "__main__":
    sys.exit(main())
