# OCPP 1.6 request payloads the central system may send us, in lib.schema's
# compact form (field, type, required, extra). Lengths and enums follow the
# OCPP 1.6 JSON schemas, which forbid unknown fields.

_ID = 20  # CiString20Type (idTag)

_PERIOD = (
    ("startPeriod", "i", True, None),
    ("limit", "n", True, None),
    ("numberPhases", "i", False, None),
)
_SCHEDULE = (
    ("duration", "i", False, None),
    ("startSchedule", "t", False, None),
    ("chargingRateUnit", "e", True, ("A", "W")),
    ("chargingSchedulePeriod", "ao", True, _PERIOD),
    ("minChargingRate", "n", False, None),
)
_PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
_PROFILE = (
    ("chargingProfileId", "i", True, None),
    ("transactionId", "i", False, None),
    ("stackLevel", "i", True, None),
    ("chargingProfilePurpose", "e", True, _PURPOSES),
    ("chargingProfileKind", "e", True, ("Absolute", "Recurring", "Relative")),
    ("recurrencyKind", "e", False, ("Daily", "Weekly")),
    ("validFrom", "t", False, None),
    ("validTo", "t", False, None),
    ("chargingSchedule", "o", True, _SCHEDULE),
)
_ID_TAG_INFO = (
    ("expiryDate", "t", False, None),
    ("parentIdTag", "s", False, _ID),
    ("status", "e", True, ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")),
)

REQUESTS = {
    "CancelReservation": (("reservationId", "i", True, None),),
    "ChangeAvailability": (
        ("connectorId", "i", True, None),
        ("type", "e", True, ("Inoperative", "Operative")),
    ),
    "ChangeConfiguration": (("key", "s", True, 50), ("value", "s", True, 500)),
    "ClearCache": (),
    "ClearChargingProfile": (
        ("id", "i", False, None),
        ("connectorId", "i", False, None),
        ("chargingProfilePurpose", "e", False, _PURPOSES),
        ("stackLevel", "i", False, None),
    ),
    "DataTransfer": (
        ("vendorId", "s", True, 255),
        ("messageId", "s", False, 50),
        ("data", "s", False, 0),
    ),
    "GetCompositeSchedule": (
        ("connectorId", "i", True, None),
        ("duration", "i", True, None),
        ("chargingRateUnit", "e", False, ("A", "W")),
    ),
    "GetConfiguration": (("key", "as", False, 50),),
    "GetDiagnostics": (
        ("location", "u", True, 0),
        ("retries", "i", False, None),
        ("retryInterval", "i", False, None),
        ("startTime", "t", False, None),
        ("stopTime", "t", False, None),
    ),
    "GetLocalListVersion": (),
    "RemoteStartTransaction": (
        ("connectorId", "i", False, None),
        ("idTag", "s", True, _ID),
        ("chargingProfile", "o", False, _PROFILE),
    ),
    "RemoteStopTransaction": (("transactionId", "i", True, None),),
    "ReserveNow": (
        ("connectorId", "i", True, None),
        ("expiryDate", "t", True, None),
        ("idTag", "s", True, _ID),
        ("parentIdTag", "s", False, _ID),
        ("reservationId", "i", True, None),
    ),
    "Reset": (("type", "e", True, ("Hard", "Soft")),),
    "SendLocalList": (
        ("listVersion", "i", True, None),
        ("localAuthorizationList", "ao", False, (("idTag", "s", True, _ID), ("idTagInfo", "o", False, _ID_TAG_INFO))),
        ("updateType", "e", True, ("Differential", "Full")),
    ),
    "SetChargingProfile": (
        ("connectorId", "i", True, None),
        ("csChargingProfiles", "o", True, _PROFILE),
    ),
    "TriggerMessage": (
        ("requestedMessage", "e", True, (
            "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
            "Heartbeat", "MeterValues", "StatusNotification")),
        ("connectorId", "i", False, None),
    ),
    "UnlockConnector": (("connectorId", "i", True, None),),
    "UpdateFirmware": (
        ("location", "u", True, 0),
        ("retries", "i", False, None),
        ("retrieveDate", "t", True, None),
        ("retryInterval", "i", False, None),
    ),
}
