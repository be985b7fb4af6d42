# Minimal levelled logger: one line per event, optional file sink (SD card) that
# is dropped, never raised, when it fails.
import time

DEBUG = 10
INFO = 20
WARN = 30
ERROR = 40
_NAMES = {DEBUG: "DBG", INFO: "INF", WARN: "WRN", ERROR: "ERR"}

level = INFO
_sink = None


def set_sink(fobj):
    global _sink
    _sink = fobj


def _emit(lvl, tag, msg):
    if lvl < level:
        return
    line = "%d %s %s: %s" % (time.ticks_ms(), _NAMES[lvl], tag, msg)
    print(line)
    global _sink
    if _sink is not None:
        try:
            _sink.write(line + "\n")
        except Exception:
            _sink = None


def debug(tag, msg):
    _emit(DEBUG, tag, msg)


def info(tag, msg):
    _emit(INFO, tag, msg)


def warn(tag, msg):
    _emit(WARN, tag, msg)


def error(tag, msg):
    _emit(ERROR, tag, msg)
