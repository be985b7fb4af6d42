# Core-profile requests that are about the controller itself rather than a
# connector or a transaction: configuration, vendor data, triggers, reset.
import asyncio

from lib import log
from firmware.chargepoint import CallError

RESET_DELAY_S = 1


class Operations:
    def __init__(self, cp, cfg, board):
        self.cp = cp
        self.cfg = cfg
        self.board = board
        self.before_reset = []  # async fn(kind) hooks: stop transactions etc.
        self.triggers = {}      # requestedMessage -> async fn(connector_id) registered by other modules
        cp.on("GetConfiguration", self.get_configuration)
        cp.on("ChangeConfiguration", self.change_configuration)
        cp.on("DataTransfer", self.data_transfer)
        cp.on("TriggerMessage", self.trigger_message)
        cp.on("Reset", self.reset)
        self.triggers["BootNotification"] = lambda c: cp.boot_notification()
        self.triggers["Heartbeat"] = lambda c: cp.heartbeat()

    async def get_configuration(self, p):
        known, unknown = self.cfg.get_configuration(p.get("key"))
        res = {"configurationKey": known}
        if unknown:
            res["unknownKey"] = unknown
        return res

    async def change_configuration(self, p):
        status = self.cfg.set(p["key"], p["value"])
        log.info("config", "ChangeConfiguration %s -> %s" % (p["key"], status))
        return {"status": status}

    async def data_transfer(self, p):
        # No vendor extensions are defined for this controller yet.
        return {"status": "UnknownVendorId"}

    async def trigger_message(self, p):
        what = p["requestedMessage"]
        connector = p.get("connectorId")
        if connector is not None and (connector < 0 or connector > self.cfg.get("NumberOfConnectors")):
            raise CallError("PropertyConstraintViolation", "connectorId %d out of range" % connector)
        fn = self.triggers.get(what)
        if fn is None:
            return {"status": "NotImplemented"}
        # The triggered message must follow our answer, so it runs as its own task.
        asyncio.create_task(self._run_trigger(what, fn, connector))
        return {"status": "Accepted"}

    async def _run_trigger(self, what, fn, connector):
        await asyncio.sleep(0.05)
        try:
            await fn(connector)
        except Exception as e:
            log.warn("ocpp", "triggered %s failed: %r" % (what, e))

    async def reset(self, p):
        asyncio.create_task(self._do_reset(p["type"]))
        return {"status": "Accepted"}

    async def _do_reset(self, kind):
        await asyncio.sleep(0.05)
        for hook in self.before_reset:
            try:
                await hook(kind)
            except Exception as e:
                log.error("app", "reset hook failed: %r" % (e,))
        log.info("app", "%s reset" % kind)
        await asyncio.sleep(RESET_DELAY_S)
        self.board.system.reset()
