# In-memory board for CPython unit tests: every device of docs/hal.md, inputs
# settable by the test, outputs recorded in `history` lists.
#
#   board = Board()
#   board.pilot.set_levels(9000, -12000); board.rfid.present("04AB")
#   board.relay.set(True); assert board.relay.history == [True]
import asyncio
import time


class _Input:
    """Shared change notification: every test-side input change wakes
    `Board.wait_input`."""

    def __init__(self):
        self.changes = 0
        self._event = None
        self._loop = None

    def event(self):
        # One Event per running loop (tests may call asyncio.run repeatedly).
        loop = asyncio.get_running_loop() if hasattr(asyncio, "get_running_loop") else None
        if self._event is None or loop is not self._loop:
            self._event = asyncio.Event()
            self._loop = loop
        return self._event

    def changed(self):
        self.changes += 1
        if self._event is not None:
            self._event.set()


class Relay:
    def __init__(self, inp):
        self._inp = inp
        self.command = False
        self.history = []
        self.welded = False
        self.stuck_open = False
        self.feedback = None  # None: follows the physical state

    def set(self, closed):
        closed = bool(closed)
        if closed != self.command or not self.history:
            self.history.append(closed)
        self.command = closed

    def physical(self):
        if self.welded:
            return True
        if self.stuck_open:
            return False
        return self.command

    def closed(self):
        return self.physical() if self.feedback is None else self.feedback

    # test side
    def weld(self, on=True):
        self.welded = bool(on)
        self._inp.changed()

    def fail_open(self, on=True):
        self.stuck_open = bool(on)
        self._inp.changed()

    def set_feedback(self, value):
        """Force the auxiliary contact reading (None: follow the contacts)."""
        self.feedback = value
        self._inp.changed()


class Lock:
    def __init__(self, inp):
        self._inp = inp
        self.command = None
        self.history = []
        self.jammed = False
        self._pos = False

    def set(self, locked):
        locked = bool(locked)
        self.history.append(locked)
        self.command = locked
        if not self.jammed:
            self._pos = locked

    def locked(self):
        return self._pos

    # test side
    def jam(self, on=True):
        self.jammed = bool(on)
        self._inp.changed()

    def set_position(self, locked):
        self._pos = bool(locked)
        self._inp.changed()


class Pilot:
    def __init__(self, inp):
        self._inp = inp
        self._duty = None
        self.history = []
        self._hi = 12000
        self._lo = 12000

    def set_duty(self, pct):
        if pct != self._duty or not self.history:
            self.history.append(pct)
        self._duty = pct

    def duty(self):
        return self._duty

    def high_mv(self):
        return self._hi

    def low_mv(self):
        return self._lo

    # test side
    def set_levels(self, high_mv, low_mv=None):
        self._hi = int(high_mv)
        self._lo = int(high_mv if low_mv is None else low_mv)
        self._inp.changed()


class MeterUart:
    """Bytes written are kept in `written` (and `frames`, one per write);
    the test queues replies with `feed(data)` or answers with `responder`
    (callable(frame) -> bytes or None, called on each write)."""

    def __init__(self):
        self.config = None
        self.written = bytearray()
        self.frames = []
        self.responder = None
        self._rx = bytearray()

    def init(self, baud, bits=8, parity=0, stop=1):
        self.config = (baud, bits, parity, stop)

    def write(self, buf):
        data = bytes(buf)
        self.written += data
        self.frames.append(data)
        if self.responder is not None:
            reply = self.responder(data)
            if reply:
                self._rx += reply
        return len(data)

    def any(self):
        return len(self._rx)

    def readinto(self, buf):
        n = min(len(buf), len(self._rx))
        buf[0:n] = self._rx[0:n]
        del self._rx[0:n]
        return n

    # test side
    def feed(self, data):
        self._rx += bytes(data)


class Rfid:
    def __init__(self, inp):
        self._inp = inp
        self._cards = []
        self._ok = True

    def poll(self):
        if not self._cards or not self._ok:
            return None
        return self._cards.pop(0)

    def ok(self):
        return self._ok

    # test side
    def present(self, uid):
        self._cards.append(str(uid).upper())
        self._inp.changed()

    def set_ok(self, ok):
        self._ok = bool(ok)
        self._inp.changed()


class Signal:
    def __init__(self):
        self.history = []  # every show(name)
        self.leds = []     # every led(state) change
        self._led = None

    def show(self, name):
        self.history.append(name)

    def led(self, state):
        if state != self._led:
            self._led = state
            self.leds.append(state)

    def current_led(self):
        return self._led


class Button:
    def __init__(self, inp):
        self._inp = inp
        self._pressed = False

    def pressed(self):
        return self._pressed

    def set(self, pressed):
        self._pressed = bool(pressed)
        self._inp.changed()


