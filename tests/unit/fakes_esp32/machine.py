"""machine, as the MicroPython ESP32 docs describe it (Pin, ADC, PWM, UART,
SPI, SDCard, RTC, WDT, reset causes), for the plain ESP32 (the JOLT board):
GPIOs that do not exist or are the flash are refused, 34-39 are inputs
without pull resistors, ADC only on ADC1/ADC2 pins and ADC2 unreadable while
WiFi is on, UART1's default pins are the flash, an SPI host is taken by
either machine.SPI or machine.SDCard. `world` is the test side."""
import errno
import time

# ESP32 GPIOs: 0-39 less 20, 24, 28-31; 6-11 are the SPI flash.
GPIOS = frozenset(set(range(40)) - {20, 24, 28, 29, 30, 31})
FLASH = frozenset(range(6, 12))
INPUT_ONLY = frozenset(range(34, 40))
ADC1 = frozenset(range(32, 40))
ADC2 = frozenset((0, 2, 4, 12, 13, 14, 15, 25, 26, 27))
# machine.SPI(1) is the HSPI host, machine.SPI(2) the VSPI host; SDCard
# slot 2 uses VSPI, slot 3 HSPI (ports/esp32/machine_sdcard.c).
_SD_HOST = {2: 2, 3: 1}


def _gpio(num, output=False):
    """A pin number the ESP32 can use (ValueError as the port raises)."""
    if isinstance(num, Pin):
        num = num.id
    if not isinstance(num, int) or num not in GPIOS or num in FLASH:
        raise ValueError("invalid pin")
    if output and num in INPUT_ONLY:
        raise ValueError("pin can only be input")
    return num


def _wifi_on():
    import sys
    net = sys.modules.get("network")
    return any(w.active() for w in getattr(net, "wlans", ()))


class World:
    def reset(self):
        self.levels = {}        # input pin -> level
        self.outputs = {}       # output pin -> level
        self.writes = []        # (pin, level) of every output write, in order
        self.adc_uv = {}        # pin -> microvolts (or a callable returning them)
        self.pwms = {}          # pin -> PWM
        self.uarts = {}         # id -> UART
        self.spis = {}          # id -> SPI
        self.spi_devices = {}   # id -> callable(bytes out) -> bytes in, or None: nothing on the bus
        self.spi_hosts = {}     # SPI host id (1 HSPI, 2 VSPI) -> "SPI" or "SDCard" that took it
        self.sd_present = True
        self.sd_dead_after_mount = False
        self.wdt = None
        self.resets = 0
        self.cause = PWRON_RESET
        self.uid = b"\x24\x6f\x28\xaa\xbb\xcc"
        self.rtc = None
        self.bitstreams = []


world = World()


def _fake_reset():
    world.reset()


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = _gpio(id)
        self.mode = None
        self.pull = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN):
                _gpio(self.id, output=True)
            self.mode = mode
        if pull != -1:
            if pull is not None and self.id in INPUT_ONLY:
                # no pull resistors on 34-39 (the port ignores the request:
                # a board relying on one would float)
                raise ValueError("GPIO%d has no pull resistors" % self.id)
            self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, x=None):
        if x is None:
            if self.mode == Pin.OUT:
                return world.outputs.get(self.id, 0)
            default = 1 if self.pull == Pin.PULL_UP else 0
            return world.levels.get(self.id, default)
        x = 1 if x else 0
        _gpio(self.id, output=True)
        world.outputs[self.id] = x
        world.writes.append((self.id, x))
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, *, atten=None):
        self.pin = pin.id if isinstance(pin, Pin) else pin
        if self.pin not in ADC1 and self.pin not in ADC2:
            raise ValueError("invalid Pin for ADC")
        self.atten_ = atten
        self.reads = 0

    def atten(self, a):
        self.atten_ = a

    def read_uv(self):
        if self.pin in ADC2 and _wifi_on():
            raise OSError(errno.ETIMEDOUT, "ADC2 is in use by WiFi")
        self.reads += 1
        v = world.adc_uv.get(self.pin, 0)
        return int(v() if callable(v) else v)

    def read_u16(self):
        return min(65535, self.read_uv() * 65535 // 3100000)


class PWM:
    def __init__(self, dest, *, freq=None, duty_u16=None, duty_ns=None):
        self.pin = _gpio(dest, output=True)
        self._freq = freq
        self._duty = duty_u16 if duty_u16 is not None else 0
        self.active = True
        world.pwms[self.pin] = self

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        self._duty = d

    def deinit(self):
        self.active = False
        world.pwms.pop(self.pin, None)


class UART:
    """read()/readinto() return None when nothing arrived within the
    timeout (docs: "None on timeout"), never b""."""

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 timeout=0, rxbuf=256, **kw):
        if id not in (0, 1, 2):
            raise ValueError("UART(%d) does not exist" % id)
        # Pins not given keep the port's defaults (UART1: TX 10, RX 9, the
        # flash); -1 leaves the signal unrouted.
        tx = _DEFAULT_UART[id][0] if tx is None else tx
        rx = _DEFAULT_UART[id][1] if rx is None else rx
        if tx != -1:
            tx = _gpio(tx, output=True)
        if rx != -1:
            rx = _gpio(rx)
        self.id = id
        self.config = dict(baudrate=baudrate, bits=bits, parity=parity, stop=stop, tx=tx, rx=rx,
                           timeout=timeout, rxbuf=rxbuf)
        self.rx = bytearray()
        self.tx = bytearray()
        self.flushed = 0
        self.on_write = None  # test side: callable(uart, data)
        self.shifting = False  # test side: the last write still going out (txdone() False)
        self.tx_done_at = 0.0  # time.monotonic() when the last write's stop bit leaves (11 bits a byte)
        world.uarts[id] = self

    def write(self, buf):
        t = max(time.monotonic(), self.tx_done_at)
        self.tx_done_at = t + len(buf) * 11 / self.config["baudrate"]
        self.tx += bytes(buf)
        if self.on_write is not None:
            self.on_write(self, bytes(buf))
        return len(buf)

    def flush(self):
        # blocks until the last stop bit has left (up to 1 s on the port)
        self.flushed += 1
        self.shifting = False
        self.tx_done_at = 0.0

    def txdone(self):
        # never waits (ports/esp32: uart_wait_tx_done(uart, 0))
        return not self.shifting and time.monotonic() >= self.tx_done_at

    def any(self):
        return len(self.rx)

    def read(self, n=None):
        if not self.rx:
            return None
        n = len(self.rx) if n is None else n
        d = bytes(self.rx[:n])
        del self.rx[:n]
        return d

    def readinto(self, buf, nbytes=None):
        if not self.rx:
            return None
        n = min(len(buf), len(self.rx) if nbytes is None else nbytes, len(self.rx))
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    # test side
    def feed(self, data):
        self.rx += bytes(data)


