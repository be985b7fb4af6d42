#!/usr/bin/env python3
"""Benchmark: one full poll of the default three-phase meter configuration
(firmware/meter_maps.DEFAULT_THREE_PHASE on an SDM630) with lib/modbus.py.

Prints one line per figure: frames, bytes on the wire, wire time at the given
line settings (11 bits a character, plus a 3.5-character silence before each
request and each reply; the meter's own reaction time is not included), and
the CPU time of a poll on the MicroPython unix port, with the master talking
to an in-process fake UART that answers at once (so nothing but CPU is
measured), averaged over --polls polls, and the heap allocated per poll.

    .venv/bin/python tools/bench/modbus_poll.py [--polls 200] [--baud 9600]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = r"""
import sys
sys.path.insert(0, %(root)r)
import asyncio
import gc
import json
import struct
import time
from firmware import meter_maps
from lib.modbus import ModbusMaster, crc16, plan

POLLS = %(polls)d


def frame(body):
    c = crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


class FastUart:
    # Answers each known request at once from a table built before timing;
    # allocates nothing itself (its share is measured and reported anyway).
    def __init__(self, replies):
        self.replies = list(replies.items())
        self.pending = b""
        self.pos = 0

    def init(self, baud, bits=8, parity=0, stop=1):
        pass

    def write(self, buf):
        for req, rep in self.replies:
            if req == buf:
                self.pending = rep
        self.pos = 0
        return len(buf)

    def readinto(self, buf):
        pos = self.pos
        n = len(self.pending) - pos
        if n <= 0:
            return 0
        if n > len(buf):
            n = len(buf)
        src = self.pending
        for i in range(n):
            buf[i] = src[pos + i]
        self.pos = pos + n
        return n

    def any(self):
        return len(self.pending) - self.pos


def main():
    p = plan(meter_maps.SDM630, meter_maps.DEFAULT_THREE_PHASE)
    regs = bytearray(2 * 0x180)
    for i in range(0, 0x180, 2):
        struct.pack_into(">f", regs, 2 * i, 100.0 + i)
    replies = {}
    for fc, start, count, items in p.requests:
        req = frame(bytes((1, fc, start >> 8, start & 0xFF, count >> 8, count & 0xFF)))
        replies[req] = frame(bytes((1, fc, 2 * count)) + regs[2 * start:2 * (start + count)])
    m = ModbusMaster(FastUart(replies), baud=%(baud)d)
    m.char_us = 0  # no wire: no transmission time, no inter-frame silence
    m.t35_us = 0

    out = {}

    async def run(n):
        # as firmware/metering.py polls: into a dict kept from poll to poll
        for _ in range(n):
            await m.poll(1, p, out)

    asyncio.run(run(1))
    one = dict(m.stats)
    asyncio.run(run(10))  # warm up
    gc.collect()
    t0 = time.ticks_us()
    asyncio.run(run(POLLS))
    cpu = time.ticks_diff(time.ticks_us(), t0) / POLLS
    # the fake UART's share, to subtract
    uart = m.uart
    reqs = list(replies)
    buf = bytearray(64)
    t0 = time.ticks_us()
    for _ in range(POLLS):
        for r in reqs:
            uart.write(r)
            while uart.readinto(buf):
                pass
            uart.readinto(buf)
    fake = time.ticks_diff(time.ticks_us(), t0) / POLLS
    gc.collect()
    gc.disable()
    f0 = gc.mem_free()
    asyncio.run(run(POLLS))
    alloc = (f0 - gc.mem_free()) / POLLS
    gc.collect()
    f0 = gc.mem_free()
    for _ in range(POLLS):
        for r in reqs:
            uart.write(r)
            while uart.readinto(buf):
                pass
    fake_alloc = (f0 - gc.mem_free()) / POLLS
    gc.enable()
    assert m.stats["frames"] == one["frames"] * (1 + 10 + 2 * POLLS), m.stats
    assert m.stats["errors"] == 0 and m.stats["timeouts"] == 0
    print("RESULT " + json.dumps({"frames": one["frames"], "tx": one["tx_bytes"],
                                  "rx": one["rx_bytes"], "regs": p.registers,
                                  "values": len(meter_maps.DEFAULT_THREE_PHASE),
                                  "cpu_us": cpu, "fake_us": fake, "alloc": alloc,
                                  "fake_alloc": fake_alloc}))


main()
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--micropython", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    args = ap.parse_args()
    if not os.path.exists(args.micropython):
        sys.exit("micropython not found at %s (run `make setup`)" % args.micropython)
    script = WORKER % {"root": ROOT, "polls": args.polls, "baud": args.baud}
    r = subprocess.run([args.micropython, "-c", script], capture_output=True, text=True,
                       timeout=300)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode or not lines:
        sys.exit("micropython worker failed:\n" + r.stdout + r.stderr)
    res = json.loads(lines[0][7:])
    char_ms = 11 * 1000.0 / args.baud
    gap_ms = 1.75 if args.baud > 19200 else 3.5 * char_ms
    wire_bytes = res["tx"] + res["rx"]
    byte_ms = wire_bytes * char_ms
    gaps_ms = 2 * res["frames"] * gap_ms
    print("modbus_poll frames_per_poll: %d (%d values, %d registers read)"
          % (res["frames"], res["values"], res["regs"]))
    print("modbus_poll wire_bytes_per_poll: %d (tx %d, rx %d)" % (wire_bytes, res["tx"], res["rx"]))
    print("modbus_poll wire_time_per_poll_at_%d_8E1: %.1f ms (characters %.1f ms + %d silences %.1f ms)"
          % (args.baud, byte_ms + gaps_ms, byte_ms, 2 * res["frames"], gaps_ms))
    print("modbus_poll cpu_per_poll_micropython_unix: %.0f us (over %d polls, fake UART %.0f us of it)"
          % (res["cpu_us"], args.polls, res["fake_us"]))
    print("modbus_poll heap_alloc_per_poll_micropython_unix: %.0f bytes (fake UART %.0f bytes of it)"
          % (res["alloc"], res["fake_alloc"]))


if __name__ == "__main__":
    main()
