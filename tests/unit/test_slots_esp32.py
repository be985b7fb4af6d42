"""The board's application slots (hal/esp32/slots.py, docs/ota.md) under
boot.py's installer (firmware/update.py, unchanged), on CPython against the
fakes of esp32.Partition (a NOR flash model of ports/esp32/esp32_partition.c
over the board definition's partition table) and vfs.rom_ioctl: what ends up
in which flash partition, and what the slot record says. The two ROMFS
partitions as two segments need a port that exposes them (the fake's
`port.segments = "all"`); the stock port's one segment keeps updates off."""
import hashlib
import json
import os
import random
import sys

import pytest

from tests.unit import fakes_esp32
from tests.unit.fakes_esp32 import esp32 as fesp
from tests.unit.fakes_esp32 import vfs as fvfs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import boot  # noqa: E402
from firmware import update  # noqa: E402
from tools import ota  # noqa: E402

SLOT = 0x50000
FLASH = 4 * 1024 * 1024
_keys = {}


def board_table():
    """The board definition's partition table (boards/JOLT): two 320 KiB
    ROMFS partitions, romfs and romfs1, in a 4 MiB flash."""
    rows = fesp.read_table()
    at = 0x9000
    for r in rows:
        assert r[3] == at, r
        at += r[4]
    assert at == FLASH
    assert [(r[0], r[4]) for r in rows if r[1] == 1 and r[2] == 0x8F] == [("romfs", SLOT), ("romfs1", SLOT)]
    return rows


def package(d, version, img):
    if not _keys:
        priv, _ = ota.keygen(str(d / "keys"))
        _keys["priv"] = ota.load_private(priv)
        _keys["dev"] = (d / "keys" / "ota_key.json").read_text()
    m = {"format": 1, "version": version, "variant": "any", "board": update.BOARD,
         "size": len(img), "sha256": hashlib.sha256(img).hexdigest(), "min_version": "0"}
    return ota.pack(*ota.sign_manifest(_keys["priv"], m), img)


@pytest.fixture
def board(tmp_path, monkeypatch):
    """cwd: the littlefs root with the device key; SD card at tmp/sd; the
    board's flash, both ROMFS partitions exposed as segments."""
    with fakes_esp32.installed():
        from hal.esp32 import pins
        from hal.esp32 import slots

        fesp.flash.reset(board_table())
        fvfs.port.segments = "all"
        monkeypatch.setattr(pins, "SD_MOUNT", str(tmp_path / "sd"))
        (tmp_path / "sd" / "update").mkdir(parents=True)
        (tmp_path / "flash").mkdir()
        monkeypatch.chdir(tmp_path / "flash")
        package(tmp_path, "0", b"")  # the key pair
        (tmp_path / "flash" / "ota_key.json").write_text(_keys["dev"])
        yield tmp_path, slots


def image(n, seed):
    return random.Random(seed).randbytes(n)


def put(d, name, version, img):
    p = d / "sd" / "update" / name
    p.write_bytes(package(d, version, img))
    return p


def slot_bytes(s, n):
    buf = bytearray(n)
    fvfs.rom_ioctl(2, s).readblocks(0, buf)  # the object boot.mount(s) hands to VfsRom
    return bytes(buf)


def record(d):
    p = d / "flash" / "boot.json"
    return json.loads(p.read_text()) if p.exists() else None


def test_a_package_goes_into_the_inactive_slot_is_verified_and_selected(board):
    d, slots = board
    img = image(3 * 4096 + 1234, 1)  # ends inside a sector
    p = put(d, "a.jolt", "9.0.0", img)
    hw = slots.Slots(running=0)
    assert (hw.count, hw.capacity, hw.sd) == (2, SLOT, str(d / "sd") + "/")
    m = update.from_sd("", hw)
    hw.close()
    assert m["version"] == "9.0.0"
    assert record(d) == {"slot": 1, "prev": 0, "tries": 1, "version": "9.0.0", "from": "0.1.0"}
    assert slot_bytes(1, len(img)) == img
    assert fesp.flash.written("romfs") == []  # the running slot: not an erase, not a byte
    # Bounded steps: one 4 KiB sector erased, then programmed, at a time.
    progs = [e for e in fesp.flash.programmed if e[0] == "romfs1"]
    assert [(o, n) for _, o, n in progs] == [(0, 4096), (4096, 4096), (8192, 4096), (12288, 1234)]
    assert [o for _, o in fesp.flash.erased] == [0, 4096, 8192, 12288]
    assert not p.exists() and (d / "sd" / "update" / "a.jolt.done").exists()
    assert str(d / "sd") not in fvfs.mounts  # the card left for the board to mount

    # The new version healthy, the next one goes back into slot 0; slot 1 untouched.
    boot.healthy()
    fesp.flash.reset(fesp.flash.table)
    fesp.flash.data["romfs1"] = bytearray(img + b"\xff" * (SLOT - len(img)))
    img2 = image(5000, 2)
    put(d, "b.jolt", "9.1.0", img2)
    m = update.from_sd("", slots.Slots(running=1))
    assert m["version"] == "9.1.0" and record(d)["slot"] == 0 and record(d)["prev"] == 1
    assert slot_bytes(0, len(img2)) == img2
    assert fesp.flash.written("romfs1") == [] and slot_bytes(1, len(img)) == img


