"""Energy meter register maps, as data (format: lib/modbus.py, docs/modbus.md).

    map   = (model, word_order, max_regs, max_gap, entries)
    entry = (name, phase, register, fc, type, scale, unit)

`name` is the OCPP 1.6 measurand the value feeds (names not in OCPP 1.6, such
as "Power.Apparent", are marked "extra" and the firmware does not report
them); `phase` is the OCPP phase or None; `register` the 0-based register
address on the wire; `scale` converts the meter's unit to the OCPP unit
(kWh -> Wh: 1000); `unit` is the OCPP UnitOfMeasure of the scaled value, None
where OCPP has none (Frequency, Power.Factor).

max_regs: the most registers the meter returns in one request; max_gap: the
largest hole of unused registers a request may read across (see
docs/modbus.md for the trade-off).
"""

# A plain global, not const(): with a constant here each map would be one
# constant tuple of about 1 KB, allocated whole when the module loads.
IR = 4  # input registers (fc 04)

# Eastron SDM630 (Modbus V2): input registers, float32, high word first.
# The meter answers at most 40 parameters (80 registers) per request.
SDM630 = ("SDM630", "ABCD", 80, 16, (
    ("Voltage", "L1", 0x0000, IR, "f32", 1, "V"),
    ("Voltage", "L2", 0x0002, IR, "f32", 1, "V"),
    ("Voltage", "L3", 0x0004, IR, "f32", 1, "V"),
    ("Current.Import", "L1", 0x0006, IR, "f32", 1, "A"),
    ("Current.Import", "L2", 0x0008, IR, "f32", 1, "A"),
    ("Current.Import", "L3", 0x000A, IR, "f32", 1, "A"),
    ("Power.Active.Import", "L1", 0x000C, IR, "f32", 1, "W"),
    ("Power.Active.Import", "L2", 0x000E, IR, "f32", 1, "W"),
    ("Power.Active.Import", "L3", 0x0010, IR, "f32", 1, "W"),
    ("Power.Apparent", "L1", 0x0012, IR, "f32", 1, "VA"),  # extra
    ("Power.Apparent", "L2", 0x0014, IR, "f32", 1, "VA"),  # extra
    ("Power.Apparent", "L3", 0x0016, IR, "f32", 1, "VA"),  # extra
    ("Power.Reactive.Import", "L1", 0x0018, IR, "f32", 1, "var"),
    ("Power.Reactive.Import", "L2", 0x001A, IR, "f32", 1, "var"),
    ("Power.Reactive.Import", "L3", 0x001C, IR, "f32", 1, "var"),
    ("Power.Factor", "L1", 0x001E, IR, "f32", 1, None),
    ("Power.Factor", "L2", 0x0020, IR, "f32", 1, None),
    ("Power.Factor", "L3", 0x0022, IR, "f32", 1, None),
    ("Power.Active.Import", None, 0x0034, IR, "f32", 1, "W"),
    ("Power.Apparent", None, 0x0038, IR, "f32", 1, "VA"),  # extra
    ("Power.Reactive.Import", None, 0x003C, IR, "f32", 1, "var"),
    ("Power.Factor", None, 0x003E, IR, "f32", 1, None),
    ("Frequency", None, 0x0046, IR, "f32", 1, None),
    ("Energy.Active.Import.Register", None, 0x0048, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Export.Register", None, 0x004A, IR, "f32", 1000, "Wh"),
    ("Energy.Reactive.Import.Register", None, 0x004C, IR, "f32", 1000, "varh"),
    ("Energy.Reactive.Export.Register", None, 0x004E, IR, "f32", 1000, "varh"),
    ("Voltage", "L1-L2", 0x00C8, IR, "f32", 1, "V"),
    ("Voltage", "L2-L3", 0x00CA, IR, "f32", 1, "V"),
    ("Voltage", "L3-L1", 0x00CC, IR, "f32", 1, "V"),
    ("Current.Import", "N", 0x00E0, IR, "f32", 1, "A"),
    ("Energy.Active.Total.Register", None, 0x0156, IR, "f32", 1000, "Wh"),  # extra
    ("Energy.Reactive.Total.Register", None, 0x0158, IR, "f32", 1000, "varh"),  # extra
    ("Energy.Active.Import.Register", "L1", 0x015A, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Import.Register", "L2", 0x015C, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Import.Register", "L3", 0x015E, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Export.Register", "L1", 0x0160, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Export.Register", "L2", 0x0162, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Export.Register", "L3", 0x0164, IR, "f32", 1000, "Wh"),
))

# Eastron SDM120 (Modbus): single phase, same conventions as the SDM630.
SDM120 = ("SDM120", "ABCD", 80, 16, (
    ("Voltage", None, 0x0000, IR, "f32", 1, "V"),
    ("Current.Import", None, 0x0006, IR, "f32", 1, "A"),
    ("Power.Active.Import", None, 0x000C, IR, "f32", 1, "W"),
    ("Power.Apparent", None, 0x0012, IR, "f32", 1, "VA"),  # extra
    ("Power.Reactive.Import", None, 0x0018, IR, "f32", 1, "var"),
    ("Power.Factor", None, 0x001E, IR, "f32", 1, None),
    ("Frequency", None, 0x0046, IR, "f32", 1, None),
    ("Energy.Active.Import.Register", None, 0x0048, IR, "f32", 1000, "Wh"),
    ("Energy.Active.Export.Register", None, 0x004A, IR, "f32", 1000, "Wh"),
    ("Energy.Reactive.Import.Register", None, 0x004C, IR, "f32", 1000, "varh"),
    ("Energy.Reactive.Export.Register", None, 0x004E, IR, "f32", 1000, "varh"),
    ("Energy.Active.Total.Register", None, 0x0156, IR, "f32", 1000, "Wh"),  # extra
    ("Energy.Reactive.Total.Register", None, 0x0158, IR, "f32", 1000, "varh"),  # extra
))

MAPS = (SDM630, SDM120)

# What the charger polls by default from a three-phase meter.
DEFAULT_THREE_PHASE = (
    ("Energy.Active.Import.Register", None),
    ("Voltage", "L1"), ("Voltage", "L2"), ("Voltage", "L3"),
    ("Current.Import", "L1"), ("Current.Import", "L2"), ("Current.Import", "L3"),
    ("Power.Active.Import", None),
    ("Power.Factor", None),
    ("Frequency", None),
    ("Energy.Reactive.Import.Register", None),
    ("Power.Reactive.Import", None),
)

DEFAULT_SINGLE_PHASE = (
    ("Energy.Active.Import.Register", None),
    ("Voltage", None),
    ("Current.Import", None),
    ("Power.Active.Import", None),
    ("Power.Factor", None),
    ("Frequency", None),
    ("Energy.Reactive.Import.Register", None),
    ("Power.Reactive.Import", None),
)


def get(model):
    """The map of a meter model (by name), or None."""
    for m in MAPS:
        if m[0] == model:
            return m
    return None


def unit(meter_map, key):
    """The OCPP unit of a key in a map (None if the map lacks it or OCPP has none)."""
    for e in meter_map[4]:
        if e[0] == key[0] and e[1] == key[1]:
            return e[6]
    return None
