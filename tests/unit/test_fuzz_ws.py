"""Fuzzing the WebSocket frame decoder (lib/ws.py, issue 15): messages cut
into random fragments with control frames in between, in random TCP
segments, through both receive paths (the preallocated receive buffer and the
heap), and streams with bad lengths, masked server frames, reserved bits,
unknown opcodes, oversize messages and plain random bytes. The decoder
returns exactly the messages sent, answers every ping with its payload, and
otherwise ends the link with the RFC 6455 close code; nothing else escapes."""
import asyncio
import struct

import pytest
from hypothesis import example, given, strategies as st

from lib import ocppj
from lib.ws import WebSocket, WSClosed
from tests.unit.fuzzing import fuzz
from tests.unit.test_ws import server_frame

MAX = 3000  # max_message of the decoder under test
RX = 512    # its receive buffer


class Reader:
    """A stream that hands out the bytes in the given segments (readexactly as
    CPython's StreamReader; EOF at the end). Counts what was asked for."""

    def __init__(self, data, cuts):
        self.data = data
        self.pos = 0
        self.cuts = cuts or [7]
        self.asked = 0

    async def read(self, n):
        await asyncio.sleep(0)
        k = min(n, self.cuts[self.pos % len(self.cuts)], len(self.data) - self.pos)
        b = self.data[self.pos:self.pos + k]
        self.pos += k
        return b

    async def readexactly(self, n):
        self.asked = max(self.asked, n)
        out = b""
        while len(out) < n:
            b = await self.read(n - len(out))
            if not b:
                raise asyncio.IncompleteReadError(out, n)
            out += b
        return out


class ReaderInto(Reader):
    """A MicroPython stream: readinto(), which a TLS socket may answer with
    None (no complete record yet)."""

    async def readinto(self, mv):
        self.asked = max(self.asked, len(mv))
        if self.pos % 3 == 1 and not getattr(self, "_none", False):
            self._none = True
            return None
        self._none = False
        b = await self.read(len(mv))
        mv[:len(b)] = b
        return len(b)


class Writer:
    def __init__(self):
        self.out = bytearray()
        self.closed = False

    def write(self, b):
        self.out += bytes(b)

    async def drain(self):
        pass

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


