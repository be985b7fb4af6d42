# Signed update packages (docs/ota.md): read, check and stream one without
# ever holding the image in RAM.
#
#   b"JOLTOTA\x01" | u16 M | manifest (M bytes, JSON) | u16 S | signature (S) | image
#
# The signature (RSA-PSS, SHA-256, lib/rsapss) covers the manifest bytes; the
# manifest gives the image's size and SHA-256. check() refuses with Refused
# (a one-line reason) and calls sink(chunk) with the image only after the
# manifest is proven authentic, so a caller writing a slot can first run a
# dry pass (sink None), then a writing pass.
import binascii
import hashlib
import json

from lib import rsapss

MAGIC = b"JOLTOTA\x01"
MAX_MANIFEST = 1024
CHUNK = 1024
VARIANT_ANY = "any"


class Refused(Exception):
    pass


def load_key(path):
    """(n, e, k, nbits) from the device key file: {"n": HEX, "e": INT}."""
    with open(path) as f:
        d = json.load(f)
    return key_from_hex(d["n"], d.get("e", 65537))


def key_from_hex(n_hex, e=65537):
    nb = binascii.unhexlify(n_hex)
    while nb and not nb[0]:
        nb = nb[1:]
    return int.from_bytes(nb, "big"), int(e), len(nb), rsapss.mod_bits(nb)


def _version(v):
    out = []
    for part in str(v).replace("-", ".").split("."):
        out.append((0, int(part)) if part.isdigit() else (1, part))
    return out


def compare(a, b):
    """-1, 0, 1 as version a is older, equal, newer than b ("1.10.0" > "1.9.2")."""
    va, vb = _version(a), _version(b)
    n = max(len(va), len(vb))
    va += [(0, 0)] * (n - len(va))
    vb += [(0, 0)] * (n - len(vb))
    return (va > vb) - (va < vb)


def _read(f, n):
    b = f.read(n)
    if len(b) != n:
        raise Refused("truncated package")
    return b


def _u16(f):
    b = _read(f, 2)
    return (b[0] << 8) | b[1]


def read_manifest(f, key):
    """Authentic manifest dict of the open package `f`, positioned at its image."""
    if _read(f, len(MAGIC)) != MAGIC:
        raise Refused("not a JOLT package")
    m_len = _u16(f)
    if not 0 < m_len <= MAX_MANIFEST:
        raise Refused("bad manifest length")
    raw = _read(f, m_len)
    sig = _read(f, _u16(f))
    n, e, k, nbits = key
    if not rsapss.verify(n, e, k, nbits, hashlib.sha256(raw).digest(), sig):
        raise Refused("bad signature")
    try:
        m = json.loads(raw)
        int(m["size"]) + len(m["sha256"]) + len(m["version"]) + len(m["variant"])
    except Exception:
        raise Refused("bad manifest")
    return m, len(MAGIC) + 2 + m_len + 2 + len(sig)


def check(path, key, variant, running, board, allow_downgrade=False, sink=None, buf=None):
    """Verify the package at `path` for this device; return its manifest.
    sink(memoryview) receives the image chunk by chunk once the manifest is
    authentic and acceptable; the image hash is checked at the end (a caller
    that wrote chunks must not use them when this raises)."""
    with open(path, "rb") as f:
        m, head = read_manifest(f, key)
        if m["variant"] not in (VARIANT_ANY, variant):
            raise Refused("package for variant %s, this is %s" % (m["variant"], variant))
        if m.get("board", board) != board:
            raise Refused("package for board %s, this is %s" % (m.get("board"), board))
        if compare(running, m.get("min_version", "0")) < 0:
            raise Refused("needs version %s or later, running %s" % (m["min_version"], running))
        if compare(m["version"], running) < 0 and not allow_downgrade:
            raise Refused("version %s is older than the running %s" % (m["version"], running))
        size = int(m["size"])
        f.seek(0, 2)
        total = f.tell()
        if total < head + size:
            raise Refused("truncated package")
        if total > head + size:
            raise Refused("trailing bytes after the image")
        f.seek(head)
        buf = buf or bytearray(CHUNK)
        mv = memoryview(buf)
        h = hashlib.sha256()
        left = size
        while left:
            n = f.readinto(mv[:min(left, len(buf))])
            if not n:
                raise Refused("truncated package")
            h.update(mv[:n])
            if sink:
                sink(mv[:n])
            left -= n
    if binascii.hexlify(h.digest()).decode() != m["sha256"]:
        raise Refused("image hash mismatch")
    return m
