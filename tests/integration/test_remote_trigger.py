"""RemoteTrigger profile on the bench against the strict central system: every
requestedMessage, with and without connectorId, sent after the Accepted
answer; a connector the charger does not have is Rejected."""
import time

from tests.integration.rig import Rig
from tools.csms import Delayed

MESSAGES = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
            "Heartbeat", "MeterValues", "StatusNotification")


def answer_time(csms, since_t):
    return [m["t"] for m in csms.messages
            if m["dir"] == "in" and m["type"] == 3 and m["action"] == "TriggerMessage" and m["t"] >= since_t][-1]


def test_trigger_message_every_message_with_and_without_connector(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        for what in MESSAGES:
            for connector in (None, 0, 1):
                p = {"requestedMessage": what}
                if connector is not None:
                    p["connectorId"] = connector
                t0 = time.monotonic()
                assert rig.call("TriggerMessage", p)["status"] == "Accepted", p
                sent = rig.csms.wait_message(what, since_t=t0, where=lambda q, c=connector, w=what:
                                             w not in ("StatusNotification", "MeterValues")
                                             or c is None or q["connectorId"] == c)
                assert sent["t"] >= answer_time(csms, t0), p  # the answer first, then the message
                if what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
                    assert sent["payload"] == {"status": "Idle"}
                if what == "StatusNotification" and connector == 1:
                    assert sent["payload"]["status"] == "Available"
        t_rej = time.monotonic()
        for what in MESSAGES:
            assert rig.call("TriggerMessage", {"requestedMessage": what, "connectorId": 2})["status"] == "Rejected"
        time.sleep(0.5)
        assert [m for m in csms.messages if m["t"] >= t_rej and m["dir"] == "in" and m["type"] == 2
                and m["action"] in MESSAGES] == []


def test_a_burst_of_triggers_is_all_accepted_and_answered_by_a_message_after_the_last(tmp_path, csms):
    """TriggerMessage as fast as the charger answers (tools/bench/throughput.py's
    burst): every request is Accepted and the message follows the last answer.
    Requests that come while the same message is still to be sent share it
    (one task per message, not per request: a task each ran the 104K heap
    out of memory under the burst, and CALLs were answered InternalError)."""
    with Rig(tmp_path, csms) as rig:
        for p in ({"requestedMessage": "Heartbeat"}, {"requestedMessage": "StatusNotification", "connectorId": 1}):
            t0 = time.monotonic()
            for _ in range(30):
                assert rig.call("TriggerMessage", p)["status"] == "Accepted", p
            t_last = answer_time(csms, t0)
            rig.csms.wait_message(p["requestedMessage"], since_t=t_last, timeout=5)
            sent = [m for m in csms.messages if m["t"] >= t0 and m["dir"] == "in" and m["type"] == 2
                    and m["action"] == p["requestedMessage"]]
            assert 1 <= len(sent) <= 30



def test_triggers_while_the_message_is_unanswered_cost_one_more_message_not_one_each(tmp_path, csms):
    """The central system takes 0.2 s to answer each Heartbeat and sends
    TriggerMessage(Heartbeat) every 0.1 s for 1.5 s: every request is Accepted,
    and the charger sends about one Heartbeat per answer it waits for (one
    more after the one on its way, made after the requests), not a task and a
    Heartbeat per request: those piled up on the heap while the answers were
    slow, and were all sent, one after another, long after the requests
    (found when tools/bench/throughput.py's burst ran out of memory at 88K)."""
    hold = 0.2
    with Rig(tmp_path, csms) as rig:
        csms.set_response("Heartbeat", Delayed(hold, None))
        t0 = time.monotonic()
        for _ in range(15):
            assert rig.call("TriggerMessage", {"requestedMessage": "Heartbeat"})["status"] == "Accepted"
            time.sleep(0.1)
        t_last = answer_time(csms, t0)
        time.sleep(16 * hold + 1)  # what a message per request would have needed to be sent
        sent = [m["t"] for m in csms.messages if m["t"] >= t0 and m["dir"] == "in" and m["type"] == 2
                and m["action"] == "Heartbeat"]
        assert 1 <= len(sent) <= (t_last - t0) / hold + 3, (len(sent), t_last - t0)
        assert sent[-1] >= t_last  # the last request has a Heartbeat made after it
