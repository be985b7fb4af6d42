# Persistent configuration store (OCPP GetConfiguration / ChangeConfiguration).
#
# Baseline = table defaults (firmware/params.py) + variant defaults + factory
# provisioning (root + "provision.json"). Runtime changes that differ from the
# baseline live in root + "config.json", written atomically and only on change.
# Bad files or entries fall back to the baseline with a warning, never a crash.
# See docs/configuration.md.
#
# Memory (docs/configuration.md, "Memory"): every heap object counts on the
# board, so this module keeps few functions and one str of messages, and an
# instance keeps only
#   _v     the current values, a list in table order (index i),
#   _p     array of the positions of the rows in params.TAB, by i,
#   _s     bytearray hash table: slot hash(key) & 127 (then the next ones)
#          holds i + 1 (0 = free); get() finds a key with it without
#          allocating, checking the key against its row in params.TAB,
#   _base  {i: value} where the baseline differs from the table default.
# Row metadata is decoded from params.TAB when needed (set, GetConfiguration,
# loading), never kept.
import json
from array import array

from micropython import const

from firmware import params as P
from lib import fsutil, log
from lib import url as urlmod

_TAG = const("config")

# Codes of params.TAB (checked against params by tests/unit/test_config.py).
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
_C_PROFILE = const(6)
_C_ROTATION = const(7)

# Texts, one per line, read by _m(index): one str constant instead of ~40.
_MSG = const(
    "longer than 500 characters\n"                                    # 0
    "not true/false\n"
    "not a non-negative decimal integer\n"
    "out of range %d..%d\n"
    "control characters\n"
    "length must be %d..%d\n"                                         # 5
    "must be Single.Phase or Three.Phase\n"
    "character %r not allowed\n"
    "%d items, %s is %d\n"
    "unknown measurand %s\n"
    "unknown feature profile %s\n"                                    # 10
    "empty\n"
    "bad entry %s (want N.RST|RTS|SRT|STR|TRS|TSR|NotApplicable|Unknown)\n"
    "connector %d > NumberOfConnectors\n"
    "connector %d twice\n"
    "empty list item\n"                                               # 15
    "duplicate item %s\n"
    "wrong type\n"
    "would invalidate %s (%s)\n"
    "read-only\n"
    "value not a string\n"                                            # 20
    "%s: not an object, ignored\n"
    "%s: unknown variant %r, using %s\n"
    "%s: 'config' not an object, ignored\n"
    "%s: not an object, defaults used\n"
    "ChangeConfiguration %s rejected: %s\n"                           # 25
    "%s changed in RAM only\n"
    "%s: unknown key %s ignored\n"
    "%s: %s must be a string, ignored\n"
    "%s: %s invalid (%s), default kept\n"
    "%s: %s invalid (%s), default used\n"                             # 30
    "%s: %s inconsistent (%s), reset\n"
    "%s unreadable (%s)\n"
    "%s: using %s.new\n"
    "config.json write failed: %s\n"
    "subscriber failed on %s: %s\n"                                   # 35
    "unknown variant %r\n"
    "provision.json\n"
    "config.json\n"
    "NumberOfConnectors\n"
    "GetConfigurationMaxKeys\n"                                       # 40
    "OcppChargerId\n"
)
_M_LONG = const(0)
_M_BOOL = const(1)
_M_INT = const(2)
_M_RANGE = const(3)
_M_CTRL = const(4)
_M_LEN = const(5)
_M_PHASE = const(6)
_M_CHAR = const(7)
_M_ITEMS = const(8)
_M_MEASURAND = const(9)  # + 1: feature profile
_M_EMPTY = const(11)
_M_ROT = const(12)
_M_CONN = const(13)
_M_TWICE = const(14)
_M_ITEM = const(15)
_M_DUP = const(16)
_M_TYPE = const(17)
_M_DEPENDENT = const(18)
_M_RO = const(19)
_M_NOTSTR = const(20)
_M_NOTOBJ = const(21)
_M_VARIANT = const(22)
_M_CFGOBJ = const(23)
_M_SAVEDOBJ = const(24)
_M_REJECTED = const(25)
_M_RAM = const(26)
_M_UNKNOWN = const(27)
_M_STRING = const(28)
_M_INVALID = const(29)  # + 1: default used (config.json)
_M_INCONSISTENT = const(31)
_M_UNREADABLE = const(32)
_M_USING_NEW = const(33)
_M_WRITE = const(34)
_M_SUBSCRIBER = const(35)
_M_BADVARIANT = const(36)
_S_PROVISION = const(37)
_S_CONFIG = const(38)
_K_CONNECTORS = const(39)
_K_MAXKEYS = const(40)
_K_CHARGERID = const(41)


