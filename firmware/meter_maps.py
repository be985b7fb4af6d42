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

Memory: each map is one str constant (in the ROMFS image on the board), a
line per entry: name|phase|register (hex)|fc|type|scale|unit, "" for None;
the first line is model|word_order|max_regs|max_gap. get(model, wanted)
builds the tuples of the wanted entries only: as tuples of tuples the maps
cost 4 KB of heap while loaded, at every boot (firmware/metering.py). The
names below (SDM630, SDM120, MAPS, DEFAULT_THREE_PHASE, DEFAULT_SINGLE_PHASE)
are built whole on each access, for tools and tests.
"""
from micropython import const


# Eastron SDM630 (Modbus V2): input registers, float32, high word first.
# The meter answers at most 40 parameters (80 registers) per request.
_SDM630 = const(
    "SDM630|ABCD|80|16\n"
    "Voltage|L1|0000|4|f32|1|V\n"
    "Voltage|L2|0002|4|f32|1|V\n"
    "Voltage|L3|0004|4|f32|1|V\n"
    "Current.Import|L1|0006|4|f32|1|A\n"
    "Current.Import|L2|0008|4|f32|1|A\n"
    "Current.Import|L3|000A|4|f32|1|A\n"
    "Power.Active.Import|L1|000C|4|f32|1|W\n"
    "Power.Active.Import|L2|000E|4|f32|1|W\n"
    "Power.Active.Import|L3|0010|4|f32|1|W\n"
    "Power.Apparent|L1|0012|4|f32|1|VA\n"  # extra
    "Power.Apparent|L2|0014|4|f32|1|VA\n"  # extra
    "Power.Apparent|L3|0016|4|f32|1|VA\n"  # extra
    "Power.Reactive.Import|L1|0018|4|f32|1|var\n"
    "Power.Reactive.Import|L2|001A|4|f32|1|var\n"
    "Power.Reactive.Import|L3|001C|4|f32|1|var\n"
    "Power.Factor|L1|001E|4|f32|1|\n"
    "Power.Factor|L2|0020|4|f32|1|\n"
    "Power.Factor|L3|0022|4|f32|1|\n"
    "Power.Active.Import||0034|4|f32|1|W\n"
    "Power.Apparent||0038|4|f32|1|VA\n"  # extra
    "Power.Reactive.Import||003C|4|f32|1|var\n"
    "Power.Factor||003E|4|f32|1|\n"
    "Frequency||0046|4|f32|1|\n"
    "Energy.Active.Import.Register||0048|4|f32|1000|Wh\n"
    "Energy.Active.Export.Register||004A|4|f32|1000|Wh\n"
    "Energy.Reactive.Import.Register||004C|4|f32|1000|varh\n"
    "Energy.Reactive.Export.Register||004E|4|f32|1000|varh\n"
    "Voltage|L1-L2|00C8|4|f32|1|V\n"
    "Voltage|L2-L3|00CA|4|f32|1|V\n"
    "Voltage|L3-L1|00CC|4|f32|1|V\n"
    "Current.Import|N|00E0|4|f32|1|A\n"
    "Energy.Active.Total.Register||0156|4|f32|1000|Wh\n"  # extra
    "Energy.Reactive.Total.Register||0158|4|f32|1000|varh\n"  # extra
    "Energy.Active.Import.Register|L1|015A|4|f32|1000|Wh\n"
    "Energy.Active.Import.Register|L2|015C|4|f32|1000|Wh\n"
    "Energy.Active.Import.Register|L3|015E|4|f32|1000|Wh\n"
    "Energy.Active.Export.Register|L1|0160|4|f32|1000|Wh\n"
    "Energy.Active.Export.Register|L2|0162|4|f32|1000|Wh\n"
    "Energy.Active.Export.Register|L3|0164|4|f32|1000|Wh\n"
)

# Eastron SDM120 (Modbus): single phase, same conventions as the SDM630.
_SDM120 = const(
    "SDM120|ABCD|80|16\n"
    "Voltage||0000|4|f32|1|V\n"
    "Current.Import||0006|4|f32|1|A\n"
    "Power.Active.Import||000C|4|f32|1|W\n"
    "Power.Apparent||0012|4|f32|1|VA\n"  # extra
    "Power.Reactive.Import||0018|4|f32|1|var\n"
    "Power.Factor||001E|4|f32|1|\n"
    "Frequency||0046|4|f32|1|\n"
    "Energy.Active.Import.Register||0048|4|f32|1000|Wh\n"
    "Energy.Active.Export.Register||004A|4|f32|1000|Wh\n"
    "Energy.Reactive.Import.Register||004C|4|f32|1000|varh\n"
    "Energy.Reactive.Export.Register||004E|4|f32|1000|varh\n"
    "Energy.Active.Total.Register||0156|4|f32|1000|Wh\n"  # extra
    "Energy.Reactive.Total.Register||0158|4|f32|1000|varh\n"  # extra
)

# What the charger polls by default from a three-phase meter (name|phase).
_THREE = const("Energy.Active.Import.Register|\nVoltage|L1\nVoltage|L2\nVoltage|L3\nCurrent.Import|L1\nCurrent.Import|L2\nCurrent.Import|L3\nPower.Active.Import|\nPower.Factor|\nFrequency|\nEnergy.Reactive.Import.Register|\nPower.Reactive.Import|\n")
_SINGLE = const("Energy.Active.Import.Register|\nVoltage|\nCurrent.Import|\nPower.Active.Import|\nPower.Factor|\nFrequency|\nEnergy.Reactive.Import.Register|\nPower.Reactive.Import|\n")


def _entry(line):
    n, ph, reg, fc, typ, scale, unit = line.split("|")
    return (n, ph or None, int(reg, 16), int(fc), typ, int(scale), unit or None)


def get(model, wanted=None):
    """The map of a meter model (by name), or None. With wanted, a list of
    (name, phase) keys: only the first entry of each wanted key that the map
    has (what lib.modbus.plan reads), in the order wanted."""
    t = _SDM630 if model == "SDM630" else _SDM120 if model == "SDM120" else None
    if t is None:
        return None
    nl = t.find("\n")
    head = t[:nl].split("|")
    if wanted is None:
        es = [_entry(ln) for ln in t[nl + 1:-1].split("\n")]
    else:
        es = []
        for name, ph in wanted:
            i = t.find("\n%s|%s|" % (name, ph or ""))
            if i >= 0:
                e = _entry(t[i + 1:t.find("\n", i + 1)])
                if e not in es:
                    es.append(e)
    return (head[0], head[1], int(head[2]), int(head[3]), tuple(es))


def _keys(text):
    return tuple((n, ph or None) for n, ph in (ln.split("|") for ln in text[:-1].split("\n")))


def __getattr__(name):
    if name == "SDM630" or name == "SDM120":
        return get(name)
    if name == "MAPS":
        return (get("SDM630"), get("SDM120"))
    if name == "DEFAULT_THREE_PHASE":
        return _keys(_THREE)
    if name == "DEFAULT_SINGLE_PHASE":
        return _keys(_SINGLE)
    raise AttributeError(name)


def unit(meter_map, key):
    """The OCPP unit of a key in a map (None if the map lacks it or OCPP has none)."""
    for e in meter_map[4]:
        if e[0] == key[0] and e[1] == key[1]:
            return e[6]
    return None
