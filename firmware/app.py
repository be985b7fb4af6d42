# Application wiring: one HAL board, one asyncio loop, cooperative tasks.
import asyncio
import gc
import os
from micropython import const

import hal
from lib import fsutil, log, ocppj, transient
from lib.journal import Journal
from firmware import version, watchdog
from firmware.chargepoint import OUT_BYTES, ChargePoint
from firmware.config import Config
from firmware.control import Control
from firmware.idtags import IdTags
from firmware.metering import Metering
from firmware.operations import Operations
from firmware.outputs import Outputs
from firmware.station import Station
from firmware.supervisor import Supervisor
from firmware.transactions import Transactions

_HEAP_SAMPLE_S = const(5)
_JOURNAL_FILE = const("tx_journal.bin")
_JOURNAL_BYTES = const(65536)
_COMMISSIONING = const("firmware.commissioning")
_WDT_REPORT = const("firmware.wdt_report")
_BOOT = const("boot")  # boot.py: the slot record (docs/ota.md), source on littlefs; main.py keeps it loaded on a trial boot
# Every module loaded per use (lib/transient.py) and dropped again; their names
# are interned at boot by transient.warm (docs/memory.md, "Interned names").
# netmgr is resident on a charger with WiFi configured (every JOLT in the field):
# listed so the bench, which has none, counts its names as the board does.
PER_USE = (_COMMISSIONING, _WDT_REPORT, _BOOT, "firmware.fwupdate", "firmware.reservations",
           "firmware.auth", "firmware.locallist", "firmware.metervalues", "firmware.meter_maps",
           "firmware.netmgr", "firmware.diagnostics", "lib.http", "lib.ftp")
_BLE_POLL_S = const(0.25)
_BOOT_GC_BYTES = const(4096)
_SD_POLL_S = const(2)
_LOG_DIR = const("log/")  # on the SD card: the rotating log files (lib/log.py, docs/logging.md)


class App:
    def __init__(self, board, out=None):
        # The message buffer first, while the heap is still in one piece
        # (loading the configuration scatters small strings through it);
        # run() allocates it before anything else.
        gc.collect()
        out = out or ocppj.Out(OUT_BYTES)
        self.board = board
        root = board.flash.root
        self.cfg = Config(root=root, device_id=board.system.unique_id())
        identity = {
            "chargePointVendor": version.VENDOR,
            "chargePointModel": version.MODELS.get(self.cfg.variant, "JOLT"),
            "chargePointSerialNumber": board.system.unique_id()[:25],
            "firmwareVersion": version.FIRMWARE,
        }
        # The one owner of relay, lock and pilot PWM (the output interlock).
        self.outputs = Outputs(board)
        self.cp = ChargePoint(board, self.cfg, identity, out)
        self.ops = Operations(self.cp, self.cfg, board)
        self.meter = Metering(board, self.cfg, self.outputs, self.cp)
        self.auth = IdTags(self.cp, self.cfg, board)
        self.journal = Journal(root + _JOURNAL_FILE, _JOURNAL_BYTES)
        self.txs = Transactions(self.cp, self.cfg, board, self.meter, self.journal, self.auth)
        self.station = Station(board, self.cfg, self.cp, self.ops, self.auth, self.txs, self.outputs)
        self.meter.attach(self.station, self.txs)
        self.ops.triggers["MeterValues"] = self.meter.trigger
        self.supervisor = Supervisor(self.cfg, self.station, self.outputs, self.meter)
        self.ops.before_reset.append(self.supervisor.before_reset)
        self.control = Control(board, self.station.connector, self.supervisor, self.outputs, self.station)
        self.heap_peak = 0
        self._up = False
        self.cp.listen(self._trial_end)
        self.ops.when_busy(lambda: bool(self.txs.by_local))

    def _trial_end(self, ev):
        # The first accepted BootNotification ends a trial boot of a new
        # version and reports a rollback (boot.py, docs/ota.md), and the
        # result of an OCPP update goes out.
        if ev != "accepted" or self._up:
            return
        self._up = True
        try:
            os.stat(self.board.flash.root + "fw_pending.txt")
            asyncio.create_task(self.ops.report_update())
        except OSError:
            pass
        if not self._on_trial(b'"failed"'):  # the common case: boot.py not loaded
            return
        r = transient.load(_BOOT).healthy()
        transient.drop(_BOOT)
        if r is None:
            return
        if "tries" in r:
            log.info("update", "version %s healthy after %d trial boot(s)" % (r.get("version"), r["tries"]))
        else:
            log.error("update", "update to %s rolled back: not healthy in its trial boots" % r["failed"])

    def _on_trial(self, also):
        """boot.json (docs/ota.md) says a trial boot runs, or `also` is in it:
        only then is boot.py needed (main.py kept it loaded: compiling it
        again here needs more heap than a small one has free)."""
        rec = fsutil.read(self.board.flash.root + "boot.json")
        return bool(rec) and (b'"tries"' in rec or also in rec)

    async def _heap_monitor(self):
        # Live heap after a collection, sampled: the figure the heap budget is
        # checked against (tools/bench reads these lines).
        while True:
            gc.collect()
            used = gc.mem_alloc()
            if used > self.heap_peak:
                self.heap_peak = used
                log.info("heap", "live peak %d free %d" % (used, gc.mem_free()))
            await asyncio.sleep(_HEAP_SAMPLE_S)

    def _reset_failed(self):
        return self.supervisor.reset_failed

    def _weak(self):
        return "weak" in self.supervisor.active

    async def _trial_offline(self):
        # A trial boot with no central system is healthy after
        # FirmwareTrialOffline seconds with no accepted BootNotification and
        # no fault (docs/ota.md); the first accepted one ends it before.
        if not self._on_trial(b'"tries"'):  # (the common case: boot.py not loaded)
            return
        boot = transient.load(_BOOT)
        need = self.cfg.get("FirmwareTrialOffline")
        off = 0
        while need and not self._up:
            await asyncio.sleep(1)
            off = 0 if self.cp.accepted or self.supervisor.active else off + 1
            if off >= need and not self._up:
                r = boot.healthy()
                if r is not None:
                    log.info("update", "version %s healthy: %d s without a central system, no fault"
                             % (r.get("version"), off))
                break
        transient.drop(_BOOT)

    async def _sd_updates(self):
        # A card inserted (or back after SDCardFailure) with a package in its
        # update folder: reboot into boot.py's install once no transaction
        # runs (docs/ota.md).
        sd = self.board.sd
        had = sd.ok()
        while True:
            await asyncio.sleep(_SD_POLL_S)
            ok = sd.probe()  # the card's I/O here, not in the control step (sd.ok())
            if ok and not had:  # log files again (SDCardFailure turned them off)
                log.files(sd.root + _LOG_DIR, self.board.clock.now)
            if ok and not had and _has_package(sd.root):
                while self.txs.by_local:
                    await asyncio.sleep(_SD_POLL_S)
                log.info("update", "card inserted with an update: rebooting to install it")
                await self.ops.reboot("Soft")
            had = ok

    async def _commissioning(self):
        # BLE installer sessions (firmware/commissioning.py, loaded per session).
        b = self.board
        uid = b.system.unique_id()
        b.ble.advertise("JOLT-" + uid[-8:])
        memo = {}  # lockout deadline, kept across sessions
        while True:
            if b.ble.linked():
                m = transient.load(_COMMISSIONING)
                try:
                    await m.Commissioning(self.cfg, uid, b.clock, b.flash.root, memo,
                                          b.system.reset).serve(b.ble)
                finally:
                    m = None
                    transient.drop(_COMMISSIONING)
            await asyncio.sleep(_BLE_POLL_S)

    async def main(self):
        if self.board.sd.ok():
            log.files(self.board.sd.root + _LOG_DIR, self.board.clock.now)
        log.info("app", "boot %s %s variant=%s reset=%s" % (
            version.FIRMWARE, self.cfg.get("OcppChargerId"), self.cfg.variant,
            self.board.system.reset_cause()))
        transient.load(_WDT_REPORT).boot(self.board.flash.root, self.board.system.reset_cause())
        transient.drop(_WDT_REPORT)
        # Fed by the control loop while every critical task checks in; a failed Reset starves it.
        watchdog.start(self.board.wdt, self.board.flash.root, self._reset_failed)
        # The control loop first: the outputs are in a safe state before anything talks.
        asyncio.create_task(_forever("control", self.control.run))
        asyncio.create_task(_forever("meter", self.meter.run))
        asyncio.create_task(_forever("status", self.station.run_status))
        asyncio.create_task(self.station.recover())
        asyncio.create_task(_forever("txqueue", self.txs.run))
        asyncio.create_task(_forever("heap", self._heap_monitor))
        asyncio.create_task(_forever("ble", self._commissioning))
        asyncio.create_task(_forever("sd", self._sd_updates))
        asyncio.create_task(_forever("log", log.run))
        asyncio.create_task(self._trial_offline())
        if self.cfg.get("WiFiPrimarySsid") or self.cfg.get("WiFiConnect"):
            # WiFi networks to choose from (firmware/netmgr.py, docs/network.md).
            from firmware import netmgr
            nm = netmgr.NetManager(self.board.net, netmgr.networks(self.cfg), self._weak)
            asyncio.create_task(_forever("wifi", nm.run))
        await _forever("ocpp", self.cp.run)


