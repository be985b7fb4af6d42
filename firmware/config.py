# Persistent configuration store (OCPP GetConfiguration / ChangeConfiguration).
#
# Baseline = table defaults (firmware/params.py) + variant defaults + factory
# provisioning (root + "provision.json"). Runtime changes that differ from the
# baseline live in root + "config.json", written atomically and only on change.
# Bad files or entries fall back to the baseline with a warning, never a crash.
# See docs/configuration.md.
import json

from firmware import params as P
from lib import fsutil, log
from lib import url as urlmod

TAG = "config"
_ID_CHARS = "*-_=+|@."


def _to_str(kind, value):
    if kind == P.T_BOOL:
        return "true" if value else "false"
    if kind == P.T_INT:
        return str(value)
    return value


def _type_ok(kind, value):
    if kind == P.T_BOOL:
        return type(value) is bool
    if kind == P.T_INT:
        return type(value) is int
    return type(value) is str


def _printable(s):
    for ch in s:
        o = ord(ch)
        if o < 32 or o == 127:
            return False
    return True


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


class Config:
    def __init__(self, root="", device_id="", variant=None):
        self._root = root
        self._rows = {}
        for row in P.TABLE:
            self._rows[row[0]] = row
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

        vals = {}
        for row in P.TABLE:
            vals[row[0]] = row[2]
        for v, key, value in P.VARIANT_DEFAULTS:
            if v == variant:
                vals[key] = value
        vals["OcppChargerId"] = device_id
        self._vals = vals

        # Factory preset: string values, validated like ChangeConfiguration,
        # read-only keys allowed. They become the baseline.
        defaults = dict(vals)
        pcfg = prov.get("config", {})
        if not isinstance(pcfg, dict):
            log.warn(TAG, "provision.json: 'config' not an object, ignored")
            pcfg = {}
        for key in self._load_order(pcfg):
            row = self._rows.get(key)
            if row is None:
                log.warn(TAG, "provision.json: unknown key %s ignored" % key)
                continue
            s = pcfg[key]
            if type(s) is not str:
                log.warn(TAG, "provision.json: %s must be a string, ignored" % key)
                continue
            try:
                vals[key] = self._parse(row, s)
            except ValueError as e:
                log.warn(TAG, "provision.json: %s invalid (%s), default kept" % (key, e))
        self._repair(defaults, "provision.json")
        self._base = dict(vals)

        # Runtime changes: typed JSON values, only those differing from the baseline.
        saved = self._read_json(root + "config.json")
        if saved is not None and not isinstance(saved, dict):
            log.warn(TAG, "config.json: not an object, defaults used")
            saved = None
        if saved:
            for key in self._load_order(saved):
                row = self._rows.get(key)
                if row is None:
                    log.warn(TAG, "config.json: unknown key %s ignored" % key)
                    continue
                try:
                    vals[key] = self._check_typed(row, saved[key])
                except ValueError as e:
                    log.warn(TAG, "config.json: %s invalid (%s), default used" % (key, e))
            self._repair(self._base, "config.json")

    # ---- public API -------------------------------------------------------

    def keys(self):
        return [row[0] for row in P.TABLE]

    def get(self, key):
        if key not in self._rows:
            raise KeyError(key)
        return self._vals[key]

    def unit(self, key):
        return self._rows[key][3]

    def readonly(self, key):
        return bool(self._rows[key][4] & P.F_RO)

    def subscribe(self, fn):
        self._subs.append(fn)

    def set(self, key, value):
        """OCPP ChangeConfiguration; value is the request's string."""
        row = self._rows.get(key)
        if row is None:
            return "NotSupported"
        flags = row[4]
        if flags & P.F_RO:
            log.warn(TAG, "ChangeConfiguration %s rejected: read-only" % key)
            return "Rejected"
        if type(value) is not str:
            log.warn(TAG, "ChangeConfiguration %s rejected: value not a string" % key)
            return "Rejected"
        try:
            new = self._parse(row, value)
        except ValueError as e:
            log.warn(TAG, "ChangeConfiguration %s rejected: %s" % (key, e))
            return "Rejected"
        if new == self._vals[key]:
            return "Accepted"
        old = self._vals[key]
        self._vals[key] = new
        if not self._save():
            self._vals[key] = old
            return "Rejected"
        self._notify(key, new)
        return "RebootRequired" if flags & P.F_REBOOT else "Accepted"

    def set_internal(self, key, value):
        """Firmware-side update with a typed value; read-only keys allowed.
        Returns True if the value changed. KeyError: unknown key; ValueError:
        wrong type, invalid value, or a value that would invalidate another key."""
        row = self._rows.get(key)
        if row is None:
            raise KeyError(key)
        new = self._check_typed(row, value)
        old = self._vals[key]
        if new == old:
            return False
        self._vals[key] = new
        try:
            self._check_dependents(key)
        except ValueError:
            self._vals[key] = old
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
            for row in P.TABLE:
                if not row[4] & P.F_WO:
                    known.append(self._entry(row))
            return known, unknown
        limit = self._vals["GetConfigurationMaxKeys"]
        seen = []
        for k in keys:
            if k in seen:
                continue
            if len(seen) >= limit:
                break
            seen.append(k)
            row = self._rows.get(k) if type(k) is str else None
            if row is None or row[4] & P.F_WO:
                unknown.append(k)
            else:
                known.append(self._entry(row))
        return known, unknown

    # ---- internals --------------------------------------------------------

    def _entry(self, row):
        return {"key": row[0], "readonly": bool(row[4] & P.F_RO),
                "value": _to_str(row[1], self._vals[row[0]])}

    def _load_order(self, d):
        # Lists are checked against their ...MaxLength / NumberOfConnectors,
        # so those are applied first (dicts are unordered).
        first = []
        last = []
        for k in d:
            row = self._rows.get(k)
            if row is not None and row[1] == P.T_CSL:
                last.append(k)
            else:
                first.append(k)
        return first + last

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
        for k, v in self._vals.items():
            if v != base[k]:
                diff[k] = v
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
        if not _type_ok(row[1], value):
            raise ValueError("wrong type")
        return self._parse(row, _to_str(row[1], value))

    def _repair(self, fallback, src):
        # A list left longer than its (loaded) ...MaxLength, or naming a connector
        # beyond NumberOfConnectors: back to the fallback list, and if that is
        # still inconsistent, the limiting keys too (fallback is consistent).
        vals = self._vals
        for row in P.TABLE:
            if row[1] != P.T_CSL:
                continue
            key = row[0]
            try:
                self._parse(row, vals[key])
                continue
            except ValueError as e:
                log.warn(TAG, "%s: %s inconsistent (%s), reset" % (src, key, e))
            vals[key] = fallback[key]
            try:
                self._parse(row, vals[key])
            except ValueError:
                vals[row[6]] = fallback[row[6]]
                if row[7] == P.C_ROTATION:
                    vals["NumberOfConnectors"] = fallback["NumberOfConnectors"]

    def _check_dependents(self, key):
        for row in P.TABLE:
            if row[1] == P.T_CSL and (row[6] == key or (key == "NumberOfConnectors" and row[7] == P.C_ROTATION)):
                try:
                    self._parse(row, self._vals[row[0]])
                except ValueError as e:
                    raise ValueError("would invalidate %s (%s)" % (row[0], e))

    def _parse(self, row, s):
        """Typed value of the OCPP string s for row, or ValueError(reason)."""
        kind, flags, lo, hi, check = row[1], row[4], row[5], row[6], row[7]
        if len(s) > P.VALUE_MAX:
            raise ValueError("longer than %d characters" % P.VALUE_MAX)
        if kind == P.T_BOOL:
            low = s.lower()
            if low == "true":
                return True
            if low == "false":
                return False
            raise ValueError("not true/false")
        if kind == P.T_INT:
            if not s or len(s) > 10 or not s.isdigit():
                raise ValueError("not a non-negative decimal integer")
            n = int(s)
            if n < lo or n > hi:
                raise ValueError("out of range %d..%d" % (lo, hi))
            return n
        if not _printable(s):
            raise ValueError("control characters")
        if kind == P.T_STR:
            if s == "" and flags & P.F_EMPTY:
                return s
            n = len(s.encode())
            if n < lo or n > hi:
                raise ValueError("length must be %d..%d" % (lo, hi))
            if check == P.C_PHASE:
                if s not in P.PHASES:
                    raise ValueError("must be Single.Phase or Three.Phase")
            elif check == P.C_URL:
                urlmod.parse(s)  # ValueError with the reason, logged by the caller
            elif check == P.C_ID:
                for ch in s:
                    if not (ch.isalpha() or ch.isdigit() or ch in _ID_CHARS) or ord(ch) > 127:
                        raise ValueError("character %r not allowed" % ch)
            return s
        # T_CSL
        items = _split(s)
        limit = self._vals[hi]
        if len(items) > limit:
            raise ValueError("%d items, %s is %d" % (len(items), hi, limit))
        if check == P.C_MEASURAND:
            for it in items:
                if it not in P.MEASURANDS:
                    raise ValueError("unknown measurand %s" % it)
        elif check == P.C_PROFILE:
            for it in items:
                if it not in P.FEATURE_PROFILES:
                    raise ValueError("unknown feature profile %s" % it)
        elif check == P.C_ROTATION:
            self._check_rotation(items)
        return ",".join(items)

    def _check_rotation(self, items):
        if not items:
            raise ValueError("empty")
        if len(items) == 1 and items[0] in ("NotApplicable", "Unknown"):
            return
        n = self._vals["NumberOfConnectors"]
        seen = []
        for it in items:
            dot = it.find(".")
            cid, rot = it[:dot], it[dot + 1:]
            if dot < 1 or not cid.isdigit() or len(cid) > 3 or rot not in P.ROTATIONS:
                raise ValueError("bad entry %s (want N.RST|RTS|SRT|STR|TRS|TSR|NotApplicable|Unknown)" % it)
            c = int(cid)
            if c > n:
                raise ValueError("connector %d > NumberOfConnectors" % c)
            if c in seen:
                raise ValueError("connector %d twice" % c)
            seen.append(c)
