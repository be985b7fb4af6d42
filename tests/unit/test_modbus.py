"""lib.modbus: CRC, the RTU master against an independent slave (pymodbus on a
pty), read coalescing and fault handling (a hand-written faulty slave)."""
import asyncio
import os
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import meter_maps
from lib import modbus
from lib.modbus import (ModbusException, ModbusFrameError, ModbusMaster, ModbusTimeout,
                        crc16, plan)
from tests.modbus_pty import (FaultSlave, PtyUart, f32_words, open_pty, ref_crc16,
                              start_pymodbus)

# What the simulated SDM630 measures (meter units: V, A, W, kWh...).
METER = {
    0x0000: 230.1, 0x0002: 231.2, 0x0004: 229.8,
    0x0006: 16.0, 0x0008: 15.5, 0x000A: 16.25,
    0x0034: 11000.5, 0x003C: 450.25, 0x003E: 0.98,
    0x0046: 50.02, 0x0048: 12345.67, 0x004C: 321.5,
    0x0156: 13000.0,
}


def image(values=METER, size=0x180):
    regs = [0] * size
    for addr, v in values.items():
        regs[addr:addr + 2] = f32_words(v)
    return regs


def f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def expected(meter_map, keys, values=METER):
    out = {}
    for e in meter_map[4]:
        if (e[0], e[1]) in keys:
            out[(e[0], e[1])] = f32(values.get(e[2], 0.0)) * e[5]
    return out


def run_pymodbus(fn, holding=None):
    async def main():
        m, s, path = open_pty()
        srv = await start_pymodbus(path, 1, input_regs=image(),
                                   holding_regs=holding or [0] * 64)
        try:
            return await fn(PtyUart(m), srv)
        finally:
            await srv.shutdown()
            os.close(m)
            os.close(s)
    return asyncio.run(main())


def run_fault(script, fn, default="ok", holding=None):
    async def main():
        m, s, path = open_pty()
        slave = FaultSlave(s, 1, input_regs=image(), holding_regs=holding, script=script,
                           default=default).start()
        try:
            return await fn(PtyUart(m), slave)
        finally:
            await slave.stop()
            os.close(m)
            os.close(s)
    return asyncio.run(main())


# -- CRC -------------------------------------------------------------------

def test_crc_known_vectors():
    frame = bytes.fromhex("01030000000A")
    c = crc16(frame)
    assert c == 0xCDC5
    # low byte first on the wire: the classic request 01 03 00 00 00 0A C5 CD
    assert bytes((c & 0xFF, c >> 8)) == bytes.fromhex("C5CD")
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    assert crc16(bytes.fromhex("0103000000")) == ref_crc16(bytes.fromhex("0103000000"))
    assert crc16(b"") == 0xFFFF
    assert crc16(bytearray(b"xx123456789yy"), 2, 11) == 0x4B37


def test_crc_table_is_the_polynomial_for_every_byte_and_costs_no_heap():
    # A bytes constant (in the ROMFS image on the board), low byte first;
    # nothing is built at import or at the first CRC.
    t = modbus._CRC
    assert isinstance(t, bytes) and len(t) == 512
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        assert t[2 * i] | t[2 * i + 1] << 8 == c, i
    assert not hasattr(modbus, "_table")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data):
    assert crc16(data) == ref_crc16(data)


def test_crc_matches_pymodbus():
    from pymodbus.framer.rtu import FramerRTU
    for data in (b"\x01\x04\x00\x00\x00\x02", bytes(range(200)), b"\xff" * 7):
        c = crc16(data)
        # pymodbus returns the two wire bytes read as a big-endian number
        assert FramerRTU.compute_CRC(data) == ((c & 0xFF) << 8) | (c >> 8)


# -- against pymodbus --------------------------------------------------------

