# The JOLT board (plain ESP32, no PSRAM). The only module that touches machine, network
# and bluetooth. Pins and calibration constants: hal/esp32/pins.py.
# Inputs are polled: wait_input() sleeps one poll period, then services
# timed outputs (lock motor pulse, buzzer) and samples the
# pilot. Nothing the supervisor calls every cycle allocates (wait_input()
# returns a preallocated awaitable, not a coroutine; see Board.__next__).
import asyncio
import binascii
import time

import machine
import network

from hal.esp32 import pins

POLL_MS = 10
_STOP = StopIteration()  # ends the wait_input awaitable, preallocated
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0  # ports with a 2000 epoch


def _in(num, pull: "int | None" = machine.Pin.PULL_UP):
    # pull None = no pull resistor (MicroPython docs, machine.Pin); the stubs
    # type the argument as int only.
    return machine.Pin(num, machine.Pin.IN, pull)  # pyright: ignore[reportArgumentType]


def _out(num, value=0):
    return machine.Pin(num, machine.Pin.OUT, value=value)


def _adc(num):
    a = machine.ADC(machine.Pin(num))
    a.atten(machine.ADC.ATTN_11DB)  # 0..3.1 V range
    return a


class Ladder:
    """Two contacts on one ADC1 input through a resistor ladder
    (hal/esp32/pins.py, LADDER_*): bit(0) / bit(1) = contact closed."""

    def __init__(self, num):
        self._adc = _adc(num)

    def bit(self, b):
        i = (self._adc.read_uv() - pins.LADDER_ZERO_UV + pins.LADDER_STEP_UV // 2) // pins.LADDER_STEP_UV
        if i < 0:
            i = 0
        elif i > 3:
            i = 3
        return (i >> b) & 1


class Relay:
    def __init__(self, fb):
        self._coil = _out(pins.RELAY, 0)
        self._fb = fb  # bit 0: the auxiliary contact

    def set(self, closed):
        self._coil.value(1 if closed else 0)

    def closed(self):
        return self._fb.bit(0) == 1


class Lock:
    """DC motor lock: a pulse in one direction, then brake: after LOCK_PULSE_MS,
    or when locking as soon as the position switch closes (the end stop:
    the motor does not push against it for the rest of the pulse)."""

    def __init__(self, fb):
        self._a = _out(pins.LOCK_A, 0)
        self._b = _out(pins.LOCK_B, 0)
        self._fb = fb  # bit 1: the position switch
        self._until = None
        self._locking = False

    def set(self, locked):
        self._a.value(1 if locked else 0)
        self._b.value(0 if locked else 1)
        self._locking = bool(locked)
        self._until = time.ticks_add(time.ticks_ms(), pins.LOCK_PULSE_MS)

    def service(self, now):
        # Every POLL_MS while the motor runs (one ladder read when locking).
        if self._until is not None and (time.ticks_diff(now, self._until) >= 0
                                        or self._locking and self.locked()):
            self._a.value(0)
            self._b.value(0)
            self._until = None

    def locked(self):
        return self._fb.bit(1) == 1


class Pilot:
    def __init__(self):
        self._pin = machine.Pin(pins.PILOT_PWM, machine.Pin.OUT, value=1)
        self._pwm = None
        self._duty = None
        self._adc = _adc(pins.PILOT_ADC)
        self._hi = 0
        self._lo = 0

    def set_duty(self, pct):
        if pct == self._duty:
            return  # unchanged (the supervisor sets it every cycle); None at start = the pin's +12 V
        self._duty = pct
        if pct is None or pct == 0 or pct >= 100:
            if self._pwm is not None:
                self._pwm.deinit()
                self._pwm = None
                self._pin = machine.Pin(pins.PILOT_PWM, machine.Pin.OUT)
            self._pin.value(0 if pct == 0 else 1)  # steady -12 V / +12 V
            return
        duty_u16 = int(pct * 65535 // 100)
        if self._pwm is None:
            self._pwm = machine.PWM(self._pin, freq=pins.PILOT_FREQ, duty_u16=duty_u16)
        else:
            self._pwm.duty_u16(duty_u16)

    def duty(self):
        return self._duty

    def _mv(self, uv):
        return (uv - pins.PILOT_ADC_ZERO_UV) * pins.PILOT_GAIN_NUM // pins.PILOT_GAIN_DEN // 1000

    def sample(self):
        """A burst over two PWM periods (pins.PILOT_BURST_US): max = positive
        plateau, min = negative."""
        adc = self._adc  # (a bound method held in a local would be allocated)
        t0 = time.ticks_us()
        hi = lo = adc.read_uv()
        n = 1
        while n < pins.PILOT_SAMPLES_MAX and time.ticks_diff(time.ticks_us(), t0) < pins.PILOT_BURST_US:
            n += 1
            v = adc.read_uv()
            if v > hi:
                hi = v
            elif v < lo:
                lo = v
        self._hi = self._mv(hi)
        self._lo = self._mv(lo)

    def high_mv(self):
        return self._hi

    def low_mv(self):
        return self._lo


class MeterUart:
    """RS-485 half duplex: the driver-enable pin is raised for a write and
    dropped by the first readinto()/any() after UART.txdone() (the last stop
    bit has left), which lib/modbus polls every 2 ms while it waits for the
    reply: nothing waits for the frame to go out (UART.flush() would block
    the event loop ~9 ms per request at 9600 baud). A slave answers 3.5
    characters (4 ms at 9600) after the request at the earliest."""

    def __init__(self):
        self._de = _out(pins.METER_DE, 0)
        self._uart: "machine.UART | None" = None  # until init()
        self._tx = False  # DE raised, the frame maybe still going out

    def init(self, baud, bits=8, parity=0, stop=1):
        par = (None, 1, 0)[parity]  # ours: 0 none, 1 odd, 2 even; machine: None, 1 odd, 0 even
        # txbuf: write() queues a whole request (up to 255 bytes) and returns
        self._uart = machine.UART(pins.METER_UART, baudrate=baud, bits=bits, parity=par, stop=stop,
                                  tx=pins.METER_TX, rx=pins.METER_RX, timeout=0, rxbuf=512, txbuf=256)

    def write(self, buf):
        u = self._uart
        if u is None:
            return 0  # not initialised: nothing sent (the Modbus poll times out)
        self._de.value(1)
        self._tx = True
        return u.write(buf)

    def _turn(self, u):
        if u.txdone():  # no wait: True once the last stop bit has left
            self._de.value(0)
            self._tx = False

    def readinto(self, buf):
        u = self._uart
        if u is None:
            return 0
        if self._tx:
            self._turn(u)
        if not u.any():
            return 0
        return u.readinto(buf) or 0

    def any(self):
        u = self._uart
        if u is None:
            return 0
        if self._tx:
            self._turn(u)
        return u.any()


def _hex(c):
    """Value of one ASCII hex digit, -1 if it is none."""
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 87
    return -1


class Rfid:
    """ASCII serial reader: 0x02, 10 hex digits (version + 4-byte tag), 2 hex
    digits XOR checksum, 0x03, repeated while the card is in the field. The
    repeats are checked in preallocated buffers: only a new presentation
    makes a string."""

    REPEAT_MS = 600

    def __init__(self):
        self._uart = None
        try:
            # tx -1: not routed (UART1's default TX pin is a flash pin)
            self._uart = machine.UART(pins.RFID_UART, baudrate=pins.RFID_BAUD, tx=pins.RFID_TX,
                                      rx=pins.RFID_RX, timeout=0, rxbuf=128)
        except (ValueError, OSError):
            pass
        self._rx = bytearray(32)
        self._frame = bytearray(14)
        self._n = 0
        self._raw = bytearray(5)  # version + tag of the last card
        self._last = None  # UID of the last card seen
        self._last_ms = 0
        self._ready = None

    def _feed(self, b, now):
        if b == 0x02:
            self._n = 0
        if self._n < 14:
            self._frame[self._n] = b
            self._n += 1
        if self._n == 14 and b == 0x03:
            self._n = 0
            f = self._frame
            raw = self._raw
            x = 0
            same = self._last is not None
            for i in range(6):
                hi = _hex(f[1 + 2 * i])
                lo = _hex(f[2 + 2 * i])
                if hi < 0 or lo < 0:
                    return
                v = hi << 4 | lo
                if i < 5:
                    x ^= v
                    if v != raw[i]:
                        same = False
                elif x != v:
                    return
            if not same:
                for i in range(5):
                    raw[i] = _hex(f[1 + 2 * i]) << 4 | _hex(f[2 + 2 * i])
                self._last = bytes(f[1:11]).decode().upper()
                self._ready = self._last
            elif time.ticks_diff(now, self._last_ms) > self.REPEAT_MS:
                self._ready = self._last
            self._last_ms = now

    def poll(self):
        u = self._uart
        if u is None:
            return None
        now = time.ticks_ms()
        buf = self._rx
        while u.any():
            n = u.readinto(buf) or 0
            if not n:
                break
            for i in range(n):
                self._feed(buf[i], now)
        uid = self._ready
        self._ready = None
        return uid

    def ok(self):
        return self._uart is not None


def _rfid():
    if pins.RFID_KIND != "mfrc522":
        return Rfid()
    from hal.esp32.mfrc522 import Mfrc522

    spi = machine.SPI(pins.RFID_SPI, baudrate=pins.RFID_SPI_HZ, polarity=0, phase=0,
                      sck=machine.Pin(pins.RFID_SCK), mosi=machine.Pin(pins.RFID_MOSI),
                      miso=machine.Pin(pins.RFID_MISO))
    rst = None if pins.RFID_RST is None else _out(pins.RFID_RST, 1)
    return Mfrc522(spi, _out(pins.RFID_CS, 1), rst)


# Status light: what it shows in each state (firmware picks the name:
# Connector.light()): (r, g, b, on_ms, off_ms); off_ms 0 = steady.
_LIGHTS = {
    "Available": (0, 40, 0, 0, 0),            # steady green
    "WeakSignal": (0, 40, 0, 1800, 200),      # green, a short dark blink every 2 s
    "Preparing": (0, 0, 40, 500, 500),        # blue, slow blink: card or cable awaited
    "Charging": (0, 20, 60, 0, 0),            # steady blue
    "SuspendedEV": (30, 30, 0, 0, 0),         # steady yellow
    "SuspendedEVSE": (30, 30, 0, 0, 0),
    "Finishing": (0, 30, 30, 500, 500),       # cyan, slow blink: unplug
    "Reserved": (40, 0, 40, 0, 0),            # steady magenta
    "Unavailable": (10, 10, 10, 0, 0),        # dim white
    "Faulted": (60, 0, 0, 250, 250),          # red, fast blink
    "DiodeError": (60, 0, 0, 1000, 250),      # red, long flashes
    "VentError": (60, 20, 0, 1000, 1000),     # orange, slow blink
}
_LIGHT_OTHER = (20, 20, 20, 0, 0)
# Signals (show(name)): the buzzer sounds and the light flashes the signal's
# colour together, then the light goes back to the state's pattern.
# (r, g, b, durations in 10 ms: on, off, on, ...).
_SIGNALS = {
    "AUTH_OK": (0, 60, 0, b"\x08"),                      # one 80 ms chirp, green
    "AUTH_FAIL": (60, 0, 0, b"\x28"),                    # one 400 ms tone, red
    "FAUTH1": (60, 0, 0, b"\x0a\x0a\x0a\x0a\x0a"),        # three 100 ms beeps, red (guide: FAUTH1)
}
_SIGNAL_OTHER = (20, 20, 20, b"\x0f")
_BUZZ_ON = 32768  # 50 % duty


class Signal:
    """WS2812 status light and buzzer. Patterns are timed by service(now)
    from Board.wait_input (every POLL_MS): nothing here waits. The light is
    written (bitstream, interrupts off ~30 us) only when its colour changes."""

    def __init__(self):
        self._led = machine.Pin(pins.LED_WS2812, machine.Pin.OUT, value=0)
        self._buf = bytearray(3)
        self._buzz = machine.PWM(machine.Pin(pins.BUZZER), freq=pins.BUZZER_FREQ, duty_u16=0)
        self._state = None
        self._light = _LIGHT_OTHER  # the state's pattern
        self._lit = False           # its blink phase
        self._next = None           # ticks of its next blink edge; None: steady
        self._sig = None            # signal under way (an entry of _SIGNALS)
        self._step = 0              # its step: even = on, odd = off
        self._until = time.ticks_ms()  # ticks at which the step ends

    def _rgb(self, r, g, b):
        buf = self._buf
        if buf[0] == g and buf[1] == r and buf[2] == b:
            return
        buf[0] = g  # WS2812 wants GRB
        buf[1] = r
        buf[2] = b
        machine.bitstream(self._led, 0, (400, 850, 800, 450), buf)

    def _state_light(self, now):
        p = self._light
        self._lit = True
        self._rgb(p[0], p[1], p[2])
        self._next = time.ticks_add(now, p[3]) if p[4] else None

    def show(self, name):
        sig = _SIGNALS.get(name, _SIGNAL_OTHER)
        self._sig = sig
        self._step = 0
        self._until = time.ticks_add(time.ticks_ms(), sig[3][0] * 10)
        self._buzz.duty_u16(_BUZZ_ON)
        self._rgb(sig[0], sig[1], sig[2])

    def service(self, now):
        sig = self._sig
        if sig is not None:
            if time.ticks_diff(now, self._until) < 0:
                return
            steps = sig[3]
            i = self._step
            while time.ticks_diff(now, self._until) >= 0:  # (catches up after a late call)
                i += 1
                if i >= len(steps):
                    self._sig = None
                    self._buzz.duty_u16(0)
                    self._state_light(now)
                    return
                self._until = time.ticks_add(self._until, steps[i] * 10)
            self._step = i
            if i & 1:
                self._buzz.duty_u16(0)
                self._rgb(0, 0, 0)
            else:
                self._buzz.duty_u16(_BUZZ_ON)
                self._rgb(sig[0], sig[1], sig[2])
            return
        if self._next is None or time.ticks_diff(now, self._next) < 0:
            return
        p = self._light
        self._lit = lit = not self._lit
        if lit:
            self._rgb(p[0], p[1], p[2])
        else:
            self._rgb(0, 0, 0)
        self._next = time.ticks_add(now, p[3] if lit else p[4])

    def led(self, state):
        if state == self._state:
            return  # unchanged: nothing to write (asked on every status change)
        self._state = state
        self._light = _LIGHTS.get(state, _LIGHT_OTHER)
        if self._sig is None:  # else the state shows when the signal ends
            self._state_light(time.ticks_ms())


class Button:
    def __init__(self):
        self._pin = _in(pins.EMERGENCY)

    def pressed(self):
        return self._pin.value() == pins.EMERGENCY_PRESSED


class Sensors:
    def __init__(self):
        self._temp = _adc(pins.TEMP_ADC)
        self._ne = _adc(pins.NE_ADC)
        self._leak_ok = _in(pins.LEAK_OK, machine.Pin.PULL_DOWN)
        self._supply = Ladder(pins.SUPPLY_ADC)  # bit 0 mains present, bit 1 phase monitor ok

    def read(self, name):
        if name == "temperature_dc":
            return self._temp.read_uv() // 1000 - 500  # 10 mV/degC -> 0.1 degC per mV
        if name == "ne_mv":
            return self._ne.read_uv() // 1000 * pins.NE_MV_PER_ADC_MV
        # The residual current module trips by itself (30 mA AC / 6 mA DC):
        # only "tripped" is known, read as its trip currents.
        if name == "leak_ac_ua":
            return 0 if self._leak_ok.value() else pins.LEAK_TRIP_AC_UA
        if name == "leak_dc_ua":
            return 0 if self._leak_ok.value() else pins.LEAK_TRIP_DC_UA
        if name == "phase_ok":
            return self._supply.bit(1)
        if name == "supply_ok":
            return self._supply.bit(0)
        raise KeyError(name)


class Sd:
    def __init__(self):
        self.root = None
        self._ok = False
        try:
            import vfs

            # Blocks while the card initialises (up to ~1 s): at boot only,
            # before the control loop starts.
            card = machine.SDCard(slot=pins.SD_SLOT, sck=pins.SD_SCK, mosi=pins.SD_MOSI,
                                  miso=pins.SD_MISO, cs=pins.SD_CS)
            vfs.mount(card, pins.SD_MOUNT)
            self.root = pins.SD_MOUNT + "/"
            self._ok = True
        except (OSError, ValueError, ImportError):
            pass

    def ok(self):
        # Asked every control cycle (the supervisor's SDCardFailure): the last
        # probe's result, no I/O.
        return self._ok

    def probe(self):
        """Check the card now: statvfs goes through the card and allocates,
        and blocks while the card answers (a dying card: the driver's
        command timeouts). Called by the firmware's slow SD task every 2 s
        (firmware/app.py), never from the control step."""
        if self.root is None:
            return False
        try:
            import os

            os.statvfs(pins.SD_MOUNT)
            self._ok = True
        except OSError:
            self._ok = False
        return self._ok


class Flash:
    root = ""


class Clock:
    def now(self):
        return int(time.time()) + _EPOCH_OFFSET

    def set(self, epoch):
        t = time.gmtime(int(epoch) - _EPOCH_OFFSET)
        # RTC.datetime: (year, month, day, weekday, hour, minute, second, subseconds)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


class Net:
    """WiFi station: joins the network last configure()d. The port's WiFi
    driver rejoins it after a drop by itself (connect() requested, unlimited
    reconnects: the default); which network, and when to join again, is
    firmware/netmgr.py's alone (docs/network.md): nothing here switches."""

    def __init__(self):
        self._wlan = network.WLAN(network.STA_IF)
        # Blocks while the WiFi driver starts (~100 ms or more): in Board(),
        # at boot, before the control loop runs.
        self._wlan.active(True)

    def up(self):
        return self._wlan.isconnected()

    def rssi(self):
        # While disconnected status("rssi") raises (an exception object per
        # call), so it is asked only when connected; -127 = no signal.
        if not self._wlan.isconnected():
            return -127
        try:
            return self._wlan.status("rssi")
        except (OSError, ValueError):
            return -127

    def configure(self, ssid, password):
        try:
            self._wlan.disconnect()
        except OSError:
            pass
        # Returns at once (the association runs in the WiFi task); raises
        # OSError in some radio states ("Wifi Internal Error"): netmgr joins
        # again after 30 s down, so the error is not passed on.
        try:
            self._wlan.connect(ssid, password)
        except OSError:
            pass

    async def open(self, host, port, ssl_ctx=None, server_hostname=None):
        # The name is looked up by lib/dns (UDP, non-blocking, bounded: 2 x 2 s)
        # from the DNS server DHCP gave: asyncio.open_connection on a name
        # would call socket.getaddrinfo, which blocks the whole interpreter
        # -- control loop and fault supervisor included -- until the resolver
        # answers or gives up (seconds). Given the address, its getaddrinfo
        # returns at once, the TCP connect is non-blocking (EINPROGRESS) and
        # the TLS handshake runs in steps on the non-blocking socket (the
        # crypto of a step is CPU time: docs/hardware.md, "Blocking calls").
        if not self.up():
            raise OSError(101)  # ENETUNREACH
        from lib import dns

        ip = await dns.resolve(host, self._wlan.ifconfig()[3])
        if ssl_ctx is not None:
            # The certificate and SNI are checked against the name, not the address.
            return await asyncio.open_connection(ip, port, ssl=ssl_ctx,
                                                 server_hostname=server_hostname or host)
        return await asyncio.open_connection(ip, port)


class Wdt:
    def __init__(self):
        self._wdt = None

    def start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=int(timeout_ms))

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()


# BLE commissioning link: one GATT service with the Nordic UART layout
# (RX: the app writes request bytes; TX: answers notified), carrying the
# line protocol of firmware/commissioning.py (docs/commissioning.md).
_NUS = "6E400001-B5A3-F393-E0A9-E50E24DCCA9E"
_NUS_RX = "6E400002-B5A3-F393-E0A9-E50E24DCCA9E"
_NUS_TX = "6E400003-B5A3-F393-E0A9-E50E24DCCA9E"
_IRQ_CONNECT = 1
_IRQ_DISCONNECT = 2
_IRQ_WRITE = 3
_IRQ_MTU = 21
_F_READ = 0x02
_F_WRITE_NR = 0x04
_F_WRITE = 0x08
_F_NOTIFY = 0x10
BLE_RX_MAX = 1024  # received bytes kept until recv(); more is dropped


class Ble:
    """One central at a time. The bluetooth IRQ handler (a scheduled
    callback on the ESP32 port) only records; the firmware polls linked()
    and recv(). One call blocks: start() (BLE().active(True) starts the
    NimBLE host, ~100 ms or more, and registers the service), done by
    Board() at boot, before the control loop runs. The others return at once."""

    def __init__(self):
        self._ble = None
        self._name = None
        self._conn = None
        self._mtu = 23
        self._rx = bytearray()
        self._tx_h = self._rx_h = None

    def _radio(self):
        if self._ble is None:
            # Blocks ~100 ms or more (the NimBLE host starts): Board() calls
            # it at boot, before the control loop (start()).
            import bluetooth

            b = bluetooth.BLE()
            b.active(True)
            b.irq(self._irq)
            svc = (bluetooth.UUID(_NUS), ((bluetooth.UUID(_NUS_TX), _F_READ | _F_NOTIFY),
                                          (bluetooth.UUID(_NUS_RX), _F_WRITE | _F_WRITE_NR)))
            ((self._tx_h, self._rx_h),) = b.gatts_register_services((svc,))
            b.gatts_set_buffer(self._rx_h, 256, True)  # append writes between IRQs
            self._ble = b
        return self._ble

    def start(self):
        try:
            self._radio()
        except OSError:  # the radio would not start: retried when advertising
            pass

    def _irq(self, event, data):
        if event == _IRQ_CONNECT:
            if self._conn is None:
                self._conn = data[0]
                self._mtu = 23
                self._rx = bytearray()
        elif event == _IRQ_DISCONNECT:
            if data[0] == self._conn:
                self._conn = None
            if self._conn is None:
                self._advertise()  # advertising stops on a connection
        elif event == _IRQ_WRITE:
            b = self._ble
            h = self._rx_h
            if b is not None and h is not None and data[0] == self._conn and data[1] == h:
                v = b.gatts_read(h)
                if len(self._rx) + len(v) <= BLE_RX_MAX:
                    self._rx.extend(v)
        elif event == _IRQ_MTU:
            if data[0] == self._conn:
                self._mtu = data[1]

    def _advertise(self):
        if self._name is None:
            return
        n = self._name.encode()[:26]
        payload = bytes((2, 0x01, 0x06, len(n) + 1, 0x09)) + n  # flags, complete local name
        self._radio().gap_advertise(100000, payload)  # adv_data

    def advertise(self, name):
        self._name = name
        self._advertise()

    def stop(self):
        self._name = None
        if self._ble is not None:
            # interval_us None stops advertising (MicroPython docs, BLE.gap_advertise);
            # the stubs type it as int only.
            self._ble.gap_advertise(None)  # pyright: ignore[reportArgumentType]

    def linked(self):
        return self._conn is not None

    def recv(self):
        d = self._rx  # swap first: an IRQ between the lines appends to d
        self._rx = bytearray()
        return bytes(d) if d else None

    def send(self, data):
        """Notify data to the central in MTU-sized pieces; False if not sent."""
        conn = self._conn
        b = self._ble
        if conn is None or b is None:
            return False
        step = self._mtu - 3
        mv = memoryview(data)
        try:
            for i in range(0, len(data), step):
                # gatts_notify(conn_handle, value_handle, data) (MicroPython docs);
                # the stubs leave out conn_handle.
                b.gatts_notify(conn, self._tx_h, mv[i:i + step])  # pyright: ignore[reportCallIssue]
        except OSError:
            return False  # link gone or the stack's queue full: the app asks again
        return True

    def drop(self):
        conn = self._conn
        if conn is not None:
            # Not linked from now on (the DISCONNECT IRQ comes later): the
            # firmware does not start a new session on the dying link.
            self._conn = None
            try:
                if self._ble is not None:
                    self._ble.gap_disconnect(conn)
            except OSError:
                pass


_CAUSES = {
    machine.PWRON_RESET: "power",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.SOFT_RESET: "soft",
    machine.DEEPSLEEP_RESET: "power",
}


class System:
    def reset(self):
        machine.reset()

    def unique_id(self):
        return binascii.hexlify(machine.unique_id()).decode().upper()

    def reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "hard")


