"""Modbus RTU master over the HAL meter UART (RS-485). See docs/modbus.md.

The master is asyncio-based: while it waits for reply bytes it sleeps on the
loop (`poll_ms` steps) and never blocks it. Buffers are allocated once per
master; the CRC table is built once, on first use.

    m = ModbusMaster(board.meter_uart, baud=9600, parity=PARITY_EVEN)
    regs = await m.read_registers(1, FC_READ_INPUT, 0x0000, 6)
    p = plan(meter_map, (("Voltage", "L1"), ("Frequency", None)))
    values = await m.poll(1, p)          # {("Voltage", "L1"): 230.1, ...}

A register map (generic; the charger's maps live in firmware/meter_maps.py):
    (model, word_order, max_regs, max_gap, entries)
    entry = (name, phase, register, fc, type, scale, unit)
with word_order "ABCD" (high word first) or "CDAB", type one of "u16",
"i16", "u32", "i32", "f32", and (name, phase) the key of the decoded value.
"""
import asyncio
import struct
import time
from array import array

from micropython import const

FC_READ_HOLDING = const(3)
FC_READ_INPUT = const(4)
FC_WRITE_SINGLE = const(6)
FC_WRITE_MULTIPLE = const(16)

PARITY_NONE = const(0)
PARITY_ODD = const(1)
PARITY_EVEN = const(2)

_U16 = const(0)
_I16 = const(1)
_U32 = const(2)
_I32 = const(3)
_F32 = const(4)
_TYPES = ("u16", "i16", "u32", "i32", "f32")

# _receive results besides a frame offset (>= 0)
_TIMEOUT = const(-1)
_BAD = const(-2)

_BUF = const(256)  # the largest RTU frame is 256 bytes
_CHUNK = const(64)

_EXC_NAMES = (None, "ILLEGAL_FUNCTION", "ILLEGAL_DATA_ADDRESS", "ILLEGAL_DATA_VALUE",
              "SERVER_DEVICE_FAILURE", "ACKNOWLEDGE", "SERVER_DEVICE_BUSY", None,
              "MEMORY_PARITY_ERROR", None, "GATEWAY_PATH_UNAVAILABLE",
              "GATEWAY_TARGET_FAILED_TO_RESPOND")


class ModbusError(Exception):
    pass


class ModbusTimeout(ModbusError):
    """No valid reply within the response timeout, after all retries."""