@pytest.mark.parametrize("fault", ["corrupt_read", "drop_write"])
def test_a_read_back_that_differs_is_refused_and_nothing_switches(board, fault):
    d, slots = board
    img = image(3 * 4096, 3)
    if fault == "corrupt_read":
        fesp.flash.corrupt_read["romfs1"] = 5000  # the flash returns one wrong bit there
    else:
        fesp.flash.drop_write["romfs1"] = 2  # sector 2 reported written, still erased
    p = put(d, "a.jolt", "9.0.0", img)
    assert update.from_sd("", slots.Slots(running=0)) is None
    assert record(d) is None  # slot 0 still boots
    assert (d / "sd" / "update" / "a.jolt.refused").exists() and not p.exists()
    assert fesp.flash.written("romfs") == []


def test_a_write_error_leaves_the_running_slot_selected(board):
    d, slots = board
    fesp.flash.fail_write["romfs1"] = 1
    boot.write({"slot": 0})
    p = put(d, "a.jolt", "9.0.0", image(3 * 4096, 4))
    with pytest.raises(OSError):
        update.from_sd("", slots.Slots(running=0))
    assert record(d) == {"slot": 0}
    assert p.exists()  # an I/O error: the package stays for the next boot
    assert fesp.flash.written("romfs") == []


def test_the_running_slot_is_never_written(board):
    d, slots = board
    # The record names slot 1 but boot.mount fell back to slot 0 (slot 1 not
    # mountable): the installer's target, 0, is the running slot.
    boot.write({"slot": 1})
    p = put(d, "a.jolt", "9.0.0", image(4096, 5))
    with pytest.raises(OSError):
        update.from_sd("", slots.Slots(running=0))
    assert fesp.flash.written("romfs") == [] and fesp.flash.written("romfs1") == []
    assert record(d) == {"slot": 1} and p.exists()


def test_the_stock_port_has_one_segment_and_updates_stay_off(board, capsys):
    # ports/esp32 answers rom_ioctl(2, s) with the "romfs" partition whatever
    # s is: slot 1 would be the running image. One slot: nothing written.
    d, slots = board
    fvfs.port.segments = "stock"
    assert fvfs.rom_ioctl(1) == 1 and fvfs.rom_ioctl(2, 1).info()[4] == "romfs"
    p = put(d, "a.jolt", "9.0.0", image(4096, 6))
    hw = slots.Slots(running=0)
    assert hw.count == 1 and hw.sd is None
    assert update.from_sd("", hw) is None
    assert "no application slots: updates off" in capsys.readouterr().out
    assert fesp.flash.erased == [] and fesp.flash.programmed == [] and record(d) is None and p.exists()


def test_a_board_without_a_second_romfs_partition_has_one_slot(board):
    # A board flashed with the earlier table (romfs, then vfs).
    d, slots = board
    fesp.flash.reset([r for r in board_table() if r[0] != "romfs1"])
    assert slots.Slots(running=0).count == 1


def test_boot_py_on_the_board_reports_a_write_error_and_keeps_its_slot(board, monkeypatch, capsys):
    d, slots = board
    monkeypatch.setattr(sys, "platform", "esp32")
    fesp.flash.fail_write["romfs1"] = 0
    p = put(d, "a.jolt", "9.0.0", image(4096, 7))
    boot.main()
    assert "boot: update: OSError" in capsys.readouterr().out
    assert record(d) is None and p.exists() and fesp.flash.written("romfs") == []
    assert str(d / "sd") not in fvfs.mounts


def test_a_port_answering_every_index_with_one_partition_has_one_slot(board, monkeypatch):
    # A port that counts two segments but does not look at the index.
    d, slots = board
    one = fvfs.rom_ioctl(2, 0)
    monkeypatch.setattr(fvfs, "rom_ioctl", lambda op, *a: 2 if op == 1 else one)
    assert slots.Slots(running=0).count == 1
