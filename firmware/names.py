"""String constants of the firmware longer than 10 characters, interned
before the modules that use them load: imported by firmware/__init__.py, then
dropped (the names stay).

MicroPython interns a module's identifiers and its string constants of up to
10 characters when it loads, but gives each longer string constant an object
of its own: 16 bytes of heap for every module that uses it, as long as the
module is loaded, ROMFS or not. A constant whose text is already interned
costs no object. Attribute names are interned when their module loads, and
so is the whole dotted name of an import statement: naming the texts here
that way is enough; the functions never run. Listed: the texts interned
anyway, and those three or more modules use. Any other would take a slot of
the pools of names for 16 or 32 bytes, and the names must fit in six pools
(docs/memory.md, "Interned names: the budget"). tests/unit/test_long_names.py
keeps the list equal to that rule."""
# pyright: reportMissingImports=false


def _names(o):
    return (o.DEFAULT_SINGLE_PHASE, o.DEFAULT_THREE_PHASE, o.remote_reservation, o.start_answer,
            o.FormationViolation, o.MeterValues, o.NotSupported, o.Unavailable, o.connectorId,
            o.parentIdTag, o.temperature_dc)


def _dotted():
    import firmware.auth
    import firmware.commissioning
    import firmware.diagnostics
    import firmware.fwupdate
    import firmware.locallist
    import firmware.meter_maps
    import firmware.metervalues
    import firmware.names
    import firmware.netmgr
    import firmware.reservations
    import firmware.wdt_report
    import Three.Phase
    import hal.sim._net
    import hal.sim._rare
