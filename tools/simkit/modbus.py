"""Modbus RTU slave logic, transport-free: bytes in, response bytes out.

The slave owns no registers itself; it asks a `registers` object:
  read_input(addr, count) -> list of 16-bit words   (function 04)
  read_holding(addr, count) -> list of 16-bit words (function 03)
  write_holding(addr, words)                        (functions 06, 16)
which raise ModbusError(code) for illegal addresses/values.

`tamper` (None or callable(response_bytes) -> bytes or None) lets a bench
corrupt, delay-drop or truncate responses; `silent` makes the slave mute;
`set_fault(mode, every)` damages every `every`-th response: "crc" (last byte
flipped), "short" (cut in half), "noise" (random bytes instead), "exception"
(exception 04), "wrong_slave" (another unit id, valid CRC), "nan" (every
float register NaN), "slow" (every response `SLOW_S` late: the transport
asks `delay_s`), None (off).
"""
import os
import struct

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
MAX_READ = 125
SLOW_S = 0.4  # later than the firmware's 200 ms response timeout


class ModbusError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def with_crc(body):
    return bytes(body) + struct.pack("<H", crc16(body))


def crc_ok(frame):
    return len(frame) >= 4 and struct.unpack("<H", frame[-2:])[0] == crc16(frame[:-2])


class ModbusSlave:
    def __init__(self, registers, unit=1):
        self.registers = registers
        self.unit = unit
        self.silent = False
        self.tamper = None
        self._buf = bytearray()
        self.requests = 0
        self.bad_frames = 0
        self.tampered = 0
        self._fault = None
        self._every = 1
        self.delay_s = 0  # the transport sends each response this late

    def set_fault(self, mode, every=1):
        if mode not in (None, "crc", "short", "noise", "exception", "wrong_slave", "nan", "slow"):
            raise ValueError("unknown fault %r" % (mode,))
        self._fault = mode
        self._every = max(1, int(every))
        self.delay_s = SLOW_S if mode == "slow" else 0
        self.tamper = self._damage if mode and mode != "slow" else None

    def _damage(self, resp):
        if self.requests % self._every:
            return resp
        self.tampered += 1
        if self._fault == "crc":
            return resp[:-1] + bytes([resp[-1] ^ 0x5A])
        if self._fault == "short":
            return resp[:len(resp) // 2]
        if self._fault == "exception":  # a meter that answers but cannot read: device failure
            return with_crc(bytes([resp[0], resp[1] | 0x80, 4]))
        if self._fault == "wrong_slave":
            return with_crc(bytes([resp[0] % 247 + 1]) + resp[1:-2])
        if self._fault == "nan":  # every 32-bit float of the reply: quiet NaN
            if resp[1] not in (3, 4):
                return resp
            n = resp[2] // 4
            return with_crc(resp[:3] + b"\x7f\xc0\x00\x00" * n + resp[3 + 4 * n:-2])
        return os.urandom(len(resp))

    def reset(self):
        """Drop a partial frame (the transport calls this after a line gap)."""
        self._buf.clear()

    def feed(self, data):
        """Bytes from the line; returns the list of response frames to send."""
        self._buf += data
        out = []
        while len(self._buf) >= 4:
            need = self._frame_len(self._buf)
            if need is None:  # unknown function: wait for the gap to resync
                break
            if len(self._buf) < need:
                break
            frame = bytes(self._buf[:need])
            if not crc_ok(frame):
                self.bad_frames += 1
                del self._buf[0]  # slide one byte to find the next frame start
                continue
            del self._buf[:need]
            resp = self.handle(frame)
            if resp is not None:
                out.append(resp)
        return out

    @staticmethod
    def _frame_len(buf):
        fc = buf[1]
        if fc in (3, 4, 6):
            return 8
        if fc == 16:
            return 9 + buf[6] if len(buf) >= 7 else 10 ** 6
        return None

    def handle(self, frame):
        """One CRC-checked request frame -> response frame (or None)."""
        unit, fc = frame[0], frame[1]
        if unit not in (0, self.unit) or self.silent:
            return None
        self.requests += 1
        try:
            if fc in (3, 4):
                addr, count = struct.unpack(">HH", frame[2:6])
                if not 1 <= count <= MAX_READ:
                    raise ModbusError(ILLEGAL_VALUE)
                read = self.registers.read_input if fc == 4 else self.registers.read_holding
                words = read(addr, count)
                body = bytes([unit, fc, 2 * count]) + struct.pack(">%dH" % count, *words)
            elif fc == 6:
                addr, value = struct.unpack(">HH", frame[2:6])
                self.registers.write_holding(addr, [value])
                body = frame[:6]
            elif fc == 16:
                addr, count, nbytes = struct.unpack(">HHB", frame[2:7])
                if nbytes != 2 * count or not 1 <= count <= 123:
                    raise ModbusError(ILLEGAL_VALUE)
                words = list(struct.unpack(">%dH" % count, frame[7:7 + nbytes]))
                self.registers.write_holding(addr, words)
                body = frame[:6]
            else:
                raise ModbusError(ILLEGAL_FUNCTION)
        except ModbusError as e:
            body = bytes([unit, fc | 0x80, e.code])
        if unit == 0:
            return None  # broadcast: never answered
        resp = with_crc(body)
        if self.tamper is not None:
            resp = self.tamper(resp)
        return resp
