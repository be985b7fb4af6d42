"""Fakes of the ESP32 MicroPython modules (machine, network, esp32,
bluetooth) for running hal/esp32 on CPython. They follow the MicroPython
documentation (docs.micropython.org, ESP32 port), failure modes included;
each has a test side (`world`) to set inputs and break devices.

    with fakes_esp32.installed() as world:
        from hal.esp32 import board
"""
import contextlib
import importlib
import sys

from . import bluetooth, esp32, machine, network, vfs

MODULES = {"machine": machine, "network": network, "esp32": esp32, "bluetooth": bluetooth, "vfs": vfs}


@contextlib.contextmanager
def installed():
    """Put the fakes in sys.modules, reset their state, import hal.esp32 fresh."""
    saved = {k: sys.modules.get(k) for k in MODULES}
    for k in ("hal.esp32.board", "hal.esp32.mfrc522", "hal.esp32.slots"):
        sys.modules.pop(k, None)
    for m in MODULES.values():
        m._fake_reset()
    sys.modules.update(MODULES)
    try:
        yield machine.world
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k in ("hal.esp32.board", "hal.esp32.mfrc522", "hal.esp32.slots"):
            sys.modules.pop(k, None)
        importlib.invalidate_caches()
