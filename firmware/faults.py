# Fault definitions as data (docs/faults.md): a product variant changes a
# threshold or a filter time here, not in code. Each row:
#   (key, errorCode, vendorErrorCode, severity, flags, raise_ms, clear_ms, info)
# key names the condition in Supervisor._conditions (firmware/supervisor.py); severity orders
# simultaneous faults (the highest decides the status; every BLOCK row ranks
# above every reporting-only row); raise_ms / clear_ms are the filter times a
# condition must hold (or be gone) before it is raised (cleared): seen in every
# control cycle for that long (a cycle without it starts the time again). The
# emergency button's 20 ms is its debounce: pressed in every cycle for 20 ms
# (3 samples 10 ms apart on the board), so a glitch of one sample neither
# stops a session nor counts as a button cycle (manual reset).

BLOCK = 1        # no energy while active (contactor open, no PWM offer), status Faulted
STOP = 2         # ends a running transaction (reason Other, EmergencyStop for the button)
LATCH = 4        # stays until a manual reset (Hard Reset or button cycle), kept across reboots
UNPLUG = 8       # clears only once the EV is unplugged (pilot A)
CP = 32          # charger-wide: also reported on connector 0
HOLD = 64        # the cable stays locked while active (a welded contactor may leave it live)

FAULTS = (
    ("ground", "GroundFailure", None, 100, BLOCK | STOP | LATCH | CP, 0, 0, "N-E > 8 V"),
    ("switch", "PowerSwitchFailure", None, 95, BLOCK | STOP | LATCH | CP | HOLD, 200, 0, "contactor feedback"),
    ("button", "OtherError", "EmergencyButton", 90, BLOCK | STOP | CP, 20, 500, None),
    ("leak", "OtherError", "EarthLeakageError", 85, BLOCK | STOP | UNPLUG, 0, 1000, "30 mA AC / 6 mA DC"),
    ("i_max", "OverCurrentFailure", None, 80, BLOCK | STOP | UNPLUG, 1000, 1000, "> 32 A"),
    ("i_ev", "OverCurrentFailure", None, 79, BLOCK | STOP | UNPLUG, 5000, 1000, "> offered"),
    ("lock", "ConnectorLockFailure", None, 78, BLOCK | STOP, 0, 1000, None),
    ("overheat", "HighTemperature", None, 75, BLOCK | CP, 1000, 2000, "> 80 C"),
    ("diode", "DiodeError", None, 60, BLOCK | STOP | UNPLUG, 100, 0, None),
    ("ev_comm", "EVCommunicationError", None, 55, BLOCK, 50, 500, None),
    ("supply", "OtherError", "PowerFailure", 50, BLOCK | CP, 0, 1000, None),
    ("ov", "OverVoltage", None, 48, BLOCK | CP, 1000, 3000, "> 276 V"),
    ("uv", "UnderVoltage", None, 47, BLOCK | CP, 1000, 3000, "< 184 V"),
    ("hz", "OtherError", "InputFrequencyError", 46, BLOCK | CP, 1000, 3000, None),
    ("vpr", "OtherError", "VPRError", 45, BLOCK | CP, 500, 2000, None),
    ("vent", "VentError", None, 40, BLOCK, 0, 200, None),
    ("reset", "ResetFailure", None, 25, CP, 0, 0, None),
    ("meter", "OtherError", "ModBusComsFailure", 20, CP, 5000, 2000, "energy estimated"),
    ("meter_read", "PowerMeterFailure", None, 19, CP, 5000, 2000, "energy estimated"),
    ("derate", "HighTemperature", None, 15, CP, 0, 0, "derated"),
    ("reader", "ReaderFailure", None, 12, CP, 1000, 1000, None),
    ("sd", "OtherError", "SDCardFailure", 10, CP, 1000, 1000, None),
    ("weak", "WeakSignal", None, 5, CP, 5000, 5000, None),
)

# Thresholds (units as the HAL gives them). A file "faults.json" on the flash
# ({name: value}) overrides entries at boot (bench, variants).
T = {
    "ne_mv": 8000,            # GroundFailure: neutral-earth above 8 V
    "leak_ac_ua": 30000,      # EarthLeakageError: 30 mA AC ...
    "leak_dc_ua": 6000,       # ... or 6 mA DC
    "t_stop": 800,            # HighTemperature shutdown above 80.0 C (0.1 C) ...
    "t_resume": 700,          # ... until below 70.0 C
    # Derating curve: from T (0.1 C) the offered current is at most A amperes:
    # (T1, A1, T2, A2, ...); a step is left again 3.0 C below its T.
    "derate": (600, 24, 650, 16, 700, 10, 750, 6),
    "derate_hyst": 30,
    "v_min": 184, "v_max": 276,  # V: 230 V +/- 20 %
    "v_hyst": 6,              # V: clears once back 6 V inside the band
    "hz_tol": 2000,           # mHz: 50 or 60 Hz +/- 2 Hz ...
    "hz_hyst": 500,           # ... clears within +/- 1.5 Hz
    "i_max": 32000,           # mA: OverCurrentFailure above 32 A
    "i_tol": 2000,            # mA: EV tolerance over the offered current (or 10 %, larger)
    "rssi_min": -85,          # dBm: WeakSignal below, clears at -80
    "rssi_hyst": 5,
    "lock_retry_ms": 500,     # lock feedback late: drive it again, 3 times, then report
    "lock_retries": 3,
    "evc_wait_s": 30,         # EVCommunicationError: wait 30 s, then reset the pilot ...
    "evc_f_ms": 500,          # ... by holding it in state F this long
    "reset_wait_s": 5,        # ResetFailure: still running this long after a Reset
}
