# The authorization decision, in one place, as the integration guide draws it:
# card -> reservation rule -> LocalPreAuthorize -> local list, then cache ->
# Authorize on the central system when not decided locally -> decision;
# offline rules (LocalAuthorizeOffline, AllowOfflineTxForUnknownId) when it
# cannot be asked; the invalid-id policy for a card during a transaction and
# for the StartTransaction answer. It returns a verdict; the connector acts on it.
#
# A verdict is a tuple (action, idTagInfo, signal, reservationId):
#   action  _START (open a session), STOP (the card ends the transaction, Local),
#           _DEAUTH (ends it as DeAuthorized), _REFUSE
#   signal  AUTH_OK, AUTH_FAIL, or FAUTH1 (a stranger's card at a reserved connector, guide)
#   reservationId  the reservation the session takes up, or None
#
# Needed a few times an hour: the functions are called through
# firmware.idtags.IdTags.run, which loads this module for the call and drops
# it again (lib/transient.py). `t` is that IdTags: configuration, central
# system, the cache and the local list.
import asyncio
from micropython import const

from lib import log
from firmware.chargepoint import CallError, NotConnected

_AUTHORIZE_TIMEOUT_MS = const(10000)
ACCEPTED = {"status": "Accepted"}
INVALID = {"status": "Invalid"}
_START = const("start")
STOP = "stop"
_DEAUTH = const("deauth")
_REFUSE = const("refuse")


async def decide(t, tag, purpose, conn):
    """The verdict on a card presented at connector conn. purpose "start"
    (no session yet) or "stop" (of conn's running session). Never raises."""
    if purpose == STOP:
        session = conn.session
        info = await authorize(t, tag)
        ok = info.get("status") == "Accepted"
        parent = info.get("parentIdTag")
        if ok and parent is not None and parent == (session.parent or session.id_tag):
            return (STOP, info, "AUTH_OK", None)  # same group (OCPP 3.5)
        if not ok and t.cfg.get("StopTransactionOnInvalidId"):
            # Guide: a different, not valid card presented while charging ends the transaction.
            return (_DEAUTH, info, "AUTH_FAIL", None)
        return (_REFUSE, info, "AUTH_FAIL", None)
    res = conn.reserved
    if res is not None and tag != res["tag"] and not res["parent"]:
        log.info("auth", "%s refused: connector reserved" % tag)
        return (_REFUSE, INVALID, "FAUTH1", None)  # guide: no need to ask anyone
    info = await authorize(t, tag)
    ok = info.get("status") == "Accepted"
    if res is not None and tag != res["tag"]:
        if not ok or info.get("parentIdTag") != res["parent"]:
            log.info("auth", "%s refused: connector reserved" % tag)
            return (_REFUSE, info, "FAUTH1", None)
    if not ok:
        return (_REFUSE, info, "AUTH_FAIL", None)
    return (_START, info, "AUTH_OK", res and res["id"])


def remote_reservation(t, tag, res):
    """RemoteStartTransaction at a connector with reservation res (or None):
    (allowed, reservationId). A reserved connector takes only its idTag, or
    a card of its group known locally."""
    if res is None:
        return True, None
    if tag != res["tag"]:
        known = t.listed(tag) or (t.cache.lookup(tag) if t.cfg.get("AuthorizationCacheEnabled") else None)
        if not (res["parent"] and known and known.get("parentIdTag") == res["parent"]):
            return False, None
    return True, res["id"]


def start_answer(t, info, free):
    """The invalid-id policy for a StartTransaction answer: None (charge on),
    _DEAUTH (stop) or the Wh still allowed (MaxEnergyOnInvalidId)."""
    status = info.get("status")
    if status == "Accepted" or status is None or free:
        return None  # FreeMode charges whatever the central system thinks of DefaultIdTag
    if t.cfg.get("StopTransactionOnInvalidId"):
        return _DEAUTH
    return t.cfg.get("MaxEnergyOnInvalidId")


async def authorize(t, id_tag):
    """idTagInfo for a card (the guide's diagram); never raises."""
    cfg = t.cfg
    listed = t.listed(id_tag)
    if listed is not None and listed["status"] != "Accepted":
        # Blocked, Expired (also by its expiryDate) or Invalid in the list: refused locally.
        log.info("auth", "%s %s in the local list" % (id_tag, listed["status"]))
        return listed
    known = listed or (t.cache.lookup(id_tag) if cfg.get("AuthorizationCacheEnabled") else None)
    online = t.cp.accepted
    if online and cfg.get("LocalPreAuthorize") and known is not None and known["status"] == "Accepted":
        log.info("auth", "%s accepted locally (LocalPreAuthorize)" % id_tag)
        return known
    if online:
        try:
            res = await t.cp.call("Authorize", {"idTag": id_tag}, _AUTHORIZE_TIMEOUT_MS)
            info = res.get("idTagInfo")
            if not isinstance(info, dict) or not isinstance(info.get("status"), str):
                info = INVALID  # an answer outside the schema accepts nobody
            t.remember(id_tag, info)
            log.info("auth", "%s: %s from central system" % (id_tag, info.get("status")))
            return info
        except (NotConnected, CallError, asyncio.TimeoutError) as e:
            log.warn("auth", "Authorize for %s failed (%r): deciding offline" % (id_tag, e))
    if known is not None and cfg.get("LocalAuthorizeOffline"):
        log.info("auth", "%s offline: %s locally" % (id_tag, known["status"]))
        return known
    # Not checked locally (unknown, or local checks off while offline): the guide's
    # AllowOfflineTxForUnknownId decides.
    if cfg.get("AllowOfflineTxForUnknownId"):
        log.info("auth", "%s offline, not known locally: AllowOfflineTxForUnknownId" % id_tag)
        return ACCEPTED
    log.info("auth", "%s offline, not known locally: rejected" % id_tag)
    return INVALID
