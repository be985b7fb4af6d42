"""lib/dns: the name lookup hal/esp32 does before it connects, so that no
blocking socket.getaddrinfo on a name stops the event loop (the control loop
and the fault supervisor run in it). Against a DNS server on localhost
whose answers and delays the test sets; hal/esp32's net.open through it."""
import asyncio
import socket
import struct
import time

import pytest

from lib import dns
from tests.unit import fakes_esp32
from tests.unit.fakes_esp32 import network as fnet


def reply(q, ip=None, rcode=0, cname=False):
    """The server's answer to query q: an A record (after a CNAME if asked)."""
    qid = struct.unpack_from(">H", q)[0]
    qend = q.index(b"\x00", 12) + 5
    an = []
    if cname:
        target = b"\x04edge\x07example\x03net\x00"
        an.append(b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, len(target)) + target)
        owner = struct.pack(">H", 0xC000 | (12 + len(q[12:qend]) + 12))  # the CNAME's target
    else:
        owner = b"\xc0\x0c"
    if ip is not None:
        an.append(owner + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip))
    head = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(an), 0, 0)
    return head + q[12:qend] + b"".join(an)


class Server(asyncio.DatagramProtocol):
    """names: {name: ip or ("delay_ms", ip) or "NXDOMAIN" or None (no answer)}."""

    def __init__(self, names):
        self.names = names
        self.asked = []

    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, q, addr):
        labels, i = [], 12
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += q[i] + 1
        name = ".".join(labels)
        self.asked.append(name)
        what = self.names.get(name, "NXDOMAIN")
        if what is None:
            return
        if what == "NXDOMAIN":
            self.t.sendto(reply(q, rcode=3), addr)
            return
        delay, ip = what if isinstance(what, tuple) else (0, what)
        asyncio.get_running_loop().call_later(delay / 1000, self.t.sendto,
                                              reply(q, ip, cname=name.startswith("cdn.")), addr)


async def serve(names):
    loop = asyncio.get_running_loop()
    t, srv = await loop.create_datagram_endpoint(lambda: Server(names), local_addr=("127.0.0.1", 0))
    return t, srv, t.get_extra_info("sockname")[1]


async def ticking(ticks, stop):
    """A task standing for the control loop: counts its 10 ms cycles."""
    while not stop:
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())


def lookup(monkeypatch, names, host, **kw):
    """resolve(host) with the loop's other task ticking; returns (result or
    exception, cycles the other task ran, seconds taken, names asked)."""
    async def go():
        t, srv, port = await serve(names)
        monkeypatch.setattr(dns, "PORT", port)
        ticks, stop = [], []
        tick = asyncio.create_task(ticking(ticks, stop))
        t0 = time.monotonic()
        try:
            res = await dns.resolve(host, "127.0.0.1", **kw)
        except OSError as e:
            res = e
        took = time.monotonic() - t0
        stop.append(1)
        await tick
        t.close()
        return res, len(ticks), took, srv.asked

    return asyncio.run(go())


def test_a_name_resolves_while_the_loop_keeps_running(monkeypatch):
    res, ticks, took, asked = lookup(monkeypatch, {"csms.example.com": (300, "10.1.2.3")},
                                     "csms.example.com")
    assert res == "10.1.2.3" and asked == ["csms.example.com"]
    assert took >= 0.29 and ticks >= 10  # the other task ran all along the wait


def test_a_cname_on_the_way_to_the_address(monkeypatch):
    res, _, _, _ = lookup(monkeypatch, {"cdn.example.com": "10.9.8.7"}, "cdn.example.com")
    assert res == "10.9.8.7"


def test_unknown_name_is_an_oserror_at_once(monkeypatch):
    res, _, took, _ = lookup(monkeypatch, {}, "nope.example.com")
    assert isinstance(res, OSError) and took < 0.5


def test_no_answer_gives_up_after_the_bounded_time_without_blocking(monkeypatch):
    res, ticks, took, asked = lookup(monkeypatch, {"csms.example.com": None}, "csms.example.com",
                                     timeout_ms=200, tries=2)
    assert isinstance(res, OSError) and res.errno == 110
    assert asked == ["csms.example.com"] * 2  # asked again once
    assert 0.39 <= took < 1.0 and ticks >= 20


def test_an_address_is_not_looked_up():
    assert asyncio.run(dns.resolve("192.168.4.10", "0.0.0.0")) == "192.168.4.10"
    assert not dns.is_ipv4("10.0.0.256") and not dns.is_ipv4("csms.example.com")


def test_a_reply_to_another_query_is_ignored():
    q = dns.query("csms.example.com", 7)
    assert dns.answer(reply(q, "10.1.2.3"), 8) is None
    assert dns.answer(reply(q, "10.1.2.3"), 7) == "10.1.2.3"
    with pytest.raises(OSError):
        dns.answer(reply(q, None), 7)  # an answer without an address
    with pytest.raises(OSError):
        dns.query("a" * 64 + ".example.com", 1)


def test_esp32_net_open_looks_up_the_name_without_getaddrinfo(monkeypatch):
    """hal/esp32: the name goes to lib/dns (the DNS server from the WLAN's
    ifconfig), open_connection gets the address: socket.getaddrinfo never
    sees a name (on the port it would block the interpreter)."""
    real = socket.getaddrinfo
    names_seen = []

    def getaddrinfo(host, *a, **kw):
        if not dns.is_ipv4(host):
            names_seen.append(host)
        return real(host, *a, **kw)

    with fakes_esp32.installed():
        from hal.esp32 import board as B

        b = B.Board()
        w = fnet.wlans[-1]
        fnet.aps["depot"] = {"password": "pw", "rssi": -55}
        b.net.configure("depot", "pw")
        w.step()
        monkeypatch.setattr(w, "ifconfig", lambda *a: ("192.168.4.2", "255.255.255.0", "192.168.4.1", "127.0.0.1"))
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

        async def go():
            got = []

            async def csms(r, wr):
                got.append(await r.read(5))
                wr.close()

            server = await asyncio.start_server(csms, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            t, srv, dport = await serve({"csms.example.com": (100, "127.0.0.1")})
            monkeypatch.setattr(dns, "PORT", dport)
            ticks, stop = [], []
            tick = asyncio.create_task(ticking(ticks, stop))
            reader, writer = await b.net.open("csms.example.com", port)
            stop.append(1)
            await tick
            writer.write(b"hello")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            t.close()
            server.close()
            return got, srv.asked, len(ticks)

        got, asked, ticks = asyncio.run(go())
    assert got == [b"hello"] and asked == ["csms.example.com"]
    assert names_seen == [] and ticks >= 3
