"""The authorization cache store: on flash, bounded, no flash write for an
idTagInfo that changes nothing, and nothing of it held on the heap."""
import tracemalloc

from firmware import idtags
from hal.mock.board import Clock


def counting_writes(monkeypatch):
    """Writes to flash by the store: atomic file writes and files opened for writing."""
    writes = []
    real_atomic = idtags.fsutil.write_atomic
    monkeypatch.setattr(idtags.fsutil, "write_atomic", lambda p, d: (writes.append(p), real_atomic(p, d)))

    def opening(path, mode="r", *a):
        if "w" in mode or "+" in mode or "a" in mode:
            writes.append(path)
        return open(path, mode, *a)

    monkeypatch.setattr(idtags, "open", opening, raising=False)
    return writes


def test_unchanged_info_is_not_rewritten_and_entries_persist(tmp_path, monkeypatch):
    writes = counting_writes(monkeypatch)
    path = str(tmp_path / "cache.bin")
    store = idtags.TagStore(path, 2, Clock())
    writes.clear()  # (the new empty file)
    store.put("A", {"status": "Accepted", "parentIdTag": "P"})
    store.put("A", {"status": "Accepted", "parentIdTag": "P"})
    assert len(writes) == 1
    store.put("A", {"status": "Blocked"})
    assert len(writes) == 2
    again = idtags.TagStore(path, 2, Clock())
    assert again.lookup("A") == {"status": "Blocked"}
    assert again.lookup("B") is None
    assert len(writes) == 2  # opening an intact cache writes nothing


def test_full_cache_evicts_non_accepted_first_and_expiry_is_checked(tmp_path):
    clock = Clock(epoch=1_800_000_000)
    store = idtags.TagStore(str(tmp_path / "c.bin"), 2, clock)
    store.put("OK", {"status": "Accepted"})
    store.put("BAD", {"status": "Invalid"})
    store.put("NEW", {"status": "Accepted", "expiryDate": "2020-01-01T00:00:00Z"})
    assert store.lookup("BAD") is None
    assert store.lookup("OK") == {"status": "Accepted"}
    assert store.lookup("NEW") == {"status": "Expired"}


class Ticking:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t

    def advance(self, s):
        self.t += s


def test_full_cache_of_accepted_entries_evicts_the_least_recently_updated(tmp_path):
    clock = Ticking(1_800_000_000)
    store = idtags.TagStore(str(tmp_path / "c.bin"), 3, clock)
    for tag in ("T1", "T2", "T3"):
        store.put(tag, {"status": "Accepted"})
        clock.advance(10)
    store.put("T1", {"status": "Accepted", "parentIdTag": "G"})  # T1 updated: T2 is now the oldest
    clock.advance(10)
    store.put("T4", {"status": "Accepted"})
    assert store.lookup("T2") is None
    assert [store.lookup(t) for t in ("T1", "T3", "T4")] == [
        {"status": "Accepted", "parentIdTag": "G"}, {"status": "Accepted"}, {"status": "Accepted"}]


def test_a_full_cache_holds_nothing_on_the_heap(tmp_path):
    # 200 cards of 20 characters: about 30 KB on the board's heap as a dict.
    clock = Clock(epoch=1_800_000_000)
    store = idtags.TagStore(str(tmp_path / "c.bin"), 200, clock)
    tracemalloc.start()
    try:
        for i in range(200):
            store.put("CARD%016d" % i, {"status": "Accepted", "parentIdTag": "GROUP%015d" % i})
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < 2000, kept
    assert store.lookup("CARD%016d" % 123) == {"status": "Accepted", "parentIdTag": "GROUP%015d" % 123}
    assert (tmp_path / "c.bin").stat().st_size == 4 + 200 * 49


def test_a_damaged_cache_starts_empty_and_works(tmp_path):
    path = tmp_path / "c.bin"
    for junk in (b"JAC1" + b"x" * 50, b"{}", b""):
        path.write_bytes(junk)
        store = idtags.TagStore(str(path), 5, Clock())
        assert store.lookup("A") is None
        store.put("A", {"status": "Accepted"})
        assert store.lookup("A") == {"status": "Accepted"}


def test_idtags_longer_than_a_record_are_not_cached(tmp_path):
    store = idtags.TagStore(str(tmp_path / "c.bin"), 5, Clock())
    store.put("é" * 11, {"status": "Accepted"})  # 22 bytes
    assert store.lookup("é" * 11) is None
    store.put("é" * 10, {"status": "Accepted"})  # 20 bytes
    assert store.lookup("é" * 10) == {"status": "Accepted"}


def test_expiry_dates_outside_the_record_are_kept_as_expired_or_far_future(tmp_path):
    # A central system's expiryDate before 1970 or after 2106 does not fit the
    # record's uint32: it was a struct error out of the card's decision.
    clock = Ticking(1_800_000_000)
    store = idtags.TagStore(str(tmp_path / "c.bin"), 5, clock)
    store.put("OLD", {"status": "Accepted", "expiryDate": "1960-01-01T00:00:00Z"})
    store.put("FAR", {"status": "Accepted", "expiryDate": "2200-01-01T00:00:00Z"})
    assert store.lookup("OLD") == {"status": "Expired"}
    assert store.lookup("FAR") == {"status": "Accepted"}
