# Configuration parameters as data: the integration guide's "Supported
# Configuration Parameters" table plus the keys the firmware itself needs.
# Interpreted by firmware/config.py; documented in docs/configuration.md.
#
# Memory: the table is ONE str constant (a .mpy constant costs its bytes, a
# tuple of tuples costs a heap object per row and per value). A row is decoded
# on demand by row(p), p = position of the row in TAB (see find()). The public
# names of the old tuple form (TABLE, MEASURANDS, ...) are still served, built
# on access by __getattr__ below, for tests and host tools; the firmware does
# not use them.
#
# TAB: one line per key, fields separated by "|", trailing empty fields omitted:
#   key|type|default|flags|lo|hi|check|unit
# row(p) returns the old 8-tuple (key, type, default, unit, flags, lo, hi, check):
# type  T_BOOL | T_INT | T_STR | T_CSL (comma-separated list, kept as a str)
# default  T_BOOL 0/1, T_INT decimal, else the text; "=NAME" means the module
#       constant NAME (one copy of the long lists; DEVICE_ID is None).
# flags F_RO (CSMS may not change), F_WO (never reported by GetConfiguration),
#       F_REBOOT (ChangeConfiguration answers RebootRequired),
#       F_EMPTY (a str may also be "", e.g. "not configured")
# lo/hi T_INT: inclusive value range.  T_STR: length range (bytes, UTF-8).
#       T_CSL: lo unused, hi = key of the companion ...MaxLength (item count),
#       always key + "MaxLength" (not stored in TAB).
# check T_STR: C_PHASE, C_URL, C_ID, C_TEXT.  T_CSL: C_MEASURAND, C_PROFILE,
#       C_ROTATION.  0 otherwise.
from micropython import const

T_BOOL = const(0)
T_INT = const(1)
T_STR = const(2)
T_CSL = const(3)

F_RO = const(1)
F_WO = const(2)
F_REBOOT = const(4)
F_EMPTY = const(8)

C_NONE = const(0)
C_TEXT = const(1)       # printable text (no control characters)
C_URL = const(2)        # lib.url.parse must accept it
C_ID = const(3)         # charge point identity (URL path segment, basic-auth user name)
C_PHASE = const(4)      # one of PHASES
C_MEASURAND = const(5)  # items from MEASURANDS
C_PROFILE = const(6)    # items from FEATURE_PROFILES
C_ROTATION = const(7)   # OCPP ConnectorPhaseRotation syntax

VARIANTS = ("business", "homeplus")
DEFAULT_VARIANT = "business"

# Longest value of any key (OCPP ChangeConfiguration value is CiString500).
VALUE_MAX = const(500)
INT32_MAX = const(2147483647)
DAY = const(86400)

# Value lists as comma-separated str (tuples served by __getattr__).
# OCPP 1.6 Measurand enumeration (MEASURANDS, 22 items).
MEAS = (
    "Energy.Active.Export.Register,Energy.Active.Import.Register,"
    "Energy.Reactive.Export.Register,Energy.Reactive.Import.Register,"
    "Energy.Active.Export.Interval,Energy.Active.Import.Interval,"
    "Energy.Reactive.Export.Interval,Energy.Reactive.Import.Interval,"
    "Power.Active.Export,Power.Active.Import,Power.Offered,Power.Reactive.Export,"
    "Power.Reactive.Import,Power.Factor,Current.Import,Current.Export,Current.Offered,"
    "Voltage,Frequency,Temperature,SoC,RPM"
)
# OCPP 1.6 feature profile names (FEATURE_PROFILES).
PROFS = "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"
PHAS = "Single.Phase,Three.Phase"  # PHASES
# ConnectorPhaseRotation: whole value, or per connector "N.<one of ROTATIONS>".
ROTS = "RST,RTS,SRT,STR,TRS,TSR,NotApplicable,Unknown"  # ROTATIONS

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
EAIR = "Energy.Active.Import.Register"

# Placeholder default replaced by the board's unique id (Config device_id).
DEVICE_ID = None

