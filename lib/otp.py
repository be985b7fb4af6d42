# One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1
# (RFC 2104) written over hashlib.sha1 (MicroPython has no hmac module).
# No charger knowledge: the caller keeps the secret and the replay state.
import hashlib

from micropython import const

_BLOCK = const(64)  # SHA-1 block size


def hmac_sha1(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha1(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    inner = hashlib.sha1(ipad)
    inner.update(msg)
    outer = hashlib.sha1(opad)
    outer.update(inner.digest())
    return outer.digest()


def hotp(key, counter, digits=6):
    """RFC 4226 HOTP value of counter (0 <= counter < 2**64) as a digits-long string."""
    msg = bytearray(8)
    for i in range(7, -1, -1):
        msg[i] = counter & 0xFF
        counter >>= 8
    h = hmac_sha1(key, msg)
    o = h[19] & 0x0F
    code = (h[o] & 0x7F) << 24 | h[o + 1] << 16 | h[o + 2] << 8 | h[o + 3]
    s = str(code % 10 ** digits)
    return "0" * (digits - len(s)) + s


def totp(key, now, step=30, t0=0, digits=6):
    """RFC 6238 TOTP value at UNIX time now (seconds)."""
    return hotp(key, (now - t0) // step, digits)


def same(a, b):
    """Compare two codes in time independent of where they differ."""
    a = a.encode()  # indexing a str would intern each character: the code is the user's
    b = b.encode()
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def match(key, code, first, last, digits=6):
    """The counter in first..last (inclusive) whose HOTP value is code, or -1.
    Every counter is tried, so the time taken does not tell which matched."""
    found = -1
    for c in range(first, last + 1):
        if same(hotp(key, c, digits), code) and found < 0:
            found = c
    return found
