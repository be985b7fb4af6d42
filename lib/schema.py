# Compact request validation for incoming OCPP-J CALLs. A schema is a tuple of
# field specs (name, type, required, extra) so it costs little RAM; the result
# is the OCPP-J CALLERROR code that describes the first problem found.
#
# types: "s" string (extra: max length), "i" integer, "n" number, "b" boolean,
# "t" dateTime string, "e" enum (extra: allowed strings), "o" object (extra:
# nested schema), "ao" array of objects (extra: nested schema), "as" array of
# strings (extra: max length of each), "u" URI string.
from lib import isotime


class SchemaError(Exception):
    def __init__(self, code, description):
        super().__init__(description)
        self.code = code
        self.description = description


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check(path, ftype, extra, v):
    if ftype == "s" or ftype == "u":
        if not isinstance(v, str):
            raise SchemaError("TypeConstraintViolation", path + " must be a string")
        if extra and len(v) > extra:
            raise SchemaError("PropertyConstraintViolation", "%s longer than %d" % (path, extra))
    elif ftype == "i":
        if not _is_int(v):
            raise SchemaError("TypeConstraintViolation", path + " must be an integer")
    elif ftype == "n":
        if not (_is_int(v) or isinstance(v, float)):
            raise SchemaError("TypeConstraintViolation", path + " must be a number")
    elif ftype == "b":
        if not isinstance(v, bool):
            raise SchemaError("TypeConstraintViolation", path + " must be a boolean")
    elif ftype == "t":
        if not isinstance(v, str):
            raise SchemaError("TypeConstraintViolation", path + " must be a dateTime string")
        if isotime.parse(v) is None:
            raise SchemaError("PropertyConstraintViolation", path + " is not an ISO 8601 dateTime")
    elif ftype == "e":
        if not isinstance(v, str):
            raise SchemaError("TypeConstraintViolation", path + " must be a string")
        if v not in extra:
            raise SchemaError("PropertyConstraintViolation", "%s: %s not allowed" % (path, v))
    elif ftype == "o":
        validate(extra, v, path + ".")
    elif ftype == "ao" or ftype == "as":
        if not isinstance(v, list):
            raise SchemaError("TypeConstraintViolation", path + " must be an array")
        for i, item in enumerate(v):
            p = "%s[%d]" % (path, i)
            if ftype == "ao":
                validate(extra, item, p + ".")
            else:
                _check(p, "s", extra, item)


def validate(schema, payload, prefix=""):
    """Raise SchemaError for the first violation of schema by payload."""
    if not isinstance(payload, dict):
        raise SchemaError("TypeConstraintViolation", (prefix or "payload ") + "must be an object")
    known = 0
    for name, ftype, required, extra in schema:
        if name in payload:
            known += 1
            _check(prefix + name, ftype, extra, payload[name])
        elif required:
            raise SchemaError("ProtocolError", "missing required field " + prefix + name)
    if known != len(payload):
        names = [f[0] for f in schema]
        for k in payload:
            if k not in names:
                raise SchemaError("FormationViolation", "unexpected field " + prefix + str(k))


def check(schema, payload):
    """(code, description) of the first violation, or None."""
    try:
        validate(schema, payload)
    except SchemaError as e:
        return (e.code, e.description)
    return None
