"""LocalAuthListManagement on the bench against the strict central system:
SendLocalList (Full, Differential, deletes, VersionMismatch, Failed,
NotSupported), GetLocalListVersion, and the list in the authorization
decision (before the cache, offline, LocalPreAuthorize)."""
import time

from tests.integration.rig import Rig
from tests.integration.test_never_lose import cache_tag1, go_offline


def listed(tag, status="Accepted", parent=None):
    info = {"status": status}
    if parent:
        info["parentIdTag"] = parent
    return {"idTag": tag, "idTagInfo": info}


def send(rig, version, entries, kind="Full"):
    return rig.call("SendLocalList", {"listVersion": version, "updateType": kind,
                                      "localAuthorizationList": entries})["status"]


def version(rig):
    return rig.call("GetLocalListVersion", {})["listVersion"]


def refused(rig, tag):
    rig.card(tag)
    time.sleep(1.2)
    st = rig.status()
    return st["lock"] is False and st["duty"] is None and "AUTH_FAIL" in st["signals"]


def started_locally(rig, tag, since_t):
    rig.card(tag)
    rig.wait_bench(lambda s: s["lock"] and s["duty"], what="local start for %s" % tag)
    return rig.calls("Authorize", since_t=since_t) == []


def test_send_local_list_statuses_and_versions(tmp_path, csms):
    with Rig(tmp_path, csms, config={"LocalAuthListMaxLength": "45"}) as rig:
        assert version(rig) == 0
        thirty = [listed("LL%02d" % i) for i in range(30)]
        assert send(rig, 1, thirty) == "Accepted" and version(rig) == 1
        # More than SendLocalListMaxLength (30) in one message: Failed, the list kept.
        assert send(rig, 2, thirty + [listed("LL30")]) == "Failed" and version(rig) == 1
        # A Differential made for an older list than ours.
        assert send(rig, 1, [listed("NEW1")], "Differential") == "VersionMismatch"
        # LocalAuthListMaxLength (45 here) in total: 30 + 16 is too many, nothing applied.
        assert send(rig, 2, [listed("MORE%02d" % i) for i in range(16)], "Differential") == "Failed"
        assert version(rig) == 1
        # A delete (no idTagInfo) and an addition in one Differential.
        assert send(rig, 2, [{"idTag": "LL00"}, listed("NEW1", "Blocked"), listed("LL01", "Expired")],
                    "Differential") == "Accepted"
        assert version(rig) == 2
        assert send(rig, 3, [listed("MORE%02d" % i) for i in range(15)], "Differential") == "Accepted"
        # LocalAuthListEnabled false: -1 and NotSupported.
        assert rig.call("ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})["status"] == "Accepted"
        assert version(rig) == -1 and send(rig, 4, [listed("X")]) == "NotSupported"
        assert rig.call("ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "true"})["status"] == "Accepted"
        assert version(rig) == 3
        # The list decides offline: listed LL02 starts, deleted LL00, Blocked NEW1, Expired LL01 do not.
        go_offline(rig)
        rig.plug()
        for tag in ("LL00", "NEW1", "LL01"):
            assert refused(rig, tag), tag
        rig.card("LL02")
        rig.wait_bench(lambda s: s["lock"] and s["duty"], what="offline start from the list")


def test_full_list_replaces_a_larger_one_and_survives_a_power_cut(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        assert send(rig, 1, [listed("BIG%02d" % i) for i in range(30)]) == "Accepted"
        assert send(rig, 2, [listed("SMALL")]) == "Accepted"
        t_cut = time.monotonic()
        rig.cmd(cmd="power", on=False)
        rig.cmd(cmd="power", on=True)
        rig.wait_status(1, "Available", since_t=t_cut, timeout=30)
        assert version(rig) == 2
        go_offline(rig)
        rig.plug()
        assert refused(rig, "BIG05")
        rig.card("SMALL")
        rig.wait_bench(lambda s: s["lock"] and s["duty"], what="offline start for SMALL")


def test_list_before_cache_and_local_pre_authorize(tmp_path, csms):
    with Rig(tmp_path, csms, config={"LocalPreAuthorize": "true"}) as rig:
        cache_tag1(rig)  # TAG1 Accepted in the cache
        assert send(rig, 1, [listed("TAG1", "Blocked"), listed("TAG2", parent="FLEET")]) == "Accepted"
        rig.plug()
        t0 = time.monotonic()
        # Online: the list's Blocked wins over the cache's Accepted, refused without asking.
        assert refused(rig, "TAG1") and rig.calls("Authorize", since_t=t0) == []
        # LocalPreAuthorize: a listed Accepted card starts without Authorize.
        assert started_locally(rig, "TAG2", t0)
        start = rig.wait_call("StartTransaction", since_t=t0)
        assert start["idTag"] == "TAG2"


def test_offline_rules_with_a_list(tmp_path, csms):
    cfg = {"LocalAuthorizeOffline": "false", "AllowOfflineTxForUnknownId": "false"}
    with Rig(tmp_path, csms, config=cfg) as rig:
        assert send(rig, 1, [listed("LISTOK"), listed("LISTBLK", "Blocked")]) == "Accepted"
        go_offline(rig)
        rig.plug()
        # LocalAuthorizeOffline false: even a listed Accepted card is not checked locally,
        # and AllowOfflineTxForUnknownId false lets nothing through.
        assert refused(rig, "LISTOK")
        rig.unplug()
        t_up = time.monotonic()
        rig.cmd(cmd="network", up=True)
        rig.csms.wait_connected(rig.cp_id, timeout=15)
        rig.wait_status(1, "Available", since_t=t_up, timeout=15)
        assert rig.call("ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "true"})["status"] == "Accepted"
        go_offline(rig)
        rig.plug()
        # AllowOfflineTxForUnknownId: the rest goes through, but never a card the list blocks.
        assert refused(rig, "LISTBLK")
        rig.card("STRANGER")
        rig.wait_bench(lambda s: s["lock"] and s["duty"], what="offline start for an unknown card")