def test_read_input_and_holding_registers_from_pymodbus():
    async def body(uart, srv):
        m = ModbusMaster(uart, baud=9600)
        assert uart.inits == [(9600, 8, 2, 1)]
        regs = await m.read_registers(1, 4, 0x0000, 6)
        assert regs == image()[0:6]
        hold = await m.read_registers(1, 3, 0, 4)
        assert hold == [7, 0xFFFF, 0x1234, 0]
        assert m.stats["frames"] == 2
        assert m.stats["tx_bytes"] == 16
        assert m.stats["rx_bytes"] == (5 + 12) + (5 + 8)
        assert uart.writes[0] == bytes.fromhex("010400000006") + bytes((0x70, 0x08))
    run_pymodbus(body, holding=[7, 0xFFFF, 0x1234] + [0] * 61)


def test_write_single_and_multiple_to_pymodbus():
    async def body(uart, srv):
        m = ModbusMaster(uart)
        await m.write_register(1, 5, 0xBEEF)
        await m.write_registers(1, 10, [1, 2, 0x8000, 65535])
        assert await m.read_registers(1, 3, 4, 10) == [0, 0xBEEF, 0, 0, 0, 0, 1, 2, 0x8000, 65535]
        seen = await srv.context.async_getValues(1, 3, 10, 4)
        assert list(seen) == [1, 2, 0x8000, 65535]
        assert m.stats["errors"] == 0 and m.stats["frames"] == 3
    run_pymodbus(body)


def test_concurrent_tasks_take_turns_on_the_line():
    async def body(uart, srv):
        m = ModbusMaster(uart)
        p = plan(meter_maps.SDM630, meter_maps.DEFAULT_THREE_PHASE)
        results = await asyncio.gather(
            m.poll(1, p), m.read_registers(1, 3, 0, 3), m.write_registers(1, 20, [9, 8]),
            m.read_registers(1, 4, 0x46, 2), m.poll(1, p))
        want = expected(meter_maps.SDM630, meter_maps.DEFAULT_THREE_PHASE)
        assert results[0] == want and results[4] == want
        assert results[1] == [7, 0xFFFF, 0x1234]
        assert results[3] == f32_words(50.02)
        assert await m.read_registers(1, 3, 20, 2) == [9, 8]
        assert m.stats["frames"] == 8 and m.stats["errors"] == 0
    run_pymodbus(body, holding=[7, 0xFFFF, 0x1234] + [0] * 61)


def test_exception_from_pymodbus_is_raised_with_code_and_name():
    async def body(uart, srv):
        m = ModbusMaster(uart, timeout_ms=100)
        with pytest.raises(ModbusException) as ei:
            await m.read_registers(1, 4, 0x017F, 4)  # beyond the device's registers
        assert ei.value.code == 2 and ei.value.name == "ILLEGAL_DATA_ADDRESS"
        assert m.stats["frames"] == 1  # an exception is an answer: no retry
        assert m.stats["exceptions"] == 1
        assert await m.read_registers(1, 4, 0, 2) == f32_words(230.1)
    run_pymodbus(body)


def test_full_three_phase_poll_against_pymodbus_in_two_frames():
    keys = meter_maps.DEFAULT_THREE_PHASE
    p = plan(meter_maps.SDM630, keys)

    async def body(uart, srv):
        m = ModbusMaster(uart)
        got = await m.poll(1, p)
        assert got == expected(meter_maps.SDM630, keys)
        assert got[("Energy.Active.Import.Register", None)] == pytest.approx(12345670, abs=1)
        assert got[("Voltage", "L2")] == pytest.approx(231.2, abs=1e-4)
        assert set(got) == set(keys)
        st_ = m.stats
        assert (st_["frames"], st_["tx_bytes"], st_["rx_bytes"]) == (2, 16, (5 + 24) + (5 + 52))
        assert st_["errors"] == st_["timeouts"] == 0
        again = await m.poll(1, p)
        assert again == got and m.stats["frames"] == 4
    run_pymodbus(body)


# -- coalescing ------------------------------------------------------------

def test_plan_default_three_phase_is_two_requests():
    p = plan(meter_maps.SDM630, meter_maps.DEFAULT_THREE_PHASE)
    assert p.missing == ()
    assert [(fc, start, count) for fc, start, count, _ in p.requests] == [
        (4, 0x0000, 12),   # V L1-3, I L1-3
        (4, 0x0034, 26),   # P, VAr, PF, Hz, kWh import, kVArh import (holes <= 6)
    ]
    assert p.frames == 2 and p.registers == 38


