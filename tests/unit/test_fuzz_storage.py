"""Fuzzing what the charger reads from flash at boot and on use (issue 15):
the configuration files (provision.json, config.json and their .new), the
transaction journal and state file, the local authorization list, the
authorization cache, the reservation, the fault thresholds and latch file,
each as random bytes, random JSON, a valid file with junk values, or a valid
file cut short. The App boots over any of them (no exception out of the
constructor, the boot recovery, the control step, the transaction queue or
the status task), the configuration holds values of its table's types, and
a card and a session still work."""
import asyncio
import json
import os
import struct
import tempfile

from hypothesis import example, given, strategies as st

from firmware import params
from lib.journal import Journal
from tests.unit.fuzzing import fuzz
import firmware.outputs as O
import firmware.supervisor as S
from firmware.app import App
from hal.mock.board import Board
from tests.unit.test_charging_properties import Clock, FakeCsms
from tests.unit.test_memory_errors import Harness

KEYS = [r[0] for r in params.TABLE]
leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                 st.text(max_size=15), st.sampled_from(["true", "0", "32", "Three.Phase", "ws://h:1/x"]))
junk = st.recursive(leaf, lambda k: st.one_of(st.lists(k, max_size=3), st.dictionaries(st.text(max_size=8), k, max_size=3)),
                    max_leaves=10)


def obj_of(keys, values=junk):
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=8)), values, max_size=6)


def journal_bytes():
    """A journal of the transaction queue's records, as the firmware writes them."""
    p = os.path.join(tempfile.mkdtemp(), "j.bin")
    j = Journal(p, 65536)
    j.append(b'{"v":2,"a":"StartTransaction","l":1,"u":"u1","i":"TAG1","p":{"connectorId":1,"idTag":"TAG1",'
             b'"meterStart":0,"timestamp":"2026-11-25T11:40:00Z"}}', 1)
    j.append(json.dumps({"l": 1, "id": 7, "s": 1}), 4)
    j.append(b'{"v":2,"a":"StopTransaction","l":1,"u":"u2","p":{"meterStop":5,"timestamp":"2026-11-25T12:40:00Z",'
             b'"reason":"Local"}}', 2)
    with open(p, "rb") as f:
        data = f.read()
    os.remove(p)
    os.rmdir(os.path.dirname(p))
    return data


