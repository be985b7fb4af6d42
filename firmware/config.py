# Persistent configuration store (OCPP GetConfiguration / ChangeConfiguration).
#
# Baseline = table defaults (firmware/params.py) + variant defaults + factory
# provisioning (root + "provision.json"). Runtime changes that differ from the
# baseline live in root + "config.json", written atomically and only on change.
# Bad files or entries fall back to the baseline with a warning, never a crash.
# See docs/configuration.md.
#
# Memory (docs/configuration.md "Memory"): keys are identified by p, the
# position of their row in params.TAB; the instance keeps only {p: value} and
# {p: baseline value} for the keys whose baseline differs from the table
# default. Row metadata is decoded on demand (set, GetConfiguration, loading).
import json

from micropython import const

from firmware import params as P
from lib import fsutil, log
from lib import url as urlmod

TAG = "config"
_ID_CHARS = "*-_=+|@."

# Same values as params.T_* / F_* / C_* (checked by tests/unit/test_config.py),
# inlined at compile time.
_T_BOOL = const(0)
_T_INT = const(1)
_T_STR = const(2)
_T_CSL = const(3)
_F_RO = const(1)
_F_WO = const(2)
_F_REBOOT = const(4)
_F_EMPTY = const(8)
_C_URL = const(2)
_C_ID = const(3)
_C_PHASE = const(4)
_C_MEASURAND = const(5)
_C_PROFILE = const(6)
_C_ROTATION = const(7)
_VALUE_MAX = const(500)


def _to_str(kind, value):
    if kind == _T_BOOL:
        return "true" if value else "false"
    if kind == _T_INT:
        return str(value)
    return value


def _split(s):
    """Items of a comma-separated list, spaces around items dropped; "" -> []."""
    if s.strip() == "":
        return []
    out = []
    for item in s.split(","):
        item = item.strip()
        if not item:
            raise ValueError("empty list item")
        if item in out:
            raise ValueError("duplicate item %s" % item)
        out.append(item)
    return out


def _has(lst, item):
    return P.find(lst, item, ",", ",") >= 0