def test_plan_gap_and_size_limits():
    keys = meter_maps.DEFAULT_THREE_PHASE
    spans = lambda p: [(r[1], r[2]) for r in p.requests]  # noqa: E731
    # reading across the 40-register hole: the meter's 80-register limit allows one frame
    assert spans(plan(meter_maps.SDM630, keys, max_gap=40)) == [(0, 78)]
    assert spans(plan(meter_maps.SDM630, keys, max_gap=39)) == [(0, 12), (0x34, 26)]
    # contiguous only
    assert spans(plan(meter_maps.SDM630, keys, max_gap=0)) == [
        (0, 12), (0x34, 2), (0x3C, 4), (0x46, 4), (0x4C, 2)]
    assert spans(plan(meter_maps.SDM630, keys, max_gap=2)) == [
        (0, 12), (0x34, 2), (0x3C, 4), (0x46, 8)]
    # the request size cap splits a contiguous run
    assert spans(plan(meter_maps.SDM630, keys, max_regs=8, max_gap=40)) == [
        (0, 8), (8, 4), (0x34, 2), (0x3C, 4), (0x46, 8)]
    # the map's own limit (80) wins over a larger request
    big = [(e[0], e[1]) for e in meter_maps.SDM630[4]]
    for r in plan(meter_maps.SDM630, big, max_regs=125, max_gap=1000).requests:
        assert r[2] <= 80


def test_plan_separates_function_codes_and_reports_missing():
    mixed = ("X", "ABCD", 125, 50, (
        ("a", None, 0, 3, "u16", 1, None),
        ("b", None, 1, 4, "u16", 1, None),
        ("c", None, 2, 3, "i32", 1, None),
    ))
    p = plan(mixed, (("a", None), ("b", None), ("c", None), ("zz", "L1"), ("a", None)))
    assert [(r[0], r[1], r[2]) for r in p.requests] == [(3, 0, 4), (4, 1, 1)]
    assert p.missing == (("zz", "L1"),)
    single = plan(meter_maps.SDM120, meter_maps.DEFAULT_SINGLE_PHASE)
    # V, I, P, VAr, PF across holes of 4 and 10 registers; Hz and energies
    assert [(r[1], r[2]) for r in single.requests] == [(0x00, 32), (0x46, 8)]
    assert plan(meter_maps.SDM120, (("Voltage", "L2"),)).missing == (("Voltage", "L2"),)


def _min_frames(regs, max_regs, max_gap):
    """Brute-force minimum number of requests covering sorted (start, width)."""
    n = len(regs)
    best = [0] + [None] * n
    for j in range(1, n + 1):
        for i in range(j):
            start = regs[i][0]
            end = max(r[0] + r[1] for r in regs[i:j])
            ok = end - start <= max_regs and all(
                regs[k + 1][0] - max(r[0] + r[1] for r in regs[i:k + 1]) <= max_gap
                for k in range(i, j - 1))
            if ok and best[i] is not None:
                cand = best[i] + 1
                if best[j] is None or cand < best[j]:
                    best[j] = cand
    return best[n]


@settings(max_examples=150, deadline=None)
@given(st.sets(st.integers(0, 120), min_size=1, max_size=14),
       st.integers(2, 40), st.integers(0, 20))
def test_plan_is_minimal(starts, max_regs, max_gap):
    entries = tuple(("m%d" % a, None, a * 2, 4, "f32", 1, None) for a in sorted(starts))
    p = plan(("T", "ABCD", 125, 0, entries), [(e[0], None) for e in entries],
             max_regs=max_regs, max_gap=max_gap)
    regs = [(e[2], 2) for e in entries]
    assert p.frames == _min_frames(regs, max_regs, max_gap)
    covered = {}
    for fc, start, count, items in p.requests:
        assert count <= max_regs
        for key, off, typ, scale in items:
            covered[key] = start + off
    assert covered == {(e[0], None): e[2] for e in entries}


