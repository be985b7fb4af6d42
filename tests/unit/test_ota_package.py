"""Signed update packages (docs/ota.md): tools/ota.py builds and checks them on
the host, lib/otapkg + lib/rsapss check them on the device. Every package here
is made by the host tool with a key pair from `keygen` in a tmp dir; the device
side runs on MicroPython (the board-like interpreter where present) and on
CPython, and must agree with the host on every good and bad package."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from lib import otapkg  # noqa: E402
from tools import ota  # noqa: E402
from tools.simkit.bench import board32_binary  # noqa: E402

MICROPYTHON = board32_binary() or os.path.join(ROOT, ".venv", "bin", "micropython")
VERSION = "9.8.7-t"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("ota")
    priv, pub = ota.keygen(str(d / "keys"))
    other_priv, _ = ota.keygen(str(d / "other"))
    pkg = str(d / "good.jolt")
    m = ota.build(priv, VERSION, pkg, board="sim", variant="any", min_version="0.1.0")
    return {"dir": d, "priv": priv, "pub": pub, "other_priv": other_priv, "pkg": pkg, "manifest": m,
            "devkey": str(d / "keys" / "ota_key.json")}


def variant_of(made, name, data=None, key=None, **fields):
    """A package from the good one's image with some manifest fields changed, re-signed."""
    with open(made["pkg"], "rb") as f:
        raw, sig, img = ota.parse(f.read())
    m = dict(json.loads(raw), **fields)
    raw, sig = ota.sign_manifest(ota.load_private(key or made["priv"]), m)
    p = str(made["dir"] / name)
    with open(p, "wb") as f:
        f.write(data if data is not None else ota.pack(raw, sig, img))
    return p


def cases(made):
    good = open(made["pkg"], "rb").read()
    raw, sig, img = ota.parse(good)
    head = len(good) - len(img)
    flipped_img = bytearray(good)
    flipped_img[head + 100] ^= 1
    flipped_sig = bytearray(good)
    flipped_sig[head - 5] ^= 0x40
    flipped_manifest = bytearray(good)
    i = good.index(b'"variant":"any"') + len('"variant":"')
    flipped_manifest[i:i + 3] = b"ANY"
    return {
        "good": (made["pkg"], None),
        "bad_signature": (variant_of(made, "badsig.jolt", bytes(flipped_sig)), "bad signature"),
        "other_key": (variant_of(made, "otherkey.jolt", key=made["other_priv"]), "bad signature"),
        "edited_manifest": (variant_of(made, "edited.jolt", bytes(flipped_manifest)), "bad signature"),
        "wrong_hash": (variant_of(made, "hash.jolt", bytes(flipped_img)), "image hash mismatch"),
        "hash_field": (variant_of(made, "hashfield.jolt", sha256=hashlib.sha256(b"x").hexdigest()),
                       "image hash mismatch"),
        "truncated_image": (variant_of(made, "trunc.jolt", good[:-1000]), "truncated package"),
        "truncated_head": (variant_of(made, "trunc2.jolt", good[:head - 10]), "truncated package"),
        "trailing": (variant_of(made, "trail.jolt", good + b"\0"), "trailing bytes after the image"),
        "not_a_package": (variant_of(made, "junk.jolt", b"PK\3\4" + good[4:]), "not a JOLT package"),
        "other_variant": (variant_of(made, "homeplus.jolt", variant="homeplus"),
                          "package for variant homeplus, this is business"),
        "same_variant": (variant_of(made, "business.jolt", variant="business"), None),
        "other_board": (variant_of(made, "esp32.jolt", board="esp32"), "package for board esp32, this is sim"),
        "older": (variant_of(made, "older.jolt", version="0.0.9"), "version 0.0.9 is older than the running 0.1.0"),
        "min_version": (variant_of(made, "minv.jolt", min_version="0.1.10"),
                        "needs version 0.1.10 or later, running 0.1.0"),
    }


DEVICE_SCRIPT = r"""
import json, sys
from lib import otapkg
a = json.load(open(sys.argv[1] if len(sys.argv) > 1 else ARGS))
key = otapkg.load_key(a["key"])
out = {}
for name in a["cases"]:
    path = a["cases"][name]
    chunks = []
    try:
        m = otapkg.check(path, key, "business", "0.1.0", "sim", a.get("down", False),
                         sink=lambda mv: chunks.append(len(mv)))
        out[name] = ["ok", m["version"], sum(chunks)]
    except otapkg.Refused as e:
        out[name] = ["refused", str(e), sum(chunks)]
print(json.dumps(out))
"""


def run_device(made, paths, down=False, micropython=True):
    args = str(made["dir"] / "args.json")
    with open(args, "w") as f:
        json.dump({"key": made["devkey"], "cases": paths, "down": down}, f)
    script = DEVICE_SCRIPT.replace("ARGS", repr(args))
    if not micropython:
        ns = {}
        saved = sys.argv
        sys.argv = ["x", args]
        try:
            import contextlib
            import io
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(script, ns)
        finally:
            sys.argv = saved
        return json.loads(buf.getvalue())
    env = dict(os.environ, MICROPYPATH=ROOT + ":.frozen")
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=64K", "-c", script], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_build_stamps_the_version_and_describes_the_image(made):
    m = made["manifest"]
    raw, sig, img = ota.parse(open(made["pkg"], "rb").read())
    assert json.loads(raw) == m
    assert (m["version"], m["variant"], m["board"], m["min_version"]) == (VERSION, "any", "sim", "0.1.0")
    assert m["size"] == len(img) and m["sha256"] == hashlib.sha256(img).hexdigest()
    assert len(sig) == 256
    # The image is a ROMFS image with the stamped version module in it.
    assert img[:3] == b"\xd2\xcd\x31"  # VfsRom magic
    assert VERSION.encode() in img and b'"0.1.0"' not in img


@pytest.mark.parametrize("micropython", [True, False], ids=["micropython", "cpython"])
def test_device_check_agrees_with_the_host_tool(made, micropython):
    cs = cases(made)
    got = run_device(made, {k: v[0] for k, v in cs.items()}, micropython=micropython)
    size = made["manifest"]["size"]
    for name, (path, reason) in cs.items():
        if reason is None:
            assert got[name] == ["ok", VERSION, size], name
        else:
            assert got[name][:2] == ["refused", reason], name
        # The host's verify (the cryptography package) says the same.
        host = ota.main(["verify", "--key", made["pub"], path])
        assert host == (0 if name in ("good", "same_variant", "other_variant", "other_board", "older",
                                      "min_version") else 1), name
    # Nothing reaches the sink before the signature and the manifest are accepted.
    for name in ("bad_signature", "other_key", "other_variant", "older", "min_version", "truncated_image"):
        assert got[name][2] == 0, name


def test_downgrade_only_when_allowed(made):
    older = variant_of(made, "older2.jolt", version="0.0.9")
    got = run_device(made, {"older": older}, down=True)
    assert got["older"][:2] == ["ok", "0.0.9"]


def test_versions_compare_numerically():
    assert otapkg.compare("1.10.0", "1.9.2") == 1
    assert otapkg.compare("0.1", "0.1.0") == 0
    assert otapkg.compare("0.1.0", "0.2.0") == -1


def test_cli(made, tmp_path, capsys):
    assert ota.main(["verify", "--key", made["pub"], made["pkg"]]) == 0
    assert "OK" in capsys.readouterr().out
    out = str(tmp_path / "k.json")
    assert ota.main(["devkey", "--key", made["pub"], "--out", out]) == 0
    assert json.load(open(out)) == json.load(open(made["devkey"]))
