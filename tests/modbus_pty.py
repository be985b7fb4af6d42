"""Test helpers for the Modbus RTU master (lib/modbus.py), CPython only.

- PtyUart: the HAL meter UART interface (docs/hal.md) over the master end of
  a pseudo-terminal; the other end is a real tty path a server can open.
- start_pymodbus(): an independent Modbus RTU slave (pymodbus 3.x serial
  server) on a tty path.
- FaultSlave: a tiny hand-written slave that misbehaves on request.
- ref_crc16(): a bitwise CRC-16/MODBUS, independent of the master's table.
"""
import asyncio
import errno
import fcntl
import os
import struct
import termios
import tty

import time


def ref_crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(data):
    c = ref_crc16(data)
    return bytes(data) + bytes((c & 0xFF, c >> 8))


def f32_words(x):
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [hi, lo]


def open_pty():
    """(master_fd, slave_fd, slave_path), both ends raw."""
    m, s = os.openpty()
    tty.setraw(m)
    tty.setraw(s)
    return m, s, os.ttyname(s)


class PtyUart:
    """HAL meter UART over a pty fd (non-blocking)."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self.inits = []
        self.writes = []

    def init(self, baud, bits=8, parity=0, stop=1):
        self.inits.append((baud, bits, parity, stop))

    def write(self, buf):
        data = bytes(buf)
        self.writes.append(data)
        view = memoryview(data)
        while view:
            try:
                k = os.write(self.fd, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[k:]
        return len(data)

    def readinto(self, buf):
        try:
            data = os.read(self.fd, len(buf))
        except BlockingIOError:
            return 0
        except OSError as e:  # EIO: nobody holds the other end open
            if e.errno == errno.EIO:
                return 0
            raise
        buf[:len(data)] = data
        return len(data)

    def any(self):
        raw = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", raw)[0]


async def start_pymodbus(path, slave=1, input_regs=None, holding_regs=None, baud=9600,
                         parity="N"):
    """A pymodbus RTU serial server on `path`. input_regs/holding_regs: lists of
    register values from address 0. Returns the server (await server.shutdown()).
    parity stays "N": a pty refuses PARENB (EINVAL) and carries no parity anyway.
    Requests to other slave ids get a SERVER_DEVICE_FAILURE exception (pymodbus
    3.16 raises KeyError for them even with ignore_missing_devices=True)."""
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    hr = [SimData(0, values=list(holding_regs or [0] * 16), datatype=DataType.REGISTERS)]
    ir = [SimData(0, values=list(input_regs or [0] * 16), datatype=DataType.REGISTERS)]
    device = SimDevice(id=slave, simdata=(bits, list(bits), hr, ir))
    server = ModbusSerialServer(device, framer=FramerType.RTU, port=path, baudrate=baud,
                                parity=parity, stopbits=1, bytesize=8)
    await server.serve_forever(background=True)
    return server


async def pymodbus_read_holding(server, slave, address, count):
    """The server's own view of holding registers (to check writes)."""
    return await server.context.async_getValues(slave, 3, address, count)


class FaultSlave:
    """A Modbus RTU slave on a pty fd that follows a script of behaviours, one
    per request received (then `default`):

    "ok", "silence", "crc" (last byte flipped), "wrong_slave", "wrong_fc",
    ("exc", code), "trunc" (first half of the reply), "garbage" (noise glued
    before the reply), "garbage_gap" (noise, 30 ms pause, reply), "bad_len"
    (byte count off by two, valid CRC), "other_then_ok" (a valid reply from
    another slave id, 30 ms pause, the real reply)."""

    def __init__(self, fd, slave=1, input_regs=None, holding_regs=None, script=(),
                 default="ok"):
        self.fd = fd
        os.set_blocking(fd, False)
        self.slave = slave
        self.regs = {3: list(holding_regs or [0] * 256), 4: list(input_regs or [0] * 256)}
        self.script = list(script)
        self.default = default
        self.requests = []
        self.actions = []
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self):
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def _write(self, data):
        os.write(self.fd, data)

    async def _run(self):
        buf = b""
        while True:
            try:
                buf += os.read(self.fd, 512)
            except (BlockingIOError, OSError):
                await asyncio.sleep(0.001)
                continue
            while len(buf) >= 8:
                need = 8
                if buf[1] == 16:
                    if len(buf) < 7:
                        break
                    need = 9 + buf[6]
                if len(buf) < need:
                    break
                frame, buf = buf[:need], buf[need:]
                if ref_crc16(frame[:-2]) != frame[-2] | (frame[-1] << 8):
                    buf = b""  # resync on a damaged request
                    break
                self.requests.append(frame)
                await self._answer(frame)

    def _reply(self, frame):
        slave, fc = frame[0], frame[1]
        addr, count = struct.unpack(">HH", frame[2:6])
        if fc in (3, 4):
            regs = self.regs[fc][addr:addr + count]
            return with_crc(bytes((slave, fc, 2 * count)) + struct.pack(">%dH" % count, *regs))
        if fc == 6:
            self.regs[3][addr] = count
            return frame
        if fc == 16:
            vals = struct.unpack(">%dH" % count, frame[7:7 + 2 * count])
            self.regs[3][addr:addr + count] = vals
            return with_crc(frame[:6])
        return with_crc(bytes((slave, fc | 0x80, 1)))

    async def _answer(self, frame):
        action = self.script.pop(0) if self.script else self.default
        self.actions.append(action)
        if frame[0] == 0:  # broadcast: act, never answer
            self._reply(frame)
            return
        if frame[0] != self.slave or action == "silence":
            return
        good = self._reply(frame)
        if action == "ok":
            self._write(good)
        elif action == "crc":
            self._write(good[:-1] + bytes((good[-1] ^ 0xFF,)))
        elif action == "wrong_slave":
            self._write(with_crc(bytes((frame[0] + 1,)) + good[1:-2]))
        elif action == "wrong_fc":
            self._write(with_crc(bytes((good[0], 3 if frame[1] == 4 else 4)) + good[2:-2]))
        elif isinstance(action, tuple) and action[0] == "exc":
            self._write(with_crc(bytes((frame[0], frame[1] | 0x80, action[1]))))
        elif action == "trunc":
            self._write(good[:len(good) // 2])
        elif action == "garbage":
            self._write(b"\x00\xff\x13\x37\x01" + good)
        elif action == "garbage_gap":
            self._write(b"\x00\xff\x13\x37\x01\x04")
            await asyncio.sleep(0.03)
            self._write(good)
        elif action == "bad_len":
            body = bytearray(good[:-2])
            body[2] = (body[2] + 2) & 0xFF
            self._write(with_crc(bytes(body)))
        elif action == "other_then_ok":
            self._write(with_crc(bytes((frame[0] + 1,)) + good[1:-2]))
            await asyncio.sleep(0.03)
            self._write(good)
        else:
            raise ValueError(action)
