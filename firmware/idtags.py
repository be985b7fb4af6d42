# Persistent idTag stores: the authorization cache (filled from every idTagInfo
# the central system sends) and, with the same format, the local authorization
# list. Small JSON files written atomically; bounded in entries.
import json

from lib import fsutil, isotime, log


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
