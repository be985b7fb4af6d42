# What the charger knows about idTags: the authorization cache (filled from
# every idTagInfo the central system sends; a small JSON file written
# atomically, bounded in entries) and the local authorization list
# (firmware/locallist.py, on flash), with the requests that manage them
# (ClearCache, SendLocalList, GetLocalListVersion). The decision on a card is
# firmware/auth.py, run through IdTags.run.
import gc
import os
import struct
from micropython import const

from lib import fsutil, isotime, log, transient

_CACHE_FILE = const("auth_cache.bin")
_OLD_CACHE = const("auth_cache.json")
_CMAGIC = const(b"JAC1")
_CREC = const(49)
_STATUSES = const(("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"))
_LIST_FILE = const("auth_list.bin")
_LIST_MOD = const("firmware.locallist")
_CACHE_MAX = const(200)


class IdTags:
    def __init__(self, cp, cfg, board):
        self.cp = cp
        self.cfg = cfg
        root = board.flash.root
        self.cache = TagStore(root + _CACHE_FILE, _CACHE_MAX, board.clock)
        try:
            os.remove(root + _OLD_CACHE)  # the JSON cache of earlier versions: not read
        except OSError:
            pass
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
    """The authorization cache on flash, never in RAM: a held dict cost about
    150 bytes an entry on the board (30 KB for a full cache, and its JSON
    text written whole at every change). File: b"JAC1", then fixed-size
    records, at most max_entries:
      idTag (20 bytes, NUL padded; a first byte 0 is a free record) |
      status (1 byte, index in _STATUSES) | expiry (uint32 UTC epoch, 0: none) |
      parentIdTag (20 bytes, NUL padded) | last update (uint32 UTC epoch)
    A lookup or an update reads the records one by one into preallocated
    buffers; an update writes one record in place. A file of the wrong shape
    is a damaged cache: it starts empty (it is only a cache)."""

    def __init__(self, path, max_entries, clock):
        self.path = path
        self.max_entries = max_entries
        self.clock = clock
        self._key = bytearray(20)
        self._rest = bytearray(_CREC - 20)
        self._old = bytearray(4)
        state = 0  # no file, 1 damaged, 2 a cache
        try:
            with open(path, "rb") as f:
                state = 1
                if f.read(4) == _CMAGIC and (f.seek(0, 2) - 4) % _CREC == 0:
                    state = 2
        except OSError:
            pass
        if state < 2:
            if state:
                log.warn("auth", "%s damaged: starting empty" % path)
            self.clear()

    def _scan(self, key, f, first=False):
        """(index of key's record or -1, first free or -1, eviction victim,
        records). first: stop at key's record, its fields left in _rest. The
        victim: the first entry not Accepted, else the least recently updated
        (compared byte by byte: an epoch is no small int on a 32-bit board,
        and reading one per record would allocate)."""
        k = self._key
        rest = self._rest
        o = self._old
        found = free = victim = -1
        locked = False  # the victim is an entry not Accepted: it stays the victim
        i = 0
        f.seek(4)
        while f.readinto(k) == 20 and f.readinto(rest) == _CREC - 20:
            if k == key:
                found = i
                if first:
                    break
            elif not k[0]:
                if free < 0:
                    free = i
            elif not first and not locked:
                older = True
                if rest[0]:  # not Accepted
                    locked = True
                elif victim >= 0:
                    older = False
                    j = 3
                    while j >= 0:  # the little-endian update time, most significant byte first
                        if rest[25 + j] != o[j]:
                            older = rest[25 + j] < o[j]
                            break
                        j -= 1
                if older:
                    victim = i
                    o[0], o[1], o[2], o[3] = rest[25], rest[26], rest[27], rest[28]
            i += 1
        return found, free, victim, i

    def lookup(self, id_tag):
        """idTagInfo dict for id_tag, with status Expired when its expiry passed; None if unknown."""
        key = _key(id_tag)
        if key is None:
            return None
        try:
            with open(self.path, "rb") as f:
                if self._scan(key, f, True)[0] < 0:
                    return None
        except OSError:
            return None
        st, expiry, parent = struct.unpack_from("<BI20s", self._rest)
        status = _STATUSES[st] if st < len(_STATUSES) else "Invalid"
        if status == "Accepted" and expiry and expiry <= self.clock.now():
            status = "Expired"
        info = {"status": status}
        if parent[0]:
            try:
                info["parentIdTag"] = parent.split(b"\0")[0].decode()
            except UnicodeError:  # a damaged record
                pass
        return info

    def put(self, id_tag, info):
        key = _key(id_tag)
        status = info.get("status", "Invalid")
        if key is None or status not in _STATUSES:
            return
        expiry = info.get("expiryDate")
        exp = isotime.parse(expiry) if isinstance(expiry, str) else None
        if exp is not None:  # into the record's uint32 (0: none): past 1970 still expired, past 2106 the end
            exp = 1 if exp < 1 else 0xFFFFFFFF if exp > 0xFFFFFFFF else exp
        parent = info.get("parentIdTag")
        pkey = _key(parent) if isinstance(parent, str) else None
        # One write of the whole record: a cut leaves the old record or the
        # new one (littlefs commits a file's change whole; a 49-byte write
        # is not split elsewhere), never a new idTag with an old status.
        rec = struct.pack("<20sBI20sI", key, _STATUSES.index(status), exp or 0, pkey or bytes(20),
                          self.clock.now())
        try:
            with open(self.path, "rb") as f:
                found, free, victim, n = self._scan(key, f)
                if found >= 0:
                    f.seek(4 + found * _CREC + 20)
                    f.readinto(self._rest)
                    if self._rest[:25] == rec[20:45]:
                        return  # nothing new: no flash write (the update time is not worth one)
            if found >= 0:
                at = found
            elif free >= 0:
                at = free
            elif n < self.max_entries:
                at = n
            else:
                at = victim
            with open(self.path, "r+b") as f:
                f.seek(4 + at * _CREC)
                f.write(rec)
        except OSError as e:
            log.error("auth", "cannot write %s: %r" % (self.path, e))

    def clear(self):
        try:
            fsutil.write_atomic(self.path, _CMAGIC)
        except OSError as e:
            log.error("auth", "cannot write %s: %r" % (self.path, e))


def _key(tag):
    # None for a tag longer than a record's 20 bytes (non-ASCII characters take several).
    k = tag.encode()
    return k + bytes(20 - len(k)) if 0 < len(k) <= 20 else None
