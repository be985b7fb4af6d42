"""Reservation profile on the bench against the strict central system:
ReserveNow (Accepted, Faulted, Occupied, Rejected, Unavailable, replacement
by reservationId), CancelReservation, the Reserved state and its expiry, who
may start (the reserved card, its group), the guide's FAUTH1 for a stranger,
RemoteStartTransaction for another idTag, and a reservation across a power cut."""
import datetime
import time

from tests.integration.rig import Rig


def iso_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def reserve(rig, rid, tag, seconds=600, connector=1, parent=None):
    p = {"connectorId": connector, "expiryDate": iso_in(seconds), "idTag": tag, "reservationId": rid}
    if parent:
        p["parentIdTag"] = parent
    return rig.call("ReserveNow", p)["status"]


def cancel(rig, rid):
    return rig.call("CancelReservation", {"reservationId": rid})["status"]


def fauth1(rig, tag):
    """tag presented: refused with the guide's FAUTH1 signal, nothing started."""
    rig.card(tag)
    st = rig.wait_bench(lambda s: "FAUTH1" in s["signals"], timeout=5, what="FAUTH1 for %s" % tag)
    time.sleep(0.5)
    st = rig.status()
    return st["lock"] is False and st["duty"] is None


def test_reserve_now_and_cancel_statuses(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        assert reserve(rig, 1, "TAG1", connector=0) == "Rejected"   # ReserveConnectorZeroSupported false
        assert reserve(rig, 1, "TAG1", connector=2) == "Rejected"   # no such connector
        assert reserve(rig, 1, "TAG1", seconds=-60) == "Rejected"   # already expired
        t0 = time.monotonic()
        assert reserve(rig, 1, "TAG1") == "Accepted"
        rig.wait_status(1, "Reserved", since_t=t0)
        assert reserve(rig, 2, "TAG2") == "Occupied"                # held by reservation 1
        assert reserve(rig, 1, "TAG2") == "Accepted"                # same id: replaced
        assert fauth1(rig, "TAG1")                                  # TAG1 is the stranger now
        assert cancel(rig, 99) == "Rejected"
        t1 = time.monotonic()
        assert cancel(rig, 1) == "Accepted"
        rig.wait_status(1, "Available", since_t=t1)
        assert cancel(rig, 1) == "Rejected"
        rig.plug()
        rig.wait_status(1, "Preparing", since_t=t1)
        assert reserve(rig, 3, "TAG1") == "Occupied"
        rig.unplug()
        t2 = time.monotonic()
        rig.cmd(cmd="button", name="emergency", pressed=True)
        rig.wait_status(1, "Faulted", since_t=t2)
        assert reserve(rig, 4, "TAG1") == "Faulted"
        t3 = time.monotonic()  # (the unplug's Available may come after t2, before the debounced Faulted)
        rig.cmd(cmd="button", name="emergency", pressed=False)
        rig.wait_status(1, "Available", since_t=t3)
        assert rig.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})["status"] == "Accepted"
        assert reserve(rig, 5, "TAG1") == "Unavailable"
        assert rig.calls("StartTransaction") == []


def test_reserved_card_starts_with_reservation_id_stranger_gets_fauth1(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        t0 = time.monotonic()
        assert reserve(rig, 7, "TAG1") == "Accepted"
        rig.wait_status(1, "Reserved", since_t=t0)
        rig.plug()
        assert fauth1(rig, "TAG2")
        assert rig.calls("Authorize", since_t=t0) == []  # refused by the guide's rule, nobody asked
        assert rig.call("RemoteStartTransaction", {"idTag": "TAG2", "connectorId": 1})["status"] == "Rejected"
        rig.card("TAG1")
        start = rig.wait_call("StartTransaction", since_t=t0)
        assert start["idTag"] == "TAG1" and start["reservationId"] == 7
        rig.ev("C")
        rig.wait_relay(True)
        # The reservation ended with the start: nothing to cancel any more.
        assert cancel(rig, 7) == "Rejected"


def test_same_group_card_and_remote_start_take_the_reservation(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        assert reserve(rig, 8, "CHILD1", parent="FLEET") == "Accepted"
        rig.plug()
        t0 = time.monotonic()
        rig.card("CHILD2")  # same parentIdTag FLEET (the central system says so)
        start = rig.wait_call("StartTransaction", since_t=t0)
        assert start["idTag"] == "CHILD2" and start["reservationId"] == 8
        rig.card("CHILD2")
        rig.wait_call("StopTransaction", since_t=t0)
        rig.unplug()
        t1 = time.monotonic()
        rig.wait_status(1, "Available", since_t=t1)
        # The reserved idTag by RemoteStartTransaction.
        assert reserve(rig, 9, "TAG2") == "Accepted"
        assert rig.call("RemoteStartTransaction", {"idTag": "TAG2"})["status"] == "Accepted"
        rig.plug()
        start = rig.wait_call("StartTransaction", since_t=t1)
        assert start["idTag"] == "TAG2" and start["reservationId"] == 9


def test_reservation_expires_to_available_and_while_preparing_for_someone_else(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        t0 = time.monotonic()
        assert reserve(rig, 11, "TAG1", seconds=3) == "Accepted"
        rig.wait_status(1, "Reserved", since_t=t0)
        back = rig.csms.wait_message("StatusNotification", since_t=t0 + 0.5, timeout=8,
                                     where=lambda p: p["connectorId"] == 1 and p["status"] == "Available")
        assert 1.5 <= back["t"] - t0 <= 5.5
        assert cancel(rig, 11) == "Rejected"
        t1 = time.monotonic()
        assert reserve(rig, 12, "TAG1", seconds=4) == "Accepted"
        rig.plug()  # someone else's car
        rig.wait_status(1, "Preparing", since_t=t1)
        assert fauth1(rig, "TAG2")
        time.sleep(max(0, t1 + 5 - time.monotonic()))
        assert cancel(rig, 12) == "Rejected"  # expired
        rig.card("TAG2")
        start = rig.wait_call("StartTransaction", since_t=t1)
        assert start["idTag"] == "TAG2" and "reservationId" not in start


def test_reservation_survives_a_power_cut(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        t0 = time.monotonic()
        assert reserve(rig, 21, "TAG1") == "Accepted"
        rig.wait_status(1, "Reserved", since_t=t0)
        t_cut = time.monotonic()
        rig.cmd(cmd="power", on=False)
        rig.cmd(cmd="power", on=True)
        boot = rig.csms.wait_message("BootNotification", since_t=t_cut, timeout=30)
        rig.wait_status(1, "Reserved", since_t=boot["t"], timeout=30)
        rig.plug()
        assert fauth1(rig, "TAG2")
        rig.card("TAG1")
        start = rig.wait_call("StartTransaction", since_t=t_cut)
        assert start["idTag"] == "TAG1" and start["reservationId"] == 21
