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
    _sync()
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT/littlefs on some ports refuse to rename over an existing file.
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)
    _sync()


def read(path):
    """Content of path, or of its .new sibling left by an interrupted rename; None if neither."""
    for p in (path, path + ".new"):
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            pass
    return None


def _sync():
    s = getattr(os, "sync", None)
    if s:
        try:
            s()
        except OSError:
            pass
