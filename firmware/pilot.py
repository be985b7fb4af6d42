# IEC 61851-1 control pilot: EV state from the measured plateaus, diode check,
# and the PWM duty that advertises an offered current.
from micropython import const

# Positive plateau bands in mV (nominal +/- 1 V), checked in this order.
_BANDS = const((
    ("A", 11000, 13000),
    ("B", 8000, 10000),
    ("C", 5000, 7000),
    ("D", 2000, 4000),
    ("E", -1000, 1000),
    ("F", -13000, -11000),
))
_DIODE_MAX_MV = const(-11000)  # the negative plateau must reach -12 V (+/- 1 V) while oscillating
INVALID = "?"          # no band: EV communication error


def ev_state(high_mv):
    for name, lo, hi in _BANDS:
        if lo <= high_mv <= hi:
            return name
    return INVALID


def diode_ok(low_mv):
    return low_mv <= _DIODE_MAX_MV


def duty_for(amps):
    """PWM duty (%) advertising `amps` (IEC 61851-1 Table A.8), None below 6 A (no charging)."""
    if amps < 6:
        return None
    if amps <= 51:
        return round(amps / 0.6, 1)
    return min(96.0, round(amps / 2.5 + 64, 1))

