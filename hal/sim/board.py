# The bench board: the HAL the firmware uses when tools/sim.py runs it on the
# MicroPython unix port (or CPython with --runtime cpython). Wiring comes from
# environment variables the bench sets (docs/simulator.md):
#   JOLT_HW          127.0.0.1:port of the bench's hardware link (JSON lines)
#   JOLT_METER       pty path of the meter's RS-485 line (Modbus RTU)
#   JOLT_NET         127.0.0.1:port of the bench's network proxy
#   JOLT_RESET_CAUSE power / soft / watchdog / hard
#   JOLT_UID         the board's unique id
# Inputs are mirrored locally (reads are dict look-ups); outputs are sent to
# the bench the moment they change.
import asyncio
import json
import os
import socket
import sys
import time

EXIT_RESET = 75  # process exit code meaning "reboot me" (system.reset())

_MP = sys.implementation.name == "micropython"
_EAGAIN = 11
_EINPROGRESS = 115
_ECONNREFUSED = 111
_ENETUNREACH = 101
_MAX_PENDING = 8192  # unsent output bytes before we fall back to a full resync
_MAX_CARDS = 4


def _getenv(name, default=None):
    v = os.getenv(name)
    return default if v is None or v == "" else v


def _addr(hostport):
    if not hostport:
        return None
    host, port = hostport.rsplit(":", 1)
    return socket.getaddrinfo(host, int(port))[0][-1]


# Input mirror: the bench's last word on every input, with sane defaults for
# a board running without a bench (plugged into nothing, healthy supply).
def _defaults():
    return {
        "hi": 12000, "lo": 12000,          # pilot plateaus, mV
        "relay": False, "lock": False,     # feedback contacts
        "btn": False,                      # emergency button
        "temp": 250, "ne": 0, "lac": 0, "ldc": 0, "phase": 1, "supply": 1,
        "net": True, "rssi": -60,
        "sd": True, "rfid_ok": True,
    }


class _Link:
    """TCP link to the bench: newline-delimited JSON both ways."""

    def __init__(self, hostport):
        self.inp = _defaults()
        self.ev = asyncio.Event()
        self.cards = []
        self.task = None
        self.sock = None
        self._buf = bytearray(2048)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._pending = b""
        self._outs = {}  # last value of every output, for a resync after overflow
        self._resync = False
        addr = _addr(hostport)
        if addr is None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(addr)
        self.sock = s
        self._write(json.dumps({"out": "hello", "v": {"uid": _getenv("JOLT_UID", ""),
                                                      "impl": sys.implementation.name}}) + "\n")
        # Block (briefly, at boot) for the first input snapshot so the first
        # reads are the bench's values, not defaults.
        got = False
        while not got:
            n = self._recv_into()
            if n <= 0:
                raise OSError(_ECONNREFUSED)
            got = self._parse() > 0
        s.setblocking(False)

    def _recv_into(self):
        # Blocking read at boot only. recv() returns what arrived; a blocking
        # readinto() would wait for the whole buffer to fill.
        if self._n >= len(self._buf):
            self._n = 0  # a line longer than the buffer: drop it
        data = self.sock.recv(len(self._buf) - self._n)
        n = len(data)
        self._buf[self._n:self._n + n] = data
        self._n += n
        return n

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
                    self._handle(json.loads(self._mv[start:i] if _MP else bytes(self._mv[start:i])))
                    count += 1
                except ValueError:
                    pass
            start = i + 1
        if start:
            rest = self._n - start
            buf[0:rest] = buf[start:self._n]
            self._n = rest
        return count

    def _handle(self, msg):
        d = msg.get("in")
        if d:
            inp = self.inp
            for k in d:
                if k in inp:
                    inp[k] = d[k]
        card = msg.get("rfid")
        if card and len(self.cards) < _MAX_CARDS:
            self.cards.append(card)
        self.ev.set()

    async def run(self):
        if _MP:
            stream = asyncio.StreamReader(self.sock)
        else:
            loop = asyncio.get_event_loop()
        while True:
            if self._n >= len(self._buf):
                self._n = 0
            mv = self._mv[self._n:]
            if _MP:
                n = await stream.readinto(mv)
            else:
                n = await loop.sock_recv_into(self.sock, mv)
            if not n:
                # The bench went away: nothing will ever change again.
                self.inp["net"] = False
                self.ev.set()
                return
            self._n += n
            self._parse()
            if self._pending or self._resync:
                self._flush()

    # ---- outputs
    def _write(self, data):
        if not isinstance(data, bytes):
            data = data.encode()
        self._pending += data
        self._flush()

    def _flush(self):
        if self._resync and not self._pending:
            self._resync = False
            for k in self._outs:
                self._pending += (json.dumps({"out": k, "v": self._outs[k]}) + "\n").encode()
        try:
            while self._pending:
                n = self.sock.send(self._pending)
                if not n:
                    break
                self._pending = self._pending[n:]
        except OSError:
            pass  # EAGAIN: kept for the next flush; a dead bench: nothing to tell
        if len(self._pending) > _MAX_PENDING:
            self._pending = b""
            self._resync = True

    def out(self, kind, value, state=True):
        if state:
            self._outs[kind] = value
        if self.sock is None:
            return
        self._write(json.dumps({"out": kind, "v": value}) + "\n")


