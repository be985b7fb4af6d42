#!/usr/bin/env python3
"""A small reference charge point on the PyPI `ocpp` package (ocpp.v16), the
baseline of the round-trip benchmark (tools/bench/roundtrip.py).

It connects to the central system, sends BootNotification, and answers the
calls the benchmark sends, as an integrator's Python charge point would:
GetConfiguration (a handful of keys, unknownKey for the rest),
TriggerMessage (Accepted, then sends the requested Heartbeat or
StatusNotification), RemoteStartTransaction (Accepted when no transaction
runs; no hardware behind it, so no transaction follows). Runs on CPython in
its own process so it does not share the central system's interpreter.

    .venv/bin/python tools/bench/ref_cp.py ws://127.0.0.1:PORT/ocpp CP-ID
"""
import asyncio
import datetime
import sys

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

CONFIG = {
    "HeartbeatInterval": "300",
    "MeterValueSampleInterval": "60",
    "ConnectionTimeOut": "60",
    "NumberOfConnectors": "1",
    "AuthorizeRemoteTxRequests": "false",
    "LocalPreAuthorize": "false",
}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RefChargePoint(ChargePoint):
    @on(Action.get_configuration)
    def on_get_configuration(self, key=None, **kwargs):
        keys = key if key else list(CONFIG)
        known = [{"key": k, "readonly": False, "value": CONFIG[k]} for k in keys if k in CONFIG]
        unknown = [k for k in keys if k not in CONFIG]
        if unknown:
            return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown)
        return call_result.GetConfiguration(configuration_key=known)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message, connector_id=None, **kwargs):
        if requested_message in ("Heartbeat", "StatusNotification"):
            return call_result.TriggerMessage(status="Accepted")
        return call_result.TriggerMessage(status="NotImplemented")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message, connector_id=None, **kwargs):
        if requested_message == "Heartbeat":
            await self.call(call.Heartbeat())
        elif requested_message == "StatusNotification":
            await self.call(call.StatusNotification(connector_id=connector_id or 1, error_code="NoError",
                                                    status="Available", timestamp=_now()))

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag, connector_id=None, **kwargs):
        return call_result.RemoteStartTransaction(status="Accepted")


async def run(url, cp_id):
    async with websockets.connect(url.rstrip("/") + "/" + cp_id, subprotocols=["ocpp1.6"]) as ws:
        cp = RefChargePoint(cp_id, ws)
        task = asyncio.create_task(cp.start())
        await cp.call(call.BootNotification(charge_point_model="REF-1", charge_point_vendor="ocpp-py"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available",
                                              timestamp=_now()))
        await task


def main():
    url, cp_id = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(run(url, cp_id))
    except (KeyboardInterrupt, websockets.exceptions.ConnectionClosed):
        pass


if __name__ == "__main__":
    main()
