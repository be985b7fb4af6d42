"""tools/mpy_build.py --sizes: the per-module .mpy bytes of the ESP32 build."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import mpy_build  # noqa: E402


def test_sizes_of_the_esp32_build_list_every_module_and_add_up(tmp_path, capsys):
    out = tmp_path / "build"
    mpy_build.main(["--out", str(out), "--sizes", "--board", "esp32", "--march", "xtensawin"])
    text = capsys.readouterr().out
    rows = re.findall(r"^\| `([^`]+)` \| ([\d,]+) \|$", text, re.M)
    listed = {f: int(n.replace(",", "")) for f, n in rows}
    # every module of the ESP32 build, and nothing else: hal/esp32 in, the bench and mock HALs out
    expected = {r[:-3] + ".mpy" for r in mpy_build.device_sources(ROOT, "esp32")
                if r not in mpy_build.ENTRY_POINTS}
    assert set(listed) == expected and len(rows) == len(expected)
    assert "hal/esp32/board.mpy" in listed and not any(f.startswith(("hal/sim", "hal/mock")) for f in listed)
    for f, n in listed.items():
        assert n == os.path.getsize(out / f) > 0, f
    sizes = [int(n.replace(",", "")) for _, n in rows]
    assert sizes == sorted(sizes, reverse=True)  # largest first
    m = re.search(r"^(\d+) \.mpy files \(esp32, xtensawin\), ([\d,]+) bytes in total, plus (.+) as source "
                  r"\(([\d,]+) bytes\)$", text, re.M)
    assert m, text[-400:]
    assert int(m.group(1)) == len(listed)
    assert int(m.group(2).replace(",", "")) == sum(listed.values())
    entry = [p for p in mpy_build.ENTRY_POINTS if os.path.exists(os.path.join(ROOT, p))]
    assert m.group(3) == " and ".join(entry)
    assert int(m.group(4).replace(",", "")) == sum(os.path.getsize(os.path.join(ROOT, p)) for p in entry)