def _has_package(root):
    try:
        for n in os.listdir(root + "update"):
            if n.endswith(".jolt"):
                return True
    except (OSError, TypeError):  # no folder; root None: the card failed again
        pass
    return False


async def _forever(name, fn):
    """A long-running task never dies for good: an exception (a MemoryError on a
    fragmented heap, a bug) is logged, the heap collected, and the task restarted."""
    while True:
        try:
            await fn()
        except Exception as e:
            # Formatting the line needs heap too: with none left it is
            # skipped, never the restart (the task ended for good at 88 KiB).
            try:
                log.error("app", "task %s failed: %r; restarting" % (name, e))
            except MemoryError:
                pass
            e = None
            gc.collect()
            await asyncio.sleep(1)


def run():
    # Boot's garbage collected as it goes (every 4 KB allocated): left to
    # fill the heap first, it scatters the long-lived objects built between
    # it, and at 88 KiB the free heap after boot was in pieces too small to
    # connect.
    gc.threshold(_BOOT_GC_BYTES)
    board = hal.load()
    # Before anything else takes the heap: the 4 KiB message buffer, then a
    # pool of interned names that the per-use modules need, one block of
    # ~9 KB (lib/transient.warm). The other way round, the modules warm loads
    # and drops left no 4 KiB block at 88 KiB, and every boot failed.
    gc.collect()
    out = ocppj.Out(OUT_BYTES)
    failed = transient.warm(PER_USE + board.PER_USE)
    app = App(board, out)
    if failed:
        log.warn("app", "heap: not warmed %s" % (failed,))
    # Collect early and often: short pauses, and less fragmentation on a small
    # heap. MicroPython's threshold counts the bytes allocated since the last
    # collection: a quarter of what is free (mem_free() // 4 + mem_alloc(),
    # as it was, is more than a small heap holds: nothing was collected
    # before the heap was full).
    gc.collect()
    gc.threshold(gc.mem_free() // 4)
    asyncio.run(app.main())
