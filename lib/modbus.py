"""Modbus RTU master over the HAL meter UART (RS-485). See docs/modbus.md.

The master is asyncio-based: while it waits for reply bytes it sleeps on the
loop (`poll_ms` steps) and never blocks it. Buffers are allocated once per
master; the CRC table is built once, on first use. A request (or a whole poll)
runs in one coroutine; a poll allocates only the float values it decodes.

    m = ModbusMaster(board.meter_uart, baud=9600, parity=PARITY_EVEN)
    regs = await m.read_registers(1, _FC_READ_INPUT, 0x0000, 6)
    p = plan(meter_map, (("Voltage", "L1"), ("Frequency", None)))
    values = await m.poll(1, p)          # {("Voltage", "L1"): 230.1, ...}
    await m.poll(1, p, values)           # the same dict, refilled

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

_FC_READ_HOLDING = const(3)
_FC_READ_INPUT = const(4)
_FC_WRITE_SINGLE = const(6)
_FC_WRITE_MULTIPLE = const(16)

_PARITY_NONE = const(0)
_PARITY_ODD = const(1)
PARITY_EVEN = const(2)

# types: index in "u16i16u32i32f32" // 3
_I16 = const(1)
_U32 = const(2)
_I32 = const(3)
_F32 = const(4)

_TIMEOUT = const(-1)
_BAD = const(-2)
_WAIT = const(-3)

_BUF = const(256)  # the largest RTU frame is 256 bytes
_CHUNK = const(64)

_sleep_ms = getattr(asyncio, "sleep_ms", None) or (lambda ms: asyncio.sleep(ms / 1000))


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
        # one constant, split only when a slave answers with an exception
        n = ("- ILLEGAL_FUNCTION ILLEGAL_DATA_ADDRESS ILLEGAL_DATA_VALUE SERVER_DEVICE_FAILURE"
             " ACKNOWLEDGE SERVER_DEVICE_BUSY - MEMORY_PARITY_ERROR - GATEWAY_PATH_UNAVAILABLE"
             " GATEWAY_TARGET_FAILED_TO_RESPOND").split()
        n = n[code] if 0 <= code < len(n) else "-"
        self.code = code
        self.name = "EXCEPTION_%d" % code if n == "-" else n
        super().__init__(code, self.name)


# CRC-16/MODBUS of every byte value, low byte then high byte: a bytes
# constant stays in the ROMFS image (an array built at import took 512 bytes
# of heap). tests/unit/test_modbus.py checks it against the polynomial.
_CRC = const(
    b"\x00\x00\xc1\xc0\x81\xc1\x40\x01\x01\xc3\xc0\x03\x80\x02\x41\xc2\x01\xc6\xc0\x06\x80\x07\x41\xc7\x00\x05\xc1\xc5\x81\xc4\x40\x04"
    b"\x01\xcc\xc0\x0c\x80\x0d\x41\xcd\x00\x0f\xc1\xcf\x81\xce\x40\x0e\x00\x0a\xc1\xca\x81\xcb\x40\x0b\x01\xc9\xc0\x09\x80\x08\x41\xc8"
    b"\x01\xd8\xc0\x18\x80\x19\x41\xd9\x00\x1b\xc1\xdb\x81\xda\x40\x1a\x00\x1e\xc1\xde\x81\xdf\x40\x1f\x01\xdd\xc0\x1d\x80\x1c\x41\xdc"
    b"\x00\x14\xc1\xd4\x81\xd5\x40\x15\x01\xd7\xc0\x17\x80\x16\x41\xd6\x01\xd2\xc0\x12\x80\x13\x41\xd3\x00\x11\xc1\xd1\x81\xd0\x40\x10"
    b"\x01\xf0\xc0\x30\x80\x31\x41\xf1\x00\x33\xc1\xf3\x81\xf2\x40\x32\x00\x36\xc1\xf6\x81\xf7\x40\x37\x01\xf5\xc0\x35\x80\x34\x41\xf4"
    b"\x00\x3c\xc1\xfc\x81\xfd\x40\x3d\x01\xff\xc0\x3f\x80\x3e\x41\xfe\x01\xfa\xc0\x3a\x80\x3b\x41\xfb\x00\x39\xc1\xf9\x81\xf8\x40\x38"
    b"\x00\x28\xc1\xe8\x81\xe9\x40\x29\x01\xeb\xc0\x2b\x80\x2a\x41\xea\x01\xee\xc0\x2e\x80\x2f\x41\xef\x00\x2d\xc1\xed\x81\xec\x40\x2c"
    b"\x01\xe4\xc0\x24\x80\x25\x41\xe5\x00\x27\xc1\xe7\x81\xe6\x40\x26\x00\x22\xc1\xe2\x81\xe3\x40\x23\x01\xe1\xc0\x21\x80\x20\x41\xe0"
    b"\x01\xa0\xc0\x60\x80\x61\x41\xa1\x00\x63\xc1\xa3\x81\xa2\x40\x62\x00\x66\xc1\xa6\x81\xa7\x40\x67\x01\xa5\xc0\x65\x80\x64\x41\xa4"
    b"\x00\x6c\xc1\xac\x81\xad\x40\x6d\x01\xaf\xc0\x6f\x80\x6e\x41\xae\x01\xaa\xc0\x6a\x80\x6b\x41\xab\x00\x69\xc1\xa9\x81\xa8\x40\x68"
    b"\x00\x78\xc1\xb8\x81\xb9\x40\x79\x01\xbb\xc0\x7b\x80\x7a\x41\xba\x01\xbe\xc0\x7e\x80\x7f\x41\xbf\x00\x7d\xc1\xbd\x81\xbc\x40\x7c"
    b"\x01\xb4\xc0\x74\x80\x75\x41\xb5\x00\x77\xc1\xb7\x81\xb6\x40\x76\x00\x72\xc1\xb2\x81\xb3\x40\x73\x01\xb1\xc0\x71\x80\x70\x41\xb0"
    b"\x00\x50\xc1\x90\x81\x91\x40\x51\x01\x93\xc0\x53\x80\x52\x41\x92\x01\x96\xc0\x56\x80\x57\x41\x97\x00\x55\xc1\x95\x81\x94\x40\x54"
    b"\x01\x9c\xc0\x5c\x80\x5d\x41\x9d\x00\x5f\xc1\x9f\x81\x9e\x40\x5e\x00\x5a\xc1\x9a\x81\x9b\x40\x5b\x01\x99\xc0\x59\x80\x58\x41\x98"
    b"\x01\x88\xc0\x48\x80\x49\x41\x89\x00\x4b\xc1\x8b\x81\x8a\x40\x4a\x00\x4e\xc1\x8e\x81\x8f\x40\x4f\x01\x8d\xc0\x4d\x80\x4c\x41\x8c"
    b"\x00\x44\xc1\x84\x81\x85\x40\x45\x01\x87\xc0\x47\x80\x46\x41\x86\x01\x82\xc0\x42\x80\x43\x41\x83\x00\x41\xc1\x81\x81\x80\x40\x40"
)


def crc16(buf, start=0, end=-1):
    """CRC-16/MODBUS of buf[start:end] (poly 0xA001 reflected, init 0xFFFF).
    On the wire the low byte goes first; a frame with its CRC gives 0."""
    if end < 0:
        end = len(buf)
    crc = 0xFFFF
    for i in range(start, end):
        j = ((crc ^ buf[i]) & 0xFF) << 1
        crc = (crc >> 8) ^ _CRC[j] ^ (_CRC[j + 1] << 8)
    return crc


class Plan:
    """The requests that read a set of measurands (see `plan`): model,
    big_words, requests: ((fc, start, count, items), ...) with items
    ((key, offset, type, scale), ...); missing: the wanted keys the map does
    not have; frames, registers: its cost."""
    model: str
    big_words: bool
    requests: tuple
    missing: tuple
    frames: int
    registers: int


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
    regs = 0
    typ = reg = end = 0
    for e in chosen + [None]:
        if e is not None:
            typ = "u16i16u32i32f32".find(e[4]) // 3
            reg = e[2]
            end = reg + (2 if typ >= _U32 else 1)
        if cur is not None and (e is None or e[3] != cur[0] or end - cur[1] > limit
                                or reg - cur[2] > gap):
            requests.append((cur[0], cur[1], cur[2] - cur[1], tuple(cur[3])))
            regs += cur[2] - cur[1]
            cur = None
        if e is None:
            break
        if cur is None:
            cur = [e[3], reg, end, []]
        cur[2] = max(cur[2], end)
        cur[3].append(((e[0], e[1]), reg - cur[1], typ, e[5]))
    p = Plan()
    p.model = model
    p.big_words = order != "CDAB"
    p.requests = tuple(requests)
    p.missing = tuple(missing)
    p.frames = len(requests)
    p.registers = regs
    return p


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
        self._tx = bytearray(8)   # a read or fc 6 request, exactly
        self._rx = bytearray(_BUF)
        self._chunk = bytearray(_CHUNK)
        self._f = array("f", (0.0,))  # float32 decoding without a tuple
        self._last_us = time.ticks_us()
        self._m = 0               # bytes received in rx
        self._dl = 0              # ticks_us deadline of the reply
        self._reason = "crc"      # of the last damaged reply
        self._busy = False
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

    # -- public requests (each returns the coroutine to await) --------------

    def read_registers(self, slave, fc, start, count):
        """fc 3 (holding) or 4 (input): a list of `count` register values."""
        return self._io(slave, ((fc, start, count, None),), None, [], True)

    def write_register(self, slave, address, value):
        """fc 6. slave 0 broadcasts (no reply)."""
        return self._io(slave, ((_FC_WRITE_SINGLE, address, value, None),), (value,), None, True)

    def write_registers(self, slave, start, values):
        """fc 16 with 1..123 values. slave 0 broadcasts (no reply)."""
        return self._io(slave, ((_FC_WRITE_MULTIPLE, start, len(values), None),), values, None, True)

    def poll(self, slave, p, out=None):
        """Run a Plan: {(name, phase): value} with types and scales applied,
        into `out` when given (a dict reused from poll to poll allocates
        nothing but the values)."""
        return self._io(slave, p.requests, None, {} if out is None else out, p.big_words)

    # -- the transaction -------------------------------------------------
    # The coroutine only waits; the work is done by plain methods, so the
    # coroutine a poll allocates stays small.

    async def _io(self, slave, reqs, values, out, big):
        """Run requests (fc, a, b, items) one after the other: send slave, fc,
        a, b (16 bits each) [, byte count, values] + CRC, wait for the matching
        reply (retrying damaged ones and timeouts), decode `items` into `out`.
        Raises ModbusException/Timeout/FrameError, ValueError on bad arguments."""
        # one transaction at a time on the line (a flag: asyncio.Lock costs
        # ~600 bytes of heap per use on MicroPython)
        while self._busy:
            await _sleep_ms(self.poll_ms)
        self._busy = True
        try:
            for q in reqs:
                tx = self._frame(slave, q[0], q[1], q[2], values)
                r = _TIMEOUT
                n = self.retries
                while n >= 0:
                    n -= 1
                    # flush stale input, then 3.5 character times of silence
                    while True:
                        r = self._quiet(None)
                        if r <= 0:
                            break
                        await _sleep_ms((r + 999) // 1000)
                    self._quiet(tx)
                    if slave == 0:
                        await _sleep_ms(self.turnaround_ms)
                        r = 0
                        break
                    while True:
                        r = self._recv(tx)
                        if r != _WAIT:
                            break
                        await _sleep_ms(self.poll_ms)
                    if r >= 0:
                        break
                if r == _TIMEOUT:
                    raise ModbusTimeout("slave %d fc %d" % (slave, q[0]))
                if r < 0:
                    raise ModbusFrameError(self._reason)
                if values is None:
                    out = self._decode(r + 3, q, out, big)
            return out
        finally:
            self._busy = False

    def _frame(self, slave, fc, a, b, values):
        """Check the arguments, build the request in the tx buffer (fc 16: a
        new one) with its CRC."""
        tx = self._tx
        if values is None:
            if fc != _FC_READ_HOLDING and fc != _FC_READ_INPUT or not 1 <= b <= 125 \
                    or not 1 <= slave <= 247:
                raise ValueError
        else:
            if not 0 <= slave <= 247 or fc == _FC_WRITE_MULTIPLE and not 1 <= b <= 123:
                raise ValueError
            for v in values:
                if not 0 <= v <= 0xFFFF:
                    raise ValueError
            if fc == _FC_WRITE_MULTIPLE:
                tx = bytearray(9 + 2 * b)
                tx[6] = 2 * b
                for i in range(b):
                    struct.pack_into(">H", tx, 7 + 2 * i, values[i])
        struct.pack_into(">BBHH", tx, 0, slave, fc, a, b)
        n = len(tx)
        c = crc16(tx, 0, n - 2)
        tx[n - 2] = c & 0xFF
        tx[n - 1] = c >> 8
        return tx

    def _quiet(self, tx):
        """tx None: discard pending input, return the us of silence still
        needed before sending. Else send tx and start the reply timeout."""
        uart = self.uart
        st = self.stats
        now = time.ticks_us()
        if tx is None:
            k = 0
            for _ in range(32):
                c = uart.readinto(self._rx)
                if not c:
                    break
                k += c
            if k:
                st["rx_bytes"] += k
                st["stale"] += k
                self._last_us = now
            return self.t35_us - time.ticks_diff(now, self._last_us)
        n = len(tx)
        uart.write(tx)
        st["frames"] += 1
        st["tx_bytes"] += n
        # the request may still be shifting out when write() returns
        self._last_us = time.ticks_add(time.ticks_us(), n * self.char_us)
        self._m = 0
        self._dl = time.ticks_add(now, n * self.char_us + self.timeout_ms * 1000)
        return 0

    def _recv(self, tx):
        """One receive step for the request tx: bytes land in rx via the chunk
        buffer. Returns the offset of a valid reply, _BAD (our slave's reply,
        damaged: retry), _TIMEOUT or _WAIT."""
        slave = tx[0]
        fc = tx[1]
        write = fc > _FC_READ_INPUT
        b = (tx[4] << 8) | tx[5]
        uart = self.uart
        rx = self._rx
        chunk = self._chunk
        st = self.stats
        m = self._m
        length = 8 if write else 5 + 2 * b
        bc = -1 if write else 2 * b
        k = uart.readinto(chunk)
        now = time.ticks_us()
        if k:
            st["rx_bytes"] += k
            if k > _BUF - m:
                m = self._skip(m, slave)
                if k > _BUF - m:
                    k = _BUF - m
            for i in range(k):
                rx[m + i] = chunk[i]
            m += k
            self._m = m
            self._last_us = now
            # a complete valid reply from `slave` to `fc` (bytes before it are line noise)?
            for i in range(m - 4):
                if rx[i] != slave:
                    continue
                f = rx[i + 1]
                if f == fc:
                    if bc >= 0 and rx[i + 2] != bc:
                        continue
                    if i + length <= m and crc16(rx, i, i + length) == 0:
                        break
                elif f == fc | 0x80 and crc16(rx, i, i + 5) == 0:
                    break
            else:
                i = -1
            if i >= 0:
                if rx[i + 1] & 0x80:
                    st["exceptions"] += 1
                    raise ModbusException(rx[i + 2])
                if write:
                    for k in range(2, 6):
                        if rx[i + k] != tx[k]:
                            st["errors"] += 1
                            raise ModbusFrameError("echo")
                return i
            if m >= _BUF:
                m = self._skip(m, slave)
            if m < _BUF:
                return _WAIT
        timeout = time.ticks_diff(now, self._dl) >= 0
        silent = m >= _BUF or time.ticks_diff(now, self._last_us) >= self.t35_us
        if m and (silent or timeout):
            # a frame ended (silence) and it is not a valid reply to us
            if rx[0] == slave and rx[1] & 0x7F == fc:
                # our slave's reply, damaged: classify, count, ask for a retry
                st["errors"] += 1
                if rx[1] & 0x80:
                    r = "short" if m < 5 else "crc"
                elif m >= 3 and rx[1] <= _FC_READ_INPUT and rx[2] != bc:
                    r = "length"
                elif m < length:
                    r = "short"
                else:
                    r = "crc"
                if r == "crc":
                    st["crc_errors"] += 1
                self._reason = r
                return _BAD
            if silent:
                if m >= 4 and crc16(rx, 0, m) == 0:
                    st["ignored"] += 1  # another station's or another function's frame
                else:
                    st["errors"] += 1
                    st["crc_errors"] += 1
                self._m = 0
        if timeout:
            st["timeouts"] += 1
            return _TIMEOUT
        return _WAIT

    def _skip(self, m, slave):
        """The receive buffer is full without a reply: drop the bytes before
        the next one that may start our slave's reply (line noise ahead of a
        long reply must not crowd it out). Returns the new fill."""
        rx = self._rx
        j = 1
        while j < m and rx[j] != slave:
            j += 1
        for i in range(m - j):
            rx[i] = rx[j + i]
        self._m = m - j
        return m - j

    def _decode(self, base, q, out, big):
        """The reply at rx[base:] to request q (fc, start, count, items): the
        registers appended to the list out (items None), or the items decoded
        into the dict out (a float32 that is NaN or infinite is removed from
        out instead). Returns out."""
        rx = self._rx
        items = q[3]
        if items is None:
            for i in range(q[2]):
                out.append((rx[base + 2 * i] << 8) | rx[base + 2 * i + 1])
            return out
        for key, reg, typ, scale in items:
            i = base + 2 * reg
            v = (rx[i] << 8) | rx[i + 1]
            if typ >= _U32:
                w = (rx[i + 2] << 8) | rx[i + 3]
                if not big:
                    v, w = w, v
                if typ == _F32:
                    f = self._f
                    # the two halves of a float32, native little-endian order
                    struct.pack_into("<HH", f, 0, w, v)
                    v = f[0]
                    if v - v != 0:
                        # NaN or infinity: a meter's "no value", not a
                        # number anyone can compare or format; left out.
                        out.pop(key, None)
                        continue
                else:
                    v = (v << 16) | w
                    if typ == _I32 and v & 0x80000000:
                        v -= 0x100000000
            elif typ == _I16 and v & 0x8000:
                v -= 0x10000
            if scale != 1:
                v = v * scale
            out[key] = v
        return out
