"""The update package reader (lib/otapkg, what the charger runs on a package
from the SD card or a download) on damaged packages: truncated, bytes changed
anywhere, random bytes in front, random files. Each is refused with
otapkg.Refused before any image byte is handed on, or, when only image bytes
changed, after them but with the hash mismatch; nothing else escapes."""
import os
import sys

from hypothesis import example, given, strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from lib import otapkg  # noqa: E402
from tests.unit.fuzzing import fuzz  # noqa: E402
from tools import ota  # noqa: E402

_made = {}


def made(tmp_dir):
    if not _made:
        priv, _ = ota.keygen(os.path.join(tmp_dir, "keys"))
        pkg = os.path.join(tmp_dir, "good.jolt")
        ota.build(priv, "9.0.0", pkg, board="sim", variant="any")
        with open(pkg, "rb") as f:
            _made["data"] = f.read()
        _made["key"] = otapkg.load_key(os.path.join(tmp_dir, "keys", "ota_key.json"))
        _made["head"] = len(_made["data"]) - ota.parse(_made["data"])[2].__len__()
    return _made


def verdict(path, key):
    got = []
    try:
        m = otapkg.check(path, key, "business", "0.1.0", "sim", sink=lambda mv: got.append(len(mv)))
        return "ok", m, sum(got)
    except otapkg.Refused as e:
        return "refused", str(e), sum(got)


def test_the_good_package_passes(tmp_path):
    mk = made(str(tmp_path))
    p = tmp_path / "p.jolt"
    p.write_bytes(mk["data"])
    kind, m, n = verdict(str(p), mk["key"])
    assert kind == "ok" and m["version"] == "9.0.0" and n == len(mk["data"]) - mk["head"]


@fuzz(60)
@given(st.data())
@example(None)
def test_damaged_packages_are_refused(tmp_path, data):
    mk = made(str(tmp_path))
    good = mk["data"]
    if data is None:  # the empty file
        bad = b""
    else:
        how = data.draw(st.sampled_from(["truncate", "flip", "prefix", "random", "append"]))
        if how == "truncate":
            bad = good[:data.draw(st.integers(0, len(good) - 1))]
        elif how == "flip":
            i = data.draw(st.integers(0, len(good) - 1))
            bad = good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1:]
        elif how == "prefix":
            bad = data.draw(st.binary(min_size=1, max_size=64)) + good
        elif how == "append":
            bad = good + data.draw(st.binary(min_size=1, max_size=64))
        else:
            bad = data.draw(st.binary(max_size=2048))
    p = tmp_path / "bad.jolt"
    p.write_bytes(bad)
    kind, why, handed = verdict(str(p), mk["key"])
    assert kind == "refused", (why, len(bad))
    if handed:
        # image bytes go to the slot only once the manifest is authentic: then
        # only the image was damaged, and its hash says so
        assert why == "image hash mismatch", why
