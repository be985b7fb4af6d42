# Configuration parameters as data: the integration guide's "Supported
# Configuration Parameters" table plus the keys the firmware itself needs.
# Interpreted by firmware/config.py; documented in docs/configuration.md.
#
# Memory: all data is in two str constants (a str constant in a .mpy costs its
# bytes; a tuple costs a heap object per row and per value, ~14 KB for the old
# tuple-of-tuples table). Nothing is built at import time. A row is decoded on
# demand by row(p), p = position of the row in TAB (find(TAB, key, "\n", "|")).
#
# TAB: one line per key, in table order, fields separated by "|", trailing
# empty fields omitted:
#   key|type|default|flags|lo|hi|check|unit
# row(p) returns the 8-tuple (key, type, default, unit, flags, lo, hi, check):
# type  T_BOOL 0 | T_INT 1 | T_STR 2 | T_CSL 3 (comma-separated list, kept as a str)
# default  T_BOOL 0/1, T_INT decimal, else the text; "=NAME" is the value of
#       NAME below (the long lists, and DEVICE_ID = None: replaced by the
#       board's unique id, Config device_id).
# flags F_RO 1 (CSMS may not change), F_WO 2 (GetConfiguration lists the key, never its value),
#       F_REBOOT 4 (ChangeConfiguration answers RebootRequired),
#       F_EMPTY 8 (a str may also be "", e.g. "not configured"); summed.
# lo/hi T_INT: inclusive value range.  T_STR: length range (bytes, UTF-8).
#       T_CSL: lo unused, hi = key of the companion ...MaxLength (item count),
#       always key + "MaxLength" (so not written in TAB).
# check T_STR: C_URL 2, C_ID 3, C_PHASE 4, C_TEXT 1.  T_CSL: C_MEASURAND 5,
#       C_PROFILE 6, C_ROTATION 7.  0 otherwise.
# Bounds used: DAY 86400 s, VALUE_MAX 500, INT32_MAX, *MaxLength keys 1..1000.
#
# The other public names (the T_/F_/C_ codes, MEASURANDS, VARIANTS, TABLE as a
# tuple of 8-tuples, ...) are served by __getattr__, built anew on each access,
# from the NAME=value lines of NAMES.
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
    # The primary WiFi network (set by commissioning; WiFiSsid/WiFiPass are the fallback).
    "WiFiPrimarySsid|2||12|1|32|1\n"
    "WiFiPrimaryPass|2||14|1|64|1\n"
    # An update package older than the running version is installed (docs/ota.md).
    "FirmwareAllowDowngrade|0|0\n"
    # A trial boot with no central system is healthy after this long with no fault (0: never).
    "FirmwareTrialOffline|1|600|0|0|86400|0|s\n"
)

