# Reservations (OCPP 1.6 Reservation profile): ReserveNow, CancelReservation,
# expiry at expiryDate, the end of a reservation when its transaction starts.
# A reservation is the central system's promise to a driver, so it is kept on
# flash (written atomically) and survives a reboot.
#
# This charger has one connector, so one reservation at a time; connectorId 0
# is Rejected while ReserveConnectorZeroSupported is false (docs/decisions.md).
# The live reservation is the connector's `reserved` record
#   {"id": reservationId, "cid": connectorId, "tag": idTag, "parent": parentIdTag or None, "exp": epoch}
# Who may use a reserved connector is decided by firmware/auth.py.
#
# Needed a few times a day: firmware/station.py loads this module for each
# use and drops it again (lib/transient.py).
import json

from lib import fsutil, isotime, log
from firmware.connector import IDLE, connector_known

def load(station, arg):
    """At boot: the reservation kept on flash (an expired one ends at the first tick)."""
    raw = fsutil.read(station.res_path)
    r = None
    if raw:
        try:
            r = json.loads(raw)
            if r is not None and not (isinstance(r["id"], int) and isinstance(r["tag"], str)
                                      and isinstance(r["exp"], int) and isinstance(r.get("cid"), int)
                                      and (r.get("parent") is None or isinstance(r["parent"], str))):
                raise ValueError("bad reservation record")
            if r is not None:
                r["parent"] = r.get("parent")
        except (ValueError, KeyError, TypeError) as e:
            log.error("res", "reservation unreadable: %r" % (e,))
            r = None
    station.connector.reserved = r


def store(station, arg):
    """arg (record or None, why): the reservation starts, is replaced or ends."""
    r, why = arg
    station.connector.reserved = r
    try:
        fsutil.write_atomic(station.res_path, json.dumps(r))
    except OSError as e:
        log.error("res", "cannot store the reservation: %r" % (e,))
    log.info("res", "reservation " + why)
    station.poke_status()


def request(station, p):
    """ReserveNow (p has expiryDate) or CancelReservation."""
    conn = station.connector
    r = conn.reserved
    rid = p["reservationId"]
    if "expiryDate" not in p:
        if r is None or r["id"] != rid:
            return {"status": "Rejected"}
        store(station, (None, "%d cancelled" % rid))
        return {"status": "Accepted"}
    cid = p["connectorId"]
    cfg = station.cfg
    exp = isotime.parse(p["expiryDate"])
    if (not connector_known(cfg, cid, cfg.get("ReserveConnectorZeroSupported"))
            or exp is None or exp <= station.board.clock.now()):
        return {"status": "Rejected"}
    st = conn.status_name()
    if st == "Faulted" or st == "Unavailable":
        return {"status": st}
    if conn.phase != IDLE or (r is not None and r["id"] != rid):
        return {"status": "Occupied"}
    # A reservationId we hold is replaced by the new request (OCPP 5.13).
    store(station, ({"id": rid, "cid": cid or conn.cid, "tag": p["idTag"],
                     "parent": p.get("parentIdTag"), "exp": exp}, "%d accepted" % rid))
    return {"status": "Accepted"}
