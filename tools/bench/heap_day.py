#!/usr/bin/env python3
"""The heap of a full charging day, compressed onto the bench (issue 15).

The firmware runs on the board-like 32-bit interpreter from a ROMFS image
(tools/simkit/bench.board32_binary; the venv's 64-bit one where that is
absent) with `-X heapsize=K`, against the strict central system
(tools/csms.py), and lives through one charging day:

  boot            a new board, BootNotification, Available
  local list      1000 entries (LocalAuthListMaxLength) sent as the firmware
                  takes them: a Full update of SendLocalListMaxLength (30)
                  entries, then Differential updates of 30 (versions 1..34);
                  GetLocalListVersion must say 34
  20 sessions     plug, card, EV in state C drawing 16 A (the meter counts
                  real energy), a stop by card or by unplugging; cards of
                  the local list start without Authorize (LocalPreAuthorize
                  true), the others are authorized by the central system
  reservation     ReserveNow, the reserved card starts (StartTransaction
                  with its reservationId); a second ReserveNow cancelled by
                  CancelReservation
  diagnostics     GetDiagnostics to a local HTTP server while a session
                  charges: Uploaded
  offline hour    the network down while sessions go on, authorized from the
                  local list, their messages queued in the journal; then up
                  and everything replayed
  update          UpdateFirmware with a package signed by tools/ota.py, the
                  reboot into it, FirmwareStatusNotification Installed

How the day is compressed (the bench has no faster clock): a session charges
for SESSION_S seconds instead of hours, with MeterValueSampleInterval 10 s
(one or two MeterValues each instead of hundreds). An hour offline at 10 s
would queue 360 MeterValues of the running transaction plus the
StartTransaction/StopTransaction of the sessions in it; here the sampling
interval is 1 s for the offline period only (set by ChangeConfiguration just
before the link goes down, back to 10 s after the replay), so OFFLINE_S
seconds offline (OFFLINE_SESSIONS sessions back to back, each started and
stopped offline) queue as many messages as the hour would, up to what the
64 KiB journal holds: with the default sampled data 234 in these 244 s
(218 MeterValues, 8 StartTransaction, 8 StopTransaction, measured
2026-12-05), and from then on the oldest MeterValues are dropped
(docs/never-lose.md) while every StartTransaction/StopTransaction is kept.
The report gives the number of queued messages actually replayed.
StatusNotifications are not queued by design (only the current state is
reported after an outage).

Checks: every StartTransaction has its StopTransaction at the central
system (20 transactions), no MemoryError and no "no memory" line in the
firmware log, no "journal full: ... not queued", no violation at the central
system, the update Installed and the new version booted. The live peak is
the highest `heap: live peak N` line the firmware logged (gc.mem_alloc()
after gc.collect(), sampled every 5 s: a shorter spike is not seen), over
both versions' runs.

    .venv/bin/python tools/bench/heap_day.py [--heap 112] [--search] [--smoke]

--search: the smallest heap the day completes in, in 8 KiB steps from --low
(the suite's heap - 16 KiB) up to the first heap it completes in (one run
per heap: where a heap is marginal the outcome varies from run to run; a
run that logs a MemoryError is stopped at the end of the step it happened
in, so failing heaps cost little). --smoke: 2 sessions, a 60-entry list,
20 s offline, no update (about a minute; run_all --quick).
One full day takes about 7 minutes (394 s measured), a failing one less.
"""
import argparse
import calendar
import datetime
import os
import re
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.simkit.bench import BOARD32_HEAP, board32_binary  # noqa: E402

SESSIONS = 20
SESSION_S = 11          # charging seconds of an online session (one 10 s sample)
OFFLINE_SESSIONS = 8    # sessions in the offline period
OFFLINE_S = 240         # seconds charging offline in all (1 s samples)
LIST_SIZE = 1000
CHUNK = 30              # SendLocalListMaxLength's default
AMPS = 16
OOM = re.compile(r"MemoryError|no memory|journal full: \w+ not queued")


def list_tag(i):
    return "CARD%016d" % i