class Sensors:
    NAMES = ("temperature_dc", "ne_mv", "leak_ac_ua", "leak_dc_ua", "phase_ok", "supply_ok")

    def __init__(self, inp):
        self._inp = inp
        self._v = {"temperature_dc": 250, "ne_mv": 0, "leak_ac_ua": 0, "leak_dc_ua": 0,
                   "phase_ok": 1, "supply_ok": 1}

    def read(self, name):
        return self._v[name]

    def set(self, name, value):
        if name not in self._v:
            raise KeyError(name)
        self._v[name] = int(value)
        self._inp.changed()


class Sd:
    def __init__(self, inp, root=None):
        self._inp = inp
        self._root = root
        self._ok = root is not None

    def ok(self):
        return self._ok

    probe = ok  # (hal/esp32 checks the card here)

    @property
    def root(self):
        return self._root if self._ok else None

    def set_ok(self, ok):
        self._ok = bool(ok) and self._root is not None
        self._inp.changed()


class Flash:
    def __init__(self, root=""):
        self.root = root


class Clock:
    def __init__(self, epoch=None):
        self._offset = 0 if epoch is None else int(epoch) - int(time.time())
        self.history = []

    def now(self):
        return int(time.time()) + self._offset

    def set(self, epoch):
        self.history.append(int(epoch))
        self._offset = int(epoch) - int(time.time())


class Net:
    def __init__(self, inp):
        self._inp = inp
        self._up = True
        self._rssi = -60
        self.opened = []  # (host, port, ssl?, server_hostname) of every open()
        self.primary = None  # the network last configure()d
        self.connector = None  # optional async callable(host, port, ssl_ctx, server_hostname)

    def up(self):
        return self._up

    def rssi(self):
        return self._rssi

    def configure(self, ssid, password):
        self.primary = (ssid, password)

    async def open(self, host, port, ssl_ctx=None, server_hostname=None):
        self.opened.append((host, port, ssl_ctx is not None, server_hostname))
        if not self._up:
            raise OSError(101, "network down")
        if self.connector is not None:
            return await self.connector(host, port, ssl_ctx, server_hostname)
        if ssl_ctx is not None:
            return await asyncio.open_connection(host, port, ssl=ssl_ctx,
                                                 server_hostname=server_hostname or host)
        return await asyncio.open_connection(host, port)

    # test side
    def set_up(self, up):
        self._up = bool(up)
        self._inp.changed()

    def set_rssi(self, dbm):
        self._rssi = int(dbm)
        self._inp.changed()


class Wdt:
    def __init__(self):
        self.timeout_ms = None
        self.feeds = 0

    def start(self, timeout_ms):
        self.timeout_ms = int(timeout_ms)

    def feed(self):
        self.feeds += 1


class Ble:
    """A BLE link the test drives: connect(), receive(bytes), disconnect();
    what the firmware sent is in `sent` (bytes per send) and `text()`."""

    def __init__(self):
        self.name = None
        self.sent = []
        self._linked = False
        self._rx = bytearray()
        self.drops = 0

    def advertise(self, name):
        self.name = name

    def stop(self):
        self.name = None

    def linked(self):
        return self._linked

    def recv(self):
        if not self._rx:
            return None
        data = bytes(self._rx)
        self._rx = bytearray()
        return data

    def send(self, data):
        self.sent.append(bytes(data))

    def drop(self):
        self.drops += 1
        self._linked = False

    # test side
    def connect(self):
        self._rx = bytearray()
        self._linked = True

    def receive(self, data):
        self._rx += bytes(data)

    def disconnect(self):
        self._linked = False

    def text(self):
        return b"".join(self.sent).decode()


class ResetRequested(Exception):
    """Raised by system.reset() so a test can see the reboot request."""


class System:
    def __init__(self, uid="MOCK00000001", cause="power"):
        self._uid = uid
        self.cause = cause
        self.resets = 0

    def reset(self):
        self.resets += 1
        raise ResetRequested()

    def unique_id(self):
        return self._uid

    def reset_cause(self):
        return self.cause


class Board:
    PER_USE = ()

    def __init__(self, flash_root="", sd_root=None, uid="MOCK00000001", reset_cause="power"):
        inp = _Input()
        self._inp = inp
        self.relay = Relay(inp)
        self.lock = Lock(inp)
        self.pilot = Pilot(inp)
        self.meter_uart = MeterUart()
        self.rfid = Rfid(inp)
        self.signal = Signal()
        self.button = Button(inp)
        self.sensors = Sensors(inp)
        self.sd = Sd(inp, sd_root)
        self.flash = Flash(flash_root)
        self.clock = Clock()
        self.net = Net(inp)
        self.wdt = Wdt()
        self.ble = Ble()
        self.system = System(uid, reset_cause)
        self.waits = 0

    def changed(self):
        """Wake wait_input (for inputs a test changed by hand)."""
        self._inp.changed()

    async def wait_input(self, ms):
        self.waits += 1
        ev = self._inp.event()
        if not ev.is_set():
            try:
                await asyncio.wait_for(ev.wait(), ms / 1000)
            except asyncio.TimeoutError:
                pass
        ev.clear()
