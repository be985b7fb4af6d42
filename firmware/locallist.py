# The Local Authorization List (OCPP 1.6 LocalAuthListManagement) on flash.
#
# File: a 10-byte header (b"JLL1", listVersion int32, count uint16) and then
# `count` fixed-size records sorted by idTag:
#   idTag (20 bytes, NUL padded) | status (1 byte, index in _STATUSES) |
#   expiryDate (uint32 UTC epoch, 0: none) | parentIdTag (20 bytes, NUL padded)
# A lookup is a binary search with seeks and one preallocated 45-byte buffer:
# the list (up to LocalAuthListMaxLength = 1000 entries, 45 KB) is never in RAM.
# An update streams the old file and the (at most SendLocalListMaxLength)
# changes into a temporary file that replaces the list atomically
# (lib/fsutil.replace): a power cut leaves the old list or the new one. A file
# whose size does not match its header is not a list (a cut while writing).
#
# Needed a few times an hour (a card while a list exists, a SendLocalList):
# firmware/idtags.py loads this module for each use and drops it
# (lib/transient.py), so nothing of it stays on the heap; LocalList objects
# live only as long as that use.
import struct
from micropython import const

from lib import fsutil, isotime, log

_HEAD = const(10)
_REC = const(45)
_MAGIC = const(b"JLL1")
_STATUSES = const(("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"))


def _key(tag):
    # None for a tag longer than a record's 20 bytes (non-ASCII characters
    # take several): it cannot be in the list.
    k = tag.encode()
    return k + bytes(20 - len(k)) if len(k) <= 20 else None


