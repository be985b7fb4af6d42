# OCPP-J (JSON over WebSocket) message framing: [2,id,action,payload] CALL,
# [3,id,payload] CALLRESULT, [4,id,code,description,details] CALLERROR.
import json
import os
import binascii

CALL = 2
RESULT = 3
ERROR = 4

# Error codes of OCPP-J 1.6 section 4.2.3 (the spelling "Occurence" is the spec's).
ERROR_CODES = (
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError",
)

MAX_ID_LEN = 36


class FrameError(Exception):
    """A message that cannot be processed; carries the CALLERROR to answer with.

    uid is None when no id could be recovered (then nothing identifies a
    request to answer, so the message is only logged)."""

    def __init__(self, code, description, uid=None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.uid = uid


_counter = 0
_prefix = None


def new_id():
    """Unique message id: random per boot prefix + counter, well under 36 chars."""
    global _counter, _prefix
    if _prefix is None:
        _prefix = binascii.hexlify(os.urandom(4)).decode()
    _counter += 1
    return "%s-%d" % (_prefix, _counter)


def call(uid, action, payload):
    return json.dumps([CALL, uid, action, payload])


def result(uid, payload):
    return json.dumps([RESULT, uid, payload])


def error(uid, code, description="", details=None):
    return json.dumps([ERROR, uid, code, description[:255], details if details is not None else {}])


def _salvage_id(text):
    # Best effort: a broken message that still starts like [2,"id" gets its answer.
    i = text.find('"')
    if i < 0:
        return None
    j = text.find('"', i + 1)
    if j < 0 or j - i - 1 > MAX_ID_LEN:
        return None
    head = text[:i].replace(" ", "").replace("\t", "").replace("\n", "").replace("\r", "")
    if head not in ("[2,", "[3,", "[4,"):
        return None
    return text[i + 1:j]


def parse(text):
    """Decode one OCPP-J message.

    Returns (kind, uid, action, payload) for CALL, (kind, uid, None, payload) for
    CALLRESULT and (kind, uid, code, (description, details)) for CALLERROR.
    Raises FrameError with the CALLERROR code to answer for a broken message."""
    try:
        msg = json.loads(text)
    except ValueError:
        raise FrameError("FormationViolation", "message is not valid JSON", _salvage_id(text))
    if not isinstance(msg, list) or len(msg) < 3:
        raise FrameError("FormationViolation", "message is not an OCPP-J array", None)
    kind, uid = msg[0], msg[1]
    if not isinstance(uid, str) or not uid or len(uid) > MAX_ID_LEN:
        raise FrameError("FormationViolation", "bad message id", None)
    if kind == CALL:
        if len(msg) != 4:
            raise FrameError("FormationViolation", "CALL must have 4 elements", uid)
        action, payload = msg[2], msg[3]
        if not isinstance(action, str) or not action:
            raise FrameError("FormationViolation", "action must be a string", uid)
        if not isinstance(payload, dict):
            raise FrameError("FormationViolation", "payload must be an object", uid)
        return CALL, uid, action, payload
    if kind == RESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise FrameError("FormationViolation", "bad CALLRESULT", None)
        return RESULT, uid, None, msg[2]
    if kind == ERROR:
        if len(msg) < 4 or not isinstance(msg[2], str):
            raise FrameError("FormationViolation", "bad CALLERROR", None)
        desc = msg[3] if isinstance(msg[3], str) else ""
        details = msg[4] if len(msg) > 4 else {}
        return ERROR, uid, msg[2], (desc, details)
    raise FrameError("FormationViolation", "unknown message type", None)
