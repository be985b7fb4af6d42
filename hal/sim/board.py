# The bench board: the HAL the firmware uses when tools/sim.py runs it on the
# MicroPython unix port (CPython with --runtime cpython: hal/sim/_cpy.py).
# Wiring comes from environment variables the bench sets (docs/simulator.md):
#   JOLT_HW          127.0.0.1:port of the bench's hardware link (JSON lines)
#   JOLT_METER       pty path of the meter's RS-485 line (Modbus RTU)
#   JOLT_NET         127.0.0.1:port of the bench's network proxy
#   JOLT_RESET_CAUSE power / soft / watchdog / hard
#   JOLT_UID         the board's unique id
# Inputs are mirrored in a dict (reads are look-ups); outputs are sent to the
# bench the moment they change.
#
# Heap discipline (the firmware runs in -X heapsize=128K; tools/bench/hal_heap.py
# measures): every class and function costs heap on MicroPython (a class
# ~0.4 KB), so one Board object plays every device whose method names do not
# collide (board.pilot, rfid, signal, button, sensors, clock, net, wdt, ble,
# system and meter_uart are the board itself); relay, lock, sd and flash are
# _Part objects (one input key each). Rarely used code (network proxy, WiFi
# and BLE outputs, reset, meter_uart.any) lives in hal/sim/_net.py and
# hal/sim/_rare.py, imported on first use. Nothing the supervisor calls every
# cycle allocates: wait_input() is a plain asyncio.sleep_ms() (no coroutine,
# task or wait_for per call) that the link reader, one long-lived task,
# brings forward when an input arrives.
import asyncio
import json
import os
import socket
import sys
import time

try:
    from micropython import const
except ImportError:  # CPython without tools/simkit/cpy_launch.py
    const = int

_EXIT_RESET = const(75)  # process exit code meaning "reboot me" (system.reset())

_MP = sys.implementation.name == "micropython"
_BUF = const(384)  # link receive buffer: the longest line (full snapshot) is < 230 bytes
_MAX_PENDING = const(8192)  # unsent output bytes before we fall back to a full resync
_MAX_CARDS = const(4)
_MAX_BLE = const(1024)  # BLE bytes from the bench not yet recv()ed
_SENSORS = {"temperature_dc": "temp", "ne_mv": "ne", "leak_ac_ua": "lac", "leak_dc_ua": "ldc",
            "phase_ok": "phase", "supply_ok": "supply"}


class _Part:
    """A part the bench reports through one input key: relay and lock (set()
    sends the command when it changes from the last one sent, `cmd` before
    the first; closed()/locked() read the feedback), sd and flash (ok(),
    root; flash has no key: always there)."""

    def __init__(self, board, key, cmd=None, root=None):
        self._b = board
        self._k = key
        self._cmd = cmd
        self._root = root

    def set(self, on):
        on = bool(on)
        b = self._b
        if on != b._outs.get(self._k, self._cmd):
            b.out(self._k, on)

    def closed(self):
        return self._b.inp[self._k]

    locked = closed

    def ok(self):
        return self._k is None or self._b.inp[self._k]

    probe = ok  # (hal/esp32 checks the card here)

    @property
    def root(self):
        return self._root if self.ok() else None


