"""What a fake central system at the ChargePoint.call boundary receives: the
payload encoded as the firmware puts it on the wire (ocppj.Out, streamed parts
included), then decoded."""
import json

from lib import ocppj


def as_sent(action, payload):
    out = ocppj.Out(16384)
    msg = json.loads(bytes(out.encode([ocppj.CALL, "uid", action, payload])))
    return msg[3]