def entries(lo, hi):
    out = []
    for i in range(lo, hi):
        info = {"status": "Accepted"}
        if i % 3 == 0:
            info["expiryDate"] = "2031-01-01T00:00:00Z"
        if i % 4 == 0:
            info["parentIdTag"] = "FLEET%02d" % (i % 7)
        out.append({"idTag": list_tag(i), "idTagInfo": info})
    return out


def iso_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(ts):
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))


class OutOfMemory(Exception):
    pass


class Day:
    def __init__(self, cs, bench, log_path, cp_id):
        self.cs = cs
        self.bench = bench
        self.log_path = log_path
        self.cp = cp_id
        self.steps = []  # (name, seconds)
        self.sessions = 0

    # ---- the firmware log (the bench's whole log file; its ring holds 2000 lines)
    def fw_log(self):
        with open(self.log_path, errors="replace") as f:
            return [x for x in f.read().splitlines() if x.startswith("[fw")]

    def check_memory(self):
        bad = [x for x in self.fw_log() if OOM.search(x)]
        if bad:
            raise OutOfMemory(bad[0])

    # ---- waiting
    def wait_bench(self, pred, timeout=15, what="bench"):
        deadline = time.monotonic() + timeout
        while True:
            st = self.bench.status()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                self.check_memory()
                raise AssertionError("timed out waiting for %s; status %s\n%s" % (
                    what, st, "\n".join(self.fw_log()[-30:])))
            time.sleep(0.05)

    def wait(self, action, since_t, timeout=15, where=lambda p: True):
        try:
            return self.cs.wait_message(action, timeout=timeout, since_t=since_t, where=where)
        except AssertionError:
            self.check_memory()
            raise

    def status(self, status, since_t, timeout=15):
        return self.wait("StatusNotification", since_t, timeout,
                         lambda p: p["connectorId"] == 1 and p["status"] == status)

    def call(self, action, payload, timeout=20):
        return self.cs.call(self.cp, action, payload, timeout)

    def step(self, name, fn, *a, **kw):
        t0 = time.monotonic()
        r = fn(*a, **kw)
        self.steps.append((name, time.monotonic() - t0))
        self.check_memory()
        return r

    # ---- the parts of the day
    def local_list(self, size):
        v = 0
        for lo in range(0, size, CHUNK):
            v += 1
            kind = "Full" if lo == 0 else "Differential"
            r = self.call("SendLocalList", {"listVersion": v, "updateType": kind,
                                            "localAuthorizationList": entries(lo, min(lo + CHUNK, size))})
            assert r["status"] == "Accepted", (v, r)
        got = self.call("GetLocalListVersion", {})["listVersion"]
        assert got == v, (got, v)
        return v

    def session(self, tag, charge_s, online=True, by_card=True, during=None):
        """One session; `during()` runs while it charges. The StartTransaction payload (online)."""
        self.sessions += 1
        t0 = time.monotonic()
        self.bench.cmd({"cmd": "plug"})
        time.sleep(0.3)
        self.bench.cmd({"cmd": "rfid", "id": tag})
        self.wait_bench(lambda s: s["lock"] and s["duty"], what="start for %s" % tag)
        self.bench.cmd({"cmd": "ev_current", "amps": AMPS})
        self.bench.cmd({"cmd": "ev", "state": "C"})
        self.wait_bench(lambda s: s["relay"] is True, what="relay closed")
        start = self.wait("StartTransaction", t0, where=lambda p: p["idTag"] == tag)["payload"] if online else None
        t_charge = time.monotonic()
        if during is not None:
            during()
        time.sleep(max(0.0, charge_s - (time.monotonic() - t_charge)))
        t1 = time.monotonic()
        if by_card:
            self.bench.cmd({"cmd": "rfid", "id": tag})
            self.wait_bench(lambda s: s["relay"] is False, what="relay open")
            self.bench.cmd({"cmd": "unplug"})
        else:
            self.bench.cmd({"cmd": "unplug"})  # the EV goes: StopTransactionOnEVSideDisconnect
            self.wait_bench(lambda s: s["relay"] is False, what="relay open")
        self.wait_bench(lambda s: not s["lock"] and s["duty"] is None, what="connector free")
        if online:
            self.wait("StopTransaction", t1)
            self.status("Available", t1)
        return start

    def reservation(self, tag, charge_s):
        t0 = time.monotonic()
        r = self.call("ReserveNow", {"connectorId": 1, "expiryDate": iso_in(600), "idTag": tag,
                                     "reservationId": 101})
        assert r["status"] == "Accepted", r
        self.status("Reserved", t0)
        start = self.session(tag, charge_s)
        assert start.get("reservationId") == 101, start
        t1 = time.monotonic()
        r = self.call("ReserveNow", {"connectorId": 1, "expiryDate": iso_in(600), "idTag": tag,
                                     "reservationId": 102})
        assert r["status"] == "Accepted", r
        self.status("Reserved", t1)
        t2 = time.monotonic()
        assert self.call("CancelReservation", {"reservationId": 102})["status"] == "Accepted"
        self.status("Available", t2)

    def diagnostics(self, url):
        t0 = time.monotonic()
        r = self.call("GetDiagnostics", {"location": url + "/diag/", "retries": 1})
        assert "fileName" in r, r
        self.wait("DiagnosticsStatusNotification", t0, 60, lambda p: p["status"] == "Uploaded")

    def offline(self, sessions, charge_s, last_tag):
        """The link down, `sessions` sessions with list cards (from the list's end), the link up, the replay:
        {queued: {action: n}, journal_full_logs, offline_s}."""
        self.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "1"})
        full0 = sum("journal full: oldest" in x for x in self.fw_log())
        t_down = time.monotonic()
        wall_down = time.time()
        self.bench.cmd({"cmd": "network", "up": False})
        deadline = time.monotonic() + 10
        while self.cs.connected(self.cp) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.cs.connected(self.cp)
        for i in range(sessions):
            self.session(list_tag(last_tag - 3 * i), charge_s, online=False, by_card=i % 2 == 0)
        t_up = time.monotonic()
        wall_up = time.time()
        self.bench.cmd({"cmd": "network", "up": True})
        self.cs.wait_connected(self.cp, timeout=30)
        # The replay: every transaction of the period stopped at the central system.
        deadline = time.monotonic() + 120
        while True:
            txs = self.cs.transactions
            if len(txs) >= self.sessions and all(t["stop"] is not None for t in txs.values()):
                break
            if time.monotonic() > deadline:
                self.check_memory()
                raise AssertionError("replay not done in 120 s: %d transactions, %d stopped" % (
                    len(txs), sum(t["stop"] is not None for t in txs.values())))
            time.sleep(0.2)
        t_done = time.monotonic()
        self.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "10"})
        queued = {}  # transaction messages stamped inside the period, received after it
        status = 0  # StatusNotifications sent after the reconnect (the state then, not queued)
        for m in self.cs.messages:
            if m["dir"] != "in" or m["type"] != 2 or not t_up <= m["t"] <= t_done:
                continue
            p = m["payload"]
            a = m["action"]
            if a == "StatusNotification":
                status += 1
                continue
            if a == "MeterValues":
                stamp = min(_epoch(v["timestamp"]) for v in p["meterValue"])
            elif a in ("StartTransaction", "StopTransaction"):
                stamp = _epoch(p["timestamp"])
            else:
                continue
            if wall_down - 1 <= stamp <= wall_up + 1:
                queued[a] = queued.get(a, 0) + 1
        return {"queued": queued, "status_after": status, "offline_s": t_up - t_down, "drain_s": t_done - t_up,
                "journal_full_logs": sum("journal full: oldest" in x for x in self.fw_log()) - full0}

    def update(self, url):
        t0 = time.monotonic()
        r = self.call("UpdateFirmware", {"location": url, "retrieveDate": iso_in(0), "retries": 2,
                                         "retryInterval": 2})
        assert r == {}, r
        boot = self.wait("BootNotification", t0, 90)["payload"]
        self.wait("FirmwareStatusNotification", t0, 60, lambda p: p["status"] == "Installed")
        self.status("Available", t0, 30)
        return boot["firmwareVersion"]