class Relay:
    def __init__(self, link):
        self._l = link
        self._cmd = False

    def set(self, closed):
        closed = bool(closed)
        if closed != self._cmd:
            self._cmd = closed
            self._l.out("relay", closed)

    def closed(self):
        return self._l.inp["relay"]


class Lock:
    def __init__(self, link):
        self._l = link
        self._cmd = None

    def set(self, locked):
        locked = bool(locked)
        if locked != self._cmd:
            self._cmd = locked
            self._l.out("lock", locked)

    def locked(self):
        return self._l.inp["lock"]


class Pilot:
    def __init__(self, link):
        self._l = link
        self._duty = None

    def set_duty(self, pct):
        if pct != self._duty:
            self._duty = pct
            self._l.out("duty", pct)

    def duty(self):
        return self._duty

    def high_mv(self):
        return self._l.inp["hi"]

    def low_mv(self):
        return self._l.inp["lo"]


class MeterUart:
    """The meter's RS-485 line: a pty the bench's Modbus meter listens on. The
    bench sets the tty to raw with VMIN=0/VTIME=0, so a read returns at once
    with what is there (possibly nothing)."""

    def __init__(self, path):
        self._path = path
        self._f = None
        self._rx = bytearray(256)
        self._rxn = 0
        self.config = None

    def init(self, baud, bits=8, parity=0, stop=1):
        self.config = (baud, bits, parity, stop)
        if self._f is None and self._path:
            self._f = open(self._path, "r+b") if _MP else open(self._path, "r+b", buffering=0)
        self._rxn = 0

    def write(self, buf):
        if self._f is None:
            return 0
        n = self._f.write(buf)
        if not _MP:
            self._f.flush()
        return n

    def _fill(self):
        if self._f is None or self._rxn >= len(self._rx):
            return
        mv = memoryview(self._rx)[self._rxn:]
        try:
            n = self._f.readinto(mv)
        except OSError:
            n = 0
        if n:
            self._rxn += n

    def any(self):
        self._fill()
        return self._rxn

    def readinto(self, buf):
        self._fill()
        n = min(len(buf), self._rxn)
        if n:
            buf[0:n] = self._rx[0:n]
            rest = self._rxn - n
            self._rx[0:rest] = self._rx[n:self._rxn]
            self._rxn = rest
        return n


class Rfid:
    def __init__(self, link):
        self._l = link

    def poll(self):
        cards = self._l.cards
        if not cards:
            return None
        card = cards.pop(0)
        return card.upper() if self._l.inp["rfid_ok"] else None

    def ok(self):
        return self._l.inp["rfid_ok"]


class Signal:
    def __init__(self, link):
        self._l = link
        self._led = None

    def show(self, name):
        self._l.out("signal", name, False)

    def led(self, state):
        if state != self._led:
            self._led = state
            self._l.out("led", state)


class Button:
    def __init__(self, link):
        self._l = link

    def pressed(self):
        return self._l.inp["btn"]


class Sensors:
    _KEYS = {"temperature_dc": "temp", "ne_mv": "ne", "leak_ac_ua": "lac", "leak_dc_ua": "ldc",
             "phase_ok": "phase", "supply_ok": "supply"}

    def __init__(self, link):
        self._l = link

    def read(self, name):
        return self._l.inp[self._KEYS[name]]


class Sd:
    def __init__(self, link):
        self._l = link

    def ok(self):
        return self._l.inp["sd"]

    @property
    def root(self):
        return "../sd/" if self._l.inp["sd"] else None


class Flash:
    root = ""


class Clock:
    def __init__(self):
        self._offset = 0

    def now(self):
        return int(time.time()) + self._offset

    def set(self, epoch):
        self._offset = int(epoch) - int(time.time())