class Board:
    PER_USE = ()  # modules loaded per use and dropped (lib/transient.warm): none

    def __init__(self):
        fb = Ladder(pins.FB_ADC)
        self.relay = Relay(fb)
        self.lock = Lock(fb)
        self.pilot = Pilot()
        self.meter_uart = MeterUart()
        self.rfid = _rfid()
        self.signal = Signal()
        self.button = Button()
        self.sensors = Sensors()
        self.sd = Sd()
        self.flash = Flash()
        self.clock = Clock()
        self.net = Net()
        self.wdt = Wdt()
        self.ble = Ble()
        self.ble.start()  # blocks ~100 ms: at boot, before the control loop
        self.system = System()
        self._ms = -1  # armed wait_input: its sleep, not yet started
        self.pilot.sample()

    def wait_input(self, ms):
        """`await board.wait_input(ms)`: sleeps min(ms, POLL_MS), then
        services the timed outputs and samples the pilot. Returns the board
        as a preallocated awaitable (no coroutine per call): await it at once,
        do not wrap it in create_task/wait_for."""
        self._ms = min(ms, POLL_MS)
        return self

    def __iter__(self):
        return self

    def __next__(self):
        ms = self._ms
        if ms >= 0:
            # First step: asyncio's sleep_ms singleton queues the task at the
            # deadline and yields.
            self._ms = -1
            # MicroPython's sleep_ms returns a singleton generator, not a
            # coroutine as the stubs (after CPython) declare.
            return next(asyncio.sleep_ms(ms))  # pyright: ignore[reportArgumentType]
        # Resumed after the sleep.
        now = time.ticks_ms()
        self.lock.service(now)
        self.signal.service(now)
        self.pilot.sample()
        _STOP.__traceback__ = None
        raise _STOP
