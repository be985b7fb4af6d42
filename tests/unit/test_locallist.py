"""The Local Authorization List file: sorted fixed-size records looked up by
binary search, Full and Differential updates, the size bound, and a power cut
at every write step of an update leaving the old list or the new one."""
import builtins
import os

import pytest

from firmware import locallist
from hal.mock.board import Clock


def entry(tag, status="Accepted", parent=None, expiry=None):
    info = {"status": status}
    if parent:
        info["parentIdTag"] = parent
    if expiry:
        info["expiryDate"] = expiry
    return {"idTag": tag, "idTagInfo": info}


def tags(lst, names):
    return {n: lst.lookup(n) for n in names}


def test_full_then_differential_add_change_delete(tmp_path):
    path = str(tmp_path / "list.bin")
    lst = locallist.LocalList(path, Clock(epoch=1_800_000_000))
    assert lst.listed_version() == 0 and lst.lookup("A") is None
    full = [entry("M%02d" % i) for i in range(30, 0, -1)] + [entry("KID", parent="FLEET")]
    assert lst.update(True, 3, full, 1000) == "Accepted"
    assert lst.listed_version() == 3 and lst.count == 31
    assert all(lst.lookup("M%02d" % i) == {"status": "Accepted"} for i in range(1, 31))
    assert lst.lookup("KID") == {"status": "Accepted", "parentIdTag": "FLEET"}
    assert lst.lookup("M00") is None and lst.lookup("ZZZ") is None and lst.lookup("") is None
    diff = [entry("M05", "Blocked"), {"idTag": "M07"}, entry("AAA"), entry("ZZZ", "Invalid"),
            {"idTag": "NOTLISTED"}]
    assert lst.update(False, 4, diff, 1000) == "Accepted"
    again = locallist.LocalList(path, Clock(epoch=1_800_000_000))  # from flash
    assert again.listed_version() == 4 and again.count == 32
    assert again.lookup("M05") == {"status": "Blocked"}
    assert again.lookup("M07") is None
    assert again.lookup("AAA") == {"status": "Accepted"} and again.lookup("ZZZ") == {"status": "Invalid"}
    assert again.lookup("M06") == {"status": "Accepted"}
    # A Full list replaces everything, even a larger one.
    assert again.update(True, 5, [entry("ONLY")], 1000) == "Accepted"
    assert again.count == 1 and again.lookup("M06") is None and again.lookup("ONLY")
    # An empty Full list empties it: version 0 (OCPP: empty list).
    assert again.update(True, 6, [], 1000) == "Accepted"
    assert again.listed_version() == 0 and again.lookup("ONLY") is None


def test_expiry_passed_is_expired_and_bad_updates_fail_leaving_the_list(tmp_path):
    path = str(tmp_path / "list.bin")
    lst = locallist.LocalList(path, Clock(epoch=1_800_000_000))
    assert lst.update(True, 1, [entry("OLD", expiry="2020-01-01T00:00:00Z"),
                                entry("NEW", expiry="2040-01-01T00:00:00Z")], 1000) == "Accepted"
    assert lst.lookup("OLD")["status"] == "Expired"
    assert lst.lookup("NEW") == {"status": "Accepted", "expiryDate": "2040-01-01T00:00:00Z"}
    before = open(path, "rb").read()
    assert lst.update(False, 2, [entry("X%d" % i) for i in range(3)], 4) == "Failed"  # 5 > 4
    assert lst.update(True, 2, [{"idTag": "NOINFO"}], 1000) == "Failed"
    assert lst.update(False, 2, [entry("DUP"), entry("DUP", "Blocked")], 1000) == "Failed"
    assert open(path, "rb").read() == before and not os.path.exists(path + ".new")
    assert lst.listed_version() == 1 and lst.lookup("X0") is None
    assert lst.update(False, 2, [entry("X%d" % i) for i in range(2)], 4) == "Accepted"
    assert lst.count == 4


class Cut(BaseException):
    """The power goes: nothing after this write happens."""


def _cut_after(monkeypatch, budget):
    """Count every flash mutation (file write, rename, remove); cut at the budget-th."""
    left = [budget]

    def step():
        left[0] -= 1
        if left[0] < 0:
            raise Cut()

    class F:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            step()
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    real_open, real_rename, real_remove = builtins.open, os.rename, os.remove

    def fopen(p, mode="r"):
        f = real_open(p, mode)
        return F(f) if "w" in mode else f

    def rename(a, b):
        if os.path.exists(b):
            raise OSError(17, "exists")  # like FAT: remove first, then rename (two steps)
        step()
        real_rename(a, b)

    def remove(p):
        step()
        real_remove(p)

    monkeypatch.setattr(locallist, "open", fopen, raising=False)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "remove", remove)
    return left


@pytest.mark.parametrize("full", [True, False])
def test_power_cut_at_every_write_step_leaves_old_or_new_list(tmp_path, monkeypatch, full):
    clock = Clock(epoch=1_800_000_000)
    old_tags = ["A%02d" % i for i in range(20)]
    changes = [entry("B%02d" % i) for i in range(10)] + [{"idTag": "A03"}] if not full else \
        [entry("B%02d" % i) for i in range(10)]
    new_tags = (["B%02d" % i for i in range(10)] + ([t for t in old_tags if t != "A03"] if not full else []))
    names = old_tags + ["B%02d" % i for i in range(10)]
    old_view = {n: ({"status": "Accepted"} if n in old_tags else None) for n in names}
    new_view = {n: ({"status": "Accepted"} if n in new_tags else None) for n in names}
    step = 0
    outcomes = set()
    while True:
        d = tmp_path / ("s%d" % step)
        d.mkdir()
        path = str(d / "list.bin")
        assert locallist.LocalList(path, clock).update(True, 1, [entry(t) for t in old_tags], 1000) == "Accepted"
        lst = locallist.LocalList(path, clock)
        with monkeypatch.context() as m:
            left = _cut_after(m, step)
            try:
                done = lst.update(full, 2, changes, 1000)
            except Cut:
                done = None
        after = locallist.LocalList(path, clock)  # reboot
        view = tags(after, names)
        if view == old_view:
            assert after.listed_version() == 1
            outcomes.add("old")
        else:
            assert view == new_view, (step, view)
            assert after.listed_version() == 2
            outcomes.add("new")
        # And the list keeps working after the reboot.
        assert after.update(False, 3, [entry("C00")], 1000) == "Accepted" and after.lookup("C00")
        if done is not None:
            assert done == "Accepted" and left[0] >= 0
            break
        step += 1
    assert step > 10 and outcomes == {"old", "new"}


def test_damaged_file_reads_as_empty(tmp_path):
    path = str(tmp_path / "list.bin")
    lst = locallist.LocalList(path, Clock())
    lst.update(True, 1, [entry("A"), entry("B")], 1000)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)
    again = locallist.LocalList(path, Clock())
    assert again.listed_version() == 0 and again.lookup("A") is None
    assert again.update(True, 2, [entry("C")], 1000) == "Accepted" and again.lookup("C")