def client_frames(data):
    """The frames the client wrote: [(opcode, payload)], each masked as RFC 6455 requires."""
    out = []
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        assert b1 & 0x80, "client frame not masked"
        n = b1 & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack(">H", data[i:i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack(">Q", data[i:i + 8])[0]
            i += 8
        key = data[i:i + 4]
        i += 4
        out.append((b0 & 0x0F, bytes(b ^ key[j % 4] for j, b in enumerate(data[i:i + n]))))
        assert len(out[-1][1]) == n
        i += n
    return out


def drain(stream, cuts, rx):
    """recv() until the link ends: (messages, close code, the client's frames, reader).
    rx: 0 heap, 1 a receive buffer, 2 a receive buffer and a MicroPython stream."""
    reader = (ReaderInto if rx == 2 else Reader)(stream, cuts)
    writer = Writer()
    ws = WebSocket(reader, writer, MAX, bytearray(RX) if rx else None)
    got = []

    async def run():
        while True:
            try:
                m = await ws.recv()
            except WSClosed as e:
                return e.code
            # From the receive buffer: bytes, UTF-8 checked by the JSON decoder.
            got.append(m if isinstance(m, str) else bytes(m))

    code = asyncio.run(run())
    assert ws.closed and writer.closed
    return got, code, client_frames(writer.out), reader


texts = st.text(max_size=700)
controls = st.one_of(st.tuples(st.just(9), st.binary(max_size=125)), st.tuples(st.just(10), st.binary(max_size=125)))
cuts = st.lists(st.integers(1, 300), min_size=1, max_size=5)


@st.composite
def conversation(draw):
    """Messages, each cut into fragments, with pings and pongs between them."""
    msgs = draw(st.lists(texts, max_size=5))
    frames = []
    pings = []
    for m in msgs:
        data = m.encode()
        splits = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        parts = [data[a:b] for a, b in zip([0] + splits, splits + [len(data)])]
        for i, p in enumerate(parts):
            for op, payload in draw(st.lists(controls, max_size=2)):
                frames.append(server_frame(op, payload))
                if op == 9:
                    pings.append(payload)
            frames.append(server_frame(0 if i else 1, p, fin=i == len(parts) - 1))
    return msgs, b"".join(frames), pings


@fuzz(150)
@given(conversation(), cuts, st.integers(0, 2))
def test_fragmented_messages_with_control_frames_between(conv, cut, rx):
    msgs, stream, pings = conv
    got, code, sent, reader = drain(stream + server_frame(8, struct.pack(">H", 1000)), cut, rx)
    assert [m if isinstance(m, str) else m.decode() for m in got] == msgs
    assert code == 1000
    assert [p for op, p in sent if op == 10] == pings  # every ping answered with its payload
    assert sent[-1] == (8, struct.pack(">H", 1000))   # the close echoed


BROKEN = [
    # (what, frame bytes, close code the client must end the link with)
    ("masked server frame", server_frame(1, b"hello", mask=True), 1002),
    ("reserved bits", server_frame(1, b"hi", rsv=0x40), 1002),
    ("unknown opcode", server_frame(3, b""), 1002),
    ("fragmented ping", server_frame(9, b"", fin=False), 1002),
    ("long ping", server_frame(9, b"x" * 126), 1002),
    ("64-bit length with the top bit", bytes([0x81, 127]) + b"\x80" + bytes(7), 1002),
    ("binary", server_frame(2, b"\x00\x01"), 1003),
    ("continuation first", server_frame(0, b"abc"), 1002),
    ("text inside a fragmented text", server_frame(1, b"a", fin=False) + server_frame(1, b"b"), 1002),
    ("bad utf-8", server_frame(1, b"\xff\xfe"), 1007),
    ("oversize single", server_frame(1, b"", length=MAX + 1), 1009),
    ("oversize huge", server_frame(1, b"", length=2**40), 1009),
    ("oversize fragments", server_frame(1, b"x" * 2000, fin=False) + server_frame(0, b"y" * 1001), 1009),
    ("close with 1 byte", server_frame(8, b"\x03"), 1002),
    ("close with a reserved code", server_frame(8, struct.pack(">H", 1005)), 1002),
    ("close with bad utf-8", server_frame(8, struct.pack(">H", 1000) + b"\xff"), 1007),
    ("cut in the header", b"\x81", 1006),
    ("cut in the payload", server_frame(1, b"abcdef")[:5], 1006),
    ("cut in the extended length", bytes([0x81, 126, 1]), 1006),
]


@pytest.mark.parametrize("broken", BROKEN, ids=[b[0] for b in BROKEN])
@fuzz(4)
@given(conversation(), cuts, st.integers(0, 2))
def test_protocol_violations_end_the_link_with_their_close_code(broken, conv, cut, rx):
    what, frame, expected = broken
    msgs, stream, _ = conv
    after = server_frame(1, b"never") if expected != 1006 else b""  # a cut is the stream's end
    got, code, sent, reader = drain(stream + frame + after, cut, rx)
    got = [m if isinstance(m, str) else m.decode() for m in got[:len(msgs)]] + got[len(msgs):]
    if expected == 1007 and rx and frame[0] == 0x81:
        # Through the receive buffer the text is handed on as bytes, and the
        # OCPP-J decoder refuses it as any broken JSON.
        assert got == msgs + [b"\xff\xfe", b"never"] and code == 1006
        with pytest.raises(ocppj.FrameError) as e:
            ocppj.parse(memoryview(bytearray(b"\xff\xfe")))
        assert e.value.code == "FormationViolation"
        return
    assert got == msgs, what
    assert code == expected, what
    if expected != 1006:
        assert sent[-1][0] == 8 and struct.unpack(">H", sent[-1][1][:2])[0] == expected, what
    assert reader.asked <= MAX + 14, what  # an oversize payload is never read in


@fuzz(200)
@given(st.binary(max_size=400), cuts, st.integers(0, 2))
@example(bytes([0x88, 0x02, 0x03, 0xE8]), [1], 2)
def test_random_bytes_end_in_a_close_code_never_an_exception(data, cut, rx):
    got, code, sent, reader = drain(data, cut, rx)
    assert code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1005, 1006) \
        or 3000 <= code <= 4999
    assert all(isinstance(m, (str, bytes)) for m in got)
    assert reader.asked <= MAX + 14


# ---------------------------------------------------------------- the handshake

import base64  # noqa: E402
import hashlib  # noqa: E402

from lib.ws import WSError  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class KeyedWriter(Writer):
    """Captures the client's Sec-WebSocket-Key so a valid answer can be built."""

    def key(self):
        for line in bytes(self.out).split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                return line.split(b":", 1)[1].strip()


HEADERS = [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Protocol: ocpp1.6"]


@st.composite
def responses(draw):
    """(lines of a 101 response with one thing perhaps wrong, what is wrong)."""
    wrong = draw(st.sampled_from([None, "status", "upgrade", "connection", "accept", "protocol", "no_protocol",
                                  "extension", "junk_line", "huge", "random", "eof"]))
    status = b"HTTP/1.1 101 Switching Protocols" if wrong != "status" else draw(
        st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 101 x", b"HTTP/1.1", b"", b"\xff\xfe 101"]))
    hdrs = list(HEADERS)
    if wrong == "upgrade":
        hdrs[0] = b"Upgrade: h2c"
    if wrong == "connection":
        hdrs[1] = b"Connection: keep-alive"
    if wrong == "protocol":
        hdrs[2] = b"Sec-WebSocket-Protocol: ocpp2.0.1"
    if wrong == "no_protocol":
        del hdrs[2]
    if wrong == "extension":
        hdrs.append(b"Sec-WebSocket-Extensions: permessage-deflate")
    if wrong == "junk_line":
        hdrs.append(draw(st.binary(min_size=1, max_size=40)).replace(b":", b"").replace(b"\r", b"").replace(b"\n", b""))
    if wrong == "huge":
        hdrs.append(b"X-Big: " + b"a" * 5000)
    return status, hdrs, wrong, draw(st.binary(max_size=200)), draw(cuts)


@fuzz(150)
@given(responses())
def test_any_handshake_answer_is_taken_or_refused_with_wserror(resp):
    status, hdrs, wrong, noise, cut = resp
    writer = KeyedWriter()

    class Answer(Reader):
        # The response is made when the client has written its request (the key).
        async def read(self, n):
            if self.data is None:
                key = writer.key()
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                if wrong == "accept":
                    accept = base64.b64encode(hashlib.sha1(key).digest())
                lines = [status] + hdrs + [b"Sec-WebSocket-Accept: " + accept]
                self.data = noise if wrong == "random" else b"\r\n".join(lines) + b"\r\n\r\n"
                if wrong == "eof":
                    self.data = self.data[:len(self.data) // 2]
            return await Reader.read(self, n)

    reader = Answer(None, cut)
    ws = WebSocket(reader, writer, MAX, None)

    async def run():
        try:
            await ws.handshake("127.0.0.1", 9000, "/ocpp/CP1", timeout_ms=2000)
            return "open"
        except WSError as e:
            return str(e)

    got = asyncio.run(run())
    if wrong is None:
        assert got == "open" and ws.subprotocol == "ocpp1.6"
    elif wrong == "junk_line" and got == "open":
        pass  # a junk line that happens to be a harmless header
    else:
        assert got != "open", wrong
        assert ws.closed and writer.closed
