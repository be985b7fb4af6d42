# OCPP 1.6 request payloads the central system may send us, in lib.schema's
# form (field, type, required, extra), kept as compact JSON text: a string
# constant costs only its bytes on the device, and a schema is parsed only when
# its request arrives. Lengths and enums follow the OCPP 1.6 JSON schemas
# (tests/unit/test_ocpp_schemas.py checks them against the official files).
import json

from lib import ocppj, schema as validation
from micropython import const

# chargingProfile, shared by RemoteStartTransaction and SetChargingProfile ("@P").
_PROFILE = const('[["chargingProfileId","i",1,null],["transactionId","i",0,null],["stackLevel","i",1,null],["chargingProfilePurpose","e",1,["ChargePointMaxProfile","TxDefaultProfile","TxProfile"]],["chargingProfileKind","e",1,["Absolute","Recurring","Relative"]],["recurrencyKind","e",0,["Daily","Weekly"]],["validFrom","t",0,null],["validTo","t",0,null],["chargingSchedule","o",1,[["duration","i",0,null],["startSchedule","t",0,null],["chargingRateUnit","e",1,["A","W"]],["chargingSchedulePeriod","ao",1,[["startPeriod","i",1,null],["limit","n",1,null],["numberPhases","i",0,null]]],["minChargingRate","n",0,null]]]]')

# One text, a line per request: "Action schema" (one string object where a
# dict of 19 texts held 19 and its table: about 500 bytes of heap).
_REQUESTS = const(
    "\n"
    'CancelReservation [["reservationId","i",1,null]]\n'
    'ChangeAvailability [["connectorId","i",1,null],["type","e",1,["Inoperative","Operative"]]]\n'
    'ChangeConfiguration [["key","s",1,50],["value","s",1,500]]\n'
    'ClearCache []\n'
    'ClearChargingProfile [["id","i",0,null],["connectorId","i",0,null],["chargingProfilePurpose","e",0,["ChargePointMaxProfile","TxDefaultProfile","TxProfile"]],["stackLevel","i",0,null]]\n'
    'DataTransfer [["vendorId","s",1,255],["messageId","s",0,50],["data","s",0,0]]\n'
    'GetCompositeSchedule [["connectorId","i",1,null],["duration","i",1,null],["chargingRateUnit","e",0,["A","W"]]]\n'
    'GetConfiguration [["key","as",0,50]]\n'
    'GetDiagnostics [["location","u",1,0],["retries","i",0,null],["retryInterval","i",0,null],["startTime","t",0,null],["stopTime","t",0,null]]\n'
    'GetLocalListVersion []\n'
    'RemoteStartTransaction [["connectorId","i",0,null],["idTag","s",1,20],["chargingProfile","o",0,"@P"]]\n'
    'RemoteStopTransaction [["transactionId","i",1,null]]\n'
    'ReserveNow [["connectorId","i",1,null],["expiryDate","t",1,null],["idTag","s",1,20],["parentIdTag","s",0,20],["reservationId","i",1,null]]\n'
    'Reset [["type","e",1,["Hard","Soft"]]]\n'
    'SendLocalList [["listVersion","i",1,null],["localAuthorizationList","ao",0,[["idTag","s",1,20],["idTagInfo","o",0,[["expiryDate","t",0,null],["parentIdTag","s",0,20],["status","e",1,["Accepted","Blocked","Expired","Invalid","ConcurrentTx"]]]]]],["updateType","e",1,["Differential","Full"]]]\n'
    'SetChargingProfile [["connectorId","i",1,null],["csChargingProfiles","o",1,"@P"]]\n'
    'TriggerMessage [["requestedMessage","e",1,["BootNotification","DiagnosticsStatusNotification","FirmwareStatusNotification","Heartbeat","MeterValues","StatusNotification"]],["connectorId","i",0,null]]\n'
    'UnlockConnector [["connectorId","i",1,null]]\n'
    'UpdateFirmware [["location","u",1,0],["retries","i",0,null],["retrieveDate","t",1,null],["retryInterval","i",0,null]]\n'
)


def _text(action):
    """The schema text of a request, as a view into _REQUESTS (a copy needed
    a heap block of its length, up to 185 bytes, for every request), or None
    for an unknown action."""
    if " " in action or "\n" in action:  # would match across lines
        return None
    i = _REQUESTS.find("\n" + action + " ")
    if i < 0:
        return None
    i += len(action) + 2
    # the constant's bytes where they are (flash on the board)
    return ocppj.buffer(_REQUESTS)[i:_REQUESTS.index("\n", i)]


def schema(action):
    """The schema of a CSMS-initiated request, or None for an unknown action."""
    text = _text(action)
    return None if text is None else _parse(text)


def _parse(text):
    s = ocppj.loads(text)
    for f in s:
        if f[3] == "@P":
            # Parsed in place: splicing the texts first would need one block
            # of ~700 bytes, which a fragmented board heap may not have.
            f[3] = json.loads(_PROFILE)
    return s


def check(action, payload, handled):
    """(CALLERROR code, description) for a request we cannot take, or None."""
    text = _text(action)
    if text is None:
        return ("NotImplemented", "unknown action " + action)
    if not handled:
        return ("NotSupported", action + " not supported")
    return validation.check(_parse(text), payload)  # parsed only for requests we take


def actions():
    return [line[:line.index(" ")] for line in _REQUESTS.split("\n") if line]
