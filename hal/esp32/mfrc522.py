# MFRC522 13.56 MHz card reader on SPI (NXP MFRC522 datasheet rev 3.9):
# ISO 14443A wake-up (WUPA) and cascade-level-1 anticollision give a card's
# 4-byte UID. A reader that does not answer (VersionReg not 0x9x, or the bus
# raising OSError) is not ok(): the guide's ReaderFailure.
#
# Never blocks for more than a few milliseconds: the chip's own timer ends a
# transceive after ~5 ms, and the wait for it is bounded by WAIT_MS as well.
# poll() talks to the chip at most every POLL_MS (the control loop asks every
# cycle); the health check reads VersionReg every CHECK_MS.
import time

_COMMAND = 0x01
_COM_IRQ = 0x04
_ERROR = 0x06
_FIFO_DATA = 0x09
_FIFO_LEVEL = 0x0A
_BIT_FRAMING = 0x0D
_MODE = 0x11
_TX_CONTROL = 0x14
_TX_ASK = 0x15
_T_MODE = 0x2A
_T_PRESCALER = 0x2B
_T_RELOAD_H = 0x2C
_T_RELOAD_L = 0x2D
_VERSION = 0x37
_IDLE = 0x00
_TRANSCEIVE = 0x0C
_SOFT_RESET = 0x0F
_WUPA = 0x52
VERSIONS = (0x88, 0x90, 0x91, 0x92, 0xB2)  # FM17522 clone, MFRC522 v0/v1/v2, ... (datasheet 9.3.4.8)
POLL_MS = 100
CHECK_MS = 1000
WAIT_MS = 8
GONE_MS = 600  # no answer this long: the card has left the field


class Mfrc522:
    def __init__(self, spi, cs, rst=None):
        """spi: a machine.SPI (mode 0, <= 10 MHz); cs: an output Pin, high;
        rst: the NRSTPD output Pin, high (or None when tied high)."""
        self._spi = spi
        self._cs = cs
        self._rst = rst
        self._b2 = bytearray(2)   # register access
        self._cmd = bytearray(2)  # frame to send (not _b2: _w() reuses that)
        self._r2 = bytearray(2)
        self._fifo = bytearray(8)
        self._ok = False
        self._ready = False  # chip initialised
        self._next = time.ticks_ms()
        self._check = time.ticks_ms()
        self._uid = None
        self._seen = 0
        self._health()

    # ---- registers
    def _w(self, reg, val):
        b = self._b2
        b[0] = (reg << 1) & 0x7E
        b[1] = val
        self._cs(0)
        try:
            self._spi.write(b)
        finally:
            self._cs(1)

    def _r(self, reg):
        b = self._b2
        b[0] = ((reg << 1) & 0x7E) | 0x80
        b[1] = 0
        self._cs(0)
        try:
            self._spi.write_readinto(b, self._r2)
        finally:
            self._cs(1)
        return self._r2[1]

    def _init(self):
        self._w(_COMMAND, _SOFT_RESET)
        t = time.ticks_ms()
        while self._r(_COMMAND) & 0x10:  # PowerDown bit: the reset is done when it clears
            if time.ticks_diff(time.ticks_ms(), t) > WAIT_MS:
                raise OSError(110)  # ETIMEDOUT
        self._w(_T_MODE, 0x8D)       # timer starts after each transmission; prescaler hi 0xD
        self._w(_T_PRESCALER, 0x3E)  # 13.56 MHz / (2 * 0xD3E + 1) = 2 kHz
        self._w(_T_RELOAD_H, 0)
        self._w(_T_RELOAD_L, 10)     # 10 ticks: a transceive ends after 5 ms
        self._w(_TX_ASK, 0x40)       # 100 % ASK
        self._w(_MODE, 0x3D)         # CRC preset 0x6363
        self._w(_TX_CONTROL, self._r(_TX_CONTROL) | 0x03)  # antenna on

    def _health(self):
        try:
            ok = self._r(_VERSION) in VERSIONS
            if ok and not self._ready:
                self._init()
                self._ready = True
        except OSError:
            ok = False
        if not ok:
            self._ready = False  # a reader that comes back is initialised again
        self._ok = ok

    # ---- ISO 14443A
    def _transceive(self, data, n, bits):
        """Send data[:n] (last byte: bits bits, 0 = 8); bytes received, -1 if none."""
        self._w(_COMMAND, _IDLE)
        self._w(_COM_IRQ, 0x7F)
        self._w(_FIFO_LEVEL, 0x80)  # flush
        for i in range(n):
            self._w(_FIFO_DATA, data[i])
        self._w(_BIT_FRAMING, bits)
        self._w(_COMMAND, _TRANSCEIVE)
        self._w(_BIT_FRAMING, bits | 0x80)  # StartSend
        t = time.ticks_ms()
        while True:
            irq = self._r(_COM_IRQ)
            if irq & 0x30:  # RxIRq or IdleIRq
                break
            if irq & 0x01 or time.ticks_diff(time.ticks_ms(), t) > WAIT_MS:  # TimerIRq: no card
                self._w(_BIT_FRAMING, 0)
                return -1
        self._w(_BIT_FRAMING, 0)
        if self._r(_ERROR) & 0x1B:  # BufferOvfl, ParityErr, ProtocolErr, CollErr
            return -1
        got = self._r(_FIFO_LEVEL)
        if got > len(self._fifo):
            got = len(self._fifo)
        for i in range(got):
            self._fifo[i] = self._r(_FIFO_DATA)
        return got

    def _read_uid(self):
        b = self._cmd
        b[0] = _WUPA
        if self._transceive(b, 1, 7) != 2:  # ATQA
            return None
        b[0] = 0x93  # anticollision, cascade level 1
        b[1] = 0x20
        if self._transceive(b, 2, 0) != 5:
            return None
        f = self._fifo
        if f[0] ^ f[1] ^ f[2] ^ f[3] ^ f[4]:
            return None  # BCC wrong
        return "%02X%02X%02X%02X" % (f[0], f[1], f[2], f[3])

    # ---- HAL interface
    def poll(self):
        now = time.ticks_ms()
        if time.ticks_diff(now, self._check) >= CHECK_MS:
            self._check = now
            self._health()
        if not self._ok or time.ticks_diff(now, self._next) < 0:
            return None
        self._next = time.ticks_add(now, POLL_MS)
        try:
            uid = self._read_uid()
        except OSError:
            self._ok = False
            return None
        if uid is None:
            if self._uid is not None and time.ticks_diff(now, self._seen) > GONE_MS:
                self._uid = None
            return None
        self._seen = now
        if uid == self._uid:
            return None  # the same card still in the field: one presentation
        self._uid = uid
        return uid

    def ok(self):
        return self._ok
