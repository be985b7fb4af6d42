"""tools/deploy.py: the mpremote command lines that put the .mpy build on a board."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import deploy  # noqa: E402
import mpy_build  # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
SOURCES = {
    "main.py": "import firmware.app\n",
    "boot.py": "pass\n",
    "firmware/__init__.py": "",
    "firmware/app.py": "def run():\n    return 1\n",
    "firmware/ocpp/__init__.py": "",
    "firmware/ocpp/cp.py": "X = 1\n",
    "lib/__init__.py": "",
    "lib/ws.py": "Y = 2\n",
    "hal/__init__.py": "",
    "hal/esp32/__init__.py": "",
    "hal/esp32/board.py": "B = 3\n",
    "hal/sim/__init__.py": "",
    "hal/sim/board.py": "S = 4\n",
    "hal/mock/__init__.py": "",
    "hal/mock/board.py": "M = 5\n",
}
DATA_FILES = {
    "config.json": '{"id": "JOLT-1"}',
    "provision.json": '{"url": "wss://x"}',
    "journal.0": "tx1",
    "journal.1": "tx2",
    "data/journal.log": "q",
    "lib/notes.json": "keep me",
}


def write_tree(base, files):
    for rel, text in files.items():
        path = os.path.join(base, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real mpy_build of a small source tree, built for every board (so the
    build dir contains hal/sim and hal/mock that deploy must leave out)."""
    src = tmp_path_factory.mktemp("src")
    write_tree(str(src), SOURCES)
    out = str(tmp_path_factory.mktemp("build"))
    shutil.rmtree(out)
    written = mpy_build.build(out, root=str(src), board="all")
    return out, written


def copies(cmd):
    """[(src, dst)] of a chained `fs cp` command line."""
    assert cmd[1:3] == ["connect", "/dev/ttyUSB0"]
    groups, cur = [], []
    for arg in cmd[3:]:
        if arg == "+":
            groups.append(cur)
            cur = []
        else:
            cur.append(arg)
    groups.append(cur)
    out = []
    for g in groups:
        assert g[:2] == ["fs", "cp"] and len(g) == 4, g
        out.append((g[2], g[3]))
    return out


def test_every_built_file_copied_to_its_place(built):
    out, written = built
    cmds = deploy.plan(out, "/dev/ttyUSB0")
    assert len(cmds) == 3
    pairs = copies(cmds[1])
    expected = [w for w in written if not w.startswith(("hal/sim/", "hal/mock/"))]
    assert sorted(dst for _, dst in pairs) == sorted(":" + w for w in expected)
    for src, dst in pairs:
        assert os.path.isfile(src)
        assert os.path.relpath(src, out).replace(os.sep, "/") == dst[1:]
    assert ":firmware/ocpp/cp.mpy" in [d for _, d in pairs]
    assert ":main.py" in [d for _, d in pairs] and ":boot.py" in [d for _, d in pairs]
    # Entry points go last: an interrupted deploy never runs new main.py over old modules.
    assert [d for _, d in pairs][-2:] == [":boot.py", ":main.py"]


def test_host_only_hal_never_deployed(built):
    out, written = built
    assert any(w.startswith("hal/sim/") for w in written)  # the build has them ...
    text = "\n".join(" ".join(c) for c in deploy.plan(out, "/dev/ttyUSB0"))
    assert "hal/sim" not in text and "hal/mock" not in text  # ... the deploy does not


def test_directories_first_then_copy_then_reset(built):
    out, _ = built
    cmds = deploy.plan(out, "/dev/ttyUSB0")
    assert cmds[0][3] == "exec"
    assert cmds[1][3:5] == ["fs", "cp"]
    assert cmds[2][3:] == ["reset"]
    dirs = deploy.directories(deploy.deployable_files(out))
    assert dirs == ["firmware", "hal", "lib", "firmware/ocpp", "hal/esp32"]