def run_day(heap_k, runtime=None, smoke=False, keep=None):
    """One day at heapsize heap_k KiB: a result dict (ok, peak, figures, error)."""
    from tests.integration.test_diagnostics import Uploads
    from tests.integration.test_ota import Files
    from tools import ota
    from tools.csms import CsmsThread
    from tools.simkit.client import BenchProcess

    if runtime is None:
        runtime = "board32" if board32_binary() else "micropython"
    tmp = tempfile.mkdtemp(prefix="heapday%d-" % heap_k)
    res = {"heap_k": heap_k, "runtime": runtime, "ok": False, "error": None, "peak": None, "smoke": smoke}
    uploads = files = None
    n_sessions = 2 if smoke else SESSIONS
    n_offline = 1 if smoke else OFFLINE_SESSIONS
    list_size = 60 if smoke else LIST_SIZE
    online_tags = ["DRV%02d" % i for i in range(n_sessions)]
    t_start = time.monotonic()
    try:
        pub = None
        if not smoke:
            priv, pub = ota.keygen(os.path.join(tmp, "keys"))
            pkg = os.path.join(tmp, "jolt-0.2.0.jolt")
            ota.build(priv, "0.2.0", pkg, board="sim")
            with open(pkg, "rb") as f:
                files = Files({"/fw/jolt-0.2.0.jolt": f.read()})
        uploads = Uploads()
        tags = {t: "Accepted" for t in online_tags}  # the central system knows the list's cards too
        tags.update((list_tag(i), "Accepted") for i in range(list_size))
        with CsmsThread(tags=tags, heartbeat_interval=60) as cs:
            state = os.path.join(tmp, "state")
            bench = BenchProcess(state, cs.url, "DAY1", heapsize="%dK" % heap_k, runtime=runtime,
                                 config={"MeterValueSampleInterval": "10", "LocalPreAuthorize": "true"},
                                 ota_key=pub)
            day = Day(cs, bench, bench.log_path, "DAY1")
            t_boot = time.monotonic()
            with bench:
                try:
                    day.step("boot", day.status, "Available", t_boot, 60)
                    res["list_version"] = day.step("local list", day.local_list, list_size)
                    # Sessions: list cards (started from the list) and the central system's cards in turn.
                    n_online = n_sessions - n_offline - (0 if smoke else 2)
                    k = 0
                    for i in range(n_online // 2):
                        tag = list_tag(7 * k + 3) if k % 2 else online_tags[k]
                        day.step("session %d" % (k + 1), day.session, tag, SESSION_S, by_card=k % 3 != 2)
                        k += 1
                    if not smoke:
                        day.step("reservation + session %d" % (k + 1), day.reservation, online_tags[k], SESSION_S)
                        k += 1
                        day.step("session %d + GetDiagnostics" % (k + 1), day.session, list_tag(500), SESSION_S,
                                 during=lambda: day.diagnostics(uploads.url))
                        k += 1
                    else:
                        day.step("GetDiagnostics", day.diagnostics, uploads.url)
                    off_s = 20 if smoke else OFFLINE_S
                    res["offline"] = day.step("offline: sessions %d-%d" % (k + 1, k + n_offline), day.offline,
                                              n_offline, off_s / n_offline, list_size - 1)
                    k += n_offline
                    while k < n_sessions:
                        tag = list_tag(7 * k + 3) if k % 2 else online_tags[k]
                        day.step("session %d" % (k + 1), day.session, tag, SESSION_S, by_card=k % 3 != 2)
                        k += 1
                    if not smoke:
                        res["version"] = day.step("UpdateFirmware + reboot", day.update,
                                                  files.url + "/fw/jolt-0.2.0.jolt")
                        assert res["version"] == "0.2.0", res["version"]
                    time.sleep(5.5)  # one more heap sample
                    day.check_memory()
                    txs = cs.transactions
                    res["transactions"] = len(txs)
                    res["stopped"] = sum(t["stop"] is not None for t in txs.values())
                    assert len(txs) == n_sessions and res["stopped"] == n_sessions, txs
                    assert len(uploads.got) >= 1
                    res["violations"] = len(cs.violations)
                    assert not cs.violations, cs.violations[:3]
                    res["ok"] = True
                except OutOfMemory as e:
                    res["error"] = "out of memory: %s" % e
                except Exception as e:  # noqa: BLE001 - the report says what failed
                    try:
                        day.check_memory()
                        res["error"] = "%s: %s" % (type(e).__name__, str(e)[:2000])
                    except OutOfMemory as oom:
                        res["error"] = "out of memory: %s" % oom
                res["steps"] = day.steps
                res["boots"] = bench.status()["boots"]
            peaks = [int(m) for m in re.findall(r"live peak (\d+)", "\n".join(day.fw_log()))]
            res["peak"] = max(peaks) if peaks else None
            res["violations"] = len(cs.violations)
            if keep:
                shutil.copyfile(bench.log_path, keep)
    finally:
        for srv in (uploads, files):
            if srv is not None:
                srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    res["wall_s"] = time.monotonic() - t_start
    return res


def lines(res):
    """The report's lines for one day."""
    what = "smoke (2 sessions, 60-entry list, 20 s offline, no update)" if res["smoke"] else "full day"
    out = ["heap_day %s on %s, heapsize=%dK: %s (%.0f s wall)" % (
        what, res["runtime"], res["heap_k"], "completed" if res["ok"] else "FAILED", res["wall_s"])]
    if res["peak"] is not None:
        out.append("heap_day live_peak: %d bytes (%.1f KB)" % (res["peak"], res["peak"] / 1024.0))
    off = res.get("offline")
    if off:
        q = off["queued"]
        n = sum(q.values())
        out.append("heap_day offline: %.0f s with MeterValues every 1 s (instead of an hour at 10 s: 360); "
                   "queued and replayed %d transaction messages (%s), %d StatusNotification after the reconnect; "
                   "'journal full' drops logged %d; drain %.1f s" % (
                       off["offline_s"], n, ", ".join("%s %d" % kv for kv in sorted(q.items())),
                       off["status_after"], off["journal_full_logs"], off["drain_s"]))
    if "transactions" in res:
        out.append("heap_day transactions: %d started, %d stopped; local list version %s; firmware after the "
                   "update %s; boots %s; violations %d" % (res["transactions"], res["stopped"],
                                                            res.get("list_version"), res.get("version", "-"),
                                                            res.get("boots"), res.get("violations", 0)))
    if res.get("steps"):
        out.append("heap_day steps (s): " + ", ".join("%s %.0f" % s for s in res["steps"]))
    if res["error"]:
        after = res["steps"][-1][0] if res.get("steps") else "the start"
        out.append("heap_day error (after %s): %s" % (after, res["error"].splitlines()[0][:300]))
    return out


def search(runtime, lo, hi, out=print):
    """Smallest heap (KiB, 8 KiB steps) from lo up to hi the day completes in
    (up to the first that completes: failing days mostly end within a minute,
    a completed one takes ~7); None: not even hi. Also {K: result}."""
    results = {}
    for k in range(lo, hi + 1, 8):
        r = run_day(k, runtime)
        results[k] = r
        for x in lines(r):
            out(x)
        if r["ok"]:
            return k, results
    return None, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heap", type=int, default=int(BOARD32_HEAP.rstrip("K")), help="KiB (default: the suite's)")
    ap.add_argument("--runtime", choices=("board32", "micropython"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--search", action="store_true", help="smallest heap, 8 KiB steps from --low up")
    ap.add_argument("--low", type=int, default=int(BOARD32_HEAP.rstrip("K")) - 16)
    ap.add_argument("--high", type=int, default=256)
    ap.add_argument("--keep-log", metavar="PATH", help="copy the bench's log here")
    a = ap.parse_args()
    runtime = a.runtime or ("board32" if board32_binary() else "micropython")
    if a.search:
        k, _ = search(runtime, a.low, a.high, out=lambda s: print(s, flush=True))
        print("heap_day smallest_heap: %s" % ("%d KiB" % k if k else "above %d KiB" % a.high))
        sys.exit(0 if k else 1)
    res = run_day(a.heap, runtime, smoke=a.smoke, keep=a.keep_log)
    print("\n".join(lines(res)))
    sys.exit(0 if res["ok"] else 1)


if __name__ == "__main__":
    main()
