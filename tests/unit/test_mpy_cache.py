"""tools/mpy_build.py's compile cache: a build served from it is the build
mpy-cross would make, and a changed or broken source is never served stale."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import mpy_build  # noqa: E402


def write(base, rel, text):
    path = os.path.join(base, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def built(root, out, **kw):
    files = mpy_build.build(str(out), root=str(root), board="sim", **kw)
    return {f: (out / f).read_bytes() for f in files}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setattr(mpy_build, "CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    write(src, "main.py", "import firmware.a\n")
    write(src, "firmware/__init__.py", "")
    write(src, "firmware/a.py", "X = 'first version'\ndef f():\n    return X\n")
    write(src, "lib/b.py", "Y = 2\n")
    return src


def test_a_cached_build_is_byte_for_byte_the_compiled_one(tree, tmp_path, monkeypatch):
    first = built(tree, tmp_path / "one")
    assert os.listdir(mpy_build.CACHE)  # the first build filled the cache
    again = built(tree, tmp_path / "two")
    assert again == first
    # and both are what mpy-cross writes with no cache at all
    monkeypatch.setattr(mpy_build, "CACHE", str(tmp_path / "empty"))
    assert built(tree, tmp_path / "three") == first
    # the module's source name is part of the key: a ROMFS build names /rom/...
    rom = built(tree, tmp_path / "rom", mount="/rom/")
    assert rom["firmware/a.mpy"] != first["firmware/a.mpy"]
    assert b"/rom/firmware/a.mpy" in rom["firmware/a.mpy"]


def test_a_changed_source_is_compiled_again(tree, tmp_path):
    first = built(tree, tmp_path / "one")
    write(tree, "firmware/a.py", "X = 'second version'\ndef f():\n    return X\n")
    second = built(tree, tmp_path / "two")
    assert b"second version" in second["firmware/a.mpy"]
    assert b"first version" not in second["firmware/a.mpy"]
    assert second["lib/b.mpy"] == first["lib/b.mpy"]


def test_a_broken_source_fails_even_after_a_good_build(tree, tmp_path):
    built(tree, tmp_path / "one")
    write(tree, "firmware/a.py", "def f(:\n")
    with pytest.raises(RuntimeError, match="firmware/a.py"):
        built(tree, tmp_path / "two")
    # and the failure left nothing in the cache that a later build could take
    write(tree, "firmware/a.py", "X = 'first version'\ndef f():\n    return X\n")
    assert b"first version" in built(tree, tmp_path / "three")["firmware/a.mpy"]
