# The energy meter: polled over Modbus RTU, values kept as the meter reports
# them (the guide: no calculations or edits), the cumulative register exposed
# to transactions.
import asyncio
import sys
import time

from lib import log
from lib.modbus import ModbusError, ModbusMaster, PARITY_EVEN, plan

POLL_MS = 1000
SLAVE = 1
ENERGY = ("Energy.Active.Import.Register", None)


class Metering:
    def __init__(self, board, cfg):
        self.cfg = cfg
        self.plan, self.units = _load_plan(cfg.variant)
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


def _load_plan(variant):
    """The poll plan and units for this variant's meter. The register maps are
    only needed to make the plan, so the module is dropped again afterwards
    (its tables would otherwise stay on the heap for good)."""
    import firmware
    from firmware import meter_maps as mm

    single = variant == "homeplus"
    meter_map = mm.SDM120 if single else mm.SDM630
    wanted = mm.DEFAULT_SINGLE_PHASE if single else mm.DEFAULT_THREE_PHASE
    p = plan(meter_map, wanted)
    units = {}
    for key in wanted:
        units[key] = mm.unit(meter_map, key)
    sys.modules.pop("firmware.meter_maps", None)
    try:
        delattr(firmware, "meter_maps")
    except AttributeError:
        pass
    return p, units
