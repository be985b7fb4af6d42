# What the charger knows about idTags: the authorization cache (filled from
# every idTagInfo the central system sends; a small JSON file written
# atomically, bounded in entries) and the local authorization list
# (firmware/locallist.py, on flash), with the requests that manage them
# (ClearCache, SendLocalList, GetLocalListVersion). The decision on a card is
# firmware/auth.py, run through IdTags.run.
import gc
import json
import os
from micropython import const

from lib import fsutil, isotime, log, transient

_CACHE_FILE = const("auth_cache.json")
_LIST_FILE = const("auth_list.bin")
_LIST_MOD = const("firmware.locallist")
_CACHE_MAX = const(200)


class IdTags:
    def __init__(self, cp, cfg, board):
        self.cp = cp
        self.cfg = cfg
        root = board.flash.root
        self.cache = TagStore(root + _CACHE_FILE, _CACHE_MAX, board.clock)
        self.list_path = root + _LIST_FILE
        self.clock = board.clock
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
            return transient.load(_LIST_MOD).request(self.list_path, self.clock, self.cfg, p)
        finally:
            transient.drop(_LIST_MOD)

    async def _clear_cache(self, payload):
        self.cache.clear()
        log.info("auth", "cache cleared")
        return {"status": "Accepted"}

    def listed(self, id_tag):
        """The local list's idTagInfo for id_tag (None: not listed, or no list).
        The list code is loaded only while a list file exists."""
        if not self.cfg.get("LocalAuthListEnabled"):
            return None
        for p in (self.list_path, self.list_path + ".new"):
            try:
                os.stat(p)
                break
            except OSError:
                pass
        else:
            return None
        try:
            return transient.load(_LIST_MOD).LocalList(self.list_path, self.clock).lookup(id_tag)
        finally:
            transient.drop(_LIST_MOD)

    def remember(self, id_tag, info):
        """Every idTagInfo from the central system refreshes the cache (OCPP 3.5.1)."""
        if isinstance(info, dict) and self.cfg.get("AuthorizationCacheEnabled") and "status" in info:
            try:
                if self.listed(id_tag) is not None:
                    return  # the local list is never shadowed by the cache
            except MemoryError:
                return
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
                if not (isinstance(k, str) and isinstance(v, list) and len(v) == 4 and isinstance(v[0], str)
                        and type(v[1]) is int and type(v[3]) is int and (v[2] is None or isinstance(v[2], str))):
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
