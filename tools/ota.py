#!/usr/bin/env python3
"""Signed firmware update packages (docs/ota.md).

    tools/ota.py keygen --out DIR
    tools/ota.py build --key PRIVATE --version V [--board esp32|sim] [--variant business|homeplus|any]
                       [--min-version V] [--src TREE] --out FILE
    tools/ota.py verify --key PUBLIC FILE
    tools/ota.py devkey --key PUBLIC --out FILE

keygen writes DIR/private.pem, DIR/public.pem (RSA 2048) and DIR/ota_key.json,
the public key in the device's format. build packs the application of the
project tree (or of TREE, a copy of it) as the ROMFS image `make deploy`
writes, with V stamped in as firmware/version.py's FIRMWARE (what
BootNotification.firmwareVersion reports), behind a manifest signed with
RSA-PSS/SHA-256. verify checks a package with the host's crypto library.
devkey converts a public PEM into the device key file (ota_key.json).
"""
import argparse
import binascii
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.mpy_build import DEVICE_DIRS, ENTRY_POINTS  # noqa: E402

MAGIC = b"JOLTOTA\x01"
FORMAT = 1
SALT_LEN = 32  # PSS salt = digest length (lib/rsapss.HLEN)
KEY_BITS = 2048
VERSION_FILE = "firmware/version.py"
VERSION_RE = re.compile(r'^FIRMWARE = "[^"]*"$', re.M)


def _crypto():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    return hashes, serialization, padding, rsa


def _pss():
    hashes, _, padding, _ = _crypto()
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LEN)


def load_private(path):
    _, serialization, _, _ = _crypto()
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def load_public(path):
    _, serialization, _, _ = _crypto()
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def device_key(pub):
    """The device key file's content (lib/otapkg.load_key) for a public key."""
    nums = pub.public_numbers()
    n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
    return {"n": binascii.hexlify(n).decode(), "e": nums.e}


def write_device_key(public_pem, out):
    with open(out, "w") as f:
        json.dump(device_key(load_public(public_pem)), f)


