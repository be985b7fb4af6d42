# Configuration parameters as data: the integration guide's "Supported
# Configuration Parameters" table plus the keys the firmware itself needs.
# Interpreted by firmware/config.py; documented in docs/configuration.md.
#
# One row per key, a plain tuple (compact in RAM, no work at import time):
#   (key, type, default, unit, flags, lo, hi, check)
# type  T_BOOL | T_INT | T_STR | T_CSL (comma-separated list, kept as a str)
# flags F_RO (CSMS may not change), F_WO (never reported by GetConfiguration),
#       F_REBOOT (ChangeConfiguration answers RebootRequired),
#       F_EMPTY (a str may also be "", e.g. "not configured")
# lo/hi T_INT: inclusive value range.  T_STR: length range (bytes, UTF-8).
#       T_CSL: lo unused, hi = key of the companion ...MaxLength (item count).
# check T_STR: C_PHASE, C_URL, C_ID, C_TEXT.  T_CSL: C_MEASURAND, C_PROFILE,
#       C_ROTATION.  0 otherwise.

T_BOOL = 0
T_INT = 1
T_STR = 2
T_CSL = 3

F_RO = 1
F_WO = 2
F_REBOOT = 4
F_EMPTY = 8

C_NONE = 0
C_TEXT = 1       # printable text (no control characters)
C_URL = 2        # lib.url.parse must accept it
C_ID = 3         # charge point identity (URL path segment, basic-auth user name)
C_PHASE = 4      # one of PHASES
C_MEASURAND = 5  # items from MEASURANDS
C_PROFILE = 6    # items from FEATURE_PROFILES
C_ROTATION = 7   # OCPP ConnectorPhaseRotation syntax

VARIANTS = ("business", "homeplus")
DEFAULT_VARIANT = "business"

# Longest value of any key (OCPP ChangeConfiguration value is CiString500).
VALUE_MAX = 500
INT32_MAX = 2147483647
DAY = 86400

# OCPP 1.6 Measurand enumeration.
MEASURANDS = (
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "Power.Factor",
    "Current.Import",
    "Current.Export",
    "Current.Offered",
    "Voltage",
    "Frequency",
    "Temperature",
    "SoC",
    "RPM",
)

# OCPP 1.6 feature profile names.
FEATURE_PROFILES = (
    "Core",
    "FirmwareManagement",
    "LocalAuthListManagement",
    "Reservation",
    "SmartCharging",
    "RemoteTrigger",
)

PHASES = ("Single.Phase", "Three.Phase")

# ConnectorPhaseRotation: whole value, or per connector "N.<one of ROTATIONS>".
ROTATIONS = ("RST", "RTS", "SRT", "STR", "TRS", "TSR", "NotApplicable", "Unknown")

ALIGNED_BUSINESS = (
    "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Energy.Reactive.Import.Register,Temperature,Power.Reactive.Import,Frequency,"
    "Power.Factor,Current.Offered,Power.Offered"
)
ALIGNED_HOMEPLUS = (
    "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Temperature,Current.Offered,Power.Offered"
)
# The guide's footnote ** is missing: its "Meter Value Measurement Specifics" list.
SAMPLED_DEFAULT = (
    "Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Temperature,Frequency,Power.Factor,Current.Offered"
)
PROFILES_DEFAULT = "Core,FirmwareManagement,LocalAuthListManagement,Reservation,RemoteTrigger"

# Placeholder default replaced by the board's unique id (Config device_id).
DEVICE_ID = None

_ML = 1000  # upper bound of the *MaxLength capability keys

