# Fault definitions as data: a product variant changes a threshold or a filter
# time here, not in code. Each row:
#   (key, errorCode, vendorErrorCode, severity, flags, raise_ms, clear_ms)
# key names the condition in firmware/supervisor.py; severity orders
# simultaneous faults (highest decides the status); raise_ms / clear_ms are the
# filter times a condition must hold (or be gone) before it is raised (cleared).

BLOCK = 1        # no energy while active (contactor open, no PWM offer)
STOP = 2         # ends a running transaction (reason Other, EmergencyStop for the button)
LATCH = 4        # stays until a manual reset (docs/faults.md), never clears by itself
UNPLUG = 8       # clears only once the EV is unplugged (pilot A)
STATE_F = 16     # pilot to -12 V (state F) while active

FAULTS = (
    ("diode", "DiodeError", None, 60, BLOCK | STOP | UNPLUG, 100, 0),
    ("ev_comm", "EVCommunicationError", None, 55, BLOCK | STATE_F, 50, 500),
    ("vent", "VentError", None, 40, BLOCK, 0, 200),
)

THRESHOLDS = {
    "ev_comm_reset_s": 30,   # guide: wait 30 s, then attempt a reset of the pilot
    "ev_comm_reset_ms": 500, # how long the pilot is held in state F for that reset
}
