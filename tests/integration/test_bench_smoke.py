"""Smoke run of `make bench` (tools/bench): every new benchmark with tiny
parameters (seconds each), checking that it measures and that its figures are
sane. The full run (`make bench`, ~10 min) is not part of `make test`."""
import os
import socket
import statistics
import subprocess
import time

from tools.bench import boot, roundtrip, run_all, size, throughput
from tools.simkit.bench import board32_binary, micropython_binary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_roundtrip_both_charge_points_answer_every_call():
    n = 10
    res = roundtrip.measure(n=n)
    assert res["violations"] == [] and res["firmware_errors"] == [] and res["reference_errors"] == []
    for who in ("firmware", "reference"):
        for action, _ in roundtrip.CALLS:
            s = res[who][action]
            assert s["n"] == n, (who, action, s)
            assert 0 < s["p50"] <= s["p99"] < 5000, (who, action, s)
        st = res[who + "_status"]
        assert st["GetConfiguration"] == {"ok": n}
        assert st["TriggerMessage"] == {"Accepted": n}
        assert sum(st["RemoteStartTransaction"].values()) == n
    # the firmware accepts the first remote start and refuses the next ones (a session is pending)
    assert res["firmware_status"]["RemoteStartTransaction"].get("Accepted") == 1
    lines = roundtrip.table(res)
    rows = [x for x in lines if x.split()[0] in dict(roundtrip.CALLS)]
    assert len(rows) == 3 and all(r.split()[-1] != "-" for r in rows)


def test_boot_to_boot_notification_on_each_interpreter():
    res = boot.measure(cycles=1)
    assert [r["runtime"] for r in res] == (["board32", "micropython"] if board32_binary() else ["micropython"])
    for r in res:
        assert "error" not in r, r.get("error")
        assert r["violations"] == 0
        assert 0 < r["first"] < 30
        assert len(r["reboots"]) == 1 and 0 < r["reboots"][0] < 30
    assert len(boot.table(res)) == 3 + len(res)


def test_size_counts_every_module_and_the_romfs_image():
    res = size.measure()
    assert "firmware/app.mpy" in res["mpy"] and "lib/journal.mpy" in res["mpy"]
    assert not any(f.startswith(("hal/sim/", "hal/mock/")) for f in res["mpy"])
    assert res["mpy_total"] == sum(res["mpy"].values()) > 20000
    # the image holds every module plus its directory entries
    assert res["mpy_total"] < res["romfs"] < res["mpy_total"] * 1.2
    assert sorted(res["entry"]) == ["boot.py", "main.py"]


def test_throughput_burst_faults_heartbeats_and_offline_replay():
    res = throughput.measure(burst_s=3, offline_s=3)
    b, o = res["burst"], res["offline"]
    assert res["violations"] == 0 and res["boots"] == 1
    assert b["failed"] == 0 and b["answered"] >= 5 and b["rate"] > 1
    assert b["heartbeats"] >= 1 and b["max_gap"] <= 1.5 * throughput.HB
    assert b["faults"] >= 1 and 0 < b["fault_max"] < 500  # loose: a loaded machine; the budget is in the report
    assert o["replayed"] >= 2 and o["drain"] < 30 and o["rate"] > 0


def test_outputs_written_back_to_back_reach_the_bench_at_once():
    """The bench HAL's link: a relay line written right after another output
    (a watchdog feed) arrives with it, not after the bench's delayed ACK of
    the first (~40 ms with Nagle on: the one 48.6 ms fault-to-relay-open
    outlier of the throughput benchmark). The bench answers each pair with an
    input line, as it does, which puts its side in delayed-ACK mode."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    script = ("import sys, time\nsys.path.insert(0, '.')\nfrom hal.sim.board import Board\nb = Board()\n"
              "for i in range(20):\n    b.out('wdt', 1000 + i)\n    b.out('relay', i % 2 == 0)\n"
              "    time.sleep_ms(50)\n")
    env = dict(os.environ, JOLT_HW="127.0.0.1:%d" % srv.getsockname()[1])
    proc = subprocess.Popen([board32_binary() or micropython_binary(), "-c", script], cwd=ROOT, env=env)
    gaps = []
    try:
        srv.settimeout(10)
        conn, _ = srv.accept()
        conn.settimeout(10)
        conn.sendall(b'{"in": {"net": true}}\n')
        f = conn.makefile("rb")
        t_first = None
        while len(gaps) < 20:
            line = f.readline()
            assert line, "the board closed the link after %d pairs" % len(gaps)
            if b'"wdt"' in line:
                t_first = time.monotonic()
            elif b'"relay"' in line and t_first is not None:
                gaps.append((time.monotonic() - t_first) * 1000)
                conn.sendall(b'{"in": {"hi": 9000}}\n')
    finally:
        proc.wait(10)
        srv.close()
    assert statistics.median(gaps) < 10, gaps  # Nagle: ~40 ms each


def test_report_is_saved_with_load_average(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS", str(tmp_path))
    ok, lines = run_all.run(["size", "control"], quick=True, out=lambda s: None)
    assert ok, "\n".join(lines)
    text = "\n".join(lines)
    assert "load average (1/5/15 min) at start" in text and "== size" in text and "== control" in text
    assert "== roundtrip" not in text
    assert [x.split()[0] for x in lines if x.split()[:1] and x.split()[0] in ("idle", "charging", "faulted")] \
        == ["idle", "charging", "faulted"]
    assert os.listdir(str(tmp_path)) == []  # run() reports; main() writes the file
