# ISO 8601 <-> UTC epoch seconds without time.mktime: the ESP32 port counts from
# 2000, the unix port from 1970, and OCPP needs 1970 on the wire. The day
# counts are H. Hinnant's days_from_civil / civil_from_days, inlined.


def _num(s, a, b):
    part = s[a:b]
    if len(part) != b - a or not part.isdigit():
        raise ValueError
    return int(part)


def parse(s):
    """'2026-11-25T11:40:00.123+01:00' -> UTC epoch seconds (int), None if malformed."""
    try:
        # Slices, not s[k]: indexing a str interns the character it yields, for
        # good, and these come from the central system (docs/memory.md).
        if len(s) < 19 or s[4:5] != "-" or s[7:8] != "-" or s[10:11] not in ("T", "t", " ") \
                or s[13:14] != ":" or s[16:17] != ":":
            return None
        y, m, d = _num(s, 0, 4), _num(s, 5, 7), _num(s, 8, 10)
        h, mi, se = _num(s, 11, 13), _num(s, 14, 16), _num(s, 17, 19)
        if not (1 <= m <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and se <= 60):
            return None
        i = 19
        if s[i:i + 1] == ".":
            i += 1
            j = i
            while j < len(s) and s[j:j + 1].isdigit():
                j += 1
            if j == i:
                return None
            i = j
        rest = s[i:]
        off = 0
        # No zone: taken as UTC, which is what OCPP chargers assume.
        if len(rest) == 6 and rest[0:1] in ("+", "-") and rest[3:4] == ":":
            off = _num(rest, 1, 3) * 3600 + _num(rest, 4, 6) * 60
            if rest[0:1] == "-":
                off = -off
        elif rest not in ("Z", "z", ""):
            return None
        y -= m <= 2
        era = (y if y >= 0 else y - 399) // 400
        yoe = y - era * 400
        doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
        days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
        return days * 86400 + h * 3600 + mi * 60 + se - off
    # Anything that is not a well-formed string (None, a number, a dict) is None too.
    except (ValueError, LookupError, TypeError, AttributeError):
        return None


def format(epoch):
    """UTC epoch seconds -> '2026-11-25T11:40:00Z'."""
    z, secs = divmod(int(epoch), 86400)
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + (3 if mp < 10 else -9)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (
        yoe + era * 400 + (m <= 2), m, doy - (153 * mp + 2) // 5 + 1, secs // 3600, (secs // 60) % 60, secs % 60)
