# Core-profile requests that are about the controller itself rather than a
# connector or a transaction: configuration, vendor data, triggers, reset.
import asyncio
from micropython import const

from lib import log, ocppj, transient
from firmware import version
from firmware.connector import connector_known

_FWUPDATE = const("firmware.fwupdate")
_DIAG = const("firmware.diagnostics")
_QUEUED = const(0)   # a triggered message's task waits to send it
_SENDING = const(1)  # it is sending it
_AGAIN = const(2)    # and sends it once more after (a request came meanwhile)


class Operations:
    def __init__(self, cp, cfg, board):
        self.cp = cp
        self.cfg = cfg
        self.board = board
        self.before_reset = []  # async fn(kind) hooks: stop transactions etc.
        self.triggers: dict = {       # requestedMessage -> async fn(connector_id) registered by other modules
            "BootNotification": lambda c: cp.boot_notification(),
            "Heartbeat": lambda c: cp.heartbeat(),
        }
        # Status of a diagnostics upload / firmware update, as TriggerMessage
        # reports it; the firmware-management code sets these ("Idle": nothing in progress).
        self.diagnostics_status = self.firmware_status = "Idle"
        # Triggered messages, (requestedMessage, connectorId) -> _QUEUED,
        # _SENDING or _AGAIN (one more once this one is sent): a burst of
        # TriggerMessage costs one task per message, not per request, also
        # while the central system is slow to answer the message sent.
        self._trig = {}
        self.busy = lambda: False  # a transaction runs (when_busy()): an update waits
        cp.on("UpdateFirmware", self.update_firmware)
        cp.on("GetDiagnostics", self.get_diagnostics)
        cp.on("GetConfiguration", self.get_configuration)
        cp.on("ChangeConfiguration", self.change_configuration)
        cp.on("DataTransfer", self.data_transfer)
        cp.on("TriggerMessage", self.trigger_message)
        cp.on("Reset", self.reset)

    def when_busy(self, fn):
        """fn() -> bool: a transaction runs (an update waits for it to end)."""
        self.busy = fn

    def get_configuration(self, p):
        keys = p.get("key")
        cfg = self.cfg

        def build():
            known, unknown = cfg.get_configuration(keys)
            res = {"configurationKey": known}
            if unknown:
                res["unknownKey"] = unknown
            return res

        # Written entry by entry into the send buffer (ocppj.Streamed).
        return ocppj.Streamed(lambda out: cfg.get_configuration(keys, out), build)

    def change_configuration(self, p):
        status = self.cfg.set(p["key"], p["value"])
        log.info("config", "%s -> %s" % (p["key"], status))
        return {"status": status}

    def data_transfer(self, p):
        # Our vendor id is known, but no vendor messages are defined yet.
        if p["vendorId"] == version.VENDOR:
            return {"status": "UnknownMessageId"}
        return {"status": "UnknownVendorId"}

    def trigger_message(self, p):
        what = p["requestedMessage"]
        connector = p.get("connectorId")
        if connector is not None and not connector_known(self.cfg, connector, True):
            return {"status": "Rejected"}
        fn = self.triggers.get(what)
        if what[:1] in ("D", "F"):  # Diagnostics- or FirmwareStatusNotification (a slice: an index interns)
            fn = self.status_note
            connector = what
        if fn is None:
            return {"status": "NotImplemented"}
        key = (what, connector)
        state = self._trig.get(key)
        if state is None:
            # the task first: with no memory for it, no key is left to wait on a task that is not there
            asyncio.create_task(self._triggered(what, fn, connector, key))
            self._trig[key] = _QUEUED
        elif state == _SENDING:
            self._trig[key] = _AGAIN  # this request gets a message made after it
        # (_QUEUED, _AGAIN: a message not made yet answers this request too)
        return {"status": "Accepted"}

    async def status_note(self, what, status=None):
        """What TriggerMessage sends: the current state of `what`, once. With
        a status: the new state, logged and sent (three tries; offline, the
        state stays for TriggerMessage). what: DiagnosticsStatusNotification
        or FirmwareStatusNotification."""
        if status is None:
            await self.cp.call(what, {"status": self.diagnostics_status if what[:1] == "D" else self.firmware_status})
            return
        if what[:1] == "D":
            self.diagnostics_status = status
        else:
            self.firmware_status = status
        log.info("ocpp", "%s %s" % (what, status))
        for _ in range(3):
            try:
                await self.cp.call(what, {"status": status})
                return
            except Exception as e:
                log.warn("ocpp", "%s %s: %r" % (what, status, e))
                await asyncio.sleep(5)

    async def get_diagnostics(self, p):
        # firmware/diagnostics.py answers (the file name) and uploads; it is
        # loaded per use and drops itself when done.
        try:
            return await transient.load(_DIAG).start(self, p)
        except Exception:
            transient.drop(_DIAG)
            raise

    async def reset(self, p):
        asyncio.create_task(self.reboot(p["type"]))
        return {"status": "Accepted"}

    async def update_firmware(self, p):
        # One update at a time; the conf has no status (docs/ota.md).
        if self.firmware_status in ("Idle", "Installed", "DownloadFailed", "InstallationFailed"):
            asyncio.create_task(self._fw(p))
        else:
            log.warn("update", "UpdateFirmware ignored: an update is %s" % self.firmware_status)
        return {}

    async def _fw(self, p):
        self.firmware_status = "Downloading"
        m = None
        # A running session ends first, download included: the heap is at its
        # fullest while charging (docs/decisions.md).
        while self.busy():
            await asyncio.sleep(2)
        try:
            m = transient.load(_FWUPDATE)
            await m.run(self, p)
            self.firmware_status = "Idle"
        except Exception as e:  # a MemoryError costs this update, never the charger
            log.error("update", "UpdateFirmware failed: %r" % (e,))
            m = None
            transient.drop(_FWUPDATE)
            self.firmware_status = "InstallationFailed" if self.firmware_status in (
                "Downloaded", "Installing") else "DownloadFailed"
            try:
                await self.status_note("FirmwareStatusNotification")
            except Exception:
                pass
            self.firmware_status = "Idle"
        finally:
            m = None
            transient.drop(_FWUPDATE)

    async def report_update(self):
        """After BootNotification is accepted: the result of an OCPP update's reboot."""
        m = transient.load(_FWUPDATE)
        try:
            await m.report(self)
        finally:
            m = None
            transient.drop(_FWUPDATE)

    async def reboot(self, kind):
        # A task of its own (or the end of one): the reset follows our answer
        # to the request, then the hooks that must run before it.
        await asyncio.sleep(0.05)
        for fn in self.before_reset:
            try:
                await fn(kind)
            except Exception as e:
                log.error("ocpp", "before-reset hook failed: %r" % (e,))
        # ResetRetries more attempts if the first one does not take; past
        # that the supervisor reports ResetFailure and lets the watchdog bite.
        for attempt in range(1 + self.cfg.get("ResetRetries")):
            log.info("app", "%s reset" % kind)
            await asyncio.sleep(1)
            self.board.system.reset()
            log.error("app", "reset attempt %d failed" % (attempt + 1))

    async def _triggered(self, what, fn, arg, key):
        # The task of a triggered message: it follows our answer to the request,
        # and is sent again while requests came during its sending.
        try:
            await asyncio.sleep(0.05)
            while True:
                self._trig[key] = _SENDING
                try:
                    await fn(arg)
                except Exception as e:
                    log.error("ocpp", "%s failed: %r" % (what, e))
                if self._trig[key] != _AGAIN:
                    break
        finally:
            del self._trig[key]