# NAME=value, one per line. Value: an int if it starts with a digit, None if
# "~", a tuple of the comma-separated items for the lists (VARIANTS,
# MEASURANDS, FEATURE_PROFILES, PHASES, ROTATIONS), a str otherwise.
NAMES = (
    "T_BOOL=0\nT_INT=1\nT_STR=2\nT_CSL=3\n"
    "F_RO=1\nF_WO=2\nF_REBOOT=4\nF_EMPTY=8\n"
    "C_NONE=0\nC_TEXT=1\nC_URL=2\nC_ID=3\nC_PHASE=4\nC_MEASURAND=5\nC_PROFILE=6\nC_ROTATION=7\n"
    # Longest value of any key (OCPP ChangeConfiguration value is CiString500).
    "VALUE_MAX=500\nINT32_MAX=2147483647\nDAY=86400\n"
    "VARIANTS=business,homeplus\nDEFAULT_VARIANT=business\n"
    # Per-variant defaults that differ from TAB: variant,key,NAME of the value.
    "VARIANT_DEFAULTS=homeplus,MeterValuesAlignedData,ALIGNED_HOMEPLUS\n"
    # OCPP 1.6 Measurand enumeration.
    "MEASURANDS=Energy.Active.Export.Register,Energy.Active.Import.Register,"
    "Energy.Reactive.Export.Register,Energy.Reactive.Import.Register,"
    "Energy.Active.Export.Interval,Energy.Active.Import.Interval,"
    "Energy.Reactive.Export.Interval,Energy.Reactive.Import.Interval,"
    "Power.Active.Export,Power.Active.Import,Power.Offered,Power.Reactive.Export,"
    "Power.Reactive.Import,Power.Factor,Current.Import,Current.Export,Current.Offered,"
    "Voltage,Frequency,Temperature,SoC,RPM\n"
    # OCPP 1.6 feature profile names.
    "FEATURE_PROFILES=Core,FirmwareManagement,LocalAuthListManagement,Reservation,"
    "SmartCharging,RemoteTrigger\n"
    "PHASES=Single.Phase,Three.Phase\n"
    # ConnectorPhaseRotation: whole value, or per connector "N.<one of ROTATIONS>".
    "ROTATIONS=RST,RTS,SRT,STR,TRS,TSR,NotApplicable,Unknown\n"
    "ALIGNED_BUSINESS=Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Energy.Reactive.Import.Register,Temperature,Power.Reactive.Import,Frequency,"
    "Power.Factor,Current.Offered,Power.Offered\n"
    "ALIGNED_HOMEPLUS=Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Temperature,Current.Offered,Power.Offered\n"
    # The guide's footnote ** is missing: its "Meter Value Measurement Specifics" list.
    "SAMPLED_DEFAULT=Energy.Active.Import.Register,Voltage,Current.Import,Power.Active.Import,"
    "Temperature,Frequency,Power.Factor,Current.Offered\n"
    "PROFILES_DEFAULT=Core,FirmwareManagement,LocalAuthListManagement,Reservation,RemoteTrigger\n"
    "EAIR=Energy.Active.Import.Register\n"
    "DEVICE_ID=~\n"
)


def find(s, item, sep, end):
    """Position of item as a whole field of s (at the start or after sep, then
    end or the end of s); -1 if absent, not a str, empty or containing sep/end.
    Allocates nothing."""
    if type(item) is not str or not item or sep in item or end in item:
        return -1
    n = len(item)
    p = s.find(item)
    while p >= 0:
        if (p == 0 or s.startswith(sep, p - 1)) and (p + n == len(s) or s.startswith(end, p + n)):
            return p
        p = s.find(item, p + 1)
    return -1


def raw(name):
    """The text after NAME= in NAMES (KeyError if absent)."""
    p = find(NAMES, name, "\n", "=")
    if p < 0:
        raise KeyError(name)
    p += len(name) + 1
    return NAMES[p:NAMES.find("\n", p)]


def row(p):
    """The row at position p of TAB: (key, type, default, unit, flags, lo, hi, check)."""
    f = TAB[p:TAB.find("\n", p)].split("|") + ["", "", "", "", ""]
    t = int(f[1])
    d = f[2]
    if d[:1] == "=":
        d = raw(d[1:])
        d = None if d == "~" else d
    elif t < 2:  # T_BOOL, T_INT
        d = int(d) if t else d == "1"
    return (f[0], t, d, f[7], int(f[3] or 0), int(f[4] or 0),
            f[0] + "MaxLength" if t == 3 else int(f[5] or 0), int(f[6] or 0))


def rows():
    """(i, p, row(p)) for every key, in table order (i = 0, 1, ...)."""
    i = p = 0
    while p < len(TAB):
        yield i, p, row(p)
        i += 1
        p = TAB.find("\n", p) + 1


def __getattr__(name):
    # Public names of the tuple form, for tests and host tools (the firmware
    # uses TAB/NAMES directly): built on every access, never kept.
    if name == "TABLE":
        return tuple(r for i, p, r in rows())
    try:
        v = raw(name)
    except KeyError:
        raise AttributeError(name)
    if v[:1].isdigit():
        return int(v)
    if v == "~":
        return None
    if name == "VARIANT_DEFAULTS":
        v = v.split(",")
        return ((v[0], v[1], raw(v[2])),)
    if find("VARIANTS,MEASURANDS,FEATURE_PROFILES,PHASES,ROTATIONS", name, ",", ",") >= 0:
        return tuple(v.split(","))
    return v
