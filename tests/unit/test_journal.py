"""lib/journal: append/ack order, persistence, torn writes, corruption, compaction, bounds."""
import binascii
import os
import random
import shutil
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from lib import journal as jmod
from lib.journal import HDR, HEAD_LEN, MAX_DATA, Journal, JournalFull


def jpath(tmp_path, name="tx.journal"):
    return str(tmp_path / name)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def parse(p):
    """Independent decoder of the documented format: list of (type, kind, seq, payload)."""
    raw = read(p)
    out, off = [], 0
    while off + HDR <= len(raw):
        magic, typ, kind, ln, seq, crc = struct.unpack_from("<BBBHII", raw, off)
        payload = raw[off + HDR:off + HDR + ln]
        assert magic == 0xA5 and len(payload) == ln
        assert binascii.crc32(raw[off:off + 9] + payload) == crc
        out.append((typ, kind, seq, payload))
        off += HDR + ln
    assert off == len(raw)
    return out


# ---------------------------------------------------------------- basics

def test_append_ack_pending_order(tmp_path):
    j = Journal(jpath(tmp_path))
    assert j.pending() == [] and j.first() is None and j.count() == 0
    s1 = j.append(b"start", kind=1)
    s2 = j.append("meter \u20ac", kind=3)
    s3 = j.append(b"stop", kind=2)
    assert s1 < s2 < s3
    assert j.pending() == [(s1, 1, b"start"), (s2, 3, "meter \u20ac".encode()), (s3, 2, b"stop")]
    assert j.first() == (s1, 1, b"start")
    assert j.count() == 3
    assert j.ack(s2) is True
    assert j.ack(s2) is False  # already retired
    assert j.ack(999) is False  # never existed
    assert j.pending() == [(s1, 1, b"start"), (s3, 2, b"stop")]
    assert j.drop(s1) is True
    assert j.first() == (s3, 2, b"stop")
    assert j.pending(limit=0) == []
    assert j.seqs() == [s3]
    assert j.count() == 1


def test_on_disk_format_matches_docs(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p)
    s = j.append(b"abc", kind=7)
    j.ack(s)
    s2 = j.append(b"", kind=0)
    j.drop(s2)
    recs = parse(p)
    assert recs[0][0] == jmod._T_HEAD and recs[0][2] == 1 and recs[0][3] == struct.pack("<I", HEAD_LEN)
    assert recs[1:] == [(jmod._T_DATA, 7, s, b"abc"), (jmod._T_ACK, 0, s, b""),
                        (jmod._T_DATA, 0, s2, b""), (jmod._T_DROP, 0, s2, b"")]
    assert j.size_bytes() == os.path.getsize(p) == HEAD_LEN + 4 * HDR + 3


def test_append_and_ack_only_append_and_sync(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "sync", lambda: calls.append(1), raising=False)
    p = jpath(tmp_path)
    j = Journal(p)
    before = read(p)
    n0 = len(calls)
    s = j.append(b"x" * 300)
    assert len(calls) == n0 + 1
    mid = read(p)
    assert mid.startswith(before) and len(mid) == len(before) + HDR + 300
    j.ack(s)
    assert len(calls) == n0 + 2
    after = read(p)
    assert after.startswith(mid) and len(after) == len(mid) + HDR
    assert j.compactions == 1  # only the creation of the file


def test_limits(tmp_path):
    j = Journal(jpath(tmp_path))
    with pytest.raises(ValueError):
        j.append(b"x" * (MAX_DATA + 1))
    with pytest.raises(ValueError):
        j.append(b"x", kind=256)
    s = j.append(b"x" * MAX_DATA, kind=255)
    assert Journal(jpath(tmp_path)).pending() == [(s, 255, b"x" * MAX_DATA)]
    with pytest.raises(ValueError):
        Journal(jpath(tmp_path, "small"), max_bytes=20)