class Config:
    def __init__(self, root="", device_id="", variant=None):
        self._root = root
        self._subs = []
        prov = self._read_json(root + "provision.json")
        if not isinstance(prov, dict):
            if prov is not None:
                log.warn(TAG, "provision.json: not an object, ignored")
            prov = {}
        if variant is None:
            variant = prov.get("variant", P.DEFAULT_VARIANT)
            if variant not in P.VARIANTS:
                log.warn(TAG, "provision.json: unknown variant %r, using %s" % (variant, P.DEFAULT_VARIANT))
                variant = P.DEFAULT_VARIANT
        elif variant not in P.VARIANTS:
            raise ValueError("unknown variant %r" % (variant,))
        self.variant = variant

        # Baseline overrides {p: value} over the table defaults.
        base = {P.pos("OcppChargerId"): device_id}
        for v, key, value in P.VARIANT_DEFAULTS:
            if v == variant:
                base[P.pos(key)] = value
        self._base = base
        vals = {}
        for p, row in P.rows():
            vals[p] = base[p] if p in base else row[2]
        self._vals = vals

        # Factory preset: string values, validated like ChangeConfiguration,
        # read-only keys allowed. They become the baseline.
        pcfg = prov.get("config", {})
        if not isinstance(pcfg, dict):
            log.warn(TAG, "provision.json: 'config' not an object, ignored")
            pcfg = {}
        self._load(pcfg, "provision.json", False)
        base = {}
        for p, row in P.rows():
            if vals[p] != row[2]:
                base[p] = vals[p]
        self._base = base

        # Runtime changes: typed JSON values, only those differing from the baseline.
        saved = self._read_json(root + "config.json")
        if saved is not None and not isinstance(saved, dict):
            log.warn(TAG, "config.json: not an object, defaults used")
            saved = None
        if saved:
            self._load(saved, "config.json", True)

    # ---- public API -------------------------------------------------------

    def keys(self):
        return [row[0] for p, row in P.rows()]

    def get(self, key):
        # Called by the control loop: must not allocate (P.pos does not).
        p = P.pos(key)
        if p < 0:
            raise KeyError(key)
        return self._vals[p]

    def unit(self, key):
        return self._row(key)[3]

    def readonly(self, key):
        return bool(self._row(key)[4] & _F_RO)

    def subscribe(self, fn):
        self._subs.append(fn)

    def set(self, key, value):
        """OCPP ChangeConfiguration; value is the request's string."""
        p = P.pos(key)
        if p < 0:
            return "NotSupported"
        row = P.row(p)
        flags = row[4]
        try:
            if flags & _F_RO:
                raise ValueError("read-only")
            if type(value) is not str:
                raise ValueError("value not a string")
            new = self._parse(row, value)
        except ValueError as e:
            log.warn(TAG, "ChangeConfiguration %s rejected: %s" % (key, e))
            return "Rejected"
        old = self._vals[p]
        if new == old:
            return "Accepted"
        self._vals[p] = new
        if not self._save():
            self._vals[p] = old
            return "Rejected"
        self._notify(key, new)
        return "RebootRequired" if flags & _F_REBOOT else "Accepted"

    def set_internal(self, key, value):
        """Firmware-side update with a typed value; read-only keys allowed.
        Returns True if the value changed. KeyError: unknown key; ValueError:
        wrong type, invalid value, or a value that would invalidate another key."""
        row = self._row(key)
        p = P.pos(key)
        new = self._check_typed(row, value)
        old = self._vals[p]
        if new == old:
            return False
        self._vals[p] = new
        try:
            # Lists limited by this key (...MaxLength, NumberOfConnectors) must stay valid.
            for q, r in P.rows():
                if r[1] == _T_CSL and (r[6] == key or (key == "NumberOfConnectors" and r[7] == _C_ROTATION)):
                    try:
                        self._parse(r, self._vals[q])
                    except ValueError as e:
                        raise ValueError("would invalidate %s (%s)" % (r[0], e))
        except ValueError:
            self._vals[p] = old
            raise
        if not self._save():
            log.error(TAG, "%s changed in RAM only" % key)
        self._notify(key, new)
        return True

    def get_configuration(self, keys=None):
        """OCPP GetConfiguration -> (configurationKey list, unknownKey list)."""
        known = []
        unknown = []
        if not keys:
            for p, row in P.rows():
                if not row[4] & _F_WO:
                    known.append(self._entry(p, row))
            return known, unknown
        limit = self.get("GetConfigurationMaxKeys")
        seen = []
        for k in keys:
            if k in seen:
                continue
            if len(seen) >= limit:
                break
            seen.append(k)
            p = P.pos(k)
            row = P.row(p) if p >= 0 else None
            if row is None or row[4] & _F_WO:
                unknown.append(k)
            else:
                known.append(self._entry(p, row))
        return known, unknown

    # ---- internals --------------------------------------------------------

    def _row(self, key):
        p = P.pos(key)
        if p < 0:
            raise KeyError(key)
        return P.row(p)

    def _entry(self, p, row):
        return {"key": row[0], "readonly": bool(row[4] & _F_RO),
                "value": _to_str(row[1], self._vals[p])}

    def _load(self, d, src, typed):
        # provision.json: OCPP strings; config.json: typed JSON values.
        # Lists are checked against their ...MaxLength / NumberOfConnectors,
        # so those are applied first (dicts are unordered).
        vals = self._vals
        for csl in (False, True):
            for key in d:
                p = P.pos(key)
                row = P.row(p) if p >= 0 else None
                if (row is not None and row[1] == _T_CSL) != csl:
                    continue
                if row is None:
                    log.warn(TAG, "%s: unknown key %s ignored" % (src, key))
                    continue
                s = d[key]
                if not typed and type(s) is not str:
                    log.warn(TAG, "%s: %s must be a string, ignored" % (src, key))
                    continue
                try:
                    vals[p] = self._check_typed(row, s) if typed else self._parse(row, s)
                except ValueError as e:
                    log.warn(TAG, "%s: %s invalid (%s), %s" % (src, key, e, "default used" if typed else "default kept"))
        # A list left longer than its (loaded) ...MaxLength, or naming a connector
        # beyond NumberOfConnectors: back to the fallback list (baseline), and if
        # that is still inconsistent, the limiting keys too (the fallback is consistent).
        for p, row in P.rows():
            if row[1] != _T_CSL:
                continue
            try:
                self._parse(row, vals[p])
                continue
            except ValueError as e:
                log.warn(TAG, "%s: %s inconsistent (%s), reset" % (src, row[0], e))
            vals[p] = self._baseline(p)
            try:
                self._parse(row, vals[p])
            except ValueError:
                q = P.pos(row[6])
                vals[q] = self._baseline(q)
                if row[7] == _C_ROTATION:
                    q = P.pos("NumberOfConnectors")
                    vals[q] = self._baseline(q)

    def _baseline(self, p):
        base = self._base
        return base[p] if p in base else P.row(p)[2]

    def _read_json(self, path):
        data = fsutil.read(path)
        if data is None:
            return None
        try:
            return json.loads(data.decode())
        except Exception as e:
            log.warn(TAG, "%s unreadable (%s)" % (path, e))
        # A corrupt file next to a complete .new one (rename interrupted).
        data = fsutil.read(path + ".new")
        if data is None:
            return None
        try:
            obj = json.loads(data.decode())
        except Exception:
            return None
        log.warn(TAG, "%s: using %s.new" % (path, path))
        return obj

    def _save(self):
        diff = {}
        base = self._base
        for p, row in P.rows():
            v = self._vals[p]
            if v != (base[p] if p in base else row[2]):
                diff[row[0]] = v
        try:
            fsutil.write_atomic(self._root + "config.json", json.dumps(diff).encode())
            return True
        except Exception as e:
            log.error(TAG, "config.json write failed: %s" % e)
            return False

    def _notify(self, key, value):
        for fn in self._subs:
            try:
                fn(key, value)
            except Exception as e:
                log.error(TAG, "subscriber failed on %s: %s" % (key, e))

    def _check_typed(self, row, value):
        kind = row[1]
        t = type(value)
        if t is not (bool if kind == _T_BOOL else int if kind == _T_INT else str):
            raise ValueError("wrong type")
        return self._parse(row, _to_str(kind, value))

    def _parse(self, row, s):
        """Typed value of the OCPP string s for row, or ValueError(reason)."""
        kind, flags, lo, hi, check = row[1], row[4], row[5], row[6], row[7]
        if len(s) > _VALUE_MAX:
            raise ValueError("longer than %d characters" % _VALUE_MAX)
        if kind == _T_BOOL:
            low = s.lower()
            if low == "true":
                return True
            if low == "false":
                return False
            raise ValueError("not true/false")
        if kind == _T_INT:
            if not s or len(s) > 10 or not s.isdigit():
                raise ValueError("not a non-negative decimal integer")
            n = int(s)
            if n < lo or n > hi:
                raise ValueError("out of range %d..%d" % (lo, hi))
            return n
        for ch in s:
            o = ord(ch)
            if o < 32 or o == 127:
                raise ValueError("control characters")
        if kind == _T_STR:
            if s == "" and flags & _F_EMPTY:
                return s
            n = len(s.encode())
            if n < lo or n > hi:
                raise ValueError("length must be %d..%d" % (lo, hi))
            if check == _C_PHASE:
                if not _has(P.PHAS, s):
                    raise ValueError("must be Single.Phase or Three.Phase")
            elif check == _C_URL:
                urlmod.parse(s)  # ValueError with the reason, logged by the caller
            elif check == _C_ID:
                for ch in s:
                    if not (ch.isalpha() or ch.isdigit() or ch in _ID_CHARS) or ord(ch) > 127:
                        raise ValueError("character %r not allowed" % ch)
            return s
        # T_CSL
        items = _split(s)
        limit = self.get(hi)
        if len(items) > limit:
            raise ValueError("%d items, %s is %d" % (len(items), hi, limit))
        if check == _C_ROTATION:
            self._check_rotation(items)
        else:
            for it in items:
                if not _has(P.MEAS if check == _C_MEASURAND else P.PROFS, it):
                    raise ValueError("unknown %s %s" % ("measurand" if check == _C_MEASURAND else "feature profile", it))
        return ",".join(items)

    def _check_rotation(self, items):
        if not items:
            raise ValueError("empty")
        if len(items) == 1 and items[0] in ("NotApplicable", "Unknown"):
            return
        n = self.get("NumberOfConnectors")
        seen = []
        for it in items:
            dot = it.find(".")
            cid, rot = it[:dot], it[dot + 1:]
            if dot < 1 or not cid.isdigit() or len(cid) > 3 or not _has(P.ROTS, rot):
                raise ValueError("bad entry %s (want N.RST|RTS|SRT|STR|TRS|TSR|NotApplicable|Unknown)" % it)
            c = int(cid)
            if c > n:
                raise ValueError("connector %d > NumberOfConnectors" % c)
            if c in seen:
                raise ValueError("connector %d twice" % c)
            seen.append(c)
