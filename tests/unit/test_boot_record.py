"""boot.py's slot record (docs/ota.md): trial boots counted before the
application starts, the rollback after three, a rename cut half-way. Run on
CPython in a tmp dir standing in for the littlefs root."""
import json
import os

import pytest

import boot


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOLT_SLOTS", raising=False)
    return tmp_path


def rec(root):
    return json.loads((root / "boot.json").read_text())


def test_a_board_without_a_record_boots_slot_0(root):
    assert boot.record() == {"slot": 0}
    boot.main()
    assert not (root / "boot.json").exists()  # nothing written without an update


def test_three_trial_boots_then_back_to_the_previous_slot(root):
    boot.write({"slot": 1, "prev": 0, "tries": 1, "version": "0.2.0", "from": "0.1.0"})  # the install's boot
    boot.main()
    assert rec(root)["tries"] == 2 and rec(root)["slot"] == 1
    boot.main()
    assert rec(root)["tries"] == 3 and rec(root)["slot"] == 1
    boot.main()  # three started, none healthy
    assert rec(root) == {"slot": 0, "failed": "0.2.0"}
    assert boot.healthy() == {"slot": 0, "failed": "0.2.0"}  # reported once
    assert rec(root) == {"slot": 0} and boot.healthy() is None


def test_a_healthy_trial_stays(root):
    boot.write({"slot": 1, "prev": 0, "tries": 1, "version": "0.2.0", "from": "0.1.0"})
    assert boot.healthy()["tries"] == 1
    for _ in range(5):
        boot.main()
    assert rec(root) == {"slot": 1}


def test_a_rename_cut_half_way_is_adopted(root):
    # A filesystem that cannot rename over a file: boot.json removed, the
    # complete boot.json.new not renamed yet when the power went.
    (root / "boot.json.new").write_text(json.dumps({"slot": 1}))
    assert boot.record() == {"slot": 1}
    # A half-written .new beside a good record loses to the record.
    (root / "boot.json").write_text(json.dumps({"slot": 0}))
    (root / "boot.json.new").write_text('{"slot": 1, "pr')
    assert boot.record() == {"slot": 0}


def test_a_broken_record_never_stops_the_boot(root, capsys):
    import runpy

    (root / "boot.json").write_text('{"slot": 7}')
    assert boot.record() == {"slot": 0}
    assert boot.mount() == 0  # CPython: no ROMFS segments, the start-up /rom stays
    # A trial record without its previous slot still rolls back, to the other one.
    (root / "boot.json").write_text('{"slot": 1, "tries": 3}')
    boot.main()
    assert rec(root) == {"slot": 0, "failed": None}
    # Anything unexpected: boot.py reports it, leaves the record, main.py starts.
    bad = '{"slot": 1, "tries": "x"}'
    (root / "boot.json").write_text(bad)
    runpy.run_path(boot.__file__, run_name="__main__")
    assert "boot: TypeError" in capsys.readouterr().out
    assert (root / "boot.json").read_text() == bad