class Board:
    # Loaded per use (the __getattr__ below); interned at boot (lib/transient.warm).
    PER_USE = ("hal.sim._net", "hal.sim._rare")

    def __init__(self):
        # The bench's last word on every input, with sane defaults for a
        # board running without a bench (plugged into nothing, healthy supply).
        self.inp = {
            "hi": 12000, "lo": 12000,          # pilot plateaus, mV
            "relay": False, "lock": False,     # feedback contacts
            "btn": False,                      # emergency button
            "temp": 250, "ne": 0, "lac": 0, "ldc": 0, "phase": 1, "supply": 1,
            "net": True, "rssi": -60,
            "sd": True, "rfid_ok": True,
            "rst": True,                       # False: system.reset() does not take (bench `fail reset`)
        }
        self.cards = []
        self.ble_linked = False  # bench BLE central (tools/commission.py)
        self.ble_rx = b""
        self.sock = None
        self._buf = bytearray(_BUF)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._pending = b""  # unsent output bytes
        self._resync = False  # overflowed: resend the last value of every output
        self._outs = {}  # last value of every stateful output (relay, lock, duty, led, wdt...)
        self._task = None  # the link reader
        self._flag = False  # an input arrived since the last wait_input
        self._due = None  # deadline of the last wait_input (ticks_ms)
        self._waiter = None  # the task that called it
        self._fed = 0  # watchdog: last feed sent
        self._offset = 0  # clock
        self.relay = _Part(self, "relay", False)
        self.lock = _Part(self, "lock")
        self.sd = _Part(self, "sd", None, "../sd/")
        self.flash = _Part(self, None, None, "")
        self._f = None  # meter line
        self.config = None
        hw = os.getenv("JOLT_HW")
        if not hw:
            return
        hw = hw.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(socket.getaddrinfo(hw[0], int(hw[1]))[0][-1])
        # No Nagle: an output line (relay open) sent right after another
        # (a watchdog feed) must not wait for the bench's delayed ACK of it
        # (~40 ms), a delay a GPIO on the board does not have. 6, 1:
        # IPPROTO_TCP, TCP_NODELAY (Linux; the unix port has no names).
        s.setsockopt(6, 1, 1)
        self.sock = s
        self.out("hello", {"uid": os.getenv("JOLT_UID") or "", "impl": sys.implementation.name}, False)
        # Block (briefly, at boot) for the first input snapshot so the first
        # reads are the bench's values, not defaults. recv() returns what
        # arrived; a blocking readinto() would wait for the whole buffer.
        while True:
            if self._n >= _BUF:
                self._n = 0  # a line longer than the buffer: drop it
            data = s.recv(_BUF - self._n)
            if not data:
                raise OSError(111)  # ECONNREFUSED
            self._buf[self._n:self._n + len(data)] = data
            self._n += len(data)
            if self._parse():
                break
        s.setblocking(False)

    # The devices without a name clash are the board itself.
    pilot = rfid = signal = button = sensors = clock = net = wdt = ble = system = meter_uart = property(
        lambda b: b)

    # ---- the link
    def _parse(self):
        """Handle every complete line in the buffer; return how many."""
        buf = self._buf
        start = 0
        count = 0
        while True:
            i = buf.find(b"\n", start, self._n)
            if i < 0:
                break
            if i > start:
                try:
                    msg = json.loads(self._mv[start:i] if _MP else bytes(buf[start:i]))
                    d = msg.get("in")
                    if isinstance(d, dict):  # iterating a str would intern its characters
                        inp = self.inp
                        for k in d:
                            if k in inp:
                                inp[k] = d[k]
                    card = msg.get("rfid")
                    if card and len(self.cards) < _MAX_CARDS:
                        self.cards.append(card)
                    ble = msg.get("ble")
                    if ble:
                        self.ble_linked = bool(ble.get("linked", self.ble_linked))
                        rx = ble.get("rx")
                        if rx and len(self.ble_rx) < _MAX_BLE:
                            self.ble_rx += rx.encode()
                    count += 1
                except (ValueError, AttributeError, TypeError):
                    pass
            start = i + 1
        if start:
            rest = self._n - start
            if rest:
                buf[0:rest] = buf[start:self._n]
            self._n = rest
        if count:
            self._flag = True
        return count

    def _reader(self):
        # A plain generator run as a task (MicroPython asyncio): it parks on
        # the socket through the IO queue like asyncio's own streams do, with
        # no coroutine object per read.
        s = self.sock
        core = asyncio.core
        k = 1
        while k:
            yield core._io_queue.queue_read(s)
            n = self._n
            if n >= _BUF:
                n = self._n = 0
            try:
                k = s.readinto(self._mv[n:] if n else self._mv)
            except OSError:
                k = 0
            if k is None:
                k = 1
                continue  # spurious wake-up
            if k:
                self._n = n + k
                self._parse()
                if self._pending or self._resync:
                    self._flush()
            else:
                # The bench went away: nothing will ever change again.
                self.inp["net"] = False
                self._flag = True
            # Wake wait_input if the task is still parked in its sleep
            # (data is set when it waits on anything else or was cancelled).
            t = self._waiter
            if (self._flag and t is not None and t.data is None and t.ph_key == self._due
                    and time.ticks_diff(self._due, time.ticks_ms()) > 0):
                self._waiter = None
                self._flag = False  # consumed by that wait
                q = core._task_queue
                q.remove(t)
                q.push(t)  # now

    def wait_input(self, ms):
        """`await board.wait_input(ms)`: returns when an input may have changed
        or after ms milliseconds. It is asyncio.sleep_ms(ms) (a preallocated
        awaitable, not a coroutine: do not wrap it in create_task/wait_for)
        that the link reader brings forward when an input arrives."""
        if self.sock is not None:
            if self._task is None:
                self._task = asyncio.create_task(self._reader())
            if self._flag:  # an input arrived since the last wait
                self._flag = False
                ms = 0
            self._waiter = asyncio.current_task()
        g = asyncio.sleep_ms(ms)
        self._due = getattr(g, "state", None)  # its deadline (ticks_ms)
        return g

    # ---- outputs
    def out(self, kind, value, state=True):
        if state:
            self._outs[kind] = value
        if self.sock is not None:
            self._pending += ('{"out": "%s", "v": %s}\n' % (kind, json.dumps(value))).encode()
            self._flush()

    def _flush(self):
        if self._resync and not self._pending:
            self._resync = False
            for k in self._outs:
                self._pending += ('{"out": "%s", "v": %s}\n' % (k, json.dumps(self._outs[k]))).encode()
        p = self._pending
        try:
            while p:
                n = self.sock.send(p)
                if not n:
                    break
                p = p[n:]
        except OSError:
            pass  # EAGAIN: kept for the next flush; a dead bench: nothing to tell
        if len(p) > _MAX_PENDING:
            p = b""
            self._resync = True
        self._pending = p

    # ---- meter line: a pty the bench's Modbus meter listens on. The bench
    # sets the tty to raw with VMIN=0/VTIME=0, so a read returns at once with
    # what is there (possibly nothing). any(): _rare.
    def init(self, baud, bits=8, parity=0, stop=1):
        self.config = (baud, bits, parity, stop)
        path = os.getenv("JOLT_METER")
        if self._f is None and path:
            self._f = open(path, "r+b") if _MP else open(path, "r+b", buffering=0)

    def write(self, buf):
        return 0 if self._f is None else self._f.write(buf)

    def readinto(self, buf):
        if self._f is None:
            return 0
        try:
            return self._f.readinto(buf) or 0
        except OSError:
            return 0

    # ---- pilot
    def set_duty(self, pct):
        if pct != self._outs.get("duty"):
            self.out("duty", pct)

    def duty(self):
        return self._outs.get("duty")

    def high_mv(self):
        return self.inp["hi"]

    def low_mv(self):
        return self.inp["lo"]

    # ---- rfid (ok() is the reader's health)
    def poll(self):
        cards = self.cards
        if not cards:
            return None
        card = cards.pop(0)
        return card.upper() if self.inp["rfid_ok"] else None

    def ok(self):
        return self.inp["rfid_ok"]

    # ---- signal
    def show(self, name):
        self.out("signal", name, False)

    def led(self, state):
        if state != self._outs.get("led"):
            self.out("led", state)

    # ---- button, sensors
    def pressed(self):
        return self.inp["btn"]

    def read(self, name):
        return self.inp[_SENSORS[name]]

    # ---- clock
    def now(self):
        return int(time.time()) + self._offset

    def set(self, epoch):
        self._offset = int(epoch) - int(time.time())

    # ---- net (open: hal/sim/_net.py)
    def up(self):
        return self.inp["net"]

    def rssi(self):
        return self.inp["rssi"]

    # ---- watchdog: the bench kills the process (reset cause "watchdog")
    # when no feed arrives within the timeout.
    def start(self, timeout_ms):
        self._fed = time.ticks_ms()
        self.out("wdt", int(timeout_ms))

    def feed(self):
        ms = self._outs.get("wdt")
        if ms:
            now = time.ticks_ms()
            if time.ticks_diff(now, self._fed) >= ms >> 2:
                self._fed = now
                self.out("feed", None, False)

    # ---- ble: asked at boot and polled by the firmware, so not in _rare
    # (recv, send, drop are). The bench's BLE central: docs/simulator.md.
    def advertise(self, name):
        self.out("ble", name)

    def linked(self):
        return self.ble_linked

    # ---- system
    def unique_id(self):
        return os.getenv("JOLT_UID") or "SIM000000000"

    def reset(self):
        # Here, not in _rare: a reset must not depend on loading a module,
        # which a fragmented heap may refuse (MemoryError) at that moment.
        print("system: reset requested")
        if not self.inp.get("rst", True):
            print("system: reset did not take")  # bench `fail reset`: a reset circuit fault
            return
        sys.exit(_EXIT_RESET)

    def reset_cause(self):
        return os.getenv("JOLT_RESET_CAUSE") or "power"

    # ---- rarely used: net.open (hal/sim/_net.py), net.configure,
    # ble.* (hal/sim/_rare.py) are
    # functions taking the board first, imported on first use.
    def __getattr__(self, name):
        if name[0] == "_":
            raise AttributeError(name)
        if name == "open":
            from hal.sim import _net as m
        else:
            from hal.sim import _rare as m
        f = getattr(m, name)  # AttributeError for anything else
        return lambda *a, **kw: f(self, *a, **kw)


if not _MP:
    from hal.sim._cpy import Board  # noqa: F811 (CPython runtime: asyncio differences)