class ModbusFrameError(ModbusError):
    """The slave answered, but with a damaged frame, after all retries.
    `reason`: "crc", "short", "length" or "echo"."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class ModbusException(ModbusError):
    """An exception response (function code | 0x80). `code`, `name`."""

    def __init__(self, code):
        name = _EXC_NAMES[code] if 0 <= code < len(_EXC_NAMES) else None
        self.code = code
        self.name = name or "EXCEPTION_%d" % code
        super().__init__(code, self.name)


_table = None


def _crc_table():
    global _table
    if _table is None:
        t = array("H", bytes(512))
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t[i] = c
        _table = t
    return _table


def crc16(buf, start=0, end=-1):
    """CRC-16/MODBUS of buf[start:end] (poly 0xA001 reflected, init 0xFFFF).
    On the wire the low byte goes first."""
    t = _table or _crc_table()
    if end < 0:
        end = len(buf)
    crc = 0xFFFF
    for i in range(start, end):
        crc = (crc >> 8) ^ t[(crc ^ buf[i]) & 0xFF]
    return crc


def _crc_ok(buf, start, length):
    c = crc16(buf, start, start + length - 2)
    return buf[start + length - 2] == (c & 0xFF) and buf[start + length - 1] == (c >> 8)


class Plan:
    """The requests that read a set of measurands (see `plan`).
    requests: tuple of (fc, start, count, items), items: ((key, offset, type, scale), ...);
    missing: the wanted keys the map does not have."""

    def __init__(self, model, big_words, requests, missing):
        self.model = model
        self.big_words = big_words
        self.requests = requests
        self.missing = missing

    @property
    def frames(self):
        return len(self.requests)

    @property
    def registers(self):
        n = 0
        for r in self.requests:
            n += r[2]
        return n


def plan(meter_map, wanted, max_regs=125, max_gap=None):
    """Group the registers of the `wanted` (name, phase) keys into as few
    requests as allowed: same function code, at most min(max_regs, the map's
    limit, 125) registers each, unread holes of at most max_gap registers
    (default: the map's). Greedy in register order, which gives the minimum
    number of requests under these rules."""
    model, order, map_max, map_gap, entries = meter_map
    limit = min(max_regs, map_max or 125, 125)
    gap = map_gap if max_gap is None else max_gap
    chosen = []
    missing = []
    for key in wanted:
        hit = None
        for e in entries:
            if e[0] == key[0] and e[1] == key[1]:
                hit = e
                break
        if hit is None:
            if key not in missing:
                missing.append(key)
        elif hit not in chosen:
            chosen.append(hit)
    chosen.sort(key=lambda e: (e[3], e[2]))
    requests = []
    cur = None  # [fc, start, end, items]
    for e in chosen:
        typ = _TYPES.index(e[4])
        width = 2 if typ >= _U32 else 1
        reg = e[2]
        if (cur is None or e[3] != cur[0] or reg + width - cur[1] > limit
                or reg - cur[2] > gap):
            if cur is not None:
                requests.append((cur[0], cur[1], cur[2] - cur[1], tuple(cur[3])))
            cur = [e[3], reg, reg + width, []]
        cur[2] = max(cur[2], reg + width)
        cur[3].append(((e[0], e[1]), reg - cur[1], typ, e[5]))
    if cur is not None:
        requests.append((cur[0], cur[1], cur[2] - cur[1], tuple(cur[3])))
    return Plan(model, order != "CDAB", tuple(requests), tuple(missing))


def _sleep_ms_fallback(ms):
    return asyncio.sleep(ms / 1000)


class ModbusMaster:
    """Modbus RTU master on a HAL meter UART.

    timeout_ms: response timeout, counted from the end of the request on the
    wire; retries: extra attempts after a timeout or a damaged reply;
    turnaround_ms: pause after a broadcast; poll_ms: receive polling step.
    char_us / t35_us: one character time (11 bits) and the inter-frame
    silence; a harness without a wire may set both to 0.
    """

    def __init__(self, uart, baud=9600, parity=PARITY_EVEN, stop=1, timeout_ms=200,
                 retries=2, turnaround_ms=100, poll_ms=2, configure=True):
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.turnaround_ms = turnaround_ms
        self.poll_ms = poll_ms
        self._tx = bytearray(_BUF)
        self._txmv = memoryview(self._tx)
        self._rx = bytearray(_BUF)
        self._chunk = bytearray(_CHUNK)
        self._word = bytearray(4)
        self._last_us = time.ticks_us()
        self._busy = False
        self._reason = "crc"
        self._sleep_ms = getattr(asyncio, "sleep_ms", None) or _sleep_ms_fallback
        self.stats = {}
        self.reset_stats()
        self.set_line(baud, parity, stop, configure)

    def set_line(self, baud, parity=PARITY_EVEN, stop=1, configure=True):
        self.baud = baud
        # 11 bits a character (start, 8 data, parity or 2nd stop, stop), rounded up
        self.char_us = (11000000 + baud - 1) // baud
        # 3.5 character times; a fixed 1.75 ms above 19200 baud (spec 2.5.1.1)
        self.t35_us = 1750 if baud > 19200 else (38500000 + baud - 1) // baud
        if configure:
            self.uart.init(baud, bits=8, parity=parity, stop=stop)

    def reset_stats(self):
        s = self.stats
        for k in ("frames", "tx_bytes", "rx_bytes", "errors", "timeouts", "crc_errors",
                  "exceptions", "ignored", "stale"):
            s[k] = 0

    # -- public requests -------------------------------------------------

    async def read_registers(self, slave, fc, start, count):
        """fc 3 (holding) or 4 (input): a list of `count` register values."""
        off = await self._read(slave, fc, start, count)
        rx = self._rx
        p = off + 3
        return [(rx[p + 2 * i] << 8) | rx[p + 2 * i + 1] for i in range(count)]

    async def write_register(self, slave, address, value):
        """fc 6. slave 0 broadcasts (no reply)."""
        _check_write(slave, (value,))
        await self._transaction(slave, FC_WRITE_SINGLE, address, value, None, 8)

    async def write_registers(self, slave, start, values):
        """fc 16 with 1..123 values. slave 0 broadcasts (no reply)."""
        n = len(values)
        if not 1 <= n <= 123:
            raise ValueError("count")
        _check_write(slave, values)
        await self._transaction(slave, FC_WRITE_MULTIPLE, start, n, values, 8)

    async def poll(self, slave, p):
        """Run a Plan: {(name, phase): value} with types and scales applied."""
        out = {}
        rx = self._rx
        for fc, start, count, items in p.requests:
            base = await self._read(slave, fc, start, count) + 3
            for key, reg, typ, scale in items:
                i = base + 2 * reg
                if typ <= _I16:
                    v = (rx[i] << 8) | rx[i + 1]
                    if typ == _I16 and v & 0x8000:
                        v -= 0x10000
                else:
                    w = self._word
                    if p.big_words:
                        w[0] = rx[i]
                        w[1] = rx[i + 1]
                        w[2] = rx[i + 2]
                        w[3] = rx[i + 3]
                    else:
                        w[0] = rx[i + 2]
                        w[1] = rx[i + 3]
                        w[2] = rx[i]
                        w[3] = rx[i + 1]
                    if typ == _F32:
                        v = struct.unpack(">f", w)[0]
                    else:
                        v = _int32(w, typ == _I32)
                if scale != 1:
                    v = v * scale
                out[key] = v
        return out

    # -- transactions ----------------------------------------------------

    def _read(self, slave, fc, start, count):
        # plain function returning the coroutine: one generator less per request
        if fc != FC_READ_HOLDING and fc != FC_READ_INPUT:
            raise ValueError("fc")
        if not 1 <= count <= 125:
            raise ValueError("count")
        if slave < 1 or slave > 247:
            raise ValueError("slave")
        return self._transaction(slave, fc, start, count, None, 5 + 2 * count)

    async def _transaction(self, slave, fc, a, b, values, reply_len):
        """Send slave, fc, a, b (16 bits each) [, byte count, values] + CRC;
        return the offset in _rx of the matching reply.
        Raises ModbusException/Timeout/FrameError."""
        # one transaction at a time on the line (a flag: asyncio.Lock costs
        # ~600 bytes of heap per use on MicroPython)
        while self._busy:
            await self._sleep_ms(self.poll_ms)
        self._busy = True
        try:
            tx = self._tx
            tx[0] = slave
            tx[1] = fc
            _put16(tx, 2, a)
            _put16(tx, 4, b)
            n = 6
            if values is not None:
                tx[6] = 2 * b
                for i in range(b):
                    _put16(tx, 7 + 2 * i, values[i])
                n = 7 + 2 * b
            c = crc16(tx, 0, n)
            tx[n] = c & 0xFF
            tx[n + 1] = c >> 8
            n += 2
            st = self.stats
            result = _TIMEOUT
            for _ in range(1 + self.retries):
                # flush stale input, then 3.5 character times of silence
                while True:
                    now = time.ticks_us()
                    if self._drain():
                        self._last_us = now
                    rem = self.t35_us - time.ticks_diff(now, self._last_us)
                    if rem <= 0:
                        break
                    await self._sleep_ms((rem + 999) // 1000)
                self.uart.write(self._txmv[:n])
                st["frames"] += 1
                st["tx_bytes"] += n
                # the request may still be shifting out when write() returns
                self._last_us = time.ticks_add(time.ticks_us(), n * self.char_us)
                if slave == 0:
                    await self._sleep_ms(self.turnaround_ms)
                    return -1
                result = await self._receive(slave, fc, reply_len, n)
                if result >= 0:
                    rx = self._rx
                    if rx[result + 1] & 0x80:
                        st["exceptions"] += 1
                        raise ModbusException(rx[result + 2])
                    if fc == FC_WRITE_SINGLE or fc == FC_WRITE_MULTIPLE:
                        for i in range(2, 6):
                            if rx[result + i] != tx[i]:
                                st["errors"] += 1
                                raise ModbusFrameError("echo")
                    return result
            if result == _TIMEOUT:
                raise ModbusTimeout("slave %d fc %d" % (slave, fc))
            raise ModbusFrameError(self._reason)
        finally:
            self._busy = False

    def _drain(self):
        """Discard pending input; returns the bytes discarded."""
        total = 0
        for _ in range(32):
            k = self.uart.readinto(self._chunk)
            if not k:
                break
            total += k
        if total:
            self.stats["rx_bytes"] += total
            self.stats["stale"] += total
        return total

    async def _receive(self, slave, fc, length, tx_len):
        uart = self.uart
        rx = self._rx
        chunk = self._chunk
        st = self.stats
        n = 0
        t0 = time.ticks_us()
        last = t0
        window = tx_len * self.char_us + self.timeout_ms * 1000
        while True:
            k = uart.readinto(chunk)
            now = time.ticks_us()
            if k:
                st["rx_bytes"] += k
                room = _BUF - n
                if k > room:
                    k = room
                for i in range(k):
                    rx[n + i] = chunk[i]
                n += k
                last = now
                self._last_us = now
                off = self._find(n, slave, fc, length)
                if off >= 0:
                    return off
                if n < _BUF:
                    continue
            if n and (n >= _BUF or time.ticks_diff(now, last) >= self.t35_us):
                # a frame ended (silence) and it is not a valid reply to us
                if rx[0] == slave and rx[1] & 0x7F == fc:
                    return self._bad(n, length)
                if n >= 4 and _crc_ok(rx, 0, n):
                    st["ignored"] += 1  # another station's or another function's frame
                else:
                    st["errors"] += 1
                    st["crc_errors"] += 1
                n = 0
            if time.ticks_diff(now, t0) >= window:
                if n and rx[0] == slave and rx[1] & 0x7F == fc:
                    return self._bad(n, length)
                st["timeouts"] += 1
                return _TIMEOUT
            await self._sleep_ms(self.poll_ms)

    def _bad(self, n, length):
        """Our slave's reply, damaged: classify, count, ask for a retry."""
        rx = self._rx
        st = self.stats
        st["errors"] += 1
        if rx[1] & 0x80:
            reason = "short" if n < 5 else "crc"
        elif n >= 3 and rx[1] <= FC_READ_INPUT and rx[2] != length - 5:
            reason = "length"
        elif n < length:
            reason = "short"
        else:
            reason = "crc"
        if reason == "crc":
            st["crc_errors"] += 1
        self._reason = reason
        return _BAD

    def _find(self, n, slave, fc, length):
        """Offset of a complete valid reply from `slave` to `fc` in _rx[:n]
        (bytes before it are line noise), or -1."""
        rx = self._rx
        bc = length - 5 if fc <= FC_READ_INPUT else -1
        for i in range(n - 4):
            if rx[i] != slave:
                continue
            f = rx[i + 1]
            if f == fc:
                if bc >= 0 and rx[i + 2] != bc:
                    continue
                if i + length <= n and _crc_ok(rx, i, length):
                    return i
            elif f == fc | 0x80 and _crc_ok(rx, i, 5):
                return i
        return -1


def _check_write(slave, values):
    if not 0 <= slave <= 247:
        raise ValueError("slave")
    for v in values:
        if not 0 <= v <= 0xFFFF:
            raise ValueError("value")


def _put16(buf, i, v):
    buf[i] = (v >> 8) & 0xFF
    buf[i + 1] = v & 0xFF


def _int32(w, signed):
    v = (w[0] << 24) | (w[1] << 16) | (w[2] << 8) | w[3]
    if signed and w[0] & 0x80:
        v -= 0x100000000
    return v
