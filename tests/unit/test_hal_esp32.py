"""hal/esp32 on CPython against fakes of machine, network, esp32, bluetooth
and vfs (tests/unit/fakes_esp32) that behave as the MicroPython docs say,
failure modes included. What is checked is what the board's pins, buses and
radio see, and what the HAL reports to the firmware."""
import asyncio
import os
import time

import pytest

from tests.unit import fakes_esp32
from tests.unit.fakes_esp32 import bluetooth as fbt
from tests.unit.fakes_esp32 import network as fnet

UV_PLUS_12V = 3100000  # pins: 1.6 V = 0 V, 8 mV of pilot per ADC mV
UV_MINUS_12V = 100000


@pytest.fixture
def hw():
    with fakes_esp32.installed() as world:
        from hal.esp32 import board as B
        from hal.esp32 import pins as P
        world.adc_uv[P.PILOT_ADC] = UV_PLUS_12V  # pilot: state A
        yield world, B, P


def make(hw):
    world, B, P = hw
    return world, B.Board(), P


def contact(world, P, adc, bit, closed):
    """Open or close one of the two contacts of a resistor ladder (pins.LADDER_*)."""
    i = (world.adc_uv.get(adc, 0) - P.LADDER_ZERO_UV + P.LADDER_STEP_UV // 2) // P.LADDER_STEP_UV
    i = max(0, min(3, i))
    i = i | (1 << bit) if closed else i & ~(1 << bit)
    world.adc_uv[adc] = P.LADDER_ZERO_UV + i * P.LADDER_STEP_UV + 40000  # + ADC error


# ---- contactor, lock, pilot ------------------------------------------------

def test_relay_drives_the_coil_and_reads_the_auxiliary_contact(hw):
    world, b, P = make(hw)
    assert world.outputs[P.RELAY] == 0  # open at power-up
    b.relay.set(True)
    assert world.outputs[P.RELAY] == 1
    contact(world, P, P.FB_ADC, 0, False)
    assert b.relay.closed() is False  # welded open / coil dead: the supervisor compares
    contact(world, P, P.FB_ADC, 0, True)
    assert b.relay.closed() is True
    contact(world, P, P.FB_ADC, 1, True)  # the lock switch on the same ladder
    assert b.relay.closed() is True and b.lock.locked() is True
    contact(world, P, P.FB_ADC, 0, False)
    assert b.relay.closed() is False and b.lock.locked() is True
    world.adc_uv[P.FB_ADC] = 0  # open wire: contactor open, not locked
    assert b.relay.closed() is False and b.lock.locked() is False
    b.relay.set(False)
    assert world.outputs[P.RELAY] == 0


def test_lock_motor_stops_when_the_end_switch_closes(hw):
    world, b, P = make(hw)
    now = time.ticks_ms()
    b.lock.set(True)
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (1, 0)
    b.lock.service(time.ticks_add(now, 40))
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (1, 0)  # not there yet
    contact(world, P, P.FB_ADC, 1, True)  # the lock reaches its end stop
    b.lock.service(time.ticks_add(now, 80))
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (0, 0)  # braked at once, not after 300 ms
    assert b.lock.locked() is True
    b.lock.set(False)  # unlocking: the switch opening is not the end stop: the pulse runs
    contact(world, P, P.FB_ADC, 1, False)
    b.lock.service(time.ticks_add(time.ticks_ms(), 40))
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (0, 1)
    b.lock.service(time.ticks_add(time.ticks_ms(), P.LOCK_PULSE_MS + 5))
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (0, 0)


def test_lock_motor_pulse_ends_after_its_drive_time(hw):
    world, b, P = make(hw)
    b.lock.set(True)
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (1, 0)
    now = time.ticks_ms()
    b.lock.service(time.ticks_add(now, P.LOCK_PULSE_MS // 2))
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (1, 0)  # still driving
    b.lock.service(time.ticks_add(now, P.LOCK_PULSE_MS + 5))
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (0, 0)  # drive timeout: brake
    contact(world, P, P.FB_ADC, 1, True)
    assert b.lock.locked() is True
    b.lock.set(False)
    assert (world.outputs[P.LOCK_A], world.outputs[P.LOCK_B]) == (0, 1)
    contact(world, P, P.FB_ADC, 1, False)
    assert b.lock.locked() is False


def test_pilot_pwm_at_1khz_and_steady_levels(hw):
    world, b, P = make(hw)
    assert world.outputs[P.PILOT_PWM] == 1 and P.PILOT_PWM not in world.pwms  # +12 V, no PWM
    b.pilot.set_duty(50)
    pwm = world.pwms[P.PILOT_PWM]
    assert pwm.freq() == 1000 == P.PILOT_FREQ
    assert pwm.duty_u16() == 32767
    b.pilot.set_duty(16)  # 9.6 A
    assert world.pwms[P.PILOT_PWM] is pwm and pwm.duty_u16() == 16 * 65535 // 100
    b.pilot.set_duty(0)  # state F: steady -12 V
    assert P.PILOT_PWM not in world.pwms and world.outputs[P.PILOT_PWM] == 0
    b.pilot.set_duty(None)
    assert world.outputs[P.PILOT_PWM] == 1
    assert b.pilot.duty() is None


def test_pilot_adc_sees_both_plateaus_of_the_waveform(hw):
    world, b, P = make(hw)
    phase = {"n": 0}

    def waveform():  # 9 V high plateau (state B), -12 V low plateau
        phase["n"] += 1
        return 1600000 + 9000 * 1000 // 8 if phase["n"] % 3 else UV_MINUS_12V

    world.adc_uv[P.PILOT_ADC] = waveform
    b.pilot.set_duty(50)
    b.pilot.sample()
    assert b.pilot.high_mv() == 9000
    assert b.pilot.low_mv() == -12000


@pytest.mark.parametrize("duty", [10, 53, 96])
@pytest.mark.parametrize("conv_us", [12, 25, 38, 55])
def test_pilot_burst_catches_both_plateaus_whatever_the_phase(hw, monkeypatch, duty, conv_us):
    """A fake ADC that models time: each conversion takes conv_us (+ up to 3 us
    of jitter) and returns the pilot level at that instant of the 1 kHz PWM
    (state C: +6 V / -12 V). From any phase the burst sees the 100 us high
    plateau at 10 % and the 40 us low plateau at 96 % duty."""
    import random
    world, b, P = make(hw)
    b.pilot.set_duty(duty)
    pwm = world.pwms[P.PILOT_PWM]
    period = 1000000 // pwm.freq()
    high_us = pwm.duty_u16() * period // 65535
    rnd = random.Random(duty * 1000 + conv_us)
    now = [0]
    monkeypatch.setattr(time, "ticks_us", lambda: now[0])
    reads = [0]

    def adc():
        now[0] += conv_us + rnd.randrange(4)
        reads[0] += 1
        high = (now[0] % period) < high_us
        return 1600000 + (6000 if high else -12000) * 1000 // 8

    world.adc_uv[P.PILOT_ADC] = adc
    for _ in range(20):
        now[0] += rnd.randrange(period)  # any phase
        reads[0] = 0
        b.pilot.sample()
        assert (b.pilot.high_mv(), b.pilot.low_mv()) == (6000, -12000), (duty, conv_us, now[0])
        assert reads[0] <= P.PILOT_SAMPLES_MAX


def test_pilot_burst_is_bounded_in_time_and_reads(hw, monkeypatch):
    world, b, P = make(hw)
    now = [0]
    monkeypatch.setattr(time, "ticks_us", lambda: now[0])

    def adc(step):
        def read():
            now[0] += step
            return UV_PLUS_12V
        return read

    world.adc_uv[P.PILOT_ADC] = adc(40)
    b.pilot.sample()
    assert P.PILOT_BURST_US <= now[0] <= P.PILOT_BURST_US + 40  # two periods, then stop
    now[0] = 0
    world.adc_uv[P.PILOT_ADC] = adc(1)  # very fast reads: the count bounds it
    b.pilot.sample()
    assert now[0] == P.PILOT_SAMPLES_MAX


# ---- meter RS-485 ------------------------------------------------------------

def test_rs485_direction_pin_around_a_transmission(hw):
    world, b, P = make(hw)
    b.meter_uart.init(9600, 8, 2, 1)
    u = world.uarts[P.METER_UART]
    assert u.config["parity"] == 0 and u.config["baudrate"] == 9600  # machine: 0 = even
    seen = []

    def on_write(uart, data):
        seen.append(world.outputs[P.METER_DE])
        uart.shifting = True  # the frame takes ~9 ms on the wire

    u.on_write = on_write
    buf = bytearray(16)
    assert b.meter_uart.write(b"\x01\x03\x00\x00\x00\x02\xc4\x0b") == 8
    assert seen == [1]  # driver enabled while the bytes go out
    assert u.flushed == 0  # nothing waited for the frame (UART.flush blocks the event loop)
    assert world.outputs[P.METER_DE] == 1  # still going out
    assert b.meter_uart.readinto(buf) == 0 and b.meter_uart.any() == 0  # Modbus polls (every 2 ms)
    assert world.outputs[P.METER_DE] == 1  # txdone() False: the driver stays on
    u.shifting = False  # the last stop bit has left
    u.tx_done_at = 0.0
    assert b.meter_uart.readinto(buf) == 0
    assert world.outputs[P.METER_DE] == 0  # receiving again, at the first poll after txdone()
    u.feed(b"\x01\x03\x04")
    assert b.meter_uart.readinto(buf) == 3
    de = [lvl for pin, lvl in world.writes if pin == P.METER_DE]
    assert de[-2:] == [1, 0]
    assert u.config["rxbuf"] >= 256


def test_rs485_read_with_nothing_received_is_zero_not_none(hw):
    world, b, P = make(hw)
    b.meter_uart.init(9600)
    u = world.uarts[P.METER_UART]
    buf = bytearray(16)
    assert u.readinto(buf) is None  # the port's answer on timeout
    assert b.meter_uart.readinto(buf) == 0
    assert b.meter_uart.any() == 0
    u.feed(b"\x01\x03\x04")
    assert b.meter_uart.any() == 3
    assert b.meter_uart.readinto(buf) == 3 and bytes(buf[:3]) == b"\x01\x03\x04"


def test_rs485_any_before_init_is_zero(hw):
    world, b, P = make(hw)
    assert b.meter_uart.any() == 0


# ---- RFID: MFRC522 on SPI ------------------------------------------------------

class Mfrc522Chip:
    """Register-level MFRC522: VersionReg, FIFO, Transceive of WUPA and
    anticollision with a card in the field or none."""

    def __init__(self, version=0x92):
        self.regs = {0x37: version, 0x01: 0x00, 0x04: 0, 0x06: 0, 0x14: 0x80}
        self.fifo = []
        self.card = None  # 4-byte UID
        self.sent = []

    def __call__(self, out):
        addr = out[0]
        reg = (addr >> 1) & 0x3F
        if addr & 0x80:  # read
            if reg == 0x09:
                return bytes([0, self.fifo.pop(0) if self.fifo else 0])
            if reg == 0x0A:
                return bytes([0, len(self.fifo)])
            return bytes([0, self.regs.get(reg, 0)])
        val = out[1]
        if reg == 0x09:
            self.fifo.append(val)
        elif reg == 0x0A and val & 0x80:
            self.fifo = []
        elif reg == 0x04:
            self.regs[0x04] &= ~val & 0x7F
        elif reg == 0x01 and val == 0x0F:
            self.regs[0x01] = 0x00  # soft reset done at once
        elif reg == 0x0D and val & 0x80 and self.regs.get(0x01) == 0x0C:
            self._transceive()
        else:
            self.regs[reg] = val
        return bytes(2)

    def _transceive(self):
        req = bytes(self.fifo)
        self.sent.append(req)
        self.fifo = []
        if self.card is None:
            self.regs[0x04] = 0x01  # TimerIRq: nobody answered
            return
        if req == b"\x52":
            self.fifo = [0x04, 0x00]  # ATQA
        elif req == b"\x93\x20":
            u = self.card
            self.fifo = list(u) + [u[0] ^ u[1] ^ u[2] ^ u[3]]
        self.regs[0x04] = 0x30


@pytest.fixture
def chip(hw):
    world, B, P = hw
    c = Mfrc522Chip()
    world.spi_devices[P.RFID_SPI] = c
    return c


def later(monkeypatch, ms):
    t = time.ticks_ms()
    monkeypatch.setattr(time, "ticks_ms", lambda: time.ticks_add(t, ms))


def test_mfrc522_card_reported_once_per_presentation(hw, chip, monkeypatch):
    world, b, P = make(hw)
    assert b.rfid.ok() is True
    assert chip.regs[0x14] & 0x03 == 0x03  # antenna on after init
    assert b.rfid.poll() is None
    chip.card = b"\x04\xab\x12\xcd"
    later(monkeypatch, 200)
    assert b.rfid.poll() == "04AB12CD"
    later(monkeypatch, 400)
    assert b.rfid.poll() is None  # still the same card in the field
    chip.card = None
    later(monkeypatch, 1200)
    b.rfid.poll()
    chip.card = b"\x04\xab\x12\xcd"
    later(monkeypatch, 1400)
    assert b.rfid.poll() == "04AB12CD"  # taken away and presented again


def test_mfrc522_polls_the_chip_at_most_every_poll_ms(hw, chip, monkeypatch):
    world, b, P = make(hw)
    from hal.esp32 import mfrc522
    later(monkeypatch, 500)
    for _ in range(50):  # the control loop asks every cycle
        b.rfid.poll()
    assert len(chip.sent) == 1
    later(monkeypatch, 500 + mfrc522.POLL_MS)
    b.rfid.poll()
    assert len(chip.sent) == 2


def test_dead_mfrc522_is_reader_failure(hw):
    world, B, P = hw
    world.spi_devices[P.RFID_SPI] = None  # nothing answers: MISO floats high
    b = B.Board()
    assert b.rfid.ok() is False  # the supervisor's ReaderFailure (tests/unit/test_supervisor.py)
    assert b.rfid.poll() is None


def test_mfrc522_spi_oserror_is_reader_failure_and_recovery(hw, chip, monkeypatch):
    world, b, P = make(hw)
    assert b.rfid.ok()
    world.spi_devices[P.RFID_SPI] = "error"  # the bus raises OSError(EIO)
    later(monkeypatch, 200)
    assert b.rfid.poll() is None
    assert b.rfid.ok() is False
    world.spi_devices[P.RFID_SPI] = chip  # reader replaced / reconnected
    from hal.esp32 import mfrc522
    later(monkeypatch, 200 + mfrc522.CHECK_MS)
    b.rfid.poll()
    assert b.rfid.ok() is True


# ---- RFID: ASCII serial reader (RFID_KIND "ascii") --------------------------------

def test_ascii_reader_with_uart_read_none(hw, monkeypatch):
    world, B, P = hw
    monkeypatch.setattr(P, "RFID_KIND", "ascii")
    b = B.Board()
    u = world.uarts[P.RFID_UART]
    assert b.rfid.poll() is None  # UART.readinto() -> None: nothing
    tag = b"0415A2B3C4"
    x = 0
    for i in range(0, 10, 2):
        x ^= int(tag[i:i + 2], 16)
    u.feed(b"\x02" + tag + b"%02X" % x + b"\x03")
    assert b.rfid.poll() == "0415A2B3C4"
    assert b.rfid.ok() is True


# ---- network -------------------------------------------------------------------

def test_wlan_primary_connects_and_rssi_only_when_connected(hw):
    world, b, P = make(hw)
    w = fnet.wlans[-1]
    assert w.active() is True
    assert b.net.up() is False
    assert b.net.rssi() == -127  # status("rssi") raises while not connected: not asked
    fnet.aps["depot"] = {"password": "pw-depot", "rssi": -67}
    b.net.configure("depot", "pw-depot")
    assert w.connects[-1] == ("depot", "pw-depot")
    assert w.status() == fnet.STAT_CONNECTING and b.net.up() is False
    w.step()
    assert w.status() == fnet.STAT_GOT_IP
    assert b.net.up() is True and b.net.rssi() == -67


def run_board(b, monkeypatch, seconds):
    """Board.wait_input() as the control loop awaits it, every POLL_MS, over
    `seconds` of ticks (the sleep itself is skipped)."""
    import asyncio as aio
    now = [time.ticks_ms()]
    monkeypatch.setattr(time, "ticks_ms", lambda: now[0])

    def sleep_ms(ms):
        now[0] = time.ticks_add(now[0], ms)
        return iter((None,))

    monkeypatch.setattr(aio, "sleep_ms", sleep_ms, raising=False)
    for _ in range(seconds * 1000 // 10):
        aw = b.wait_input(10)
        next(aw)
        with pytest.raises(StopIteration):
            next(aw)


def test_wlan_never_switches_networks_by_itself(hw, monkeypatch):
    """firmware/netmgr.py is the one owner of the network choice: with the
    network gone for minutes the HAL neither alternates nor joins another."""
    world, b, P = make(hw)
    w = fnet.wlans[-1]
    fnet.aps["sim-hotspot"] = {"password": "p1", "rssi": -70}
    fnet.aps["site"] = {"password": "p2", "rssi": -60}
    b.net.configure("sim-hotspot", "p1")
    w.step()
    assert b.net.up() and b.net.rssi() == -70
    del fnet.aps["sim-hotspot"]  # the hotspot goes away
    w.step()
    assert w.status() == fnet.STAT_BEACON_TIMEOUT and not b.net.up()
    assert b.net.rssi() == -127  # no signal while down (not asked: the port raises)
    run_board(b, monkeypatch, 120)
    assert w.connects == [("sim-hotspot", "p1")]
    b.net.configure("site", "p2")  # netmgr's choice
    w.step()
    assert b.net.up() and b.net.rssi() == -60


def test_wlan_wrong_password_status(hw):
    world, b, P = make(hw)
    w = fnet.wlans[-1]
    fnet.aps["depot"] = {"password": "right", "rssi": -50}
    b.net.configure("depot", "wrong")
    w.step()
    assert w.status() == fnet.STAT_WRONG_PASSWORD and not b.net.up()
    assert b.net.rssi() == -127


def test_wlan_connect_raising_never_reaches_the_firmware(hw):
    """WLAN.connect() raises OSError on the port (e.g. "Wifi Internal Error");
    configure() passes nothing on: netmgr joins again after 30 s down."""
    world, b, P = make(hw)
    w = fnet.wlans[-1]
    w.fail_connect = OSError("Wifi Internal Error")
    b.net.configure("depot", "pw")  # at boot: must not raise
    assert not b.net.up() and w.connects == []
    w.fail_connect = None
    fnet.aps["depot"] = {"password": "pw", "rssi": -55}
    b.net.configure("depot", "pw")  # netmgr's next join
    assert w.connects[-1] == ("depot", "pw")
    w.step()
    assert b.net.up()


def test_net_open_refused_while_down(hw):
    world, b, P = make(hw)
    with pytest.raises(OSError):
        asyncio.run(b.net.open("csms.example.com", 443))


# ---- SD card, flash, clock, system, watchdog -------------------------------------

def test_sd_card_absent_and_dying(hw, monkeypatch):
    world, B, P = hw
    world.sd_present = False
    b = B.Board()
    assert b.sd.root is None and b.sd.ok() is False
    world.sd_present = True
    b = B.Board()
    assert b.sd.root == "/sd/"
    real = os.statvfs

    def statvfs(path):
        if path == P.SD_MOUNT:
            if world.sd_dead_after_mount:
                raise OSError(5, "EIO")
            return (512,) * 10
        return real(path)

    monkeypatch.setattr(os, "statvfs", statvfs)
    assert b.sd.ok() is True and b.sd.probe() is True
    world.sd_dead_after_mount = True
    for _ in range(100):
        assert b.sd.ok() is True  # the control step's question: no I/O, the last probe's answer
    assert b.sd.probe() is False  # the slow task's probe (firmware/app.py, every 2 s)
    assert b.sd.ok() is False  # SDCardFailure


def test_system_reset_causes_and_unique_id(hw):
    world, b, P = make(hw)
    import machine
    for cause, name in ((machine.PWRON_RESET, "power"), (machine.WDT_RESET, "watchdog"),
                        (machine.SOFT_RESET, "soft"), (machine.HARD_RESET, "hard"),
                        (machine.DEEPSLEEP_RESET, "power")):
        world.cause = cause
        assert b.system.reset_cause() == name
    assert b.system.unique_id() == "246F28AABBCC"


def test_clock_set_writes_the_rtc_in_machine_order(hw):
    world, b, P = make(hw)
    b.clock.set(1700000000)  # 2023-11-14 22:13:20 UTC, a Tuesday
    assert world.rtc == (2023, 11, 14, 1, 22, 13, 20, 0)


def test_watchdog_is_machine_wdt(hw):
    world, b, P = make(hw)
    b.wdt.feed()  # not started: nothing
    assert world.wdt is None
    b.wdt.start(8000)
    assert world.wdt.timeout == 8000
    t = world.wdt.fed
    time.sleep(0.01)
    b.wdt.feed()
    assert world.wdt.fed > t


def test_button_sensors_led_buzzer(hw, monkeypatch):
    world, b, P = make(hw)
    world.levels[P.EMERGENCY] = P.EMERGENCY_PRESSED
    assert b.button.pressed() is True
    world.levels[P.EMERGENCY] = 1 - P.EMERGENCY_PRESSED
    assert b.button.pressed() is False
    world.adc_uv[P.TEMP_ADC] = 750000  # 750 mV = 25.0 degC
    assert b.sensors.read("temperature_dc") == 250
    world.adc_uv[P.NE_ADC] = 300000
    assert b.sensors.read("ne_mv") == 3000
    contact(world, P, P.SUPPLY_ADC, 0, True)
    contact(world, P, P.SUPPLY_ADC, 1, True)
    assert b.sensors.read("supply_ok") == 1 and b.sensors.read("phase_ok") == 1
    contact(world, P, P.SUPPLY_ADC, 0, False)
    assert b.sensors.read("supply_ok") == 0 and b.sensors.read("phase_ok") == 1
    contact(world, P, P.SUPPLY_ADC, 1, False)
    contact(world, P, P.SUPPLY_ADC, 0, True)
    assert b.sensors.read("supply_ok") == 1 and b.sensors.read("phase_ok") == 0
    world.levels[P.LEAK_OK] = 1  # the residual current module healthy
    assert b.sensors.read("leak_ac_ua") == 0 and b.sensors.read("leak_dc_ua") == 0
    world.levels[P.LEAK_OK] = 0  # tripped (or unpowered, or a broken wire: the pull-down)
    assert b.sensors.read("leak_ac_ua") >= 30000 and b.sensors.read("leak_dc_ua") >= 6000
    del world.levels[P.LEAK_OK]
    assert b.sensors.read("leak_ac_ua") >= 30000
    with pytest.raises(KeyError):
        b.sensors.read("nope")
    b.signal.led("Faulted")
    assert world.bitstreams[-1] == (P.LED_WS2812, bytes((0, 60, 0)))  # GRB
    n = len(world.bitstreams)
    b.signal.led("Faulted")
    assert len(world.bitstreams) == n  # unchanged: no bitstream
    b.signal.show("FAUTH1")
    buzz = world.pwms[P.BUZZER]
    assert buzz.duty_u16() > 0
    b.signal.service(time.ticks_add(time.ticks_ms(), 700))
    assert buzz.duty_u16() == 0


# ---- status light and buzzer patterns ---------------------------------------------

RED, GREEN, MAGENTA, DARK = (60, 0, 0), (0, 40, 0), (40, 0, 40), (0, 0, 0)


@pytest.fixture
def clock(monkeypatch):
    """time.ticks_ms as the test sets it (the patterns' time base)."""
    now = [100000]
    monkeypatch.setattr(time, "ticks_ms", lambda: now[0])
    return now


def light(world, P):
    """The status light's last colour as (r, g, b) (the WS2812 gets GRB)."""
    g, r, b = [x for pin, x in world.bitstreams if pin == P.LED_WS2812][-1]
    return (r, g, b)


def run(b, world, P, clock, ms, step=10):
    """Drive the patterns as Board.wait_input does (service every POLL_MS);
    return (buzzer on?, light) after each step."""
    buzz = world.pwms[P.BUZZER]
    out = []
    for _ in range(ms // step):
        clock[0] += step
        b.signal.service(clock[0])
        out.append((buzz.duty_u16() > 0, light(world, P)))
    return out


def runs(samples, step=10):
    """[(value, ms), ...]: the samples as runs of equal values."""
    out = []
    for v in samples:
        if out and out[-1][0] == v:
            out[-1][1] += step
        else:
            out.append([v, step])
    return [tuple(r) for r in out]


def test_faulted_light_blinks_available_is_steady(hw, clock):
    world, b, P = make(hw)
    b.signal.led("Faulted")
    assert light(world, P) == RED
    seen = runs(light for _, light in run(b, world, P, clock, 1000))
    assert seen[:3] == [(RED, 240), (DARK, 250), (RED, 250)]  # 250 ms on / 250 ms off
    b.signal.led("Available")
    assert light(world, P) == GREEN
    n = len(world.bitstreams)
    run(b, world, P, clock, 3000)
    assert len(world.bitstreams) == n  # steady: the light is not written again


def test_weak_signal_light_is_green_with_a_short_dark_blink(hw, clock):
    world, b, P = make(hw)
    b.signal.led("WeakSignal")
    seen = runs(light for _, light in run(b, world, P, clock, 4000))
    assert seen[1:4] == [(DARK, 200), (GREEN, 1800), (DARK, 200)]


def test_fauth1_three_beeps_with_red_flashes_then_the_state_light(hw, clock):
    world, b, P = make(hw)
    b.signal.led("Reserved")
    assert light(world, P) == MAGENTA
    b.signal.show("FAUTH1")  # the guide's signal for a stranger's card at a reserved connector
    assert world.pwms[P.BUZZER].duty_u16() > 0 and light(world, P) == RED
    seen = runs(run(b, world, P, clock, 800))
    assert seen == [((True, RED), 90), ((False, DARK), 100), ((True, RED), 100),
                    ((False, DARK), 100), ((True, RED), 100), ((False, MAGENTA), 310)]
    # distinct from an ordinary refusal: one long tone
    b.signal.show("AUTH_FAIL")
    assert runs(on for on, _ in run(b, world, P, clock, 600)) == [(True, 390), (False, 210)]


def test_a_late_service_call_catches_up_and_a_state_change_waits_for_the_signal(hw, clock):
    world, b, P = make(hw)
    b.signal.led("Available")
    b.signal.show("FAUTH1")
    b.signal.led("Charging")  # during the signal: shown once it ends
    assert light(world, P) == RED
    clock[0] += 250  # the control loop was late: third step (second beep)
    b.signal.service(clock[0])
    assert world.pwms[P.BUZZER].duty_u16() > 0 and light(world, P) == RED
    clock[0] += 1000
    b.signal.service(clock[0])
    assert world.pwms[P.BUZZER].duty_u16() == 0 and light(world, P) == (0, 20, 60)


def test_patterns_never_wait(hw, clock, monkeypatch):
    world, b, P = make(hw)

    def no_sleep(*a):
        raise AssertionError("the HAL slept")

    for name in ("sleep", "sleep_ms", "sleep_us"):
        monkeypatch.setattr(time, name, no_sleep, raising=False)
    b.signal.led("Faulted")
    b.signal.show("FAUTH1")
    run(b, world, P, clock, 2000)
    b.signal.led("Preparing")
    run(b, world, P, clock, 2000)


# ---- BLE commissioning link ----------------------------------------------------

def ble_board(hw):
    world, b, P = make(hw)
    b.ble.advertise("JOLT-AABBCCDD")
    r = fbt.radio
    rx_h, tx_h = None, None
    (svc_uuid, chars), = r.services
    for (uuid, flags), h in zip(chars, range(1, 3)):
        if flags & fbt.FLAG_WRITE:
            rx_h = h
        if flags & fbt.FLAG_NOTIFY:
            tx_h = h
    return b, r, rx_h, tx_h


def test_ble_advertises_the_name_and_exposes_one_service(hw):
    b, r, rx_h, tx_h = ble_board(hw)
    assert b"JOLT-AABBCCDD" in r.adv
    assert rx_h is not None and tx_h is not None and rx_h != tx_h
    assert b.ble.linked() is False and b.ble.recv() is None


def test_ble_radio_starts_in_board_before_the_control_loop(hw):
    """BLE().active(True) blocks ~100 ms (the NimBLE host starts): Board() does
    it at boot, so advertise() from the running firmware does not."""
    world, b, P = make(hw)
    r = fbt.radio
    assert r is not None and r.active() is True and r.services is not None and r.adv is None
    b.ble.advertise("JOLT-AABBCCDD")
    assert fbt.radio is r and b"JOLT-AABBCCDD" in r.adv


def test_ble_write_recv_notify_in_mtu_pieces_and_disconnect(hw):
    b, r, rx_h, tx_h = ble_board(hw)
    r.central_connect(7)
    assert b.ble.linked() is True and r.adv is None
    r.central_write(7, rx_h, b"AUTH 12")
    r.central_write(7, rx_h, b"3456\n")
    assert b.ble.recv() == b"AUTH 123456\n"
    assert b.ble.recv() is None
    assert b.ble.send(b"x" * 45) is True
    assert [len(d) for c, h, d in r.notified] == [20, 20, 5] and all(h == tx_h for c, h, d in r.notified)
    r.central_mtu(7, 103)
    del r.notified[:]
    b.ble.send(b"y" * 150)
    assert [len(d) for c, h, d in r.notified] == [100, 50]
    r.notify_fail = True
    assert b.ble.send(b"z") is False  # the stack's queue full: reported, not raised
    r.central_disconnect(7)
    assert b.ble.linked() is False
    assert b"JOLT-AABBCCDD" in r.adv  # advertising again
    assert b.ble.send(b"late") is False


def test_ble_drop_disconnects_the_central(hw):
    b, r, rx_h, tx_h = ble_board(hw)
    r.central_connect(9)
    b.ble.drop()
    assert 9 not in r.conns and b.ble.linked() is False
    assert b"JOLT-AABBCCDD" in r.adv  # advertising again


def test_ble_not_linked_between_drop_and_the_disconnect_event(hw, monkeypatch):
    b, r, rx_h, tx_h = ble_board(hw)
    r.central_connect(9)
    monkeypatch.setattr(r, "gap_disconnect", lambda conn: True)  # the IRQ comes later
    b.ble.drop()
    assert b.ble.linked() is False
    r.central_disconnect(9)
    assert b"JOLT-AABBCCDD" in r.adv


def test_ble_second_central_ignored_while_one_is_linked(hw):
    b, r, rx_h, tx_h = ble_board(hw)
    r.central_connect(1)
    r.central_connect(2)
    r.central_write(2, rx_h, b"ID\n")
    assert b.ble.recv() is None  # only the first central is served


def test_commissioning_session_over_the_esp32_gatt_service(hw, tmp_path):
    """firmware/commissioning.py over hal/esp32's Ble and the fake radio."""
    import json
    from firmware import commissioning as C
    from firmware.config import Config
    from lib import otp
    root = str(tmp_path) + "/"
    key = b"12345678901234567890"
    (tmp_path / "provision.json").write_text(json.dumps({"otp": {"secret": key.hex()}}))
    b, r, rx_h, tx_h = ble_board(hw)
    cfg = Config(root=root, device_id="X")
    r.central_connect(3)
    for line in ("ID", "AUTH " + otp.hotp(key, 0), "SET Phase Three.Phase", "GET Phase", "BYE"):
        r.central_write(3, rx_h, line.encode() + b"\n")

    async def run():
        C.POLL_S, old = 0.001, C.POLL_S
        try:
            await asyncio.wait_for(C.Commissioning(cfg, b.system.unique_id(), b.clock, root).serve(b.ble), 2)
        finally:
            C.POLL_S = old

    asyncio.run(run())
    text = b"".join(d for c, h, d in r.notified).decode()
    assert text.split("\n")[:-1] == ["OK 246F28AABBCC", "OK", "OK Accepted", "OK Three.Phase", "OK"]
    assert cfg.get("Phase") == "Three.Phase"
    assert 3 not in r.conns  # the session ended: the link is dropped


# ---- the pin map on the plain ESP32 ------------------------------------------------

def test_pin_map_fits_the_plain_esp32(hw):
    """Every GPIO of pins.py exists on an ESP32-WROOM-32E, none is the flash or
    the console, none is used twice (the alternative RFID reader aside),
    outputs are not on the input-only pins, analog inputs are on ADC1, and
    the strapping pins carry only the signals documented as boot-safe."""
    world, B, P = hw
    import machine
    out = ("RELAY", "LOCK_A", "LOCK_B", "PILOT_PWM", "METER_TX", "METER_DE", "RFID_SCK",
           "RFID_MOSI", "RFID_CS", "LED_WS2812", "BUZZER", "SD_SCK", "SD_MOSI", "SD_CS")
    inp = ("METER_RX", "RFID_MISO", "EMERGENCY", "LEAK_OK", "SD_MISO")
    adc = ("PILOT_ADC", "TEMP_ADC", "NE_ADC", "FB_ADC", "SUPPLY_ADC")
    module = set(range(0, 6)) | set(range(12, 20)) | {21, 22, 23, 25, 26, 27, 32, 33, 34, 35, 36, 39}
    used = {}
    for name in out + inp + adc:
        n = getattr(P, name)
        assert n in module and n not in (1, 3), name
        assert n not in used, (name, used.get(n))
        used[n] = name
    assert P.RFID_RX == P.RFID_MISO and P.RFID_TX == -1  # one reader kind is fitted
    for name in out:
        assert getattr(P, name) not in machine.INPUT_ONLY, name
    for name in adc:
        assert getattr(P, name) in machine.ADC1, name
    straps = {n: used[n] for n in (0, 2, 5, 12, 15) if n in used}
    assert straps == {0: "RFID_CS", 2: "LED_WS2812", 5: "SD_CS", 12: "LOCK_B", 15: "BUZZER"}
    assert (P.METER_UART, P.METER_TX, P.METER_RX) == (2, 17, 16)
    assert P.SD_SLOT == 2 and P.RFID_SPI == 1  # two SPI hosts: SDCard takes its host whole
    b = B.Board()  # everything constructs against the strict fakes
    assert world.spi_hosts == {1: "SPI", 2: "SDCard"}
    # inputs on 34-39 have no pull resistors: the HAL asks for none there
    for n in (P.RFID_MISO, P.PILOT_ADC, P.TEMP_ADC, P.NE_ADC):
        assert n in machine.INPUT_ONLY
    assert b.button.pressed() in (True, False)


def test_the_fakes_refuse_what_the_esp32_cannot_do(hw):
    world, B, P = hw
    import machine
    for n in (6, 9, 11, 20, 24, 28, 31, 40, 48):
        with pytest.raises(ValueError):
            machine.Pin(n)
    with pytest.raises(ValueError):
        machine.Pin(34, machine.Pin.OUT)  # input only
    with pytest.raises(ValueError):
        machine.Pin(36, machine.Pin.IN, machine.Pin.PULL_UP)  # no pull resistors
    with pytest.raises(ValueError):
        machine.PWM(machine.Pin(39))
    with pytest.raises(ValueError):
        machine.ADC(machine.Pin(5))  # not an ADC pin
    with pytest.raises(ValueError):
        machine.UART(1, baudrate=9600, rx=35)  # TX left on its default: pin 10, the flash
    a2 = machine.ADC(machine.Pin(25))
    a2.read_uv()  # ADC2 works while WiFi is off ...
    fnet.WLAN(fnet.STA_IF).active(True)
    with pytest.raises(OSError):
        a2.read_uv()  # ... not once it runs
    machine.ADC(machine.Pin(33)).read_uv()  # ADC1 does
    machine.SDCard(slot=2)
    with pytest.raises(OSError):
        machine.SPI(2)  # the SD card's host
    machine.SPI(1)


def test_modbus_over_the_rs485_hal_turns_the_line_around_without_blocking(hw):
    """lib/modbus over hal/esp32's MeterUart, the fake UART taking the frame's
    time on the wire (11 bits a byte at 9600 baud): the slave answers 3.5
    characters after the request's last stop bit (the earliest it may) and
    finds the driver off; no call waited for the frame (no UART.flush)."""
    from lib.modbus import ModbusMaster, crc16
    world, b, P = make(hw)
    m = ModbusMaster(b.meter_uart, baud=9600)
    u = world.uarts[P.METER_UART]
    seen = {}

    async def slave():
        while not u.tx:
            await asyncio.sleep(0.001)
        await asyncio.sleep(max(0.0, u.tx_done_at - time.monotonic()) + 3.5 * 11 / 9600)
        seen["de"] = world.outputs[P.METER_DE]
        reply = bytearray(b"\x01\x04\x04\x12\x34\x56\x78")
        c = crc16(reply)
        u.feed(reply + bytes((c & 0xFF, c >> 8)))

    async def main():
        t = asyncio.ensure_future(slave())
        t0 = time.monotonic()
        regs = await m.read_registers(1, 4, 0, 2)
        await t
        return regs, time.monotonic() - t0

    regs, took = asyncio.run(main())
    assert regs == [0x1234, 0x5678]
    assert seen["de"] == 0  # the receiver was on when the reply began
    assert u.flushed == 0
    assert took < 0.2