def test_decoding_types_word_order_and_scale():
    m = ("T", "CDAB", 125, 8, (
        ("u", None, 0, 3, "u16", 1, None),
        ("s", None, 1, 3, "i16", 0.1, None),
        ("U", None, 2, 3, "u32", 1, None),
        ("S", None, 4, 3, "i32", 1, None),
        ("F", None, 6, 3, "f32", 1000, None),
    ))
    fw = f32_words(-1.5)
    holding = [65535, 0xFF38, 0x5678, 0x1234, 0xFFFE, 0xFFFF, fw[1], fw[0]] + [0] * 56

    async def body(uart, srv):
        master = ModbusMaster(uart)
        p = plan(m, [(e[0], None) for e in m[4]])
        assert p.frames == 1
        got = await master.poll(1, p)
        assert got[("u", None)] == 65535
        assert got[("s", None)] == pytest.approx(-20.0)
        assert got[("U", None)] == 0x12345678
        assert got[("S", None)] == -2
        assert got[("F", None)] == -1500.0
        big = ("T", "ABCD", 125, 8, m[4])
        got = await master.poll(1, plan(big, [("U", None), ("S", None)]))
        assert got == {("U", None): 0x56781234, ("S", None): 0xFFFEFFFF - (1 << 32)}
    run_pymodbus(body, holding=holding)


# -- fault injection -------------------------------------------------------

def test_bad_crc_is_discarded_then_retried():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=150)
        assert await m.read_registers(1, 4, 0, 2) == f32_words(230.1)
        assert m.stats["frames"] == 2 and m.stats["crc_errors"] == 1
        assert m.stats["errors"] == 1 and m.stats["timeouts"] == 0
        assert slave.actions == ["crc", "ok"]
    run_fault(["crc"], body)


def test_bad_crc_every_time_gives_frame_error_after_retries():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=150, retries=2)
        with pytest.raises(ModbusFrameError) as ei:
            await m.read_registers(1, 4, 0, 2)
        assert ei.value.reason == "crc"
        assert m.stats["frames"] == 3 and m.stats["crc_errors"] == 3
    run_fault([], body, default="crc")


def test_reply_from_wrong_slave_is_ignored_until_timeout():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=80, retries=1)
        t0 = time.monotonic()
        with pytest.raises(ModbusTimeout):
            await m.read_registers(1, 4, 0, 2)
        took = time.monotonic() - t0
        assert m.stats["frames"] == 2 and m.stats["timeouts"] == 2
        assert m.stats["ignored"] == 2 and m.stats["errors"] == 0
        assert 0.16 <= took < 0.16 + 0.5
    run_fault([], body, default="wrong_slave")


def test_other_station_then_real_reply_in_one_attempt():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=200)
        assert await m.read_registers(1, 4, 6, 2) == f32_words(16.0)
        assert m.stats["frames"] == 1 and m.stats["ignored"] == 1
    run_fault(["other_then_ok"], body)


def test_wrong_function_code_ignored_then_retry_succeeds():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=80)
        assert await m.read_registers(1, 4, 0, 2) == f32_words(230.1)
        assert m.stats["frames"] == 2 and m.stats["timeouts"] == 1
        assert m.stats["ignored"] == 1
    run_fault(["wrong_fc"], body)


def test_exception_reply_raises_without_retry():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=100)
        with pytest.raises(ModbusException) as ei:
            await m.read_registers(1, 4, 0, 2)
        assert ei.value.code == 6 and ei.value.name == "SERVER_DEVICE_BUSY"
        with pytest.raises(ModbusException) as ei:
            await m.write_register(1, 0, 1)
        assert ei.value.code == 0x0B and ei.value.name == "GATEWAY_TARGET_FAILED_TO_RESPOND"
        assert m.stats["frames"] == 2 and m.stats["exceptions"] == 2
        assert len(slave.requests) == 2
    run_fault([("exc", 6), ("exc", 0x0B)], body)


