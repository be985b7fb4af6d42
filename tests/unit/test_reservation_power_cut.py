"""A reservation used by its transaction is gone from flash as soon as the
transaction starts: a power cut right after the start (before the status task
runs) must not bring it back at boot."""
import asyncio
import json

import firmware.outputs as O
import firmware.supervisor as S
from firmware.app import App
from hal.mock.board import Board
from tests.unit.test_charging_properties import CYCLE_MS, Clock  # the control-loop clock


def test_a_used_reservation_is_off_flash_when_its_transaction_starts(tmp_path, monkeypatch):
    root = str(tmp_path) + "/"
    board = Board(flash_root=root)
    clock = Clock()
    monkeypatch.setattr(O, "time", clock)
    monkeypatch.setattr(S, "time", clock)
    app = App(board)
    calls = []

    async def call(action, payload, timeout_ms=None, unique_id=None):
        calls.append(action)
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        return {}

    app.cp.call = call
    app.cp.accepted = app.cp.registered = True
    conn = app.station.connector

    async def run():
        exp = "2099-01-01T00:00:00Z"
        res = await app.cp._handlers["ReserveNow"](
            {"connectorId": 1, "expiryDate": exp, "idTag": "TAG1", "reservationId": 7})
        assert res == {"status": "Accepted"}
        assert json.load(open(root + "reservation.json"))["id"] == 7
        board.pilot.set_levels(9000, -12000)  # EV plugged in (state B)
        board.rfid.present("TAG1")
        # Control steps only: the status task (which used to write the end of
        # the reservation) never runs, as when the power goes right after.
        for _ in range(200):
            clock.now += CYCLE_MS
            app.control.step()
            await asyncio.sleep(0)
            if app.txs.by_local:
                break
        assert app.txs.by_local, "no transaction started"
        assert conn.reserved is None
        assert json.load(open(root + "reservation.json")) is None

    asyncio.run(run())