@st.composite
def damaged(draw, valid):
    """valid (bytes), or random bytes, random JSON, cut short or with bytes flipped."""
    how = draw(st.sampled_from(["random", "json", "cut", "flip", "valid"]))
    if how == "random":
        return draw(st.binary(max_size=300))
    if how == "json":
        return json.dumps(draw(junk)).encode()
    if how == "cut":
        return valid[:draw(st.integers(0, max(0, len(valid) - 1)))]
    if how == "flip":
        b = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            if b:
                b[draw(st.integers(0, len(b) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    return valid


JOURNAL = journal_bytes()


def list_file(draw):
    n = draw(st.integers(0, 4))
    recs = b"".join(struct.pack("<20sBI20s", draw(st.binary(max_size=20)), draw(st.integers(0, 255)),
                                draw(st.integers(0, 2**32 - 1)), draw(st.binary(max_size=20))) for _ in range(n))
    return b"JLL1" + struct.pack("<iH", draw(st.integers(-2**31, 2**31 - 1)), n) + recs


def cache_file(draw):
    recs = b"".join(struct.pack("<20sBI20sI", draw(st.sampled_from([b"TAG1", b"TAG2", b"X", b"\xff\xfe"])),
                                draw(st.integers(0, 255)), draw(st.integers(0, 2**32 - 1)),
                                draw(st.binary(max_size=20)), draw(st.integers(0, 2**32 - 1)))
                    for _ in range(draw(st.integers(0, 4))))
    return b"JAC1" + recs


@st.composite
def flash(draw):
    """{file name: content} with one to three files damaged."""
    files = {}
    kinds = draw(st.lists(st.sampled_from(["provision.json", "config.json", "config.json.new", "tx_state.json",
                                           "tx_journal.bin", "auth_list.bin", "auth_cache.bin", "auth_cache.json",
                                           "reservation.json",
                                           "faults.json", "faults.latch", "watchdog.txt"]), min_size=1, max_size=3,
                          unique=True))
    for k in kinds:
        if k in ("provision.json",):
            valid = json.dumps({"variant": draw(st.sampled_from(["business", "homeplus", "x"])),
                                "config": draw(obj_of(KEYS))}).encode()
        elif k.startswith("config.json"):
            valid = json.dumps(draw(obj_of(KEYS))).encode()
        elif k == "tx_state.json":
            valid = json.dumps(draw(st.fixed_dictionaries({}, optional={
                "reg": junk, "ts": junk, "next": junk,
                "open": st.one_of(junk, st.fixed_dictionaries({"l": st.integers(0, 5)}, optional={
                    "tag": junk, "parent": junk, "base": junk, "ts": junk, "start": junk, "cid": junk}))}))).encode()
        elif k == "tx_journal.bin":
            valid = JOURNAL
        elif k == "auth_list.bin":
            valid = list_file(draw)
        elif k == "auth_cache.bin":
            valid = cache_file(draw)
        elif k == "auth_cache.json":  # the cache of earlier versions, left on flash
            valid = json.dumps({"version": draw(junk), "tags": draw(st.dictionaries(
                st.sampled_from(["TAG1", "TAG2", "X"]), st.one_of(junk, st.tuples(
                    st.sampled_from(["Accepted", "Blocked", "Expired"]), junk, junk, junk).map(list)), max_size=3))}).encode()
        elif k == "reservation.json":
            valid = json.dumps(draw(st.fixed_dictionaries({"id": st.integers(), "tag": st.text(max_size=20),
                                                           "exp": st.integers()}, optional={
                "cid": junk, "parent": junk}))).encode()
        elif k == "faults.json":
            valid = json.dumps(draw(obj_of(["ne_mv", "v_min", "v_max", "derate", "t_stop", "i_max"]))).encode()
        else:
            valid = b"ground leak" if k == "faults.latch" else b"ocpp"
        files[k] = draw(damaged(valid))
    return files


class Boot(Harness):
    """test_memory_errors' harness booting over a flash holding `files`."""

    def __init__(self, root, files):
        files.setdefault("provision.json", b'{"variant": "business", "config": {}}')
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        self.board = Board(flash_root=root)
        self.clock = Clock()
        O.time = S.time = self.clock
        self.app = App(self.board)  # raises if a file breaks the boot
        self.csms = FakeCsms()
        self.app.cp.call = self.csms.call
        self.app.cp.accepted = self.app.cp.registered = True


def boot_and_charge(root, files):
    from lib import log

    errors = []
    real = log.error

    def error(tag, msg):
        errors.append("%s: %s" % (tag, msg))
        real(tag, msg)

    log.error = error
    try:
        h = _boot_and_charge(root, files)
    finally:
        log.error = real
    # A card decided by the exception handler (station._authorize) was a crash.
    assert not [e for e in errors if e.startswith("auth: TAG1:")], errors
    return h


def _boot_and_charge(root, files):
    async def main():
        h = Boot(root, files)
        cfg = h.app.cfg
        for i, p, row in params.rows():
            v = cfg.get(row[0])
            assert type(v) is {params.T_BOOL: bool, params.T_INT: int}.get(row[1], str), (row[0], v)
        tasks = [asyncio.ensure_future(h.app.txs.run()), asyncio.ensure_future(h.app.station.run_status()),
                 asyncio.ensure_future(h.app.station.recover(0))]
        await h.cycles(5)
        h.pilot("B")
        await h.cycles(5)
        h.board.rfid.present("TAG1")
        await h.cycles(10)
        h.pilot("C")
        await h.until(lambda: h.board.relay.command, 100)
        h.pilot("A")
        await h.cycles(20)
        assert not h.board.relay.command
        for t in tasks:
            assert not (t.done() and not t.cancelled() and t.exception()), t.exception()
            t.cancel()
        return h

    return asyncio.run(main())


@fuzz(60)
@given(flash())
@example({"faults.json": b"[1, 2]"})
@example({"faults.latch": b"\x80"})
@example({"faults.json": b'{"v_min": "184"}'})
@example({"tx_state.json": b'{"open": 5}'})
@example({"tx_state.json": b'{"open": {"l": "x"}}'})
@example({"tx_state.json": b'{"open": {"l": 1}}'})
@example({"auth_cache.json": b'{"version": 1, "tags": {"TAG1": ["Accepted", "x", null, 0]}}'})
@example({"auth_cache.bin": b"JAC1TAG1" + bytes(16) + b"\x09" + bytes(28)})
@example({"auth_cache.bin": b"JAC1\xff\xfe" + bytes(18) + bytes(29)})
@example({"reservation.json": b'{"id": 1, "tag": "OTHER", "exp": 9999999999}'})
def test_the_charger_boots_over_damaged_files(tmp_path_factory, files):
    boot_and_charge(str(tmp_path_factory.mktemp("f")) + "/", files)


def test_fault_threshold_file_keeps_its_valid_entries(tmp_path, monkeypatch):
    # The fix for a faults.json of the wrong shape takes only what is valid, no less.
    from firmware import faults as F
    from tests.unit.test_supervisor import Cfg, Station

    monkeypatch.setattr(F, "T", dict(F.T))
    (tmp_path / "faults.json").write_text(json.dumps(
        {"v_min": 200, "derate": [500, 10], "bogus": 1, "ne_mv": "8000", "i_max": True, "evc_wait_s": 2}))
    board = Board(flash_root=str(tmp_path) + "/")
    out = O.Outputs(board)
    sup = S.Supervisor(Cfg(), Station(board, out), out)
    assert sup.t["v_min"] == 200 and sup.t["derate"] == (500, 10) and sup.t["evc_wait_s"] == 2
    assert sup.t["ne_mv"] == 8000 and sup.t["i_max"] == 32000 and "bogus" not in sup.t