def test_silence_times_out_within_timeout_and_retries():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=100, retries=2)
        t0 = time.monotonic()
        with pytest.raises(ModbusTimeout):
            await m.read_registers(1, 4, 0, 2)
        took = time.monotonic() - t0
        # 3 attempts of (request on the wire 9.2 ms + 100 ms), plus silences
        assert 0.3 <= took < 0.33 + 0.3
        assert m.stats["frames"] == 3 and m.stats["timeouts"] == 3
        assert len(slave.requests) == 3
    run_fault([], body, default="silence")


def test_waiting_never_blocks_the_loop():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=100, retries=0)
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)
        t = asyncio.create_task(ticker())
        with pytest.raises(ModbusTimeout):
            await m.read_registers(1, 4, 0, 2)
        t.cancel()
        assert len(ticks) >= 12
        assert max(b - a for a, b in zip(ticks, ticks[1:])) < 0.05
    run_fault([], body, default="silence")


def test_truncated_reply_is_retried():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=150)
        assert await m.read_registers(1, 4, 0, 6) == image()[0:6]
        assert m.stats["frames"] == 2 and m.stats["errors"] == 1
        assert m.stats["crc_errors"] == 0
        with pytest.raises(ModbusFrameError) as ei:
            await m.read_registers(1, 4, 0, 6)
        assert ei.value.reason == "short"
    run_fault(["trunc", "ok", "trunc", "trunc", "trunc"], body)


def test_inconsistent_length_byte_is_rejected():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=150, retries=1)
        with pytest.raises(ModbusFrameError) as ei:
            await m.read_registers(1, 4, 0, 4)
        assert ei.value.reason == "length"
        assert m.stats["frames"] == 2 and m.stats["errors"] == 2
    run_fault([], body, default="bad_len")


def test_length_byte_checked_on_single_register_reads():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=100)
        assert await m.read_registers(1, 4, 1, 1) == [f32_words(230.1)[1]]
        assert m.stats["frames"] == 2 and m.stats["errors"] == 1
    run_fault(["bad_len", "ok"], body)


def test_garbage_before_the_reply():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=200)
        assert await m.read_registers(1, 4, 0, 2) == f32_words(230.1)  # glued noise
        assert m.stats["frames"] == 1
        assert await m.read_registers(1, 4, 2, 2) == f32_words(231.2)  # noise, gap, reply
        assert m.stats["frames"] == 2 and m.stats["crc_errors"] == 1
    run_fault(["garbage", "garbage_gap"], body)


def test_stale_input_is_flushed_before_sending():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=150)
        # a late reply from an earlier, timed-out request is already waiting
        stale = bytes(slave._reply(bytes.fromhex("010400000002") + b"\0\0"))
        os.write(slave.fd, stale)
        await asyncio.sleep(0.02)
        assert await m.read_registers(1, 4, 6, 2) == f32_words(16.0)
        assert m.stats["stale"] == len(stale) and m.stats["frames"] == 1
    run_fault([], body)


def test_inter_frame_silence_before_each_request():
    stamps = []

    async def body(uart, slave):
        m = ModbusMaster(uart, baud=9600, timeout_ms=150)
        assert m.t35_us == 4011 and m.char_us == 1146
        orig = slave._write

        def write(data):
            stamps.append(("reply", time.monotonic()))
            orig(data)
        slave._write = write
        orig_req = slave._answer

        async def answer(frame):
            stamps.append(("request", time.monotonic()))
            await orig_req(frame)
        slave._answer = answer
        for _ in range(5):
            await m.read_registers(1, 4, 0, 2)
    run_fault([], body)
    gaps = [b[1] - a[1] for a, b in zip(stamps, stamps[1:]) if a[0] == "reply"]
    assert len(gaps) == 4 and min(gaps) >= 0.004
    assert ModbusMaster(PtyUart(os.openpty()[0]), baud=38400).t35_us == 1750


