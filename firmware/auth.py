# The authorization decision, exactly as the integration guide draws it:
# card -> LocalPreAuthorize -> local list / cache -> Authorize on the central
# system when not found locally -> decision; offline rules when it can't be asked.
import asyncio

from lib import log
from firmware.chargepoint import CallError, NotConnected

AUTHORIZE_TIMEOUT_MS = 10000
CACHE_FILE = "auth_cache.json"
LIST_FILE = "auth_list.json"
CACHE_MAX = 200

ACCEPTED = {"status": "Accepted"}
INVALID = {"status": "Invalid"}


class Authorizer:
    def __init__(self, cp, cfg, board, tagstore_cls):
        self.cp = cp
        self.cfg = cfg
        root = board.flash.root
        self.cache = tagstore_cls(root + CACHE_FILE, CACHE_MAX, board.clock)
        self.local_list = tagstore_cls(root + LIST_FILE, cfg.get("LocalAuthListMaxLength"), board.clock)
        cp.on("ClearCache", self._clear_cache)

    async def _clear_cache(self, payload):
        self.cache.clear()
        log.info("auth", "cache cleared")
        return {"status": "Accepted"}

    def local(self, id_tag):
        """What the charger knows without asking: local list first, then the cache."""
        if self.cfg.get("LocalAuthListEnabled"):
            info = self.local_list.lookup(id_tag)
            if info is not None:
                return info
        if self.cfg.get("AuthorizationCacheEnabled"):
            return self.cache.lookup(id_tag)
        return None

    def remember(self, id_tag, info):
        """Every idTagInfo from the central system refreshes the cache (OCPP 3.5.1)."""
        if isinstance(info, dict) and self.cfg.get("AuthorizationCacheEnabled") and "status" in info:
            if self.local_list.lookup(id_tag) is None:  # the local list is never shadowed by the cache
                self.cache.put(id_tag, info)

    async def authorize(self, id_tag):
        """idTagInfo for a card; never raises."""
        known = self.local(id_tag)
        online = self.cp.accepted
        if online and self.cfg.get("LocalPreAuthorize") and known is not None and known["status"] == "Accepted":
            log.info("auth", "%s accepted locally (LocalPreAuthorize)" % id_tag)
            return known
        if online:
            try:
                res = await self.cp.call("Authorize", {"idTag": id_tag}, AUTHORIZE_TIMEOUT_MS)
                info = res.get("idTagInfo") or INVALID
                self.remember(id_tag, info)
                log.info("auth", "%s: %s from central system" % (id_tag, info.get("status")))
                return info
            except (NotConnected, CallError, asyncio.TimeoutError) as e:
                log.warn("auth", "Authorize for %s failed (%r): deciding offline" % (id_tag, e))
        return self.offline_decision(id_tag, known)

    def offline_decision(self, id_tag, known):
        if known is not None and self.cfg.get("LocalAuthorizeOffline"):
            log.info("auth", "%s offline: %s locally" % (id_tag, known["status"]))
            return known
        # Not checked locally (unknown, or local checks off while offline): the guide's
        # AllowOfflineTxForUnknownId decides.
        if self.cfg.get("AllowOfflineTxForUnknownId"):
            log.info("auth", "%s offline, not known locally: AllowOfflineTxForUnknownId" % id_tag)
            return ACCEPTED
        log.info("auth", "%s offline, not known locally: rejected" % id_tag)
        return INVALID
