# OCPP-J (JSON over WebSocket) message framing: [2,id,action,payload] CALL,
# [3,id,payload] CALLRESULT, [4,id,code,description,details] CALLERROR.
# Error codes are those of OCPP-J 1.6 section 4.2.3 (the spelling
# "OccurenceConstraintViolation" is the spec's).
import io
import json
import os
import binascii
from micropython import const

CALL = 2
RESULT = 3
ERROR = 4
_MAX_ID_LEN = const(36)


class FrameError(Exception):
    """A message that cannot be processed; carries the CALLERROR to answer with.

    uid is None when no id could be recovered (then nothing identifies a
    request to answer, so the message is only logged)."""

    def __init__(self, code, description, uid=None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.uid = uid


_counter = 0
_prefix = None


def new_id():
    """Unique message id: random per boot prefix + counter, well under 36 chars."""
    global _counter, _prefix
    if _prefix is None:
        _prefix = binascii.hexlify(os.urandom(4)).decode()
    _counter += 1
    return "%s-%d" % (_prefix, _counter)


def error_msg(uid, code, description="", details=None):
    return [ERROR, uid, code, description[:255], details if details is not None else {}]


def buffer(b):
    """A str or bytes as a buffer of bytes: what json.dump and the message
    writers hand a stream, and texts written or parsed in place."""
    if isinstance(b, str):
        try:
            # MicroPython: the str's UTF-8 bytes, not a copy (its str has the
            # buffer protocol; the stubs, after CPython, say it has not)
            return memoryview(b)  # pyright: ignore[reportArgumentType]
        except TypeError:
            return b.encode()  # CPython (its json.dump writes str)
    return b


class Out(io.IOBase):
    """A reusable buffer messages are encoded into: json.dump writes through
    it token by token (MicroPython passes each piece without allocating), so
    sending or journaling a message costs no message-sized block of heap,
    which a fragmented heap may not have even with plenty free."""

    def __init__(self, size):
        self.buf = bytearray(size)
        self.n = 0

    def write(self, b):
        b = buffer(b)
        n = self.n
        k = len(b)
        if n + k > len(self.buf):
            raise OverflowError
        self.buf[n:n + k] = b
        self.n = n + k
        return k

    def encode(self, obj):
        """obj as JSON: a memoryview of the buffer (valid until the next
        encode), or a new str when it does not fit. A Streamed last element
        (an answer's payload) writes itself into the buffer."""
        self.n = 0
        last = obj[-1] if isinstance(obj, list) else None
        try:
            if isinstance(last, Streamed):
                self.write(b"[")
                for i in range(len(obj) - 1):
                    json.dump(obj[i], self)
                    self.write(b",")
                last.write(self)
                self.write(b"]")
            else:
                json.dump(obj, self)
        except OverflowError:
            if isinstance(last, Streamed):
                obj = obj[:-1] + [last.build()]
            return json.dumps(obj)
        return memoryview(self.buf)[:self.n]


class Count(io.IOBase):
    """A stream that only counts the bytes written to it (sizes a buffer)."""

    def __init__(self):
        self.n = 0

    def write(self, b):
        b = buffer(b)
        self.n += len(b)
        return len(b)


class Streamed:
    """A payload too big to build on a small heap: write(out) writes its JSON
    into the stream piece by piece; build() makes the object, used only when
    the JSON does not fit the encoding buffer."""

    def __init__(self, write, build):
        self.write = write
        self.build = build


def write_obj(out, fields, key=None, items=()):
    """The JSON object of `fields` (a dict) into out, with `key` last: an
    array of `items`, each already JSON text (bytes or str) or a function
    fn(out, sep) that writes any number of elements itself (after a "," when
    sep) and returns sep or True if it wrote one. Lets a message carry parts
    kept as text or on flash (meter values) without decoding them again."""
    out.write(b"{")
    sep = False
    for k in fields:
        if sep:
            out.write(b",")
        json.dump(k, out)
        out.write(b":")
        json.dump(fields[k], out)
        sep = True
    if key is not None:
        if sep:
            out.write(b",")
        json.dump(key, out)
        out.write(b":[")
        sep = False
        for it in items:
            if callable(it):
                sep = it(out, sep)
                continue
            if sep:
                out.write(b",")
            out.write(it)
            sep = True
        out.write(b"]")
    out.write(b"}")


def built(fields, key=None, items=()):
    """The object write_obj writes, decoded: for a payload that does not fit the buffer."""
    d = dict(fields)
    if key is not None:
        d[key] = []
        for it in items:
            if callable(it):
                o = Out(8192)
                o.write(b"[")
                it(o, False)
                o.write(b"]")
                d[key].extend(loads(memoryview(o.buf)[:o.n]))
            else:
                d[key].append(loads(it))
    return d


def peek_id(text, starts=("[2,", "[3,", "[4,")):
    """Best effort: the id of a message that cannot be decoded but still starts
    like [2,"id" (so it gets its answer); None otherwise."""
    if not isinstance(text, str):  # bytes in a receive buffer: its ASCII start
        b = bytes(text[:2 * _MAX_ID_LEN])
        for k in range(len(b)):
            if b[k] > 127:
                b = b[:k]
                break
        text = str(b, "ascii")
    i = text.find('"')
    j = text.find('"', i + 1)
    if 0 <= i < j <= i + 1 + _MAX_ID_LEN and text[:i].replace(" ", "").replace("\t", "").replace(
            "\n", "").replace("\r", "") in starts:
        return text[i + 1:j]
    return None


def too_deep(text, limit):
    """True if the JSON text nests arrays and objects deeper than limit
    (strings skipped). Scanned as bytes: iterating a str would intern its
    characters (docs/memory.md)."""
    if isinstance(text, str):
        text = text.encode()
    depth = 0
    quoted = escaped = False
    for c in text:
        if quoted:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:
                quoted = False
        elif c == 34:
            quoted = True
        elif c == 91 or c == 123:  # [ {
            depth += 1
            if depth > limit:
                return True
        elif c == 93 or c == 125:
            depth -= 1
    return False


def loads(data):
    """json.loads of a str or of bytes in a buffer (a memoryview of a receive
    or journal buffer; invalid UTF-8 is a ValueError)."""
    try:
        return json.loads(data)
    except TypeError:
        return json.loads(bytes(data))  # CPython's json reads no memoryview


def parse(text):
    """Decode one OCPP-J message.

    Returns (kind, uid, action, payload) for CALL, (kind, uid, None, payload) for
    CALLRESULT and (kind, uid, code, (description, details)) for CALLERROR.
    Raises FrameError with the CALLERROR code to answer for a broken message."""
    fv = "FormationViolation"
    try:
        msg = loads(text)
    except (ValueError, RuntimeError):
        # RuntimeError: nested deeper than the decoder's recursion limit
        # (CPython; MicroPython's decoder keeps its stack on the heap).
        raise FrameError(fv, "message is not valid JSON", peek_id(text))
    if not isinstance(msg, list) or len(msg) < 3:
        raise FrameError(fv, "not an OCPP-J array")
    kind, uid = msg[0], msg[1]
    n = len(msg)
    if not isinstance(uid, str) or not uid or len(uid) > _MAX_ID_LEN:
        raise FrameError(fv, "bad message id")
    if kind == CALL:
        if n != 4:
            raise FrameError(fv, "CALL must have 4 elements", uid)
        action, payload = msg[2], msg[3]
        if not isinstance(action, str) or not action:
            raise FrameError(fv, "action must be a string", uid)
        if not isinstance(payload, dict):
            raise FrameError(fv, "payload must be an object", uid)
        return CALL, uid, action, payload
    if kind == RESULT:
        if n != 3 or not isinstance(msg[2], dict):
            raise FrameError(fv, "bad CALLRESULT")
        return RESULT, uid, None, msg[2]
    if kind == ERROR:
        if n < 4 or not isinstance(msg[2], str):
            raise FrameError(fv, "bad CALLERROR")
        return ERROR, uid, msg[2], (msg[3] if isinstance(msg[3], str) else "", msg[4] if n > 4 else {})
    raise FrameError(fv, "unknown message type")
