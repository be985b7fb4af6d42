import asyncio
import time

import pytest

import hal.mock
from hal.mock.board import ResetRequested

DEVICES = ("relay", "lock", "pilot", "meter_uart", "rfid", "signal", "button", "sensors", "sd",
           "flash", "clock", "net", "wdt", "ble", "system")


def test_board_has_every_device_of_the_contract():
    b = hal.mock.Board()
    for name in DEVICES:
        assert getattr(b, name) is not None, name
    assert b.flash.root == ""
    assert b.sd.root is None and not b.sd.ok()


def test_relay_records_commands_and_feedback_follows_contacts():
    b = hal.mock.Board()
    b.relay.set(True)
    b.relay.set(True)
    b.relay.set(False)
    assert b.relay.history == [True, False]
    assert b.relay.closed() is False
    b.relay.weld(True)
    b.relay.set(False)
    assert b.relay.closed() is True
    b.relay.weld(False)
    b.relay.fail_open(True)
    b.relay.set(True)
    assert b.relay.closed() is False


def test_lock_feedback_and_jam():
    b = hal.mock.Board()
    b.lock.set(True)
    assert b.lock.locked() is True
    b.lock.jam(True)
    b.lock.set(False)
    assert b.lock.locked() is True
    assert b.lock.history == [True, False]


def test_pilot_levels_and_duty_history():
    b = hal.mock.Board()
    assert (b.pilot.high_mv(), b.pilot.low_mv()) == (12000, 12000)
    b.pilot.set_levels(9000, -12000)
    assert (b.pilot.high_mv(), b.pilot.low_mv()) == (9000, -12000)
    b.pilot.set_levels(6000)
    assert b.pilot.low_mv() == 6000
    b.pilot.set_duty(None)
    b.pilot.set_duty(53)
    b.pilot.set_duty(53)
    b.pilot.set_duty(0)
    assert b.pilot.duty() == 0
    assert b.pilot.history == [None, 53, 0]


def test_inputs_visible():
    b = hal.mock.Board(sd_root="sd/")
    b.button.set(True)
    assert b.button.pressed()
    b.sensors.set("ne_mv", 9000)
    assert b.sensors.read("ne_mv") == 9000
    assert b.sensors.read("temperature_dc") == 250
    with pytest.raises(KeyError):
        b.sensors.set("nonsense", 1)
    b.rfid.present("04ab")
    assert b.rfid.poll() == "04AB"
    assert b.rfid.poll() is None
    b.rfid.set_ok(False)
    b.rfid.present("01")
    assert not b.rfid.ok() and b.rfid.poll() is None
    assert b.sd.ok() and b.sd.root == "sd/"
    b.sd.set_ok(False)
    assert b.sd.root is None
    b.net.set_rssi(-95)
    assert b.net.rssi() == -95


def test_signals_and_leds_recorded():
    b = hal.mock.Board()
    b.signal.show("FAUTH1")
    b.signal.led("Charging")
    b.signal.led("Charging")
    b.signal.led("Available")
    assert b.signal.history == ["FAUTH1"]
    assert b.signal.leds == ["Charging", "Available"]


def test_meter_uart_responder_and_fed_bytes():
    b = hal.mock.Board()
    b.meter_uart.init(9600, 8, 0, 1)
    b.meter_uart.responder = lambda frame: b"\x01" + frame[1:2] + b"ok"
    b.meter_uart.write(b"\x01\x04\x00\x00")
    assert b.meter_uart.frames == [b"\x01\x04\x00\x00"]
    assert b.meter_uart.any() == 4
    buf = bytearray(3)
    assert b.meter_uart.readinto(buf) == 3 and bytes(buf) == b"\x01\x04o"
    b.meter_uart.feed(b"xy")
    assert b.meter_uart.readinto(buf) == 3 and bytes(buf) == b"kxy"
    assert b.meter_uart.readinto(buf) == 0


def test_clock_set_and_system():
    b = hal.mock.Board(uid="ABC", reset_cause="watchdog")
    b.clock.set(1700000000)
    assert abs(b.clock.now() - 1700000000) <= 1
    assert b.system.unique_id() == "ABC" and b.system.reset_cause() == "watchdog"
    with pytest.raises(ResetRequested):
        b.system.reset()
    assert b.system.resets == 1
    b.wdt.start(5000)
    b.wdt.feed()
    assert (b.wdt.timeout_ms, b.wdt.feeds) == (5000, 1)


def test_wait_input_times_out_without_changes():
    b = hal.mock.Board()

    async def go():
        t = time.monotonic()
        await b.wait_input(50)
        return time.monotonic() - t

    assert 0.04 <= asyncio.run(go()) < 1


def test_wait_input_wakes_on_input_change():
    b = hal.mock.Board()

    async def go():
        async def press():
            await asyncio.sleep(0.02)
            b.button.set(True)

        t = time.monotonic()
        task = asyncio.create_task(press())
        await b.wait_input(5000)
        await task
        return time.monotonic() - t

    assert asyncio.run(go()) < 1
    assert b.button.pressed()


def test_change_before_wait_is_not_lost():
    b = hal.mock.Board()

    async def go():
        await b.wait_input(1)  # binds the event to this loop
        b.pilot.set_levels(9000)
        t = time.monotonic()
        await b.wait_input(5000)
        return time.monotonic() - t

    assert asyncio.run(go()) < 0.5


def test_net_open_delegates_and_refuses_when_down():
    b = hal.mock.Board()

    async def go():
        async def on_conn(r, w):
            w.write(b"hi\n")
            await w.drain()
            w.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await b.net.open("127.0.0.1", port)
        line = await r.readline()
        w.close()
        b.net.set_up(False)
        with pytest.raises(OSError):
            await b.net.open("127.0.0.1", port)
        server.close()
        return line

    assert asyncio.run(go()) == b"hi\n"
    assert not b.net.up()
    assert [o[:2] for o in b.net.opened][0][0] == "127.0.0.1"
