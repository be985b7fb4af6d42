# What the charger knows about idTags: the authorization cache (filled from
# every idTagInfo the central system sends; a small JSON file written
# atomically, bounded in entries) and the local authorization list
# (firmware/locallist.py, on flash), with the requests that manage them
# (ClearCache, SendLocalList, GetLocalListVersion). The decision on a card is
# firmware/auth.py, run through IdTags.run.
import gc
import json
import struct

from lib import fsutil, isotime, log, transient

CACHE_FILE = "auth_cache.json"
LIST_FILE = "auth_list.bin"
LIST_MOD = "firmware.locallist"
CACHE_MAX = 200
# The local list file (firmware/locallist.py describes it).
LIST_MAGIC = b"JLL1"
LIST_HEAD = 10
LIST_REC = 45
LIST_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")


def list_lookup(path, tag, now, k, rest):
    """idTagInfo of tag in the local list file at path (Expired once its
    expiryDate passed), None if not listed or no valid list. A binary search
    with seeks into k (20 bytes) and rest (25 bytes): the list is never in RAM."""
    key = tag.encode()
    if len(key) > 20:
        return None
    key += bytes(20 - len(key))
    try:
        try:
            f = open(path, "rb")
        except OSError:
            # A cut inside fsutil.replace left only the new list (LocalList
            # renames it at the next update); an incomplete one fails the size check.
            f = open(path + ".new", "rb")
        with f:
            h = f.read(LIST_HEAD)
            if len(h) < LIST_HEAD or h[:4] != LIST_MAGIC:
                return None
            hi = struct.unpack_from("<H", h, 8)[0]
            if f.seek(0, 2) != LIST_HEAD + hi * LIST_REC:
                return None  # a cut while writing: not a list
            lo = 0
            while lo < hi:
                mid = (lo + hi) >> 1
                f.seek(LIST_HEAD + mid * LIST_REC)
                f.readinto(k)
                if k == key:
                    f.readinto(rest)
                    st, exp, parent = struct.unpack("<BI20s", rest)
                    status = LIST_STATUSES[st] if st < len(LIST_STATUSES) else "Invalid"
                    info = {"status": "Expired" if status == "Accepted" and exp and exp <= now else status}
                    if parent[0]:
                        info["parentIdTag"] = parent.split(b"\0")[0].decode()
                    if exp:
                        info["expiryDate"] = isotime.format(exp)
                    return info
                if k < key:
                    lo = mid + 1
                else:
                    hi = mid
    except OSError:
        pass
    return None


class IdTags:
    def __init__(self, cp, cfg, board):
        self.cp = cp
        self.cfg = cfg
        root = board.flash.root
        self.cache = TagStore(root + CACHE_FILE, CACHE_MAX, board.clock)
        self.list_path = root + LIST_FILE
        self.clock = board.clock
        self._k = bytearray(20)     # list_lookup's buffers
        self._rest = bytearray(25)
        cp.on("ClearCache", self._clear_cache)
        cp.on("SendLocalList", self._list_request)
        cp.on("GetLocalListVersion", self._list_request)

    def run(self, name, *args):
        """Function `name` of the authorization decision (firmware/auth.py),
        called with this IdTags first; the module is loaded for the call only."""
        try:
            try:
                fn = getattr(transient.load("firmware.auth"), name)
            except MemoryError:
                gc.collect()  # a fragmented heap: once more after a collection
                fn = getattr(transient.load("firmware.auth"), name)
            return fn(self, *args)
        finally:
            transient.drop("firmware.auth")

    async def _list_request(self, p):
        # The list code is loaded for the request and dropped after (lib/transient.py).
        try:
            return transient.load(LIST_MOD).request(self.list_path, self.clock, self.cfg, p)
        finally:
            transient.drop(LIST_MOD)

    async def _clear_cache(self, payload):
        self.cache.clear()
        log.info("auth", "cache cleared")
        return {"status": "Accepted"}

    def listed(self, id_tag):
        """The local list's idTagInfo for id_tag (None: not listed, or no list)."""
        if not self.cfg.get("LocalAuthListEnabled"):
            return None
        return list_lookup(self.list_path, id_tag, self.clock.now(), self._k, self._rest)

    def remember(self, id_tag, info):
        """Every idTagInfo from the central system refreshes the cache (OCPP 3.5.1)."""
        if isinstance(info, dict) and self.cfg.get("AuthorizationCacheEnabled") and "status" in info:
            if self.listed(id_tag) is None:  # the local list is never shadowed by the cache
                self.cache.put(id_tag, info)


class TagStore:
    def __init__(self, path, max_entries, clock):
        self.path = path
        self.max_entries = max_entries
        self.clock = clock
        self.version = 0
        self._tags = {}   # idTag -> [status, expiry epoch or 0, parentIdTag or None, last use]
        self._load()

    def _load(self):
        raw = fsutil.read(self.path)
        if raw is None:
            return
        try:
            doc = json.loads(raw)
            tags = doc["tags"]
            version = doc.get("version", 0)
            if not isinstance(tags, dict) or not isinstance(version, int):
                raise ValueError("bad shape")
            for k, v in tags.items():
                if not (isinstance(k, str) and isinstance(v, list) and len(v) == 4 and isinstance(v[0], str)):
                    raise ValueError("bad entry")
            self._tags = tags
            self.version = version
        except Exception as e:
            log.warn("auth", "%s unreadable (%r): starting empty" % (self.path, e))
            self._tags = {}

    def _save(self):
        try:
            fsutil.write_atomic(self.path, json.dumps({"version": self.version, "tags": self._tags}))
        except OSError as e:
            log.error("auth", "cannot write %s: %r" % (self.path, e))

    def lookup(self, id_tag):
        """idTagInfo dict for id_tag, with status Expired when its expiry passed; None if unknown."""
        e = self._tags.get(id_tag)
        if e is None:
            return None
        status, expiry, parent = e[0], e[1], e[2]
        if status == "Accepted" and expiry and expiry <= self.clock.now():
            status = "Expired"
        info = {"status": status}
        if parent:
            info["parentIdTag"] = parent
        return info

    def put(self, id_tag, info):
        expiry = info.get("expiryDate")
        exp = isotime.parse(expiry) if isinstance(expiry, str) else None
        entry = [info.get("status", "Invalid"), exp or 0, info.get("parentIdTag"), self.clock.now()]
        old = self._tags.get(id_tag)
        if old is not None and old[:3] == entry[:3]:
            return  # nothing new: no flash write (the last-use time is not worth one)
        if old is None and len(self._tags) >= self.max_entries:
            self._evict()
        self._tags[id_tag] = entry
        self._save()

    def _evict(self):
        # Cache policy (OCPP 3.5.1): drop expired/invalid entries first, then the least recently used.
        victim = None
        for k, e in self._tags.items():
            if e[0] != "Accepted":
                victim = k
                break
            if victim is None or e[3] < self._tags[victim][3]:
                victim = k
        if victim is not None:
            del self._tags[victim]

    def clear(self):
        self._tags = {}
        self._save()
