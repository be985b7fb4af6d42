"""The bench: one simulated JOLT board around a firmware process.

It owns the physics (pilot, contactor, lock, meter, grid, network link), runs
the firmware (`micropython main.py` in DIR/flash), restarts it when it exits
while powered, and answers the control channel. See docs/simulator.md.
"""
import asyncio
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from .meter import PtyLine, make_meter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXIT_RESET = 75  # hal/sim/board.py: system.reset()

PILOT_MV = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0, "F": -12000}
GARBAGE_MV = (7500, 4500)  # ev_comm failure: high plateau outside every band
SENSORS = {  # control name -> (HAL input key, scale to HAL units)
    "temperature": ("temp", 10),      # degC -> 0.1 degC
    "ne_voltage": ("ne", 1000),       # V -> mV
    "leakage_ac_ma": ("lac", 1000),   # mA -> uA
    "leakage_dc_ma": ("ldc", 1000),
    "rssi": ("rssi", 1),              # dBm
}
PARTS = ("meter", "relay_weld", "relay_open", "lock", "rfid_reader", "sd_card", "ev_comm", "diode", "reset")
EVENT_RING = 100000
LOG_RING = 2000


def offered_amps(duty):
    """Current the EVSE offers for a PWM duty (IEC 61851-1 table A.8)."""
    if duty is None or duty <= 0:
        return 0.0
    if 10 <= duty <= 85:
        return duty * 0.6
    if 85 < duty <= 96:
        return (duty - 64) * 2.5
    if 8 <= duty < 10:
        return 6.0
    return 0.0


# The heap the firmware runs in on the board-like interpreter, in the
# integration suite (tests/integration/rig.py BUDGET) and the benchmarks:
# 104K until the pool of interned names was taken at boot, 112K since, 96K
# once boot, trial boots and deep requests needed less and the send and
# receive buffers became one, 88K once the names fit in six pools again, 80K
# (the budget) once a burst of requests needed less (docs/memory.md, "Where it stands").
BOARD32_HEAP = "80K"
# The heap the venv's 64-bit interpreter runs the firmware in where a heap is
# given (wss:// tests, chaos, benchmarks): its .mpy bytecode sits in the heap,
# and after the imports the name pool taken at boot needs one ~15 KB block.
MP64_HEAP = "320K"


