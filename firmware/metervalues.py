# MeterValues content: sampledValue entries for a comma-separated measurand
# list (MeterValuesSampledData, ...AlignedData, StopTxn...Data). Values come
# from the meter as it reports them, the HAL temperature sensor and the
# charger's offered current (docs/metering.md). Called once per sample, never
# per control cycle.
from micropython import const

from lib import isotime
from firmware import params as P

EAIR = "Energy.Active.Import.Register"
# measurand|unit|format|deadband|per phase; unit "" = none in OCPP (Hz, PF).
# deadband: a Sample.Periodic value is left out while it differs less than
# this from the value last sent (0: always sent). docs/metering.md.
_M = const(
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


def sample(m, csl, ctx, ts, energy, out, last=None):
    """Write the meterValue {"timestamp", "sampledValue"} of the measurands of
    `csl` (a str) as JSON into out (an ocppj.Out, from out.n), the energy
    register (and estimate) first. Returns the offset in out where those end
    (from where it began: registers_only() cuts there), or -1 when nothing is left (out.n is then
    back where it was). m: firmware.metering.Metering (m.reading(), m.down,
    m.est_wh, m.three); energy: Energy.Active.Import.Register in Wh as this
    context reports it (None: not known). last: {key: value} for the
    deadband, updated (None: every value)."""
    begin = out.n
    out.write(b'{"timestamp":"')
    out.write(isotime.format(ts))
    out.write(b'","sampledValue":[')
    first = out.n
    cut = first
    names = csl.split(",")
    if EAIR in names:
        r = _row(EAIR)
        if energy is not None:
            _sv(out, first, ctx, EAIR, None, r, energy)
        if m.down:
            # meter down: the estimate since its last reading, as its own measurand
            _sv(out, first, ctx, "Energy.Active.Import.Interval", None, r, int(m.est_wh))
        cut = out.n
    for name in names:
        r = _row(name)
        if r is None or name == EAIR:
            continue  # not measured by this charger (docs/metering.md)
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
            _sv(out, first, ctx, name, ph, r, v)
    if out.n == first:
        out.n = begin
        return -1
    out.write(b"]}")
    return cut - begin


def _sv(out, first, ctx, name, ph, r, v):
    # constants and formatted numbers only: nothing to escape
    out.write(b'{"value":"' if out.n == first else b',{"value":"')
    out.write(r[2] % v if r[2] != "%d" else str(int(v + 0.5) if v >= 0 else int(v - 0.5)))
    out.write(b'","context":"')
    out.write(ctx)
    out.write(b'","measurand":"')
    out.write(name)
    if r[1]:
        out.write(b'","unit":"')
        out.write(r[1])
    if ph:
        out.write(b'","phase":"')
        out.write(ph)
    if name == "Temperature":
        out.write(b'","location":"Body')
    out.write(b'"}')


def registers_only(text, cut):
    """A meterValue written by sample() cut down to its energy register (and
    estimate): what is kept of older samples while the link is constrained.
    None if nothing is left."""
    if cut < 0 or text[cut - 1] == 0x5B:  # "[": no energy entry
        return None
    return text[:cut] + b"]}"
