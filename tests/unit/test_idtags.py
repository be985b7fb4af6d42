"""The authorization cache store: persisted, bounded, and no flash write for
an idTagInfo that changes nothing."""
from firmware import idtags
from hal.mock.board import Clock


def test_unchanged_info_is_not_rewritten_and_entries_persist(tmp_path, monkeypatch):
    writes = []
    real = idtags.fsutil.write_atomic
    monkeypatch.setattr(idtags.fsutil, "write_atomic", lambda p, d: (writes.append(p), real(p, d)))
    path = str(tmp_path / "cache.json")
    store = idtags.TagStore(path, 2, Clock())
    store.put("A", {"status": "Accepted", "parentIdTag": "P"})
    store.put("A", {"status": "Accepted", "parentIdTag": "P"})
    assert len(writes) == 1
    store.put("A", {"status": "Blocked"})
    assert len(writes) == 2
    again = idtags.TagStore(path, 2, Clock())
    assert again.lookup("A") == {"status": "Blocked"}
    assert again.lookup("B") is None


def test_full_cache_evicts_non_accepted_first_and_expiry_is_checked(tmp_path):
    clock = Clock(epoch=1_800_000_000)
    store = idtags.TagStore(str(tmp_path / "c.json"), 2, clock)
    store.put("OK", {"status": "Accepted"})
    store.put("BAD", {"status": "Invalid"})
    store.put("NEW", {"status": "Accepted", "expiryDate": "2020-01-01T00:00:00Z"})
    assert store.lookup("BAD") is None
    assert store.lookup("OK") == {"status": "Accepted"}
    assert store.lookup("NEW") == {"status": "Expired"}