def test_crc_fallback_matches_binascii():
    rnd = random.Random(1)
    for n in (0, 1, 9, 300, 4096):
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        assert jmod._crc32_py(data) == binascii.crc32(data)
        assert jmod._crc32_py(data[n // 2:], jmod._crc32_py(data[:n // 2])) == binascii.crc32(data)


# ---------------------------------------------------------------- persistence

def test_reopen_keeps_pending(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p)
    seqs = [j.append(("rec%d" % i).encode() * (i + 1), kind=i % 3) for i in range(10)]
    for s in seqs[::3]:
        j.ack(s)
    expect = j.pending()
    j2 = Journal(p)
    assert j2.pending() == expect
    assert j2.count() == len(expect) == 6
    assert j2.size_bytes() == j.size_bytes() == os.path.getsize(p)
    assert j2.compactions == 0 and j2.recovered == 0  # a clean file is not rewritten


def test_seq_monotonic_across_reopen_and_compaction(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p)
    seen = [j.append(b"a"), j.append(b"b")]
    for s in seen:
        j.ack(s)
    j = Journal(p)
    seen.append(j.append(b"c"))
    j.ack(seen[-1])
    j.compact()  # no live records: next seq must live in the HEAD record
    assert j.count() == 0 and j.size_bytes() == HEAD_LEN
    j = Journal(p)
    seen.append(j.append(b"d"))
    j.compact()
    j = Journal(p)
    seen.append(j.append(b"e"))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert [s for s, _, _ in Journal(p).pending()] == seen[-2:]


# ---------------------------------------------------------------- torn writes

def _base(p):
    j = Journal(p)
    a = j.append(b"start-tx", kind=1)
    b = j.append(b"meter" * 20, kind=3)
    c = j.append(b"x", kind=3)
    j.ack(c)
    return j, [(a, 1, b"start-tx"), (b, 3, b"meter" * 20)]


def test_torn_last_record_at_every_offset(tmp_path):
    p = jpath(tmp_path)
    j, expect = _base(p)
    s0 = j.size_bytes()
    last = j.append(b"stop-tx" * 40, kind=2)
    full = read(p)
    assert len(full) == s0 + HDR + 280
    for cut in range(s0, len(full)):
        write(p, full[:cut])
        r = Journal(p)
        assert r.pending() == expect, cut
        assert r.recovered == (1 if cut > s0 else 0)
        assert os.path.getsize(p) == r.size_bytes()
        new = r.append(b"after", kind=4)
        assert new > expect[-1][0]
        assert Journal(p).pending() == expect + [(new, 4, b"after")], cut
    write(p, full)
    assert [x[0] for x in Journal(p).pending()] == [expect[0][0], expect[1][0], last]


def test_torn_ack_is_not_applied(tmp_path):
    p = jpath(tmp_path)
    j, expect = _base(p)
    s0 = j.size_bytes()
    assert j.ack(expect[0][0])
    full = read(p)
    assert len(full) == s0 + HDR
    for cut in range(s0, len(full)):
        write(p, full[:cut])
        r = Journal(p)
        assert r.pending() == expect, cut
        assert r.ack(expect[0][0]) is True
        assert Journal(p).pending() == expect[1:]
    write(p, full)
    assert Journal(p).pending() == expect[1:]


def test_garbage_tail_is_cut(tmp_path):
    # FAT-like torn writes can leave zeros or random bytes after the last record.
    p = jpath(tmp_path)
    j, expect = _base(p)
    good = read(p)
    for tail in (b"\x00" * 50, b"\xff" * 7, bytes(range(200)), b"\xa5" + b"\x02" * 30):
        write(p, good + tail)
        r = Journal(p)
        assert r.pending() == expect
        assert r.recovered == 1 and os.path.getsize(p) == r.size_bytes() < len(good)
        s = r.append(b"next")
        assert Journal(p).pending() == expect + [(s, 0, b"next")]


def test_random_corruption_in_the_middle(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p)
    recs = []
    for i in range(12):
        d = bytes([i]) * (20 + i)
        recs.append((j.append(d, kind=i), i, d))
    offsets = []
    off = HEAD_LEN
    for s, k, d in recs:
        offsets.append(off)
        off += HDR + len(d)
    good = read(p)
    rnd = random.Random(5)
    for trial in range(60):
        pos = rnd.randrange(HEAD_LEN, len(good))
        bad = bytearray(good)
        bad[pos] ^= 1 << rnd.randrange(8)
        write(p, bytes(bad))
        r = Journal(p)  # no exception
        hit = max(i for i, o in enumerate(offsets) if o <= pos)
        assert r.pending() == recs[:hit], (trial, pos)
        s = r.append(b"later")
        assert s > recs[hit - 1][0] if hit else s >= 1
        assert Journal(p).pending() == recs[:hit] + [(s, 0, b"later")]


def test_corrupt_head_or_empty_file(tmp_path):
    p = jpath(tmp_path)
    write(p, b"")
    j = Journal(p)
    assert j.pending() == [] and os.path.getsize(p) == HEAD_LEN
    j.append(b"a")
    raw = bytearray(read(p))
    raw[0] = 0
    write(p, bytes(raw))
    j = Journal(p)
    assert j.pending() == []
    s = j.append(b"b")
    assert Journal(p).pending() == [(s, 0, b"b")]


# ---------------------------------------------------------------- compaction

def test_compaction_triggered_by_size_keeps_pending(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p, max_bytes=4096)
    model = []
    rnd = random.Random(3)
    for i in range(400):
        d = bytes([i % 256]) * rnd.randrange(0, 120)
        if j.free_bytes() >= HDR + len(d) + 600:
            model.append((j.append(d, kind=i % 4), i % 4, d))
        if model and (len(model) > 8 or rnd.random() < 0.5):
            victim = model.pop(rnd.randrange(min(3, len(model))))
            assert j.ack(victim[0])
        assert j.size_bytes() <= 4096
        assert os.path.getsize(p) == j.size_bytes()
    assert j.compactions > 5
    assert j.pending() == model
    assert Journal(p, max_bytes=4096).pending() == model
    j.compact()
    assert j.size_bytes() == HEAD_LEN + sum(HDR + len(d) for _, _, d in model)
    assert [r[0] for r in parse(p)[1:]] == [jmod._T_DATA] * len(model)
    assert not os.path.exists(p + ".new")


def test_journal_full(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p, max_bytes=HEAD_LEN + 3 * (HDR + 100))
    seqs = [j.append(b"r" * 100) for _ in range(3)]
    assert j.free_bytes() == 0
    with pytest.raises(JournalFull):
        j.append(b"")
    # acking with no room for the marker rewrites the file without the record
    comps = j.compactions
    assert j.ack(seqs[0])
    assert j.compactions == comps + 1
    assert j.size_bytes() == os.path.getsize(p) == HEAD_LEN + 2 * (HDR + 100) <= j.max_bytes
    assert Journal(p, max_bytes=j.max_bytes).pending() == [(s, 0, b"r" * 100) for s in seqs[1:]]
    s4 = j.append(b"r" * 100)
    assert s4 > seqs[-1]
    assert j.size_bytes() <= j.max_bytes
    with pytest.raises(JournalFull):
        j.append(b"q")
    assert Journal(p, max_bytes=j.max_bytes).pending() == [(s, 0, b"r" * 100) for s in seqs[1:] + [s4]]


def test_full_with_dead_space_compacts_instead_of_failing(tmp_path):
    p = jpath(tmp_path)
    j = Journal(p, max_bytes=HEAD_LEN + 4 * (HDR + 100) + 20)
    a = j.append(b"1" * 100)
    b = j.append(b"2" * 100)
    j.ack(a)
    c = j.append(b"3" * 100)
    d = j.append(b"4" * 100)
    e = j.append(b"5" * 100)  # does not fit behind the ack: compaction makes room
    assert j.compactions == 2
    assert [x[0] for x in Journal(p, max_bytes=j.max_bytes).pending()] == [b, c, d, e]


def _complete_new(tmp_path, p):
    """A fully written compaction result of p (what compact() would produce)."""
    cp = str(tmp_path / "copy.journal")
    shutil.copy(p, cp)
    c = Journal(cp)
    c.compact()
    return read(cp), c.pending()


def test_crash_during_compaction_partial_new_keeps_old(tmp_path):
    p = jpath(tmp_path)
    j, expect = _base(p)
    old = read(p)
    new_bytes, new_pending = _complete_new(tmp_path, p)
    assert new_pending == expect
    for cut in range(0, len(new_bytes)):
        write(p, old)
        write(p + ".new", new_bytes[:cut])
        r = Journal(p)
        assert r.pending() == expect
        assert not os.path.exists(p + ".new")
        assert read(p) == old  # the old file is used as it is


def test_crash_during_compaction_complete_new_wins(tmp_path):
    p = jpath(tmp_path)
    j, expect = _base(p)
    old = read(p)
    # the ack-when-full path writes a .new without the acked record
    j2 = Journal(p)
    j2._kill(j2._find(expect[0][0]))
    j2.compact()
    new_bytes = read(p)
    write(p, old)
    write(p + ".new", new_bytes)
    r = Journal(p)
    assert r.pending() == expect[1:]
    assert not os.path.exists(p + ".new") and read(p) == new_bytes
    # rename done as remove + rename, cut in between: only .new exists
    os.remove(p)
    write(p + ".new", new_bytes)
    r = Journal(p)
    assert r.pending() == expect[1:] and read(p) == new_bytes
    s = r.append(b"z")
    assert s > expect[-1][0]


# ---------------------------------------------------------------- model-based

class JournalMachine(RuleBasedStateMachine):
    MAX = 3000

    def __init__(self):
        super().__init__()
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="journal-")
        self.p = os.path.join(self.dir, "j.bin")
        self.j = Journal(self.p, max_bytes=self.MAX)
        self.model = []  # [(seq, kind, data)]
        self.high = 0  # highest seq ever returned

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _live(self):
        return HEAD_LEN + sum(HDR + len(d) for _, _, d in self.model)

    @rule(data=st.binary(max_size=400), kind=st.integers(0, 255))
    def append(self, data, kind):
        if self._live() + HDR + len(data) > self.MAX:
            with pytest.raises(JournalFull):
                self.j.append(data, kind)
            return
        s = self.j.append(data, kind)
        assert s > self.high
        self.high = s
        self.model.append((s, kind, data))

    @precondition(lambda self: self.model)
    @rule(pick=st.integers(0, 1000), drop=st.booleans())
    def ack(self, pick, drop):
        s = self.model.pop(pick % len(self.model))[0]
        assert (self.j.drop if drop else self.j.ack)(s) is True

    @rule(seq=st.integers(0, 2 ** 32 - 1))
    def ack_unknown(self, seq):
        if seq not in [m[0] for m in self.model]:
            assert self.j.ack(seq) is False

    @rule()
    def compact(self):
        self.j.compact()

    @rule()
    def power_cut(self):
        self.j = Journal(self.p, max_bytes=self.MAX)

    @rule(data=st.binary(max_size=400), cut=st.integers(1, 10 ** 6), ack=st.booleans(), pick=st.integers(0, 1000))
    def torn_write(self, data, cut, ack, pick):
        """The power fails while an append (or ack) is being written."""
        if ack and not self.model:
            return
        if not ack and self._live() + HDR + len(data) > self.MAX:
            return
        before = read(self.p)
        comps = self.j.compactions
        if ack:
            self.j.ack(self.model[pick % len(self.model)][0])
        else:
            self.j.append(data)
        after = read(self.p)
        if self.j.compactions != comps:
            # The operation rewrote the file first: cut the power before the
            # rename instead (a partial .new next to the old file).
            write(self.p, before)
            write(self.p + ".new", after[:cut % len(after)])
        else:
            assert after.startswith(before)
            write(self.p, after[:len(before) + cut % (len(after) - len(before))])
        self.j = Journal(self.p, max_bytes=self.MAX)

    @rule(tail=st.binary(min_size=1, max_size=64))
    def garbage_tail(self, tail):
        with open(self.p, "ab") as f:
            f.write(tail)
        self.j = Journal(self.p, max_bytes=self.MAX)

    @invariant()
    def matches_model(self):
        assert self.j.pending() == self.model
        assert self.j.count() == len(self.model)
        assert self.j.first() == (self.model[0] if self.model else None)
        assert self.j.size_bytes() == os.path.getsize(self.p) <= self.MAX
        assert self.j.free_bytes() == self.MAX - self._live()
        assert self.j.next_seq() > self.high


def test_state_machine_against_model():
    run_state_machine_as_test(
        JournalMachine,
        settings=settings(max_examples=150, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6), cut=st.integers(0, 10 ** 6))
def test_any_truncation_yields_a_prefix(tmp_path, sizes, cut):
    """Cut the file anywhere: the result is the records fully written before the cut."""
    p = jpath(tmp_path, "prefix-%d.journal" % random.getrandbits(32))
    j = Journal(p)
    ends, recs = [], []
    for i, n in enumerate(sizes):
        recs.append((j.append(bytes([i]) * n, kind=i), i, bytes([i]) * n))
        ends.append(j.size_bytes())
    full = read(p)
    c = cut % (len(full) + 1)
    write(p, full[:c])
    got = Journal(p).pending()
    assert got == [r for r, e in zip(recs, ends) if e <= c]
    os.remove(p)


def test_bit_rot_after_open(tmp_path):
    """A live record that goes bad on flash after open: reads raise, compaction leaves it out."""
    p = jpath(tmp_path)
    j = Journal(p)
    recs = [(j.append(bytes([65 + i]) * 40, kind=i), i, bytes([65 + i]) * 40) for i in range(4)]
    raw = bytearray(read(p))
    raw[HEAD_LEN + (HDR + 40) + HDR + 5] ^= 0x10  # payload of the second record
    write(p, bytes(raw))
    with pytest.raises(jmod.JournalError):
        j.pending()
    assert j.first() == recs[0]
    j.compact()
    assert j.skipped == 1
    assert j.pending() == [recs[0]] + recs[2:]
    r = Journal(p)
    assert r.pending() == [recs[0]] + recs[2:] and r.recovered == 0
    assert parse(p)[0][3] == struct.pack("<I", os.path.getsize(p))  # HEAD length fixed up


# ------------------------------------------- a power cut at every byte of every write


class PowerCut(Exception):
    pass


class CutFS:
    """Every byte the journal writes, and every rename/remove, spends one unit
    of a budget; when it runs out the power fails: the write stops after the
    bytes already spent (what a plain file keeps), nothing else happens."""

    def __init__(self, budget):
        self.budget = budget
        self.spent = 0

    def spend(self, n):
        if self.budget is None:
            self.spent += n
            return n
        ok = min(n, self.budget - self.spent)
        self.spent += ok
        return ok

    def open(self, path, mode="r", *a, **kw):
        f = open(path, mode, *a, **kw)
        if "r" in mode and "+" not in mode:
            return f
        fs = self

        class W:
            def __getattr__(self, name):
                return getattr(f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                data = bytes(data)
                ok = fs.spend(len(data))
                f.write(data[:ok])
                if ok < len(data):
                    f.close()
                    raise PowerCut()
                return ok
        return W()

    def step(self, fn):
        def wrapped(*a):
            if self.spend(1) < 1:
                raise PowerCut()
            return fn(*a)
        return wrapped


def _cut_scenario(p, fs):
    """A fixed run (appends, acks, drops, both compaction triggers, an explicit
    compaction) under the cut budget. Returns (acknowledged appends {seq: data},
    retired seqs, in-flight op) as the caller saw them when the power failed."""
    appended, retired, doing = {}, set(), ("open", None)
    try:
        j = Journal(p, max_bytes=400)
        for i in range(14):
            data = bytes([65 + i]) * (10 + (i * 7) % 40)
            doing = ("append", data)
            seq = j.append(data, kind=i % 3)
            appended[seq] = data
            for s in list(appended):
                if s not in retired and (s % 3 != 0 or i - s > 4):
                    doing = ("retire", s)
                    (j.drop if s % 5 == 0 else j.ack)(s)
                    retired.add(s)
                    break
            if i == 9:
                doing = ("compact", None)
                j.compact()
            doing = None
    except PowerCut:
        pass
    return appended, retired, doing


def test_power_cut_at_every_byte_of_every_write(tmp_path, monkeypatch):
    """The journal's promises for every instant a write can be cut, compaction
    and its rename included: it opens, an append that returned is pending
    until its ack/drop returned, nothing is duplicated or reordered, and it
    keeps working after the cut."""
    full = CutFS(None)
    p = jpath(tmp_path)
    monkeypatch.setattr(jmod, "open", full.open, raising=False)
    monkeypatch.setattr(os, "rename", full.step(os.rename))
    monkeypatch.setattr(os, "remove", full.step(os.remove))
    appended, retired, doing = _cut_scenario(p, full)
    assert doing is None and len(appended) == 14
    total = full.spent
    monkeypatch.undo()
    real_rename, real_remove = os.rename, os.remove
    assert total > 1000  # every byte of about 40 writes, compactions among them
    d = tmp_path / "cut"
    for cut in range(total):
        d.mkdir()
        p = str(d / "tx.journal")
        fs = CutFS(cut)
        monkeypatch.setattr(jmod, "open", fs.open, raising=False)
        monkeypatch.setattr(os, "rename", fs.step(real_rename))
        monkeypatch.setattr(os, "remove", fs.step(real_remove))
        appended, retired, doing = _cut_scenario(p, fs)
        monkeypatch.undo()
        assert doing is not None, cut
        j = Journal(p, max_bytes=400)
        pend = j.pending()
        seqs = [s for s, _, _ in pend]
        assert seqs == sorted(set(seqs)), (cut, seqs)
        must = set(appended) - retired
        if doing[0] == "retire":
            must.discard(doing[1])  # its ack may or may not have landed
        assert must <= set(seqs), (cut, doing, sorted(must - set(seqs)))
        for s, _, data in pend:
            if s in appended:
                assert data == appended[s] and s not in retired, (cut, s)
            else:
                assert doing == ("append", data) and s > max(appended or [0]), (cut, s)
        nxt = j.append(b"after")
        assert nxt > max(seqs + list(appended) + [0])
        assert [s for s, _, _ in Journal(p, max_bytes=400).pending()] == seqs + [nxt]
        shutil.rmtree(d)


def test_index_stays_small_behind_a_long_pending_record(tmp_path):
    """An open transaction's map record stays pending for the whole session
    while its meter values come and go: the RAM index must not keep an entry
    for every one of them (a 10-hour session is hundreds of records)."""
    j = Journal(str(tmp_path / "j.bin"), 65536)
    keep = j.append(b'{"map": 1}', 4)
    c0 = j.compactions
    for i in range(200):  # 13 KB of records and acks: no file compaction yet
        s = j.append(b"x" * 40, 3)
        assert j.ack(s)
    assert j.compactions == c0
    assert len(j._idx) <= 3 * 32, len(j._idx)
    assert j.seqs() == [keep] and j.count() == 1
    s = j.append(b"after", 3)
    assert [r[0] for r in j.pending()] == [keep, s]
    j2 = Journal(str(tmp_path / "j.bin"), 65536)  # and the file says the same
    assert [r[2] for r in j2.pending()] == [b'{"map": 1}', b"after"]


# ---------------------------------------------------------------- no heap left

class _Heap:
    """The board's heap running out under the journal's RAM index: new index
    parts that can still be allocated (None: no limit)."""
    left = None


def _tight_arrays(monkeypatch, heap):
    class Tight(jmod.array):
        def __new__(cls, *a):
            if heap.left is not None:
                if heap.left <= 0:
                    raise MemoryError("memory allocation failed")
                heap.left -= 1
            return super().__new__(cls, *a)

    monkeypatch.setattr(jmod, "array", Tight)


def test_no_memory_for_the_index_costs_the_one_append(tmp_path, monkeypatch):
    """A MemoryError while the index grows (a fragmented heap, a long
    outage's backlog) costs that one record: the journal stays whole, the
    next append works and the file says the same (before: an index entry
    half added shifted every later one: IndexError and garbage lengths in the
    transaction queue until a reboot)."""
    heap = _Heap()
    _tight_arrays(monkeypatch, heap)
    p = jpath(tmp_path)
    j = Journal(p)
    seqs = [j.append(b"start", 1)]
    heap.left = 1
    with pytest.raises(MemoryError):
        for i in range(100):  # until the index needs a part the heap has no room for
            seqs.append(None)
            seqs[-1] = j.append(b"meter %d" % i, 3)
    seqs.pop()
    assert len(seqs) > 16 and [s for s, _, _ in j.pending()] == seqs
    heap.left = None
    seqs.append(j.append(b"meter next", 3))
    assert [s for s, _, _ in j.pending()] == seqs and j.count() == len(seqs)
    assert j.first()[2] == b"start" and j.pending()[-1][2] == b"meter next"
    assert [s for s, _, _ in Journal(p).pending()] == seqs
    for s in seqs:
        assert j.ack(s)
    assert j.pending() == [] and Journal(p).pending() == []


def test_failed_write_leaves_no_index_entry(tmp_path, monkeypatch):
    """The flash refuses an append half-way: the record is not pending, the
    next append cuts the torn tail, and a reopen finds what RAM says."""
    p = jpath(tmp_path)
    j = Journal(p)
    s1 = j.append(b"start", 1)
    real_open = open

    class Torn:
        def __init__(self, f):
            self.f = f

        def seek(self, n):
            self.f.seek(n)

        def write(self, b):
            self.f.write(bytes(b)[:5])
            raise OSError(28, "no space")

        def flush(self):
            self.f.flush()

        def close(self):
            self.f.close()

    monkeypatch.setattr(jmod, "open", lambda path, mode="r": Torn(real_open(path, mode))
                        if mode == "r+b" else real_open(path, mode), raising=False)
    with pytest.raises(OSError):
        j.append(b"meter lost", 3)
    monkeypatch.setattr(jmod, "open", real_open, raising=False)
    assert [s for s, _, _ in j.pending()] == [s1]
    s2 = j.append(b"meter next", 3)
    assert [(s, d) for s, _, d in j.pending()] == [(s1, b"start"), (s2, b"meter next")]
    assert [(s, d) for s, _, d in Journal(p).pending()] == [(s1, b"start"), (s2, b"meter next")]


def test_index_trim_in_place_keeps_every_record(tmp_path):
    """Retired entries leave the index in place (behind a long-pending
    record), with nothing pending lost or doubled."""
    p = jpath(tmp_path)
    j = Journal(p)
    keep = j.append(b"map", 4)
    live = []
    for i in range(100):
        s = j.append(b"m%d" % i, 3)
        if i % 3:
            assert j.ack(s)
        else:
            live.append(s)
    assert len(j._idx) < 3 * 60
    assert j.seqs() == [keep] + live and j.count() == 1 + len(live)
    assert [s for s, _, _ in j.pending()] == [keep] + live
    assert [s for s, _, _ in Journal(p).pending()] == [keep] + live


def _failing_new_file(monkeypatch, after_writes):
    """The compaction's new file: a MemoryError after `after_writes` writes
    (0: at open), as on a heap with no block left."""
    real_open = open

    class Out:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            if self.n >= after_writes:
                raise MemoryError("memory allocation failed")
            self.n += 1
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

    def fake(path, mode="r"):
        if path.endswith(".new") and "w" in mode:
            if after_writes == 0:
                raise MemoryError("memory allocation failed")
            return Out(real_open(path, mode))
        return real_open(path, mode)

    monkeypatch.setattr(jmod, "open", fake, raising=False)


@pytest.mark.parametrize("after_writes", [0, 1, 3, 6])
def test_full_journal_drop_without_memory_changes_nothing(tmp_path, monkeypatch, after_writes):
    """Full: dropping the oldest record is a rewrite without it. When the
    rewrite fails (no heap), the record is still pending, in RAM as on flash
    (before: it was gone from RAM only, and each later try dropped one more)."""
    p = jpath(tmp_path)
    j = Journal(p, max_bytes=400)
    seqs = []
    with pytest.raises(JournalFull):
        for i in range(100):
            seqs.append(j.append(b"sample %02d" % i + b"." * 31, 3))  # 7 fill it, no marker fits
    for _ in range(3):  # no marker fits: a drop is a rewrite
        _failing_new_file(monkeypatch, after_writes)
        with pytest.raises(MemoryError):
            j.drop(seqs[0])
        monkeypatch.undo()
        assert [s for s, _, _ in j.pending()] == seqs and j.count() == len(seqs)
        assert [s for s, _, _ in Journal(p, max_bytes=400).pending()] == seqs
    assert j.drop(seqs[0])
    assert [s for s, _, _ in j.pending()] == seqs[1:]
    s = j.append(b"newest", 3)
    assert [s for s, _, _ in Journal(p, max_bytes=400).pending()] == seqs[1:] + [s]


@pytest.mark.parametrize("after_writes", [0, 2, 5])
def test_compaction_without_memory_keeps_the_journal(tmp_path, monkeypatch, after_writes):
    p = jpath(tmp_path)
    j = Journal(p, max_bytes=1000)
    live = []
    for i in range(20):
        s = j.append(b"r%02d" % i + b"-" * 20, 3)
        if i % 2:
            j.ack(s)
        else:
            live.append(s)
    _failing_new_file(monkeypatch, after_writes)
    with pytest.raises(MemoryError):
        j.compact()
    monkeypatch.undo()
    assert [s for s, _, _ in j.pending()] == live
    s = j.append(b"after", 3)
    j.compact()
    assert [s for s, _, _ in j.pending()] == live + [s]
    assert [(q, d) for q, _, d in Journal(p, max_bytes=1000).pending()] == [(q, d) for q, _, d in j.pending()]