class Net:
    def __init__(self, link, proxy):
        self._l = link
        self._proxy = proxy
        self.fallback = None
        self.primary = None

    def up(self):
        return self._l.inp["net"]

    def rssi(self):
        return self._l.inp["rssi"]

    def configure(self, ssid, password):
        self.primary = (ssid, password)
        self._l.out("wifi", {"ssid": ssid})

    def configure_fallback(self, ssid, password, enabled):
        self.fallback = (ssid, password, bool(enabled))
        self._l.out("fallback", {"ssid": ssid, "enabled": bool(enabled)})

    async def open(self, host, port, ssl_ctx=None, server_hostname=None):
        if not self.up():
            raise OSError(_ENETUNREACH)
        if ssl_ctx is not None and not server_hostname:
            server_hostname = host
        if self._proxy is None:
            return await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
        # Through the bench's proxy: a plain "CONNECT host port" line, an "OK"
        # line back, then the bytes flow end to end (TLS included).
        hello = ("CONNECT %s %d\n" % (host, port)).encode()
        if _MP:
            return await self._open_mp(hello, ssl_ctx, server_hostname)
        return await self._open_cpy(hello, ssl_ctx, server_hostname)

    async def _open_mp(self, hello, ssl_ctx, server_hostname):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(self._proxy)
        except OSError as e:
            if e.args[0] != _EINPROGRESS:
                s.close()
                raise
        st = asyncio.StreamReader(s)
        try:
            st.write(hello)
            await st.drain()
            line = await st.readline()
        except Exception:
            s.close()
            raise OSError(_ECONNREFUSED)
        if not line.startswith(b"OK"):
            s.close()
            raise OSError(_ECONNREFUSED)
        if ssl_ctx is None:
            return st, st
        ss = ssl_ctx.wrap_socket(s, server_hostname=server_hostname, do_handshake_on_connect=False)
        ss.setblocking(False)
        st = asyncio.StreamReader(ss)
        return st, st

    async def _open_cpy(self, hello, ssl_ctx, server_hostname):
        r, w = await asyncio.open_connection(self._proxy[0], self._proxy[1])
        try:
            w.write(hello)
            await w.drain()
            line = await r.readline()
        except Exception:
            w.close()
            raise OSError(_ECONNREFUSED)
        if not line.startswith(b"OK"):
            w.close()
            raise OSError(_ECONNREFUSED)
        if ssl_ctx is not None:
            await w.start_tls(ssl_ctx, server_hostname=server_hostname)
        return r, w


class Wdt:
    """The bench is the watchdog: it kills the process (reset cause
    "watchdog") when no feed arrives within the timeout."""

    def __init__(self, link):
        self._l = link
        self._ms = 0
        self._last = 0

    def start(self, timeout_ms):
        self._ms = int(timeout_ms)
        self._last = time.ticks_ms()
        self._l.out("wdt", self._ms)

    def feed(self):
        if not self._ms:
            return
        now = time.ticks_ms()
        if time.ticks_diff(now, self._last) >= self._ms // 4:
            self._last = now
            self._l.out("feed", None, False)


class Ble:
    def __init__(self, link):
        self._l = link
        self._cb = None
        self.name = None

    def advertise(self, name):
        self.name = name
        self._l.out("ble", name)

    def stop(self):
        self.name = None
        self._l.out("ble", None)

    def on_receive(self, callback):
        self._cb = callback

    def send(self, data):
        pass


class System:
    def reset(self):
        print("system: reset requested")
        sys.exit(EXIT_RESET)

    def unique_id(self):
        return _getenv("JOLT_UID", "SIM000000000")

    def reset_cause(self):
        return _getenv("JOLT_RESET_CAUSE", "power")


class Board:
    def __init__(self):
        link = _Link(_getenv("JOLT_HW"))
        self._link = link
        self.relay = Relay(link)
        self.lock = Lock(link)
        self.pilot = Pilot(link)
        self.meter_uart = MeterUart(_getenv("JOLT_METER"))
        self.rfid = Rfid(link)
        self.signal = Signal(link)
        self.button = Button(link)
        self.sensors = Sensors(link)
        self.sd = Sd(link)
        self.flash = Flash()
        self.clock = Clock()
        self.net = Net(link, _addr(_getenv("JOLT_NET")))
        self.wdt = Wdt(link)
        self.ble = Ble(link)
        self.system = System()

    async def wait_input(self, ms):
        link = self._link
        if link.sock is None:
            await asyncio.sleep(ms / 1000)
            return
        if link.task is None:
            link.task = asyncio.create_task(link.run())
        ev = link.ev
        if not ev.is_set():
            try:
                if _MP:
                    await asyncio.wait_for_ms(ev.wait(), ms)
                else:
                    await asyncio.wait_for(ev.wait(), ms / 1000)
            except asyncio.TimeoutError:
                pass
        ev.clear()