class LocalList:
    def __init__(self, path, clock):
        self.path = path
        self.clock = clock
        self.version = 0
        self.count = 0
        self._key = bytearray(20)      # the idTag of the record at hand
        self._rest = bytearray(_REC - 20)  # and the rest of it
        self._open()

    def _open(self):
        # A cut inside fsutil.replace (old removed, new not yet renamed) leaves
        # only the complete ".new": adopt it. A ".new" next to a list is a
        # half-written update: forget it.
        self.version = self.count = 0
        tmp = self.path + ".new"
        try:
            f = open(self.path, "rb")
        except OSError:
            try:
                fsutil.replace(tmp, self.path)
                f = open(self.path, "rb")
            except OSError:
                return
        else:
            try:
                import os
                os.remove(tmp)
            except OSError:
                pass
        with f:
            h = f.read(_HEAD)
            size = f.seek(0, 2)
        if len(h) == _HEAD and h[:4] == _MAGIC:
            v, n = struct.unpack("<iH", h[4:])
            if size == _HEAD + n * _REC:
                self.version, self.count = v, n
                return
        log.error("auth", "local list damaged: empty")

    def listed_version(self):
        """GetLocalListVersion: 0 for an empty list (OCPP)."""
        return self.version if self.count else 0

    def lookup(self, tag):
        """idTagInfo of tag (Expired once its expiryDate passed), None if not listed."""
        key = _key(tag) if self.count else None
        if key is None:
            return None
        k = self._key
        lo, hi = 0, self.count
        try:
            with open(self.path, "rb") as f:
                while lo < hi:
                    mid = (lo + hi) >> 1
                    f.seek(_HEAD + mid * _REC)
                    f.readinto(k)
                    if k == key:
                        f.readinto(self._rest)
                        st, exp, parent = struct.unpack("<BI20s", self._rest)
                        status = _STATUSES[st] if st < len(_STATUSES) else "Invalid"
                        if status == "Accepted" and exp and exp <= self.clock.now():
                            status = "Expired"
                        info = {"status": status}
                        if parent[0]:
                            info["parentIdTag"] = parent.split(b"\0")[0].decode()
                        if exp:
                            info["expiryDate"] = isotime.format(exp)
                        return info
                    if k < key:
                        lo = mid + 1
                    else:
                        hi = mid
        except (OSError, ValueError) as e:  # ValueError: a damaged record (not UTF-8)
            log.error("auth", "local list: %r" % (e,))
        return None

    def update(self, full, version, entries, max_total):
        """SendLocalList after the request's checks: 'Accepted' or 'Failed' (the
        old list untouched). entries: [{"idTag", "idTagInfo"?}], no idTagInfo
        in a Differential deletes the idTag."""
        for e in entries:
            info = e.get("idTagInfo")
            if full and info is None:
                return "Failed"  # OCPP: idTagInfo is required in a Full update
            # A tag must fit its record whole (cut, two tags would be one).
            if _key(e["idTag"]) is None or info and _key(info.get("parentIdTag") or "") is None:
                return "Failed"
        # The changes in record order, as indexes: each record is packed into
        # one buffer as it is written, so an update holds no copy of them
        # (str order is the records' byte order: UTF-8, NUL padding).
        order = sorted(range(len(entries)), key=lambda i: entries[i]["idTag"])
        for j in range(1, len(order)):
            if entries[order[j]]["idTag"] == entries[order[j - 1]]["idTag"]:
                return "Failed"  # OCPP: idTags in one list are unique
        tmp = self.path + ".new"
        n = 0
        try:
            with open(tmp, "wb") as out:
                out.write(_MAGIC + struct.pack("<iH", version, 0))
                old = None
                if not full and self.count:
                    old = open(self.path, "rb")
                try:
                    n = self._merge(out, old, entries, order, max_total)
                finally:
                    if old:
                        old.close()
                if n < 0:
                    raise ValueError("more than %d entries" % max_total)
                out.seek(4)
                out.write(struct.pack("<iH", version, n))
            fsutil.sync()
            fsutil.replace(tmp, self.path)
        except (OSError, ValueError) as e:
            log.error("auth", "local list update failed: %r" % (e,))
            try:
                import os
                os.remove(tmp)
            except OSError:
                pass
            return "Failed"
        self.version, self.count = version, n
        return "Accepted"

    def _merge(self, out, old, entries, order, max_total):
        # Streams old records and the sorted changes into out; returns the
        # count, -1 if too many. A change is packed into rec (its key first).
        k, rest = self._key, self._rest
        rec = bytearray(_REC)
        ck = memoryview(rec)[:20]
        left = self.count if old else 0
        if old:
            old.seek(_HEAD)
        i = n = 0
        have = False
        cur = -1  # the change packed into rec
        while True:
            if not have and left:
                old.readinto(k)
                old.readinto(rest)
                left -= 1
                have = True
            if i < len(order) and cur != i:
                e = entries[order[i]]
                info = e.get("idTagInfo")
                if info is None:  # a delete: only its key matters
                    struct.pack_into("<20sBI20s", rec, 0, e["idTag"].encode(), 255, 0, b"")
                else:
                    exp = info.get("expiryDate")
                    exp = isotime.parse(exp) if exp else None
                    # uint32 on file, 0 meaning none: an expiry before 1970
                    # is long past (1), one after 2106 the furthest there is.
                    exp = 0 if exp is None else 1 if exp < 1 else exp if exp < 0xFFFFFFFF else 0xFFFFFFFF
                    struct.pack_into("<20sBI20s", rec, 0, e["idTag"].encode(), _STATUSES.index(info["status"]),
                                     exp, (info.get("parentIdTag") or "").encode())
                cur = i
            if have and (i >= len(order) or k < ck):
                have = False
                n += 1
                out.write(k)
                out.write(rest)
            elif i < len(order):
                i += 1
                if have and k == ck:
                    have = False  # replaced or deleted
                if rec[20] != 255:
                    n += 1
                    out.write(rec)
            else:
                return n
            if n > max_total:
                return -1


def request(path, clock, cfg, p):
    """SendLocalList (p has updateType) or GetLocalListVersion answered on the list at path."""
    lst = LocalList(path, clock)
    enabled = cfg.get("LocalAuthListEnabled")
    if "updateType" not in p:
        return {"listVersion": lst.listed_version() if enabled else -1}
    if not enabled:
        return {"status": "NotSupported"}
    entries = p.get("localAuthorizationList") or ()
    full = p["updateType"] == "Full"
    v = p["listVersion"]
    if not full and v <= lst.listed_version():
        status = "VersionMismatch"  # made for an older list than ours (docs/decisions.md)
    elif len(entries) > cfg.get("SendLocalListMaxLength") or not 0 <= v <= 0x7FFFFFFF:
        status = "Failed"  # the file keeps the version as an int32; -1 means "no list"
    else:
        status = lst.update(full, p["listVersion"], entries, cfg.get("LocalAuthListMaxLength"))
    log.info("auth", "SendLocalList %s v%d (%d): %s" % (p["updateType"], p["listVersion"], len(entries), status))
    return {"status": status}