TABLE = (
    ("AllowOfflineTxForUnknownId", T_BOOL, False, "", 0, 0, 0, 0),
    ("AuthorizationCacheEnabled", T_BOOL, True, "", 0, 0, 0, 0),
    ("AuthorizeRemoteTxRequests", T_BOOL, False, "", 0, 0, 0, 0),
    ("MaxCurrentLimit", T_INT, 32, "A", 0, 6, 32, 0),
    ("ClockAlignedDataInterval", T_INT, 0, "s", 0, 0, DAY, 0),
    ("ConnectionTimeOut", T_INT, 60, "s", 0, 1, DAY, 0),
    ("ConnectorPhaseRotation", T_CSL, "NotApplicable", "", 0, 0,
     "ConnectorPhaseRotationMaxLength", C_ROTATION),
    ("ConnectorPhaseRotationMaxLength", T_INT, 25, "", F_RO, 1, _ML, 0),
    ("DefaultIdTag", T_STR, "", "", F_EMPTY, 1, 20, C_TEXT),
    ("FreeMode", T_BOOL, False, "", 0, 0, 0, 0),
    ("GetConfigurationMaxKeys", T_INT, 50, "", F_RO, 1, _ML, 0),
    ("HeartbeatInterval", T_INT, 300, "s", 0, 0, 7 * DAY, 0),
    ("LocalAuthListEnabled", T_BOOL, True, "", 0, 0, 0, 0),
    ("LocalAuthListMaxLength", T_INT, 1000, "", F_RO, 0, 10000, 0),
    ("LocalAuthorizeOffline", T_BOOL, True, "", 0, 0, 0, 0),
    ("LocalPreAuthorize", T_BOOL, False, "", 0, 0, 0, 0),
    ("MaxEnergyOnInvalidId", T_INT, 0, "Wh", 0, 0, INT32_MAX, 0),
    ("MeterValuesAlignedData", T_CSL, ALIGNED_BUSINESS, "", 0, 0,
     "MeterValuesAlignedDataMaxLength", C_MEASURAND),
    ("MeterValuesAlignedDataMaxLength", T_INT, 500, "", F_RO, 1, _ML, 0),
    ("MeterValueSampleInterval", T_INT, 60, "s", 0, 0, DAY, 0),
    ("MeterValuesSampledData", T_CSL, SAMPLED_DEFAULT, "", F_RO, 0,
     "MeterValuesSampledDataMaxLength", C_MEASURAND),
    ("MeterValuesSampledDataMaxLength", T_INT, 500, "", F_RO, 1, _ML, 0),
    ("NumberOfConnectors", T_INT, 1, "", F_RO | F_REBOOT, 1, 8, 0),
    ("OcppChargerId", T_STR, DEVICE_ID, "", F_REBOOT, 1, 48, C_ID),
    ("OcppServerAddress", T_STR, "", "", F_REBOOT | F_EMPTY, 1, VALUE_MAX, C_URL),
    ("OnPowerLossRestart", T_BOOL, False, "", 0, 0, 0, 0),
    ("Phase", T_STR, "Single.Phase", "", 0, 1, 20, C_PHASE),
    ("ResetRetries", T_INT, 1, "", 0, 0, 10, 0),
    ("SendLocalListMaxLength", T_INT, 30, "", F_RO, 0, 10000, 0),
    ("StopTransactionOnEVSideDisconnect", T_BOOL, True, "", 0, 0, 0, 0),
    ("StopTransactionOnInvalidId", T_BOOL, True, "", 0, 0, 0, 0),
    ("StopTxnAlignedData", T_CSL, "Energy.Active.Import.Register", "", 0, 0,
     "StopTxnAlignedDataMaxLength", C_MEASURAND),
    ("StopTxnAlignedDataMaxLength", T_INT, 500, "", F_RO, 1, _ML, 0),
    ("StopTxnSampledData", T_CSL, "Energy.Active.Import.Register", "", 0, 0,
     "StopTxnSampledDataMaxLength", C_MEASURAND),
    ("StopTxnSampledDataMaxLength", T_INT, 500, "", F_RO, 1, _ML, 0),
    ("SupportedFeatureProfiles", T_CSL, PROFILES_DEFAULT, "", F_RO, 0,
     "SupportedFeatureProfilesMaxLength", C_PROFILE),
    ("SupportedFeatureProfilesMaxLength", T_INT, 15, "", F_RO, 1, _ML, 0),
    ("suspendedEVTimeout", T_INT, 900, "s", 0, 0, DAY, 0),
    ("TransactionMessageAttempts", T_INT, 3, "", 0, 0, 100, 0),
    ("TransactionMessageRetryInterval", T_INT, 30, "s", 0, 0, DAY, 0),
    ("UnlockConnectorOnEVSideDisconnect", T_BOOL, True, "", 0, 0, 0, 0),
    ("WiFiConnect", T_BOOL, False, "", F_REBOOT, 0, 0, 0),
    ("WiFiPass", T_STR, "N/A", "", F_WO | F_REBOOT | F_EMPTY, 1, 64, C_TEXT),
    ("WiFiSsid", T_STR, "N/A", "", F_REBOOT | F_EMPTY, 1, 32, C_TEXT),
    # Keys the firmware needs beyond the guide's table.
    ("AuthorizationKey", T_STR, "", "", F_WO | F_REBOOT | F_EMPTY, 16, 40, C_TEXT),
    ("WebSocketPingInterval", T_INT, 60, "s", 0, 0, DAY, 0),
    ("ReserveConnectorZeroSupported", T_BOOL, False, "", F_RO, 0, 0, 0),
)

# Per-variant defaults that differ from the TABLE column: (variant, key, value).
VARIANT_DEFAULTS = (
    ("homeplus", "MeterValuesAlignedData", ALIGNED_HOMEPLUS),
)
