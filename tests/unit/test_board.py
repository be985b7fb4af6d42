"""The JOLT board definition for the MicroPython esp32 port (boards/JOLT): the
partition table adds up to the 4 MiB flash with nothing wasted, two
application slots, the romfs partition the port mounts at /rom (big enough for
the application's image) and the littlefs filesystem; ROMFS is switched on."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARD = os.path.join(ROOT, "boards", "JOLT")
FLASH = 4 * 1024 * 1024
TABLE_AT, TABLE_LEN = 0x8000, 0x1000  # ESP-IDF defaults (CONFIG_PARTITION_TABLE_OFFSET)


def partitions():
    rows = []
    with open(os.path.join(BOARD, "partitions-jolt.csv")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, typ, sub, off, size = [c.strip() for c in line.split(",")[:5]]
            rows.append({"name": name, "type": typ, "subtype": sub, "offset": int(off, 0), "size": int(size, 0)})
    return rows


def test_partitions_fill_the_flash_without_gap_or_overlap():
    rows = partitions()
    at = TABLE_AT + TABLE_LEN
    for p in rows:
        assert p["offset"] == at, "gap or overlap before %s" % p["name"]
        assert p["offset"] % (0x10000 if p["type"] == "app" else 0x1000) == 0, p
        assert p["size"] % 0x1000 == 0 and p["size"] > 0, p
        at += p["size"]
    assert at == FLASH, "ends at %#x, flash is %#x" % (at, FLASH)


def test_two_application_slots_romfs_and_littlefs():
    by = {p["name"]: p for p in partitions()}
    assert set(by) == {"nvs", "otadata", "phy_init", "ota_0", "ota_1", "romfs", "romfs1", "vfs"}
    assert (by["ota_0"]["type"], by["ota_0"]["subtype"]) == ("app", "ota_0")
    assert (by["ota_1"]["type"], by["ota_1"]["subtype"]) == ("app", "ota_1")
    assert by["ota_0"]["size"] == by["ota_1"]["size"] >= 0x180000  # MicroPython + BLE, size-optimised
    assert (by["otadata"]["type"], by["otadata"]["subtype"], by["otadata"]["size"]) == ("data", "ota", 0x2000)
    # The esp32 port finds the ROMFS by this label (esp32_partition.c) and the
    # filesystem by "vfs" (modules/flashbdev.py); 0x8f is the romfs subtype it uses.
    assert (by["romfs"]["type"], by["romfs"]["subtype"]) == ("data", "0x8f")
    # The second application slot (docs/ota.md): the same subtype and size
    # (an image must fit either slot), right after the first.
    assert (by["romfs1"]["type"], by["romfs1"]["subtype"]) == ("data", "0x8f")
    assert by["romfs1"]["size"] == by["romfs"]["size"]
    assert by["romfs1"]["offset"] == by["romfs"]["offset"] + by["romfs"]["size"]
    assert (by["vfs"]["type"], by["vfs"]["subtype"]) == ("data", "fat")
    # config, journal (64 KiB, and its compacted copy while it is rewritten),
    # the local list (1000 x 45 B, and its copy), ID tags, the update key:
    # about 240 KiB at their largest; logs and downloaded updates go to the SD
    # card. 512 KiB until the second ROMFS slot took 256 KiB of it, 448 KiB
    # until both slots grew to 320 KiB (docs/flashing.md).
    assert by["vfs"]["size"] >= 320 * 1024


def test_the_application_image_fits_the_romfs_partition(tmp_path):
    sys.path.insert(0, ROOT)
    from tools.romfs import build_image

    img = str(tmp_path / "jolt.romfs")
    build_image(img, board="esp32", march="xtensawin")
    size = {p["name"]: p["size"] for p in partitions()}["romfs"]
    assert os.path.getsize(img) * 2 <= size, "less than half the partition left for growth"


def test_board_files_enable_romfs_and_name_the_table():
    h = open(os.path.join(BOARD, "mpconfigboard.h")).read()
    assert re.search(r"^#define MICROPY_VFS_ROM \(1\)$", h, re.M)
    assert re.search(r'^#define MICROPY_HW_BOARD_NAME "BrightBlu JOLT"$', h, re.M)
    cmake = open(os.path.join(BOARD, "mpconfigboard.cmake")).read()
    assert "include(boards/mpconfigboard_esp32_common.cmake)" in cmake
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake
    assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\\"${MICROPY_BOARD_DIR}/partitions-jolt.csv\\"' in cmake
    sdk = open(os.path.join(BOARD, "sdkconfig.board")).read()
    assert "CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y" in sdk
