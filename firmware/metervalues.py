# MeterValues content: sampledValue entries for a comma-separated measurand
# list (MeterValuesSampledData, ...AlignedData, StopTxn...Data). Values come
# from the meter as it reports them, the HAL temperature sensor and the
# charger's offered current (docs/metering.md). Called once per sample, never
# per control cycle.
from lib import isotime
from firmware import params as P

EAIR = "Energy.Active.Import.Register"
# measurand|unit|format|deadband|per phase; unit "" = none in OCPP (Hz, PF).
# deadband: a Sample.Periodic value is left out while it differs less than
# this from the value last sent (0: always sent). docs/metering.md.
_M = (
    "Energy.Active.Import.Register|Wh|%d|0|\n"
    "Energy.Reactive.Import.Register|varh|%d|1|\n"
    "Voltage|V|%.1f|2|1\n"
    "Current.Import|A|%.2f|0.2|1\n"
    "Power.Active.Import|W|%d|50|\n"
    "Power.Reactive.Import|var|%d|50|\n"
    "Power.Factor||%.3f|0.02|\n"
    "Frequency||%.2f|0.05|\n"
    "Temperature|Celsius|%.1f|1|\n"
    "Current.Offered|A|%d|0.5|\n"
    "Power.Offered|W|%d|50|\n"
)
PHASES = ("L1", "L2", "L3")


def _row(name):
    p = P.find(_M, name, "\n", "|")
    return _M[p:_M.find("\n", p)].split("|") if p >= 0 else None


def sample(m, csl, ctx, ts, energy, last=None):
    """{"timestamp", "sampledValue"} for the measurands of `csl` (a str), or
    None when nothing is left. m: firmware.metering.Metering (m.reading(),
    m.down, m.est_wh, m.three); energy: Energy.Active.Import.Register in Wh as
    this context reports it (None: not known). last: {key: value} for the
    deadband, updated (None: every value)."""
    out = []
    for name in csl.split(","):
        r = _row(name)
        if r is None:
            continue  # not measured by this charger (docs/metering.md)
        if name == EAIR:
            if energy is not None:
                out.append(_sv(ctx, name, None, r, energy))
            if m.down:
                # meter down: the estimate since its last reading, as its own measurand
                out.append(_sv(ctx, "Energy.Active.Import.Interval", None, r, int(m.est_wh)))
            continue
        for ph in (PHASES if m.three else PHASES[:1]) if r[4] else (None,):
            v = m.reading(name, ph)
            if v is None:
                continue
            if last is not None:
                k = (name, ph)
                o = last.get(k)
                if o is not None and abs(v - o) < float(r[3]):
                    continue
                last[k] = v
            out.append(_sv(ctx, name, ph, r, v))
    if not out:
        return None
    return {"timestamp": isotime.format(ts), "sampledValue": out}


def _sv(ctx, name, ph, r, v):
    d = {"value": r[2] % v if r[2] != "%d" else str(int(v + 0.5) if v >= 0 else int(v - 0.5)),
         "context": ctx, "measurand": name}
    if r[1]:
        d["unit"] = r[1]
    if ph:
        d["phase"] = ph
    if name == "Temperature":
        d["location"] = "Body"
    return d


def registers_only(mv):
    """Cut a meterValue down to its energy register (and estimate): what is kept
    of older samples while the link is constrained. None if nothing is left."""
    sv = [s for s in mv["sampledValue"] if s["measurand"].startswith("Energy.Active.Import")]
    if not sv:
        return None
    mv["sampledValue"] = sv
    return mv