_DEFAULT_UART = {0: (1, 3), 1: (10, 9), 2: (17, 16)}


def _take_host(host, what):
    if world.spi_hosts.get(host, what) != what:
        raise OSError("SPI host already in use")
    world.spi_hosts[host] = what


class SPI:
    """A device answers through world.spi_devices[id](out) -> in; with none
    the MISO line floats and reads 0xFF. world.spi_devices[id] = "error":
    the bus raises OSError(EIO)."""

    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        if id not in (1, 2):
            raise ValueError("SPI(%d) doesn't exist" % id)
        for p, out in ((sck, True), (mosi, True), (miso, False)):
            if p is not None:
                _gpio(p, output=out)
        _take_host(id, "SPI")
        self.id = id
        self.baudrate = baudrate
        world.spis[id] = self

    def _xfer(self, out):
        dev = world.spi_devices.get(self.id)
        if dev == "error":
            raise OSError(errno.EIO, "SPI transfer failed")
        if dev is None:
            return b"\xff" * len(out)
        return dev(bytes(out))

    def write(self, buf):
        self._xfer(buf)

    def read(self, n, write=0):
        return self._xfer(bytes([write]) * n)

    def readinto(self, buf, write=0):
        buf[:] = self._xfer(bytes([write]) * len(buf))

    def write_readinto(self, out, into):
        if len(out) != len(into):
            raise ValueError("buffers must be the same length")
        into[:] = self._xfer(out)


class SDCard:
    def __init__(self, slot=1, width=1, cd=None, wp=None, sck=None, miso=None, mosi=None, cs=None, freq=20000000):
        if slot not in (1, 2, 3):
            raise ValueError("invalid slot number")
        for p, out in ((sck, True), (mosi, True), (cs, True), (miso, False)):
            if p is not None:
                _gpio(p, output=out)
        if slot in _SD_HOST:
            _take_host(_SD_HOST[slot], "SDCard")
        self.slot = slot

    def readblocks(self, n, buf):
        if not world.sd_present or world.sd_dead_after_mount:
            raise OSError(errno.EIO)

    def ioctl(self, op, arg):
        if not world.sd_present:
            raise OSError(errno.ENODEV if hasattr(errno, "ENODEV") else 19)
        return 0


class RTC:
    def datetime(self, t=None):
        if t is None:
            return world.rtc
        world.rtc = tuple(t)


class WDT:
    """Once created it cannot be stopped; a second WDT() reconfigures the timeout."""

    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        self.timeout = timeout
        self.fed = time.monotonic()
        world.wdt = self

    def feed(self):
        self.fed = time.monotonic()


def unique_id():
    return world.uid


def reset():
    world.resets += 1
    raise SystemExit("machine.reset()")


def reset_cause():
    return world.cause


def bitstream(pin, encoding, timing, buf):
    _gpio(pin, output=True)
    world.bitstreams.append((pin.id, bytes(buf)))


def freq(hz=None):
    return 240000000


_fake_reset()
