# RSASSA-PSS signature verification (RFC 8017 8.1.2 / 9.1.2) with SHA-256 and
# MGF1-SHA256, in plain MicroPython: the RSA step is pow() on big integers.
# The key is (n, e) as integers; tools/ota.py writes it in the device format
# docs/ota.md describes. Verification only: the device never signs.
import hashlib

HLEN = 32  # SHA-256


def _mgf1(seed, length):
    out = bytearray()
    c = 0
    while len(out) < length:
        h = hashlib.sha256(seed)
        h.update(c.to_bytes(4, "big"))
        out.extend(h.digest())
        c += 1
    return out[:length]


def mod_bits(n_bytes):
    """Bit length of a modulus given as big-endian bytes (no leading zero byte)."""
    top = n_bytes[0]
    bits = 8 * len(n_bytes)
    m = 0x80
    while m and not top & m:
        bits -= 1
        m >>= 1
    return bits


def verify(n, e, k, nbits, m_hash, sig, slen=HLEN):
    """True if `sig` (k bytes) is a valid PSS signature of the message whose
    SHA-256 is `m_hash`, under the key (n, e) of `nbits` bits (k bytes)."""
    if len(sig) != k or len(m_hash) != HLEN:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    m = pow(s, e, n)
    em_bits = nbits - 1
    em_len = (em_bits + 7) // 8
    if m >> (8 * em_len):  # the representative does not fit emLen octets
        return False
    em = m.to_bytes(em_len, "big")
    if em_len < HLEN + slen + 2 or em[-1] != 0xBC:
        return False
    db_len = em_len - HLEN - 1
    h = em[db_len:db_len + HLEN]
    top_mask = 0xFF >> (8 * em_len - em_bits)
    if em[0] & ~top_mask & 0xFF:
        return False
    db = _mgf1(h, db_len)
    for i in range(db_len):
        db[i] ^= em[i]
    db[0] &= top_mask
    pad = db_len - slen - 1
    for i in range(pad):
        if db[i]:
            return False
    if db[pad] != 1:
        return False
    h2 = hashlib.sha256(b"\x00" * 8)
    h2.update(m_hash)
    h2.update(db[pad + 1:])
    return h2.digest() == h
