"""lib/log: console lines, rotating files on the SD card (bounded total size,
oldest deleted first), a failing card turns file logging off, a level that is
off costs nothing (the last on the real MicroPython)."""
import os
import subprocess

import pytest

from lib import log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
T0 = 1796428800  # 2026-12-05T00:00:00Z
QUEUE, QUEUE_BYTES, BATCH = 16, 1024, 512  # lines and characters waiting at most, bytes written per step


@pytest.fixture
def clock():
    t = [T0]
    yield t
    log.files(None)
    log.level = 1


def drain():
    n = 0
    while log.write_some():
        n += 1
        assert n < 10000
    return n


def read_all(folder):
    return "".join(open(os.path.join(folder, n)).read() for n in sorted(os.listdir(folder)))


def test_lines_go_to_the_console_and_to_the_file_with_their_utc_stamp(tmp_path, clock, capsys):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0])
    log.info("app", "boot 1")
    clock[0] += 61
    log.warn("net", "down")
    log.error("x", "bad %d" % 3)
    out = capsys.readouterr().out.splitlines()
    assert [x.split(" ", 1)[1] for x in out] == ["INF app: boot 1", "WRN net: down", "ERR x: bad 3"]
    assert all(x.split(" ", 1)[0].isdigit() for x in out)  # ticks_ms first, as before
    assert os.listdir(folder) == []  # nothing written on the caller's path
    drain()
    assert os.listdir(folder) == ["00000001.log"]
    assert read_all(folder).splitlines() == [
        "2026-12-05T00:00:00Z INF app: boot 1",
        "2026-12-05T00:01:01Z WRN net: down",
        "2026-12-05T00:01:01Z ERR x: bad 3"]


def test_rotation_keeps_the_total_bounded_and_deletes_the_oldest_first(tmp_path, clock):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0], file_bytes=600, count=3)
    for i in range(300):
        log.info("t", "line %04d" % i)
        clock[0] += 1
        if i % 10 == 9:
            drain()
    drain()
    names = sorted(os.listdir(folder))
    assert 2 <= len(names) <= 3  # (the next file is made by its first line)
    # Numbered in order, the newest continues where the oldest left off.
    seqs = [int(n[:-4]) for n in names]
    assert seqs == list(range(seqs[0], seqs[0] + len(names))) and seqs[0] > 10
    total = sum(os.path.getsize(os.path.join(folder, n)) for n in names)
    assert total <= 3 * (600 + BATCH)
    lines = read_all(folder).splitlines()
    nums = [int(x.rsplit(" ", 1)[1]) for x in lines]
    assert nums == list(range(nums[0], 300))  # the newest lines, in order, none missing
    assert nums[0] > 0  # the oldest are gone
    # After a reboot the numbering goes on and the limits hold.
    log.files(folder, lambda: clock[0], file_bytes=600, count=3)
    for i in range(100):
        log.info("t", "line %04d" % (300 + i))
        drain()
    names2 = sorted(os.listdir(folder))
    assert 2 <= len(names2) <= 3 and int(names2[0][:-4]) > seqs[0]
    nums = [int(x.rsplit(" ", 1)[1]) for x in read_all(folder).splitlines()]
    assert nums == list(range(nums[0], 400))


class _NoHeap(str):
    """A message whose line cannot be made: formatting it runs out of memory."""
    def __str__(self):
        raise MemoryError("memory allocation failed, allocating 128 bytes")


def test_a_line_with_no_memory_to_make_it_is_lost_not_raised(tmp_path, clock, capsys):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0])
    log.info("update", "before")
    log.info("update", _NoHeap("downloaded"))  # the caller goes on: no exception
    log.warn("update", "after")
    drain()
    lines = read_all(folder).splitlines()
    assert [x.split(" ", 2)[2] for x in lines] == ["update: before", "update: after", "log: 1 lines lost (queue full or no memory)"]
    assert "update: before" in capsys.readouterr().out


def test_a_full_queue_loses_lines_and_says_how_many(tmp_path, clock):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0])
    for i in range(QUEUE + 5):
        log.info("t", "n%d" % i)
    drain()
    lines = read_all(folder).splitlines()
    assert [x.split()[-1] for x in lines[:QUEUE]] == ["n%d" % i for i in range(QUEUE)]
    assert lines[-1].endswith("WRN log: 5 lines lost (queue full or no memory)")
    # Long lines are bounded by bytes as well.
    log.info("t", "x" * (QUEUE_BYTES + 1))
    assert not log.write_some()


def test_batches_are_small(tmp_path, clock):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0])
    sizes = []
    for i in range(QUEUE):
        log.info("t", "%03d " % i + "y" * 60)
    p = os.path.join(folder, "00000001.log")
    while log.write_some():
        sizes.append(os.path.getsize(p))
    sizes.append(os.path.getsize(p))
    steps = [b - a for a, b in zip([0] + sizes, sizes)]
    assert len(steps) > 2 and max(steps) <= BATCH + 100