# Upper bound of the *MaxLength capability keys: 1000. DAY = 86400.
TAB = (
    "AllowOfflineTxForUnknownId|0|0\n"
    "AuthorizationCacheEnabled|0|1\n"
    "AuthorizeRemoteTxRequests|0|0\n"
    "MaxCurrentLimit|1|32|0|6|32|0|A\n"
    "ClockAlignedDataInterval|1|0|0|0|86400|0|s\n"
    "ConnectionTimeOut|1|60|0|1|86400|0|s\n"
    "ConnectorPhaseRotation|3|NotApplicable|0|0||7\n"
    "ConnectorPhaseRotationMaxLength|1|25|1|1|1000\n"
    "DefaultIdTag|2||8|1|20|1\n"
    "FreeMode|0|0\n"
    "GetConfigurationMaxKeys|1|50|1|1|1000\n"
    "HeartbeatInterval|1|300|0|0|604800|0|s\n"
    "LocalAuthListEnabled|0|1\n"
    "LocalAuthListMaxLength|1|1000|1|0|10000\n"
    "LocalAuthorizeOffline|0|1\n"
    "LocalPreAuthorize|0|0\n"
    "MaxEnergyOnInvalidId|1|0|0|0|2147483647|0|Wh\n"
    "MeterValuesAlignedData|3|=ALIGNED_BUSINESS|0|0||5\n"
    "MeterValuesAlignedDataMaxLength|1|500|1|1|1000\n"
    "MeterValueSampleInterval|1|60|0|0|86400|0|s\n"
    "MeterValuesSampledData|3|=SAMPLED_DEFAULT|1|0||5\n"
    "MeterValuesSampledDataMaxLength|1|500|1|1|1000\n"
    "NumberOfConnectors|1|1|5|1|8\n"
    "OcppChargerId|2|=DEVICE_ID|4|1|48|3\n"
    "OcppServerAddress|2||12|1|500|2\n"
    "OnPowerLossRestart|0|0\n"
    "Phase|2|Single.Phase|0|1|20|4\n"
    "ResetRetries|1|1|0|0|10\n"
    "SendLocalListMaxLength|1|30|1|0|10000\n"
    "StopTransactionOnEVSideDisconnect|0|1\n"
    "StopTransactionOnInvalidId|0|1\n"
    "StopTxnAlignedData|3|=EAIR|0|0||5\n"
    "StopTxnAlignedDataMaxLength|1|500|1|1|1000\n"
    "StopTxnSampledData|3|=EAIR|0|0||5\n"
    "StopTxnSampledDataMaxLength|1|500|1|1|1000\n"
    "SupportedFeatureProfiles|3|=PROFILES_DEFAULT|1|0||6\n"
    "SupportedFeatureProfilesMaxLength|1|15|1|1|1000\n"
    "suspendedEVTimeout|1|900|0|0|86400|0|s\n"
    "TransactionMessageAttempts|1|3|0|0|100\n"
    "TransactionMessageRetryInterval|1|30|0|0|86400|0|s\n"
    "UnlockConnectorOnEVSideDisconnect|0|1\n"
    "WiFiConnect|0|0|4\n"
    "WiFiPass|2|N/A|14|1|64|1\n"
    "WiFiSsid|2|N/A|12|1|32|1\n"
    # Keys the firmware needs beyond the guide's table.
    "AuthorizationKey|2||14|16|40|1\n"
    "WebSocketPingInterval|1|60|0|0|86400|0|s\n"
    "ReserveConnectorZeroSupported|0|0|1\n"
)

# Per-variant defaults that differ from the table: (variant, key, value).
VARIANT_DEFAULTS = (
    ("homeplus", "MeterValuesAlignedData", ALIGNED_HOMEPLUS),
)


def find(s, item, sep, end):
    """Position of item as a whole field of s (at the start or after sep, then
    end or the end of s); -1 if absent, not a str, empty or containing sep/end.
    Allocates nothing: config.get() runs it every control cycle."""
    if type(item) is not str or not item or sep in item or end in item:
        return -1
    n = len(item)
    p = s.find(item)
    while p >= 0:
        if (p == 0 or s.startswith(sep, p - 1)) and (p + n == len(s) or s.startswith(end, p + n)):
            return p
        p = s.find(item, p + 1)
    return -1


def pos(key):
    """Position in TAB of key's row, -1 for an unknown key."""
    return find(TAB, key, "\n", "|")


def row(p):
    """The row at position p of TAB as (key, type, default, unit, flags, lo, hi, check)."""
    f = TAB[p:TAB.find("\n", p)].split("|")
    f += ("", "", "", "", "", "")
    t = int(f[1])
    d = f[2]
    if d[:1] == "=":
        d = globals()[d[1:]]
    elif t == T_BOOL:
        d = d == "1"
    elif t == T_INT:
        d = int(d)
    hi = f[0] + "MaxLength" if t == T_CSL else int(f[5] or 0)
    return (f[0], t, d, f[7], int(f[3] or 0), int(f[4] or 0), hi, int(f[6] or 0))


def rows():
    """(p, row(p)) for every key, in table order."""
    p = 0
    while p < len(TAB):
        yield p, row(p)
        p = TAB.find("\n", p) + 1


_LISTS = {"MEASURANDS": "MEAS", "FEATURE_PROFILES": "PROFS", "PHASES": "PHAS", "ROTATIONS": "ROTS"}


def __getattr__(name):
    # The old tuple-form names, built on access (not kept: each call builds anew).
    if name == "TABLE":
        return tuple(r for p, r in rows())
    if name in _LISTS:
        return tuple(globals()[_LISTS[name]].split(","))
    raise AttributeError(name)