def test_broadcast_write_expects_no_reply():
    async def body(uart, slave):
        m = ModbusMaster(uart, timeout_ms=100, turnaround_ms=20)
        t0 = time.monotonic()
        assert await m.write_register(0, 3, 42) is None
        await m.write_registers(0, 8, [5, 6])
        assert time.monotonic() - t0 < 0.2
        assert m.stats["frames"] == 2 and m.stats["timeouts"] == 0
        await asyncio.sleep(0.02)
        assert slave.regs[3][3] == 42 and slave.regs[3][8:10] == [5, 6]
        assert await m.read_registers(1, 3, 8, 2) == [5, 6]
    run_fault([], body)


def test_argument_checks():
    m = ModbusMaster(PtyUart(os.openpty()[0]))

    async def body():
        for args in ((1, 5, 0, 1), (1, 3, 0, 0), (1, 3, 0, 126), (0, 3, 0, 1), (248, 4, 0, 1)):
            with pytest.raises(ValueError):
                await m.read_registers(*args)
        with pytest.raises(ValueError):
            await m.write_registers(1, 0, [])
        with pytest.raises(ValueError):
            await m.write_registers(1, 0, [1, 0x10000])
        with pytest.raises(ValueError):
            await m.write_register(248, 0, 1)
        with pytest.raises(ValueError):
            await m.write_register(1, 0, -1)
    asyncio.run(body())
    assert m.stats["frames"] == 0


def test_meter_maps_are_consistent():
    ocpp = {"Energy.Active.Export.Register", "Energy.Active.Import.Register",
            "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
            "Power.Active.Import", "Power.Reactive.Import", "Power.Factor",
            "Current.Import", "Voltage", "Frequency"}
    extra = {"Power.Apparent", "Energy.Active.Total.Register", "Energy.Reactive.Total.Register"}
    phases = {None, "L1", "L2", "L3", "N", "L1-L2", "L2-L3", "L3-L1"}
    units = {"V", "A", "W", "var", "VA", "Wh", "varh", None}
    for mp in meter_maps.MAPS:
        model, order, max_regs, max_gap, entries = mp
        assert meter_maps.get(model) == mp and order in ("ABCD", "CDAB")  # (built anew from its text)
        keys = [(e[0], e[1]) for e in entries]
        assert len(keys) == len(set(keys))
        regs = sorted(e[2] for e in entries)
        assert all(b - a >= 2 for a, b in zip(regs, regs[1:]))  # no overlapping floats
        for name, phase, reg, fc, typ, scale, unit in entries:
            assert name in ocpp | extra and phase in phases and unit in units
            assert fc == 4 and typ == "f32"
            assert scale == (1000 if name.startswith("Energy") else 1)
    m = meter_maps.SDM630
    assert dict(((e[0], e[1]), e[2]) for e in m[4])[("Power.Reactive.Import", None)] == 0x003C
    assert meter_maps.unit(m, ("Energy.Active.Import.Register", None)) == "Wh"
    assert meter_maps.unit(m, ("Frequency", None)) is None
    assert meter_maps.get("nope") is None


def test_a_plan_from_the_wanted_entries_only_is_the_plan_from_the_whole_map():
    # firmware/metering.py builds only the wanted entries of a map (4 KB of
    # tuples for the whole map on the board's heap).
    three = meter_maps.DEFAULT_THREE_PHASE
    for model, wanted in (("SDM630", three), ("SDM630", [k for k in three if k[1] in (None, "L1")]),
                          ("SDM120", meter_maps.DEFAULT_SINGLE_PHASE), ("SDM120", three),
                          ("SDM630", [("Voltage", "L1-L2"), ("Nothing", None), ("Voltage", "L1"), ("Voltage", "L1")])):
        part = meter_maps.get(model, wanted)
        assert set((e[0], e[1]) for e in part[4]) <= set(wanted)
        assert len(part[4]) <= len(set(wanted)) and part[:4] == meter_maps.get(model)[:4]
        a, b = plan(meter_maps.get(model), wanted), plan(part, wanted)
        assert (a.requests, a.missing, a.frames, a.registers) == (b.requests, b.missing, b.frames, b.registers)