def test_a_failing_card_turns_file_logging_off_and_nothing_is_raised(tmp_path, clock, capsys):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0])
    log.info("t", "before")
    drain()
    # The card fails: writes raise EIO (the card's handle is dead).
    class Dead:
        def write(self, *a):
            raise OSError(5)

        flush = close = write

    log._f.close()
    log._f = Dead()
    log.info("t", "after")
    assert log.write_some() is False
    assert log.paths() == []
    assert read_all(folder).splitlines()[-1].endswith("INF t: before")
    log.info("t", "console only")
    assert log.write_some() is False
    out = capsys.readouterr().out
    assert "WRN log: log files off" in out and "INF t: console only" in out
    # A folder that cannot be made: console only from the start.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    log.files(str(blocker) + "/log/", lambda: clock[0])
    log.info("t", "x")
    assert log.paths() == [] and log.write_some() is False


def test_paths_lists_the_files_oldest_first(tmp_path, clock):
    folder = str(tmp_path / "log") + "/"
    log.files(folder, lambda: clock[0], file_bytes=100, count=4)
    for i in range(20):
        log.info("t", "line %d" % i)
        drain()
    ps = log.paths()
    assert [os.path.basename(p) for p in ps] == sorted(os.listdir(folder)) and 3 <= len(ps) <= 4


def test_a_level_that_is_off_allocates_nothing_on_micropython(tmp_path):
    script = tmp_path / "t.py"
    script.write_text(
        "import sys, gc\nsys.path.insert(0, %r)\n"
        "from lib import log\n"
        "log.files(%r, lambda: 1796428800)\n"
        "log.level = 1\n"
        "msg = 'pre-made'\n"
        "def f():\n"
        "    for i in range(200):\n"
        "        log.debug('t', msg)\n"
        "f()\n"
        "gc.collect(); gc.disable(); a = gc.mem_alloc()\n"
        "f()\n"
        "b = gc.mem_alloc(); gc.enable()\n"
        "log.info('t', 'on')\n"
        "print('ALLOC', b - a, log.write_some(), len(log.paths()))\n" % (ROOT, str(tmp_path / "log") + "/"))
    r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("ALLOC")][0]
    assert line == "ALLOC 0 False 1", r.stdout
    assert "DBG" not in r.stdout and "INF t: on" in r.stdout


def test_a_burst_of_repeated_lines_holds_each_text_once_and_writes_every_line(tmp_path):
    """The heap a full ring holds in a burst (docs/memory.md): the same line
    waiting several times is one object (measured here; the epoch shared by
    lines of one second is a big int only on a 32-bit board); the file still
    gets every line, in order, with its stamp."""
    folder = str(tmp_path / "log") + "/"
    script = tmp_path / "t.py"
    script.write_text(
        "import sys, gc\nsys.path.insert(0, %r)\n"
        "from lib import log\n"
        "t = [1796428800]\n"
        "log.files(%r, lambda: t[0] + 0)\n"
        "def burst(texts):\n"
        "    for i in range(%d):\n"
        "        log.info('ocpp', texts[i %% len(texts)])\n"
        "    while log.write_some():\n"
        "        pass\n"
        "def held(texts):\n"
        "    gc.collect(); a = gc.mem_alloc()\n"
        "    for i in range(%d):\n"
        "        log.info('ocpp', texts[i %% len(texts)])\n"
        "    gc.collect(); b = gc.mem_alloc()\n"
        "    while log.write_some():\n"
        "        pass\n"
        "    return b - a\n"
        "same = ['<- TriggerMessage', '-> StatusNotification', '<- StatusNotification result']\n"
        "other = ['<- TriggerMessage %%d' %% i for i in range(%d)]\n"
        "burst(same); burst(other)\n"
        "print('HELD', held(same), held(other))\n"
        "t[0] += 1\n"
        "log.info('ocpp', 'next second')\n"
        "while log.write_some():\n"
        "    pass\n" % (ROOT, folder, QUEUE, QUEUE, QUEUE))
    r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    same, other = map(int, [x for x in r.stdout.splitlines() if x.startswith("HELD")][0].split()[1:])
    # 16 distinct lines hold 16 strings; 3 texts repeated hold 3 of them
    assert other - same >= (QUEUE - 3) * 32, r.stdout
    lines = read_all(folder).splitlines()
    texts = ["<- TriggerMessage", "-> StatusNotification", "<- StatusNotification result"]
    want = [texts[i % 3] for i in range(QUEUE)] + ["<- TriggerMessage %d" % i for i in range(QUEUE)]
    want = want + want + ["next second"]
    assert [x.split(" ocpp: ", 1)[1] for x in lines] == want
    assert all(x.startswith("2026-12-05T00:00:00Z INF ") for x in lines[:-1])
    assert lines[-1].startswith("2026-12-05T00:00:01Z INF ")