def board32_binary():
    """The board-like interpreter (32-bit unix port with ROMFS, see
    ../shared/micropython-board32/README.md): $MICROPYTHON_BOARD32, else
    ../shared/micropython-board32/micropython next to the project root.
    None when it is not there or does not run on this machine."""
    cand = os.environ.get("MICROPYTHON_BOARD32") or os.path.join(
        os.path.dirname(ROOT), "shared", "micropython-board32", "micropython")
    if not os.path.exists(cand):
        return None
    try:
        r = subprocess.run([cand, "-c", "import vfs; vfs.rom_ioctl"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return os.path.abspath(cand) if r.returncode == 0 else None


def micropython_binary():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    for cand in (exe, shutil.which("micropython")):
        if cand and os.path.exists(cand):
            try:
                r = subprocess.run([cand, "-c", "print(1)"], capture_output=True, timeout=10)
                if r.returncode == 0:
                    return cand
            except (OSError, subprocess.SubprocessError):
                pass
    return None


class Bench:
    def __init__(self, csms, charger_id, control_port, state_dir, variant="business", config=None,
                 heapsize=None, runtime="micropython", quiet=False, ota_key=None):
        self.csms = csms
        self.charger_id = charger_id
        self.control_port = control_port
        self.state = os.path.abspath(state_dir)
        self.flash = os.path.join(self.state, "flash")
        self.sd = os.path.join(self.state, "sd")
        self.variant = variant
        self.config = dict(config or {})
        self.heapsize = heapsize
        self.quiet = quiet
        self.runtime = runtime
        self.mp_bin = None
        self.romfs = os.path.join(self.state, "romfs.img")  # the board's romfs partition: slot A
        self.romfs_b = os.path.join(self.state, "romfs_b.img")  # slot B (docs/ota.md)
        self.ota_key = ota_key  # public PEM given to a fresh board (DIR/flash/ota_key.json)
        if runtime == "board32":
            self.mp_bin = board32_binary()
            if self.mp_bin is None:
                raise SystemExit("--runtime board32: no board-like interpreter (set MICROPYTHON_BOARD32 "
                                 "or put it at ../shared/micropython-board32/micropython)")
        if runtime == "micropython":
            self.mp_bin = micropython_binary()
            if self.mp_bin is None:
                self.log("micropython binary not found or not runnable on this machine; "
                         "falling back to --runtime cpython")
                self.runtime = "cpython"
        # world
        self.powered = True
        self.ev_state = "A"
        self.ev_current = 32.0
        self.force = False
        self.fails = set()
        self.button = False
        self.sensors = {"temp": 250, "ne": 0, "lac": 0, "ldc": 0, "rssi": -60}
        self.voltage = 230.0
        self.frequency = 50.0
        self.phase_reversal = False
        self.net_up = True
        self.net_silent = False  # the link up, but nothing gets through (a dead WiFi or NAT)
        self.nets_down = set()  # WiFi networks (SSIDs) out of reach: `network ssid=...`
        self.wifi = None        # the network the firmware last joined (its `wifi` output)
        # board outputs (what the firmware drives) and physical parts
        self.relay_cmd = False
        self.relay = False
        self.lock_cmd = False
        self.lock = False
        self.duty = None
        self.led = None
        self.signals = []
        self.hal = {}
        # bookkeeping
        self.events = collections.deque(maxlen=EVENT_RING)
        self.seq = 0
        self.logs = collections.deque(maxlen=LOG_RING)
        self.proc = None
        self.proc_reason = None  # why we killed it (power / watchdog / stop)
        # A power change waits for a firmware start under way (boot.py, then
        # main.py): a cut during it then kills the started process (its exit
        # is recorded) instead of leaving it running beside the next one.
        self._plock = asyncio.Lock()
        self.boot_proc = None  # boot.py while it runs
        self._cut = False  # power went off during a firmware start
        self.boots = 0
        self.link = None
        self.sent = {}
        self.wdt_ms = 0
        self.last_feed = 0.0
        self.ble_linked = False  # the bench's BLE central (cmd ble, tools/commission.py)
        self.ble_in = ""  # what the firmware notified, not yet read
        self.garbage = 0
        self.proxied = set()
        self.model = None
        self.modbus = None
        self.line = None
        self._stop = None
        self._bg = []
        self.fw_env = {}
        self.amps = 0.0
        self._t_phys = time.monotonic()

    # ---- small helpers
    def log(self, msg):
        if not self.quiet:
            print("[bench] %s" % msg, flush=True)

    def event(self, kind, value):
        self.events.append({"seq": self.seq, "t": time.monotonic(), "kind": kind, "value": value})
        self.seq += 1

    def three_phase(self):
        return self.config.get("Phase", "") == "Three.Phase"

    # ---- storage: install and provision on first boot
    def install(self):
        os.makedirs(self.state, exist_ok=True)
        os.makedirs(self.sd, exist_ok=True)
        board = os.path.join(self.state, "board.json")
        if not os.path.exists(board):
            with open(board, "w") as f:
                json.dump({"uid": os.urandom(6).hex().upper()}, f)
        with open(board) as f:
            bj = json.load(f)
        self.uid = bj["uid"]
        if "otp_secret" not in bj:  # the factory's per-device OTP secret (docs/commissioning.md)
            bj["otp_secret"] = os.urandom(20).hex()
            with open(board, "w") as f:
                json.dump(bj, f)
        self.otp_secret = bj["otp_secret"]
        # Installed = main.py is there; factory files placed before the first boot
        # (a CA certificate, say) do not count as an installed firmware.
        if os.path.exists(os.path.join(self.flash, "main.py")) and (
                self.runtime != "board32" or os.path.exists(self.romfs)):
            self.log("reusing %s (no reinstall)" % self.flash)
            return False
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        from tools.mpy_build import build

        os.makedirs(self.flash, exist_ok=True)
        if self.runtime == "board32":
            # As on the board: the modules in the ROMFS image, only the entry
            # points (and data) on the flash filesystem.
            from tools.romfs import LITTLEFS_CODE, build_image

            files = build_image(self.romfs, board="sim")
            for rel in LITTLEFS_CODE:
                shutil.copyfile(os.path.join(ROOT, rel), os.path.join(self.flash, rel))
            files += list(LITTLEFS_CODE)
        else:
            files = build(self.flash, board="sim")
        prov = {"variant": self.variant, "otp": {"secret": self.otp_secret},
                "config": {"OcppServerAddress": self.csms, "OcppChargerId": self.charger_id}}
        for k, v in self.config.items():
            prov["config"][k] = str(v)
        with open(os.path.join(self.flash, "provision.json"), "w") as f:
            json.dump(prov, f)
        if self.ota_key:  # the factory's update key (docs/ota.md)
            from tools.ota import write_device_key

            write_device_key(self.ota_key, os.path.join(self.flash, "ota_key.json"))
        self.log("installed %d files into %s" % (len(files), self.flash))
        self.event("install", {"files": len(files)})
        return True

    # ---- physics
    def oscillating(self):
        return self.powered and self.duty is not None and 0 < self.duty < 100

    def inputs(self):
        """Everything the HAL mirrors, in its units."""
        ev = self.ev_state
        hi = PILOT_MV[ev]
        if "ev_comm" in self.fails and ev != "A":
            hi = GARBAGE_MV[self.garbage]
        if self.duty == 0:  # EVSE drives a steady -12 V (state F)
            hi = lo = -12000
        elif self.oscillating():
            lo = -12000
            if "diode" in self.fails and ev != "A":
                lo = -hi
        else:
            lo = hi
        return {
            "hi": hi, "lo": lo, "relay": self.relay, "lock": self.lock, "btn": self.button,
            "temp": self.sensors["temp"], "ne": self.sensors["ne"], "lac": self.sensors["lac"],
            "ldc": self.sensors["ldc"], "phase": 0 if self.phase_reversal else 1,
            "supply": 1 if self.voltage > 50 else 0, "net": self.link_up(), "rssi": self.sensors["rssi"],
            "sd": "sd_card" not in self.fails, "rfid_ok": "rfid_reader" not in self.fails,
            "rst": "reset" not in self.fails,
        }

    def update_parts(self):
        relay = self.relay_cmd and self.powered
        if "relay_weld" in self.fails:
            relay = True  # welded contacts: closed whatever the coil does
        elif "relay_open" in self.fails:
            relay = False
        if relay != self.relay:
            self.relay = relay
            self.event("relay", relay)
        if "lock" not in self.fails and self.lock_cmd != self.lock:
            self.lock = self.lock_cmd
            self.event("lock", self.lock)

    def sync(self):
        """Recompute parts and push changed inputs to the firmware."""
        self.update_parts()
        if self.model is not None:
            self.model.voltage = self.voltage
            self.model.frequency = self.frequency
            self.amps = self.drawing_amps()
            self.model.step(0, self.amps)
        if self.link is None:
            return
        now = self.inputs()
        diff = {k: v for k, v in now.items() if self.sent.get(k) != v}
        if diff:
            self.sent.update(diff)
            self.send({"in": diff})

    def send(self, msg):
        if self.link is None:
            return
        try:
            self.link.write((json.dumps(msg) + "\n").encode())
        except (ConnectionError, RuntimeError):
            pass

    def drawing_amps(self):
        if not self.relay or self.ev_state not in ("C", "D"):
            return 0.0
        if self.force:
            return self.ev_current
        return min(self.ev_current, offered_amps(self.duty if self.powered else None))

    def advance(self):
        """Integrate the meter up to now at the current draw (call before a change)."""
        now = time.monotonic()
        self.model.step(now - self._t_phys, self.amps)
        self._t_phys = now

    async def physics(self):
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            self.advance()
            now = self._t_phys
            if now - last_save > 5:
                self.model.save()
                last_save = now
            if "ev_comm" in self.fails and self.ev_state != "A":
                self.garbage ^= 1
                self.sync()
            if self.proc is not None and self.wdt_ms and now - self.last_feed > self.wdt_ms / 1000.0:
                self.log("watchdog: no feed for %d ms" % self.wdt_ms)
                await self.kill("watchdog")

    # ---- the firmware process
    def command_line(self, script="main.py"):
        if self.runtime in ("micropython", "board32"):
            cmd = [self.mp_bin]
            if self.heapsize:
                cmd += ["-X", "heapsize=%s" % self.heapsize]
            return cmd + [script]
        return [sys.executable, "-u", os.path.join(ROOT, "tools", "simkit", "cpy_launch.py"), script]

    async def run_boot(self, env):
        """boot.py runs before main.py, as on the board (it applies updates)."""
        if not os.path.exists(os.path.join(self.flash, "boot.py")):
            return
        p = await asyncio.create_subprocess_exec(
            *self.command_line("boot.py"), cwd=self.flash, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.boot_proc = p  # a power cut kills it where it is (set_power)
        try:
            out, _ = await p.communicate()
        finally:
            self.boot_proc = None
        for text in out.decode(errors="replace").splitlines():
            self.logs.append(text)
            if not self.quiet:
                print("[fw boot.py] %s" % text, flush=True)
        if p.returncode:
            self.log("boot.py exited with %s" % p.returncode)
            self.event("boot.py", {"code": p.returncode, "cut": self._cut})

    async def spawn(self, cause):
        async with self._plock:
            await self._spawn(cause)

    async def _spawn(self, cause):
        self.line.flush()
        self.wdt_ms = 0
        env = dict(os.environ)
        env.update({
            "JOLT_HW": "127.0.0.1:%d" % self.hw_port,
            "JOLT_METER": self.line.path,
            "JOLT_NET": "127.0.0.1:%d" % self.net_port,
            "JOLT_RESET_CAUSE": cause,
            "JOLT_UID": self.uid,
            "JOLT_ROOT": ROOT,
            # The card as boot.py finds it (no hardware link yet then).
            "JOLT_SD": "0" if "sd_card" in self.fails else "1",
        })
        if self.runtime == "board32":
            from tools.romfs import SYS_PATH

            # The script's directory (DIR/flash, the board's littlefs root)
            # replaces the first entry, '' on the board.
            # Two application slots (docs/ota.md): segment 0 is mounted at
            # /rom at start-up, boot.py/main.py mount the recorded one.
            env["MICROPY_ROMFS"] = env["JOLT_SLOTS"] = self.romfs + ":" + self.romfs_b
            env["MICROPYPATH"] = ":".join(SYS_PATH)
        self.fw_env = {k: v for k, v in env.items() if k.startswith("JOLT_")}
        await self.run_boot(env)
        if not self.powered or self._cut or self._stopping():
            return
        self.proc = await asyncio.create_subprocess_exec(
            *self.command_line(), cwd=self.flash, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.proc_reason = None
        self.boots += 1
        self.event("boot", {"pid": self.proc.pid, "cause": cause, "runtime": self.runtime,
                            "heapsize": self.heapsize})
        self.log("firmware started (pid %d, cause %s, %s)" % (self.proc.pid, cause, self.runtime))
        asyncio.ensure_future(self.watch(self.proc))

    async def watch(self, proc):
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            text = line.decode(errors="replace").rstrip("\n")
            self.logs.append(text)
            if not self.quiet:
                print("[fw] %s" % text, flush=True)
        code = await proc.wait()
        if proc is not self.proc:
            return
        self.proc = None
        reason = self.proc_reason or ("reset" if code == EXIT_RESET else "crash")
        self.event("exit", {"code": code, "reason": reason})
        self.log("firmware exited (code %s, %s)" % (code, reason))
        self.board_reset()
        if not self.powered or reason in ("stop", "power"):
            return
        cause = {"reset": "soft", "watchdog": "watchdog"}.get(reason, "hard")
        await asyncio.sleep(0.2 if reason != "crash" else 1.0)
        if self.powered and self.proc is None and not self._stopping():
            await self.spawn(cause)

    def _stopping(self):
        return self._stop is not None and self._stop.is_set()

    def board_reset(self):
        """The controller's outputs fall to their reset state."""
        if self.link is not None:
            self.link.close()
            self.link = None
        self.relay_cmd = False
        self.ble_linked = False  # a reset drops the BLE connection
        if self.duty is not None:
            self.duty = None
            self.event("duty", None)
        self.wdt_ms = 0
        self.sync()

    async def kill(self, reason):
        proc = self.proc
        if proc is None:
            return
        self.proc_reason = reason
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        await proc.wait()
        # Let watch() record the exit: it first reads what the firmware still
        # had in the pipe, which takes a while on a loaded machine (1 s was
        # not always enough: the power-off status then said running).
        for _ in range(500):
            if self.proc is not proc:
                break
            await asyncio.sleep(0.01)

    async def set_power(self, on):
        if not on and self.powered and self.boot_proc is not None:
            # The cut reaches boot.py too (an update it is installing stops
            # there), and no main.py starts after it.
            self._cut = True
            try:
                self.boot_proc.kill()
            except ProcessLookupError:
                pass
        async with self._plock:
            self._cut = False
            if on == self.powered:
                return
            self.powered = on
            self.event("power", on)
            if not on:
                await self.kill("power")
                self.board_reset()
                self.model.save()
            else:
                await self._spawn("power")

    # ---- hardware link (firmware HAL <-> bench)
    async def on_link(self, reader, writer):
        if self.link is not None:
            self.link.close()
        self.link = writer
        self.sent = {}
        self.sync()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if writer is self.link:
                    self.on_output(msg.get("out"), msg.get("v"))
        except ConnectionError:
            pass
        finally:
            if self.link is writer:
                self.link = None
            writer.close()

    def on_output(self, kind, v):
        self.advance()
        if kind == "relay":
            self.relay_cmd = bool(v)
        elif kind == "lock":
            self.lock_cmd = bool(v)
        elif kind == "duty":
            if v != self.duty:
                self.duty = v
                self.event("duty", v)
        elif kind == "signal":
            self.signals.append(v)
            del self.signals[:-100]
            self.event("signal", v)
        elif kind == "led":
            self.led = v
            self.event("led", v)
        elif kind == "wdt":
            self.wdt_ms = int(v or 0)
            self.last_feed = time.monotonic()
        elif kind == "feed":
            self.last_feed = time.monotonic()
        elif kind == "hello":
            self.event("link", v)
        elif kind == "ble_tx":
            self.ble_in = (self.ble_in + str(v))[-65536:]
            self.event("ble_tx", v)
        elif kind == "ble_drop":
            self.ble_linked = False
            self.event("ble", "dropped")
        else:
            if kind == "wifi":
                ssid = (v or {}).get("ssid")
                if self.wifi is not None and ssid != self.wifi:
                    self.cut_network()  # joining another network: the old connections are gone
                self.wifi = ssid
            self.hal[kind] = v
            self.event("hal", {kind: v})
        self.sync()

    # ---- network proxy (the board's uplink)
    async def on_proxy(self, reader, writer):
        upstream = None
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            parts = line.decode(errors="replace").split()
            if len(parts) != 3 or parts[0] != "CONNECT":
                writer.write(b"ERR bad request\n")
                return
            host, port = parts[1], int(parts[2])
            if not self.link_up() or not self.powered:
                self.event("net", {"host": host, "port": port, "ok": False, "error": "down"})
                writer.write(b"ERR down\n")
                return
            try:
                ur, uw = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            except (OSError, asyncio.TimeoutError) as e:
                self.event("net", {"host": host, "port": port, "ok": False, "error": str(e)})
                writer.write(b"ERR refused\n")
                return
            upstream = uw
            self.event("net", {"host": host, "port": port, "ok": True})
            writer.write(b"OK\n")
            await writer.drain()
            pair = (writer, uw)
            self.proxied.add(pair)
            try:
                await asyncio.gather(self._pipe(reader, uw), self._pipe(ur, writer))
            finally:
                self.proxied.discard(pair)
        except (OSError, asyncio.TimeoutError, ValueError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    async def _pipe(self, src, dst):
        try:
            while True:
                data = await src.read(16384)
                if not data:
                    break
                if self.net_silent:
                    continue  # lost on the way; the connection stays open
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                dst.close()
            except RuntimeError:
                pass

    def cut_network(self):
        for a, b in list(self.proxied):
            for w in (a, b):
                transport = w.transport
                if transport is not None:
                    transport.abort()
        self.proxied.clear()

    # ---- control channel
    async def on_control(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("request must be an object")
                    resp = await self.handle(req)
                except Exception as e:  # noqa: BLE001 - every error is an answer
                    resp = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
                writer.write((json.dumps(resp) + "\n").encode())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(self, req):
        cmd = req.get("cmd")
        fn = getattr(self, "cmd_" + str(cmd), None)
        if fn is None:
            return {"ok": False, "error": "unknown cmd %r" % cmd}
        self.advance()
        if cmd in INPUT_CMDS:
            self.event("input", req)
        out = fn(req)
        if asyncio.iscoroutine(out):
            out = await out
        self.sync()
        resp = {"ok": True}
        resp.update(out or {})
        return resp

    def cmd_status(self, req):
        signals, self.signals = self.signals, []
        return {
            "powered": self.powered, "running": self.proc is not None, "relay": self.relay,
            "lock": self.lock, "pilot": self.ev_state, "duty": self.duty if self.powered else None,
            "signals": signals, "energy_wh": round(self.model.energy_wh, 3),
            "voltage": self.model.voltage, "current": self.model.currents[0],
            "currents": list(self.model.currents), "power_w": self.model.power_total(),
            "led": self.led, "ev_current": self.ev_current, "network": self.net_up,
            "wifi": self.wifi, "networks_down": sorted(self.nets_down),
            "fails": sorted(self.fails), "boots": self.boots, "link": self.link is not None,
            "pid": self.proc.pid if self.proc else None, "runtime": self.runtime,
        }

    def cmd_plug(self, req):
        self.ev_state = "B"

    def cmd_unplug(self, req):
        self.ev_state = "A"

    def cmd_ev(self, req):
        state = req.get("state")
        if state not in PILOT_MV:
            raise ValueError("state must be one of A..F")
        self.ev_state = state

    def cmd_ev_current(self, req):
        self.ev_current = float(req["amps"])
        self.force = bool(req.get("force", False))

    def cmd_ble(self, req):
        """The bench's BLE central: op connect | write (data: text) | read |
        disconnect. read returns (and clears) what the firmware notified."""
        op = req.get("op")
        if op == "connect":
            self.ble_linked = self.link is not None
            self.ble_in = ""
            self.send({"ble": {"linked": True}})
        elif op == "write":
            if not self.ble_linked:
                raise ValueError("not connected")
            self.send({"ble": {"rx": str(req["data"])}})
        elif op == "read":
            text, self.ble_in = self.ble_in, ""
            return {"data": text, "linked": self.ble_linked}
        elif op == "disconnect":
            self.ble_linked = False
            self.send({"ble": {"linked": False}})
        else:
            raise ValueError("op must be connect, write, read or disconnect")
        return {"linked": self.ble_linked}

    def cmd_rfid(self, req):
        tag = str(req["id"]).upper()
        delivered = self.link is not None and "rfid_reader" not in self.fails
        if delivered:
            self.send({"rfid": tag})
        return {"delivered": delivered}

    def cmd_button(self, req):
        if req.get("name", "emergency") != "emergency":
            raise ValueError("unknown button %r" % req.get("name"))
        self.button = bool(req["pressed"])

    def cmd_grid(self, req):
        if "voltage" in req:
            self.voltage = float(req["voltage"])
        if "frequency" in req:
            self.frequency = float(req["frequency"])
        if "phase_reversal" in req:
            self.phase_reversal = bool(req["phase_reversal"])

    def cmd_sensor(self, req):
        name = req.get("name")
        if name not in SENSORS:
            raise ValueError("unknown sensor %r" % name)
        key, scale = SENSORS[name]
        self.sensors[key] = int(round(float(req["value"]) * scale))

    def cmd_fail(self, req):
        part = req.get("part")
        if part not in PARTS:
            raise ValueError("unknown part %r" % part)
        if req.get("active", True):
            self.fails.add(part)
        else:
            self.fails.discard(part)
        self.modbus.silent = "meter" in self.fails

    def link_up(self):
        """The board's uplink: the network is up and so is the WiFi network it
        joined (any network while the firmware has named none)."""
        return self.net_up and self.wifi not in self.nets_down

    def cmd_network(self, req):
        if "silent" in req:
            self.net_silent = bool(req["silent"])
        up = bool(req["up"])
        was = self.link_up()
        ssid = req.get("ssid")
        if ssid is not None:  # one WiFi network (primary, fallback) in or out of reach
            if up:
                self.nets_down.discard(str(ssid))
            else:
                self.nets_down.add(str(ssid))
        else:
            self.net_up = up
        if was and not self.link_up():
            self.cut_network()

    async def cmd_power(self, req):
        await self.set_power(bool(req["on"]))

    def cmd_events(self, req):
        since = int(req.get("since", 0))
        evs = [e for e in self.events if e["seq"] >= since]
        limit = int(req.get("limit", 10000))
        evs = evs[:limit]
        nxt = evs[-1]["seq"] + 1 if evs else since
        return {"events": evs, "next": nxt, "head": self.seq}

    def cmd_log(self, req):
        n = int(req.get("lines", 200))
        return {"lines": list(self.logs)[-n:]}

    def cmd_env(self, req):
        """The wiring the firmware gets (to run a probe script beside it)."""
        return {"env": dict(self.fw_env), "flash": self.flash, "sd": self.sd}

    def cmd_inputs(self, req):
        return {"inputs": self.inputs()}

    def cmd_meter(self, req):
        if "pf" in req:
            self.advance()
            self.model.pf = min(1.0, max(0.0, float(req["pf"])))
        return {"values": self.model.values(), "path": self.line.path, "unit": self.modbus.unit,
                "requests": self.modbus.requests, "tampered": self.modbus.tampered}

    def cmd_meter_fault(self, req):
        """Damage every `every`-th meter reply: mode crc / short / noise / exception /
        wrong_slave / nan, or every reply late (slow); null = off."""
        self.modbus.set_fault(req.get("mode"), req.get("every", 1))

    def cmd_reset(self, req):
        """Hard reset button: the firmware process is killed and restarted."""
        async def go():
            await self.kill("hard")
        return go()

    # ---- lifetime
    async def run(self):
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.install()
        self.model, self.modbus = make_meter(os.path.join(self.state, "meter.json"), self.three_phase())
        self.line = PtyLine(self.modbus)
        self.line.start(loop)
        hw = await asyncio.start_server(self.on_link, "127.0.0.1", 0)
        self.hw_port = hw.sockets[0].getsockname()[1]
        net = await asyncio.start_server(self.on_proxy, "127.0.0.1", 0)
        self.net_port = net.sockets[0].getsockname()[1]
        ctl = await asyncio.start_server(self.on_control, "127.0.0.1", self.control_port)
        self.control_port = ctl.sockets[0].getsockname()[1]
        self.log("control on 127.0.0.1:%d, meter on %s" % (self.control_port, self.line.path))
        self._bg.append(asyncio.ensure_future(self.physics()))
        self.event("power", True)
        await self.spawn("power")
        await self._stop.wait()
        self.log("stopping")
        await self.kill("stop")
        self.model.save()
        for t in self._bg:
            t.cancel()
        for s in (ctl, hw, net):
            s.close()
        self.cut_network()
        self.line.close()


INPUT_CMDS = {"plug", "unplug", "ev", "ev_current", "rfid", "button", "grid", "sensor", "fail", "meter_fault",
              "network", "power", "reset"}
