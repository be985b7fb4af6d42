# Name lookup that leaves the event loop running: one DNS query (type A) over
# UDP to a given server, on a non-blocking socket polled every POLL_MS, for
# at most `timeout_ms` per try. socket.getaddrinfo on a name (what
# asyncio.open_connection does) blocks the whole interpreter -- every task,
# the control loop and the fault supervisor included -- until the resolver
# answers or gives up (seconds without an answer). RFC 1035 4.1.
import asyncio
import socket
import struct
import time

POLL_MS = 20
PORT = 53
_ids = [0x4A4F]  # query ID, changed per query


def is_ipv4(host):
    """host is a dotted-quad IPv4 address (getaddrinfo takes it without a lookup)."""
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return False
    return True


def query(host, qid):
    """The query message: header (RD set, one question), QNAME, QTYPE A, QCLASS IN."""
    labels = host.rstrip(".").split(".")
    q = bytearray(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0))
    for lab in labels:
        b = lab.encode()
        if not b or len(b) > 63:
            raise OSError(22, "bad name")  # EINVAL
        q.append(len(b))
        q.extend(b)
    q.extend(b"\x00\x00\x01\x00\x01")
    if len(q) > 512:
        raise OSError(22, "bad name")
    return q


def _skip_name(m, i):
    """Offset after the (possibly compressed) name at m[i]."""
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def answer(m, qid):
    """The first IPv4 address in the reply m to query qid; None if m is not
    that reply; OSError if the server answered without an address."""
    if len(m) < 12:
        return None
    rid, flags, qd, an = struct.unpack_from(">HHHH", m, 0)
    if rid != qid or not flags & 0x8000:
        return None  # not our answer (a late reply to an earlier try)
    if flags & 0x000F:
        raise OSError(2, "name not found" if flags & 0x000F == 3 else "DNS error")  # ENOENT
    try:
        i = 12
        for _ in range(qd):
            i = _skip_name(m, i) + 4
        for _ in range(an):
            i = _skip_name(m, i)
            if i + 10 > len(m):
                break
            typ, cls, _ttl, n = struct.unpack_from(">HHIH", m, i)
            i += 10
            if typ == 1 and cls == 1 and n == 4 and i + 4 <= len(m):
                return "%d.%d.%d.%d" % (m[i], m[i + 1], m[i + 2], m[i + 3])
            i += n  # a CNAME on the way to the address
    except IndexError:  # a truncated name
        pass
    raise OSError(2, "no address")


async def resolve(host, server, timeout_ms=2000, tries=2):
    """IPv4 address (str) of host, asked of the DNS server (an IPv4 address
    string); an address is returned as it is. OSError when no answer came
    within tries * timeout_ms, or the server had no address."""
    if is_ipv4(host):
        return host
    _ids[0] = qid = (_ids[0] * 75 + 74) & 0xFFFF
    q = query(host, qid)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.connect(socket.getaddrinfo(server, PORT)[0][-1])  # numeric: no lookup
        for _ in range(tries):
            s.send(q)
            t0 = time.ticks_ms()
            while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
                try:
                    m = s.recv(512)
                except OSError:  # EAGAIN: nothing yet (or ICMP unreachable: keep waiting)
                    await asyncio.sleep_ms(POLL_MS)
                    continue
                ip = answer(m, qid)
                if ip is not None:
                    return ip
        raise OSError(110, "DNS timeout")  # ETIMEDOUT
    finally:
        s.close()
