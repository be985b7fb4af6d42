"""WiFi failover on the bench (firmware/netmgr.py, docs/network.md): the
primary network drops three times within the window while the fallback has
no record, so the firmware joins the fallback (WiFiConnect=true) and the
central system has the charger back over it while the primary stays out of
reach. The bench models the two networks (`network ssid=... up=...`); a
drop is seen by netmgr's once-a-second look at the link."""
import time

from tests.integration.rig import Rig

PRIMARY, FALLBACK = "jolt-hotspot", "site-wifi"
CONFIG = {"WiFiPrimarySsid": PRIMARY, "WiFiPrimaryPass": "hotspot-pw", "WiFiConnect": "true",
          "WiFiSsid": FALLBACK, "WiFiPass": "site-pw"}


def joined(rig, ssid, since_seq):
    evs, _ = rig.bench.events(since_seq)
    return [e for e in evs if e["kind"] == "hal" and (e["value"].get("wifi") or {}).get("ssid") == ssid]


def test_unstable_primary_fails_over_to_the_fallback(tmp_path, csms):
    with Rig(tmp_path, csms, config=CONFIG) as rig:
        # the HAL reports the network it joined once the firmware has brought WiFi up
        rig.wait_bench(lambda s: s["wifi"] == PRIMARY, timeout=5, what="the primary network joined")
        time.sleep(1.5)  # netmgr's first look sees the primary up (a drop is a change it sees)
        mark = rig.bench.mark()
        for _ in range(3):  # three drops, each long enough for netmgr's 1 s look
            rig.cmd(cmd="network", ssid=PRIMARY, up=False)
            time.sleep(1.5)
            rig.cmd(cmd="network", ssid=PRIMARY, up=True)
            time.sleep(1.5)
        rig.wait_bench(lambda s: s["wifi"] == FALLBACK, timeout=5, what="the fallback network joined")
        assert joined(rig, FALLBACK, mark), "no wifi output for the fallback"
        t0 = time.monotonic()
        rig.cmd(cmd="network", ssid=PRIMARY, up=False)  # the primary goes away for good
        # Online over the fallback: the central system reaches the charger.
        deadline = time.monotonic() + 15
        while True:
            try:
                res = rig.call("TriggerMessage", {"requestedMessage": "Heartbeat"}, timeout=3)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert res["status"] == "Accepted"
        rig.wait_call("Heartbeat", since_t=t0)
        assert rig.status()["wifi"] == FALLBACK and rig.status()["networks_down"] == [PRIMARY]
        assert "unstable" in "\n".join(rig.bench.log(200))
