# The energy meter: polled over Modbus RTU, values kept as the meter reports
# them (the guide: no calculations or edits), the cumulative register exposed
# to transactions.
import asyncio
import time

from lib import log
from lib.modbus import ModbusError, ModbusMaster, PARITY_EVEN, plan
from firmware import meter_maps

POLL_MS = 1000
SLAVE = 1
ENERGY = ("Energy.Active.Import.Register", None)


class Metering:
    def __init__(self, board, cfg):
        self.cfg = cfg
        self.map = meter_maps.SDM120 if cfg.variant == "homeplus" else meter_maps.SDM630
        wanted = meter_maps.DEFAULT_SINGLE_PHASE if cfg.variant == "homeplus" else meter_maps.DEFAULT_THREE_PHASE
        self.plan = plan(self.map, wanted)
        self.master = ModbusMaster(board.meter_uart, baud=9600, parity=PARITY_EVEN)
        self.values = {}
        self.ok = False
        self.last_ok_ms = None
        self._wh = 0

    def register_wh(self):
        """Last known cumulative import register (Wh)."""
        return self._wh

    async def poll_once(self):
        try:
            vals = await self.master.poll(SLAVE, self.plan)
        except ModbusError as e:
            if self.ok:
                log.warn("meter", "meter not answering: %r" % (e,))
            self.ok = False
            return False
        self.values = vals
        wh = vals.get(ENERGY)
        if wh is not None:
            wh = int(wh + 0.5)
            if wh >= self._wh:
                self._wh = wh
            else:
                log.warn("meter", "register went backwards (%d < %d): kept %d" % (wh, self._wh, self._wh))
        if not self.ok:
            log.info("meter", "meter answering, register %d Wh" % self._wh)
        self.ok = True
        self.last_ok_ms = time.ticks_ms()
        return True

    async def run(self):
        while True:
            start = time.ticks_ms()
            await self.poll_once()
            spent = time.ticks_diff(time.ticks_ms(), start)
            await asyncio.sleep((POLL_MS - spent) / 1000 if spent < POLL_MS else 0.05)