def _m(i):
    p = 0
    while i:
        p = _MSG.find("\n", p) + 1
        i -= 1
    return _MSG[p:_MSG.find("\n", p)]


def _to_str(kind, value) -> str:
    if kind == _T_BOOL:
        return "true" if value else "false"
    if kind == _T_INT:
        return str(value)
    return value


def _read_json(path):
    data = fsutil.read(path)
    if data is None:
        return None
    try:
        return json.loads(data.decode())
    except Exception as e:
        log.warn(_TAG, _m(_M_UNREADABLE) % (path, e))
    # A corrupt file next to a complete .new one (rename interrupted).
    data = fsutil.read(path + ".new")
    if data is None:
        return None
    try:
        obj = json.loads(data.decode())
    except Exception:
        return None
    log.warn(_TAG, _m(_M_USING_NEW) % (path, path))
    return obj


class Config:
    def __init__(self, root="", device_id="", variant=None):
        self._root = root
        self._subs = []
        src = _m(_S_PROVISION)
        prov = _read_json(root + src)
        if not isinstance(prov, dict):
            if prov is not None:
                log.warn(_TAG, _m(_M_NOTOBJ) % src)
            prov = {}
        dflt = P.raw("DEFAULT_VARIANT")
        variants = P.raw("VARIANTS")
        if variant is None:
            variant = prov.get("variant", dflt)
            if P.find(variants, variant, ",", ",") < 0:
                log.warn(_TAG, _m(_M_VARIANT) % (src, variant, dflt))
                variant = dflt
        elif P.find(variants, variant, ",", ",") < 0:
            raise ValueError(_m(_M_BADVARIANT) % (variant,))
        self.variant: str = variant

        n = P.TAB.count("\n")  # < 128 keys
        v: list = [None] * n
        ps = array("H", bytes(2 * n))
        slots = bytearray(128)
        for i, p, row in P.rows():
            v[i] = row[2]
            ps[i] = p
            k = hash(row[0]) & 127
            while slots[k]:
                k = (k + 1) & 127
            slots[k] = i + 1
        self._v = v
        self._p = ps
        self._s = slots
        # Baseline overrides {i: value} of the table defaults.
        base = {self._i(_m(_K_CHARGERID), True): device_id}
        var, key, value = P.raw("VARIANT_DEFAULTS").split(",")  # (params.VARIANT_DEFAULTS)
        if var == variant:
            base[self._i(key, True)] = P.raw(value)
        for i in base:
            v[i] = base[i]
        self._base = base

        # Factory preset: string values, validated like ChangeConfiguration,
        # read-only keys allowed. They become the baseline.
        pcfg = prov.get("config", {})
        if not isinstance(pcfg, dict):
            log.warn(_TAG, _m(_M_CFGOBJ) % src)
            pcfg = {}
        self._load(pcfg, src, False)
        base = {}
        for i, p, row in P.rows():
            if v[i] != row[2]:
                base[i] = v[i]
        self._base = base

        # Runtime changes: typed JSON values, only those differing from the baseline.
        src = _m(_S_CONFIG)
        saved = _read_json(root + src)
        if saved is not None and not isinstance(saved, dict):
            log.warn(_TAG, _m(_M_SAVEDOBJ) % src)
            saved = None
        if saved:
            self._load(saved, src, True)

    # ---- public API -------------------------------------------------------

    def keys(self):
        return [row[0] for i, p, row in P.rows()]

    def get(self, key):
        # Called by the control loop: allocates nothing.
        return self._v[self._i(key, True)]

    def unit(self, key):
        return P.row(self._p[self._i(key, True)])[3]

    def readonly(self, key):
        return bool(P.row(self._p[self._i(key, True)])[4] & _F_RO)

    def subscribe(self, fn):
        self._subs.append(fn)

    def set(self, key, value):
        """OCPP ChangeConfiguration; value is the request's string."""
        i = self._i(key, False)
        if i < 0:
            return "NotSupported"
        row = P.row(self._p[i])
        try:
            if row[4] & _F_RO:
                raise ValueError(_m(_M_RO))
            if type(value) is not str:
                raise ValueError(_m(_M_NOTSTR))
            new = self._parse(row, value, False)
            # The guide: the charger ID is not part of OcppServerAddress (it is appended).
            if row[7] == _C_URL and new:
                urlmod.parse(new, self.get(_m(_K_CHARGERID)))
            elif key == _m(_K_CHARGERID):
                for j, p, r in P.rows():
                    if r[7] == _C_URL and self._v[j]:
                        urlmod.parse(self._v[j], new)
            r = self._apply(i, key, new, False)
        except ValueError as e:
            log.warn(_TAG, _m(_M_REJECTED) % (key, e))
            return "Rejected"
        if r is None:
            return "Rejected"
        return "RebootRequired" if r and row[4] & _F_REBOOT else "Accepted"

    def set_internal(self, key, value):
        """Firmware-side update with a typed value; read-only keys allowed.
        Returns True if the value changed. KeyError: unknown key; ValueError:
        wrong type, invalid value, or a value that would invalidate another key."""
        i = self._i(key, True)
        return self._apply(i, key, self._parse(P.row(self._p[i]), value, True), True)

    def get_configuration(self, keys=None, out=None):
        """OCPP GetConfiguration -> (configurationKey list, unknownKey list).

        With out (a writable stream such as lib.ocppj.Out) the answer's JSON
        object is written into it instead, one entry at a time, and None is
        returned: a full read then never holds ~50 entries on the heap at once
        (a fragmented board heap may not have room for them)."""
        known = []
        unknown = []
        every = not keys  # all keys, no limit
        if every:
            keys = range(len(self._p))
        limit = self.get(_m(_K_MAXKEYS))
        seen = []
        sep = '{"configurationKey":['
        for k in keys:
            if every:
                i = k
            else:
                if k in seen:
                    continue
                if len(seen) >= limit:
                    break
                seen.append(k)
                i = self._i(k, False)
            row = P.row(self._p[i]) if i >= 0 else None
            if row is None:
                unknown.append(k)
                continue
            # A write-only key's value is a secret: listed, never its value.
            e = {"key": row[0], "readonly": bool(row[4] & _F_RO)}
            if not row[4] & _F_WO:
                e["value"] = _to_str(row[1], self._v[i])
            if out is None:
                known.append(e)
            else:
                out.write(sep)
                json.dump(e, out)
                sep = ","
        if out is None:
            return known, unknown
        if sep != ",":
            out.write(sep)
        out.write("]")
        if unknown:
            out.write(',"unknownKey":')
            json.dump(unknown, out)
        out.write("}")

    # ---- internals --------------------------------------------------------

    def _i(self, key, strict):
        """Index of key; unknown: KeyError if strict, else -1. Allocates nothing."""
        if type(key) is str:
            t = P.TAB
            k = hash(key) & 127
            while True:
                i = self._s[k] - 1
                if i < 0:
                    break
                p = self._p[i]
                if t.startswith(key, p) and t.find("|", p) == p + len(key):
                    return i
                k = (k + 1) & 127
        if strict:
            raise KeyError(key)
        return -1

    def _fallback(self, i):
        # Baseline value of the key at index i.
        return self._base[i] if i in self._base else P.row(self._p[i])[2]

    def _apply(self, i, key, new, internal):
        # New value of key: False if unchanged, True if changed, None if the
        # flash write failed for set() (old value restored).
        v = self._v
        old = v[i]
        if new == old:
            return False
        v[i] = new
        try:
            # Lists limited by this key (...MaxLength, NumberOfConnectors: all
            # read-only, so only set_internal gets here) must stay valid.
            for j, p, r in P.rows():
                if r[1] == _T_CSL and (r[6] == key or (key == _m(_K_CONNECTORS) and r[7] == _C_ROTATION)):
                    try:
                        self._parse(r, v[j], False)
                    except ValueError as e:
                        raise ValueError(_m(_M_DEPENDENT) % (r[0], e))
        except ValueError:
            v[i] = old
            raise
        diff = {}
        b = self._base
        for j, p, r in P.rows():
            if v[j] != (b[j] if j in b else r[2]):
                diff[r[0]] = v[j]
        try:
            fsutil.write_atomic(self._root + _m(_S_CONFIG), json.dumps(diff).encode())
        except Exception as e:
            log.error(_TAG, _m(_M_WRITE) % e)
            if not internal:
                v[i] = old
                return None
            log.error(_TAG, _m(_M_RAM) % key)
        for fn in self._subs:
            try:
                fn(key, new)
            except Exception as e:
                log.error(_TAG, _m(_M_SUBSCRIBER) % (key, e))
        return True

    def _load(self, d, src, typed):
        # provision.json: OCPP strings; config.json (typed): JSON values.
        # Lists are checked against their ...MaxLength / NumberOfConnectors,
        # so those are applied first (dicts are unordered).
        v = self._v
        for csl in (False, True):
            for key in d:
                i = self._i(key, False)
                row = P.row(self._p[i]) if i >= 0 else None
                if (row is not None and row[1] == _T_CSL) != csl:
                    continue
                if row is None:
                    log.warn(_TAG, _m(_M_UNKNOWN) % (src, key))
                    continue
                s = d[key]
                if not typed and type(s) is not str:
                    log.warn(_TAG, _m(_M_STRING) % (src, key))
                    continue
                try:
                    v[i] = self._parse(row, s, typed)
                except ValueError as e:
                    log.warn(_TAG, _m(_M_INVALID + typed) % (src, key, e))
        # A list left longer than its (loaded) ...MaxLength, or naming a connector
        # beyond NumberOfConnectors: back to the baseline list, and if that is
        # still inconsistent, the limiting keys too (the baseline is consistent).
        for i, p, row in P.rows():
            if row[1] != _T_CSL:
                continue
            try:
                self._parse(row, v[i], False)
                continue
            except ValueError as e:
                log.warn(_TAG, _m(_M_INCONSISTENT) % (src, row[0], e))
            v[i] = self._fallback(i)
            try:
                self._parse(row, v[i], False)
            except ValueError:
                for k in (row[6], _m(_K_CONNECTORS)) if row[7] == _C_ROTATION else (row[6],):
                    j = self._i(k, True)
                    v[j] = self._fallback(j)

    def _parse(self, row, s, typed):
        """Typed value of the OCPP string s (typed: of the typed value s) for
        row, or ValueError(reason)."""
        kind, flags, lo, hi, check = row[1], row[4], row[5], row[6], row[7]
        if typed:
            if type(s) is not (bool if kind == _T_BOOL else int if kind == _T_INT else str):
                raise ValueError(_m(_M_TYPE))
            s = _to_str(kind, s)
        if len(s) > 500:  # params VALUE_MAX
            raise ValueError(_m(_M_LONG))
        if kind == _T_BOOL:
            low = s.lower()
            if low == "true":
                return True
            if low == "false":
                return False
            raise ValueError(_m(_M_BOOL))
        if kind == _T_INT:
            if not s or len(s) > 10 or not s.isdigit():
                raise ValueError(_m(_M_INT))
            n = int(s)
            if n < lo or n > hi:
                raise ValueError(_m(_M_RANGE) % (lo, hi))
            return n
        # Bytes, not characters: iterating a str interns every character as a
        # qstr (permanent). UTF-8 bytes < 128 are exactly the ASCII characters.
        e = s.encode()
        for n in e:
            if n < 32 or n == 127:
                raise ValueError(_m(_M_CTRL))
        if kind == _T_STR:
            if s == "" and flags & _F_EMPTY:
                return s
            n = len(e)
            if n < lo or n > hi:
                raise ValueError(_m(_M_LEN) % (lo, hi))
            if check == _C_PHASE:
                if P.find(P.raw("PHASES"), s, ",", ",") < 0:
                    raise ValueError(_m(_M_PHASE))
            elif check == _C_URL:
                urlmod.parse(s)  # ValueError with the reason, logged by the caller
            elif check == _C_ID:
                # ASCII letters, digits and *-_=+|@. (e[:j] is ASCII: s[j] is e[j])
                for j in range(n):
                    c = e[j] | 32
                    if not (97 <= c <= 122 or 48 <= e[j] <= 57 or e[j] in b"*-_=+|@."):
                        raise ValueError(_m(_M_CHAR) % s[j:j + 1])
            return s
        # T_CSL: items, spaces around them dropped; "" -> no item.
        items = []
        if s.strip():
            for it in s.split(","):
                it = it.strip()
                if not it:
                    raise ValueError(_m(_M_ITEM))
                if it in items:
                    raise ValueError(_m(_M_DUP) % it)
                items.append(it)
        n = self.get(hi)
        if len(items) > n:
            raise ValueError(_m(_M_ITEMS) % (len(items), hi, n))
        if check != _C_ROTATION:
            lst = P.raw("FEATURE_PROFILES" if check == _C_PROFILE else "MEASURANDS")
            for it in items:
                if P.find(lst, it, ",", ",") < 0:
                    raise ValueError(_m(_M_MEASURAND + (check == _C_PROFILE)) % it)
        elif not items:
            raise ValueError(_m(_M_EMPTY))
        elif len(items) > 1 or items[0] not in ("NotApplicable", "Unknown"):
            n = self.get(_m(_K_CONNECTORS))
            seen = []
            rots = P.raw("ROTATIONS")
            for it in items:
                dot = it.find(".")
                cid = it[:dot]
                if dot < 1 or not cid.isdigit() or len(cid) > 3 or P.find(rots, it[dot + 1:], ",", ",") < 0:
                    raise ValueError(_m(_M_ROT) % it)
                c = int(cid)
                if c > n:
                    raise ValueError(_m(_M_CONN) % c)
                if c in seen:
                    raise ValueError(_m(_M_TWICE) % c)
                seen.append(c)
        return ",".join(items)
