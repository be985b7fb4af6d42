#!/usr/bin/env python3
"""Benchmark: heap allocated per control cycle on the MicroPython unix port.

The control loop runs every 20 ms for the life of the charger, so what one
cycle allocates becomes garbage 50 times a second. This runs the firmware's
real control step (firmware/control.py: pilot read and debounce, diode
check, fault supervisor, connector state machine, card poll, output
application) on MicroPython against the in-memory HAL (hal/mock) with
automatic collection disabled, and reports the bytes allocated per cycle in
steady states: idle (no EV), charging, and faulted (emergency button).

    .venv/bin/python tools/bench/control_alloc.py [--cycles 2000]
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = r"""
import gc, sys
sys.path.insert(0, ROOT)
from hal.mock.board import Board
from firmware.connector import Connector
from firmware.supervisor import Supervisor
from firmware.control import Control
from firmware.config import Config
from firmware.outputs import Outputs


class Station:
    def __init__(self, board, cfg, out):
        self.board = board
        self.out = out
        self.cp_fault = None
        self.pokes = 0
        self.connector = Connector(1, cfg, self)

    def tx_energy_allowed(self, tx):
        return True

    def open_contactor(self):
        self.out.open()

    def contactor_closed(self):
        return self.out.relay

    def stop_tx(self, conn, tx, reason, id_tag):
        pass

    def start_tx(self, conn, session):
        return {"l": 1}

    def poke_status(self):
        self.pokes += 1

    def signal(self, name):
        pass

    def authorize(self, *a):
        pass


class Meter:
    ok = True
    refused = False

    def __init__(self):
        self.values = {("Voltage", None): 230.0, ("Frequency", None): 50.0, ("Current.Import", None): 16.0}


board = Board(flash_root=TMP + "/", sd_root=TMP + "/sd/")
board.sensors.set("supply_ok", 1)
board.sensors.set("phase_ok", 1)
board.sensors.set("temperature_dc", 250)
cfg = Config(root=TMP + "/", device_id="BENCH")
out = Outputs(board)
st = Station(board, cfg, out)
sup = Supervisor(cfg, st, out, Meter())
ctl = Control(board, st.connector, sup, out, st)
conn = st.connector


def measure(name):
    for _ in range(200):
        ctl.step()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(CYCLES):
        ctl.step()
    used = gc.mem_alloc() - a
    gc.enable()
    print("control_alloc %-9s %4s %.1f B/cycle over %d cycles (relay %s)"
          % (name, conn.status()[0], used / CYCLES, CYCLES, board.relay.closed()))


measure("idle")
board.pilot.set_levels(9000, -12000)
for _ in range(5):
    ctl.step()
conn.on_authorized("TAG1", ("start", {"status": "Accepted"}, "AUTH_OK", None), "start")
board.pilot.set_levels(6000, -12000)
import time
t0 = time.ticks_ms()
while not board.relay.closed() and time.ticks_diff(time.ticks_ms(), t0) < 2000:
    ctl.step()  # the contactor closes once the diode is verified (100 ms of PWM)
    time.sleep_ms(5)
measure("charging")
board.button.set(True)
t0 = time.ticks_ms()
while board.relay.closed() and time.ticks_diff(time.ticks_ms(), t0) < 2000:
    ctl.step()  # the button's fault row debounces the press (20 ms, docs/faults.md)
    time.sleep_ms(5)
measure("faulted")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=2000)
    a = ap.parse_args()
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "sd"))
        prog = "ROOT = %r\nTMP = %r\nCYCLES = %d\n" % (ROOT, tmp, a.cycles) + WORKER
        r = subprocess.run([mp, "-X", "heapsize=2M", "-c", prog], cwd=tmp,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(r.stdout)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
