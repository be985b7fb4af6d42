# Crash-safe small-file storage: write a new file, then rename it over the old
# one, so a power cut leaves either the old or the new content, never a mix.
import os


def write_atomic(path, data):
    tmp = path + ".new"
    if isinstance(data, str):
        data = data.encode()
    with open(tmp, "wb") as f:
        f.write(data)
        if hasattr(f, "flush"):
            f.flush()
    sync()
    replace(tmp, path)


def replace(src, dst):
    """Rename src over dst, then sync."""
    try:
        os.rename(src, dst)
    except OSError:
        # FAT/littlefs on some ports refuse to rename over an existing file. A
        # cut between these two steps leaves only src, which readers adopt.
        try:
            os.remove(dst)
        except OSError:
            pass
        os.rename(src, dst)
    sync()


def read(path):
    """Content of path, or of its .new sibling left by an interrupted rename; None if neither."""
    for p in (path, path + ".new"):
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            pass
    return None


def pipe(f, n, out, buf):
    """Copy n bytes (None: to the end) from the open file f into out (a stream
    with write()) through buf, a small bytearray: never a file-sized block."""
    mv = memoryview(buf)
    while n is None or n > 0:
        k = f.readinto(mv if n is None or n >= len(buf) else mv[:n])
        if not k:
            if n is None:
                return
            raise OSError(5)  # EIO: shorter than it should be
        out.write(mv[:k])
        if n is not None:
            n -= k


def sync():
    s = getattr(os, "sync", None)
    if s:
        try:
            s()
        except OSError:
            pass