def test_mpremote_is_the_venvs(built):
    out, _ = built
    exe = os.path.join(ROOT, ".venv", "bin", "mpremote")
    assert os.path.exists(exe)
    for cmd in deploy.plan(out, "/dev/ttyUSB0"):
        assert cmd[0] == exe


def run_board(board, cmds):
    """Play the plan against a directory standing in for the board's flash:
    the prep snippet runs on real MicroPython (cwd = board root), copies are
    done as mpremote would."""
    prep = cmds[0][4]
    r = subprocess.run([MICROPYTHON, "-c", prep], cwd=board, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    for src, dst in copies(cmds[1]):
        target = os.path.join(board, *dst[1:].split("/"))
        assert os.path.isdir(os.path.dirname(target)), "directory missing before copy of " + dst
        shutil.copyfile(src, target)
    return r.stdout


def board_files(board):
    found = {}
    for dirpath, _, filenames in os.walk(board):
        for f in filenames:
            p = os.path.join(dirpath, f)
            found[os.path.relpath(p, board).replace(os.sep, "/")] = open(p, "rb").read()
    return found


def test_fresh_board_gets_the_tree(built, tmp_path):
    out, written = built
    board = str(tmp_path)
    run_board(board, deploy.plan(out, "/dev/ttyUSB0"))
    files = board_files(board)
    expected = sorted(w for w in written if not w.startswith(("hal/sim/", "hal/mock/")))
    assert sorted(files) == expected
    for rel in expected:
        assert files[rel] == open(os.path.join(out, rel), "rb").read()


def test_redeploy_removes_shadowing_sources_and_keeps_data(built, tmp_path):
    out, _ = built
    board = str(tmp_path)
    write_tree(board, DATA_FILES)
    write_tree(board, {
        "firmware/app.py": "stale source that would shadow app.mpy",
        "firmware/gone.mpy": "module deleted from the project",
        "hal/sim/board.py": "host-only",
        "lib/ws.mpy": "old bytecode",
        "main.py": "old main",
    })
    log = run_board(board, deploy.plan(out, "/dev/ttyUSB0"))
    files = board_files(board)
    assert "firmware/app.py" not in files and "firmware/gone.mpy" not in files
    assert "hal/sim/board.py" not in files
    assert "removed stale firmware/app.py" in log
    assert files["lib/ws.mpy"] == open(os.path.join(out, "lib", "ws.mpy"), "rb").read()
    assert files["main.py"] == SOURCES["main.py"].encode()
    for rel, text in DATA_FILES.items():
        assert files[rel] == text.encode(), rel
    # Deploying twice is harmless (existing directories are kept).
    run_board(board, deploy.plan(out, "/dev/ttyUSB0"))
    assert board_files(board) == files


def test_plan_never_names_data_files(built):
    out, _ = built
    write_tree(out, {"config.json": "{}", "firmware/settings.json": "{}"})
    try:
        for cmd in deploy.plan(out, "/dev/ttyUSB0"):
            text = " ".join(cmd[4:] if cmd[3] == "exec" else cmd)
            for name in ("config.json", "provision.json", "journal", "settings.json"):
                assert name not in text
    finally:
        os.remove(os.path.join(out, "config.json"))
        os.remove(os.path.join(out, "firmware", "settings.json"))


def test_dry_run_prints_and_runs_nothing(built, tmp_path, capsys):
    out, _ = built
    assert deploy.main(["--port", "/dev/does-not-exist", "--build", out, "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(os.path.join(ROOT, ".venv", "bin", "mpremote") + " connect /dev/does-not-exist exec")
    assert lines[-1].endswith("connect /dev/does-not-exist reset")
    assert "fs cp" in "\n".join(lines)


def test_empty_build_is_an_error(tmp_path, capsys):
    assert deploy.main(["--port", "/dev/x", "--build", str(tmp_path), "--dry-run"]) == 2
    assert "make mpy" in capsys.readouterr().err
