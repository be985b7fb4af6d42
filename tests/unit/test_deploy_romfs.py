"""`make deploy` with the ROMFS image (tools/deploy.py --romfs, tools/romfs.py)
and the mip manifest (tools/package_json.py): the commands and file lists they
produce. No board here: the probe and prune snippets run on the board-like
interpreter (or the venv's, where it is absent), the copies are played on a
directory standing in for the board's littlefs."""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools import deploy, package_json  # noqa: E402
from tools.mpy_build import ENTRY_POINTS, build, device_sources  # noqa: E402
from tools.romfs import SYS_PATH, build_image  # noqa: E402
from tools.simkit.bench import board32_binary  # noqa: E402

PORT = "/dev/ttyUSB0"
MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")
MICROPYTHON = board32_binary() or os.path.join(ROOT, ".venv", "bin", "micropython")


_BUILT = []  # the tests only read the build: it is made once (about 4 s each)


def built(tmp_path):
    if not _BUILT:
        out = str(tmp_path / "build")
        build(out, board="esp32")
        img = str(tmp_path / "build" / "jolt.romfs")
        files = build_image(img, board="esp32")
        _BUILT.append((out, img, files))
    return _BUILT[0]


def rom_listing(img, tmp_path):
    """Every file the image holds, as the board-like interpreter sees /rom."""
    script = ("import os\n"
              "def walk(d):\n"
              "    for n, t, *_ in os.ilistdir(d):\n"
              "        p = d + '/' + n\n"
              "        if t & 0x4000:\n"
              "            walk(p)\n"
              "        else:\n"
              "            print(p[5:])\n"
              "walk('/rom')\n")
    env = dict(os.environ, MICROPY_ROMFS=img, MICROPYPATH=":".join(SYS_PATH))
    r = subprocess.run([board32_binary(), "-c", script], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.split())


def test_the_image_holds_every_device_module_and_nothing_else(tmp_path):
    out, img, files = built(tmp_path)
    want = sorted(rel[:-3] + ".mpy" for rel in device_sources(ROOT, "esp32") if rel not in ENTRY_POINTS)
    assert sorted(files) == want
    assert "firmware/app.mpy" in want and "hal/esp32/board.mpy" in want
    assert not [f for f in want if f.startswith(("hal/sim", "hal/mock"))]
    if board32_binary():  # the image read back as the board reads it
        assert rom_listing(img, tmp_path) == want


def test_romfs_plan_writes_the_image_then_only_the_entry_points(tmp_path):
    out, img, _ = built(tmp_path)
    cmds = deploy.romfs_plan(img, out, PORT)
    assert [c[:3] for c in cmds] == [[MPREMOTE, "connect", PORT]] * 4
    assert cmds[0][3:] == ["romfs", "deploy", img]
    assert cmds[1][3] == "exec"
    copy = cmds[2][3:]
    assert copy == ["fs", "cp", os.path.join(out, "boot.py"), ":boot.py", "+",
                    "fs", "cp", os.path.join(out, "main.py"), ":main.py"]
    assert cmds[3][3:] == ["reset"]
    text = " ".join(" ".join(c) for c in cmds if c[3] != "exec")
    for name in ("config.json", "provision.json", "journal", ".mpy"):
        assert name not in text


def test_romfs_deploy_clears_code_from_littlefs_and_keeps_data(tmp_path):
    out, img, _ = built(tmp_path)
    board = tmp_path / "board"
    data = {"config.json": "{}", "provision.json": "{}", "tx_journal.bin": "j", "tx_state.json": "{}",
            "ca.pem": "c", "lib/notes.json": "keep"}
    stale = {"firmware/app.mpy": "old", "firmware/app.py": "older", "lib/ws.mpy": "old", "hal/esp32/board.mpy": "x",
             "main.py": "old main"}
    for rel, text in list(data.items()) + list(stale.items()):
        p = board / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    cmds = deploy.romfs_plan(img, out, PORT)
    r = subprocess.run([MICROPYTHON, "-c", cmds[1][4]], cwd=str(board), capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    for i in range(5, len(cmds[2]), 5):  # fs cp SRC :DST as mpremote does it
        shutil.copyfile(cmds[2][i], str(board / cmds[2][i + 1][1:]))
    left = sorted(str(p.relative_to(board)) for p in board.rglob("*") if p.is_file())
    assert left == sorted(list(data) + ["boot.py", "main.py"])
    assert (board / "main.py").read_text() == open(os.path.join(ROOT, "main.py")).read()


def test_probe_reads_the_romfs_partition_size(tmp_path):
    out, img, _ = built(tmp_path)
    env = dict(os.environ, MICROPY_ROMFS=img)
    r = subprocess.run([MICROPYTHON, "-c", deploy.probe_command(PORT)[4]], env=env, capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    size = deploy.romfs_size(r.stdout)
    if board32_binary():
        assert size == os.path.getsize(img)
    assert deploy.romfs_size("ROMFS 0\n") == 0 and deploy.romfs_size("garbage") == 0
    assert deploy.romfs_size("ROMFS 262144\n") == 262144


def _deploy(tmp_path, answer, monkeypatch, capsys):
    out, img, _ = built(tmp_path)
    ran = []
    monkeypatch.setattr(deploy.subprocess, "call", lambda cmd: ran.append(cmd) or 0)
    rc = deploy.deploy_romfs(img, out, PORT, ask=lambda cmd: answer)
    return rc, ran, capsys.readouterr(), out, img


def test_a_board_with_romfs_gets_the_image(tmp_path, monkeypatch, capsys):
    rc, ran, io, out, img = _deploy(tmp_path, "ROMFS 262144\n", monkeypatch, capsys)
    assert rc == 0 and ran == deploy.romfs_plan(img, out, PORT)


def test_a_board_without_romfs_gets_the_mpy_files_and_the_ram_warning(tmp_path, monkeypatch, capsys):
    rc, ran, io, out, img = _deploy(tmp_path, "ROMFS 0\n", monkeypatch, capsys)
    assert rc == 0 and ran == deploy.plan(out, PORT)
    assert "no ROMFS" in io.err and "PSRAM" in io.err and "134 KB" in io.err


def test_a_too_small_romfs_partition_is_refused(tmp_path, monkeypatch, capsys):
    rc, ran, io, out, img = _deploy(tmp_path, "ROMFS 1024\n", monkeypatch, capsys)
    assert rc == 1 and ran == [] and "smaller than the image" in io.err


def test_makefile_deploy_and_repl():
    mk = open(os.path.join(ROOT, "Makefile")).read()
    assert "tools/deploy.py --port $(PORT) --build build --romfs build/jolt.romfs" in mk
    assert "connect $(PORT) repl" in mk


def test_package_json_lists_exactly_the_device_files():
    doc = json.load(open(os.path.join(ROOT, "package.json")))
    assert doc == package_json.manifest()  # regenerated: tools/package_json.py
    dests = [d for d, src in doc["urls"]]
    assert sorted(dests) == sorted(device_sources(ROOT, "esp32"))
    assert all(d == src and os.path.isfile(os.path.join(ROOT, src)) for d, src in doc["urls"])
    assert "hal/esp32/board.py" in dests and not [d for d in dests if d.startswith(("hal/sim", "hal/mock"))]
    assert doc["version"] == package_json.version()