def keygen(out_dir):
    _, serialization, _, rsa = _crypto()
    os.makedirs(out_dir, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    priv = os.path.join(out_dir, "private.pem")
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub = os.path.join(out_dir, "public.pem")
    with open(pub, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    with open(os.path.join(out_dir, "ota_key.json"), "w") as f:
        json.dump(device_key(key.public_key()), f)
    return priv, pub


def stamp_tree(src, dst, version):
    """Copy the device files of `src` into `dst` with `version` as FIRMWARE."""
    for rel in ENTRY_POINTS:
        if os.path.exists(os.path.join(src, rel)):
            shutil.copyfile(os.path.join(src, rel), os.path.join(dst, rel))
    for d in DEVICE_DIRS:
        shutil.copytree(os.path.join(src, d), os.path.join(dst, d),
                        ignore=shutil.ignore_patterns("__pycache__"))
    p = os.path.join(dst, VERSION_FILE)
    with open(p) as f:
        text = f.read()
    if not VERSION_RE.search(text):
        raise SystemExit("%s has no FIRMWARE = \"...\" line to stamp" % VERSION_FILE)
    if not re.fullmatch(r"[0-9A-Za-z.+-]{1,40}", version):
        raise SystemExit("version %r: use digits, letters, . + - (at most 40)" % version)
    with open(p, "w") as f:
        f.write(VERSION_RE.sub('FIRMWARE = "%s"' % version, text))


def image(version, board="esp32", src=None, march=None):
    """The ROMFS image (bytes) of the tree `src` (default: this project) with `version` stamped."""
    from tools.romfs import rom_files

    with tempfile.TemporaryDirectory() as tmp:
        stamp_tree(os.path.abspath(src or ROOT), tmp, version)
        img, _ = rom_files(board, march, root=tmp)
    return img


def pack(m, sig, img):
    """Package bytes from the manifest's bytes, their signature and the image."""
    return MAGIC + struct.pack(">H", len(m)) + m + struct.pack(">H", len(sig)) + sig + img


def sign_manifest(priv, manifest):
    hashes, _, _, _ = _crypto()
    raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return raw, priv.sign(raw, _pss(), hashes.SHA256())


def build(key_path, version, out, board="esp32", variant="any", min_version="0", src=None):
    march = "xtensawin" if board == "esp32" else None
    img = image(version, board, src, march)
    manifest = {"format": FORMAT, "version": version, "variant": variant, "board": board,
                "size": len(img), "sha256": hashlib.sha256(img).hexdigest(), "min_version": min_version}
    data = pack(*sign_manifest(load_private(key_path), manifest), img)
    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    with open(out + ".tmp", "wb") as f:
        f.write(data)
    os.replace(out + ".tmp", out)
    return manifest


def parse(data):
    """(manifest bytes, signature, image) of a package; ValueError when malformed."""
    if data[:len(MAGIC)] != MAGIC:
        raise ValueError("not a JOLT package")
    o = len(MAGIC)
    if len(data) < o + 2:
        raise ValueError("truncated package")
    (m_len,) = struct.unpack_from(">H", data, o)
    o += 2
    raw = data[o:o + m_len]
    o += m_len
    if len(raw) != m_len or len(data) < o + 2:
        raise ValueError("truncated package")
    (s_len,) = struct.unpack_from(">H", data, o)
    o += 2
    sig = data[o:o + s_len]
    if len(sig) != s_len:
        raise ValueError("truncated package")
    return raw, sig, data[o + s_len:]


def verify(pub_path, path):
    """The manifest of a good package; ValueError with the reason otherwise."""
    from cryptography.exceptions import InvalidSignature

    hashes, _, _, _ = _crypto()
    with open(path, "rb") as f:
        raw, sig, img = parse(f.read())
    try:
        load_public(pub_path).verify(sig, raw, _pss(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("bad signature")
    m = json.loads(raw)
    if len(img) < m["size"]:
        raise ValueError("truncated package")
    if len(img) > m["size"]:
        raise ValueError("trailing bytes after the image")
    if hashlib.sha256(img).hexdigest() != m["sha256"]:
        raise ValueError("image hash mismatch")
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="new RSA-2048 key pair: DIR/private.pem, DIR/public.pem, DIR/ota_key.json")
    k.add_argument("--out", required=True)
    b = sub.add_parser("build", help="signed package of the application")
    b.add_argument("--key", required=True, help="private key (PEM)")
    b.add_argument("--version", required=True)
    b.add_argument("--board", default="esp32", choices=("esp32", "sim"))
    b.add_argument("--variant", default="any", choices=("business", "homeplus", "any"))
    b.add_argument("--min-version", default="0", help="oldest running version that may install it")
    b.add_argument("--src", default=None, help="source tree (a copy of this project); default: this one")
    b.add_argument("--out", required=True)
    v = sub.add_parser("verify", help="check a package")
    v.add_argument("--key", required=True, help="public key (PEM)")
    v.add_argument("file")
    d = sub.add_parser("devkey", help="public PEM -> device key file (ota_key.json)")
    d.add_argument("--key", required=True)
    d.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "keygen":
        priv, pub = keygen(a.out)
        print("wrote %s, %s, %s (keep the private key off the repository)"
              % (priv, pub, os.path.join(a.out, "ota_key.json")))
    elif a.cmd == "build":
        m = build(a.key, a.version, a.out, a.board, a.variant, a.min_version, a.src)
        print("package %s: version %s variant %s board %s, image %d bytes sha256 %s"
              % (a.out, m["version"], m["variant"], m["board"], m["size"], m["sha256"]))
    elif a.cmd == "verify":
        try:
            m = verify(a.key, a.file)
        except (ValueError, OSError) as e:
            print("REFUSED %s: %s" % (a.file, e))
            return 1
        print("OK %s: %s" % (a.file, json.dumps(m, sort_keys=True)))
    elif a.cmd == "devkey":
        write_device_key(a.key, a.out)
        print("wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
