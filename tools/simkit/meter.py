"""An Eastron SDM630-like three-phase meter: register tables, energy
integration, persistence, and its RS-485 line as a pseudo-terminal."""
import json
import os
import struct
import termios
import time
import tty

from .modbus import ILLEGAL_ADDRESS, ILLEGAL_VALUE, ModbusError, ModbusSlave

# Input registers (function 04): float32 big-endian, two registers each.
# address -> name of a MeterModel value. Grow the table here.
INPUT_REGISTERS = {
    0x0000: "voltage_l1",          # V
    0x0002: "voltage_l2",
    0x0004: "voltage_l3",
    0x0006: "current_l1",          # A
    0x0008: "current_l2",
    0x000A: "current_l3",
    0x000C: "power_l1",            # W
    0x000E: "power_l2",
    0x0010: "power_l3",
    0x0018: "var_l1",              # var
    0x001A: "var_l2",
    0x001C: "var_l3",
    0x001E: "pf_l1",
    0x0020: "pf_l2",
    0x0022: "pf_l3",
    0x0034: "power_total",         # W
    0x003C: "var_total",           # var
    0x003E: "pf_total",
    0x0046: "frequency",           # Hz
    0x0048: "energy_import_kwh",   # import kWh
    0x004C: "energy_reactive_kvarh",  # import kvarh
    0x0156: "energy_total_kwh",    # total kWh
}
INPUT_SPACE = 0x0200  # reads must stay below this; unmapped registers read 0

# Holding registers (functions 03/06/16): float32 big-endian, writable.
HOLDING_DEFAULTS = {
    0x0002: 60.0,   # demand period, min
    0x000A: 3.0,    # system type: 3 = three phase four wire
    0x0012: 0.0,    # parity/stop: 0 = one stop bit, no parity
    0x0014: 1.0,    # Modbus address
    0x001C: 2.0,    # baud rate code: 2 = 9600
}
HOLDING_SPACE = 0x0100


def _f32_words(value):
    return list(struct.unpack(">HH", struct.pack(">f", float(value))))


class MeterModel:
    def __init__(self, path=None, three_phase=False):
        self.path = path
        self.three_phase = three_phase
        self.voltage = 230.0
        self.frequency = 50.0
        self.currents = [0.0, 0.0, 0.0]
        self.energy_wh = 0.0
        self.energy_varh = 0.0
        self.pf = 1.0  # power factor of the load (bench `meter` command)
        self.holding = {}
        for addr, v in HOLDING_DEFAULTS.items():
            w = _f32_words(v)
            self.holding[addr], self.holding[addr + 1] = w
        self._saved = None
        self.load()

    # ---- persistence (the energy register is non-volatile)
    def load(self):
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path) as f:
                    d = json.load(f)
                    self.energy_wh = float(d.get("energy_wh", 0.0))
                    self.energy_varh = float(d.get("energy_varh", 0.0))
            except (OSError, ValueError):
                pass
        self._saved = self.energy_wh

    def save(self, force=False):
        if not self.path or (not force and self._saved == self.energy_wh):
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"energy_wh": self.energy_wh, "energy_varh": self.energy_varh}, f)
        os.replace(tmp, self.path)
        self._saved = self.energy_wh

    # ---- physics
    def step(self, dt, amps):
        """Advance dt seconds with the EV drawing `amps` per active phase."""
        n = 3 if self.three_phase else 1
        self.currents = [float(amps) if i < n else 0.0 for i in range(3)]
        self.energy_wh += self.power_total() * dt / 3600.0
        self.energy_varh += sum(self.var(i) for i in range(3)) * dt / 3600.0

    def power(self, i):
        return self.voltage * self.currents[i] * self.pf

    def var(self, i):
        return self.voltage * self.currents[i] * (1.0 - self.pf * self.pf) ** 0.5

    def power_total(self):
        return sum(self.power(i) for i in range(3))

    def values(self):
        kwh = self.energy_wh / 1000.0
        return {
            "voltage_l1": self.voltage, "voltage_l2": self.voltage, "voltage_l3": self.voltage,
            "current_l1": self.currents[0], "current_l2": self.currents[1], "current_l3": self.currents[2],
            "power_l1": self.power(0), "power_l2": self.power(1), "power_l3": self.power(2),
            "pf_l1": self.pf, "pf_l2": self.pf, "pf_l3": self.pf, "pf_total": self.pf,
            "var_l1": self.var(0), "var_l2": self.var(1), "var_l3": self.var(2),
            "var_total": sum(self.var(i) for i in range(3)),
            "energy_reactive_kvarh": self.energy_varh / 1000.0,
            "power_total": self.power_total(), "frequency": self.frequency,
            "energy_import_kwh": kwh, "energy_total_kwh": kwh,
        }

    # ---- register interface for ModbusSlave
    def read_input(self, addr, count):
        if addr + count > INPUT_SPACE:
            raise ModbusError(ILLEGAL_ADDRESS)
        vals = self.values()
        words = {}
        for base, name in INPUT_REGISTERS.items():
            words[base], words[base + 1] = _f32_words(vals[name])
        return [words.get(a, 0) for a in range(addr, addr + count)]

    def read_holding(self, addr, count):
        if addr + count > HOLDING_SPACE:
            raise ModbusError(ILLEGAL_ADDRESS)
        return [self.holding.get(a, 0) for a in range(addr, addr + count)]

    def write_holding(self, addr, words):
        if addr + len(words) > HOLDING_SPACE:
            raise ModbusError(ILLEGAL_ADDRESS)
        for i, w in enumerate(words):
            if not 0 <= w <= 0xFFFF:
                raise ModbusError(ILLEGAL_VALUE)
            self.holding[addr + i] = w


class PtyLine:
    """The meter's RS-485 line: a pty whose slave end the firmware opens.
    The slave is raw with VMIN=0/VTIME=0 so reads never block."""

    GAP = 0.02  # s of silence that ends a partial frame

    def __init__(self, slave_logic):
        self.modbus = slave_logic
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._loop = None
        self._gap = None
        self.rx_bytes = 0

    def start(self, loop):
        self._loop = loop
        loop.add_reader(self.master, self._on_data)

    def flush(self):
        """Discard stale bytes both ways (a new firmware boot)."""
        termios.tcflush(self._slave, termios.TCIOFLUSH)
        self.modbus.reset()

    def _on_data(self):
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        self.rx_bytes += len(data)
        for resp in self.modbus.feed(data):
            if self.modbus.delay_s:
                self._loop.call_later(self.modbus.delay_s, self._write, resp)
            else:
                self._write(resp)
        if self._gap is not None:
            self._gap.cancel()
        self._gap = self._loop.call_later(self.GAP, self.modbus.reset)

    def _write(self, resp):
        try:
            os.write(self.master, resp)
        except OSError:
            pass

    def close(self):
        if self._loop is not None:
            self._loop.remove_reader(self.master)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def make_meter(state_path, three_phase, unit=1):
    model = MeterModel(state_path, three_phase)
    return model, ModbusSlave(model, unit)
