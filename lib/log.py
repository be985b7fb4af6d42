# Minimal levelled logger: one line per event, optional file sink (SD card) that
# is dropped, never raised, when it fails.
import time

level = 20  # 10 debug, 20 info, 30 warn, 40 error
_sink = None


def set_sink(fobj):
    global _sink
    _sink = fobj


def _emit(lvl, name, tag, msg):
    global _sink
    if lvl < level:
        return
    line = "%d %s %s: %s\n" % (time.ticks_ms(), name, tag, msg)
    print(line, end="")
    if _sink is not None:
        try:
            _sink.write(line)
        except Exception:
            _sink = None


def debug(tag, msg):
    _emit(10, "DBG", tag, msg)


def info(tag, msg):
    _emit(20, "INF", tag, msg)


def warn(tag, msg):
    _emit(30, "WRN", tag, msg)


def error(tag, msg):
    _emit(40, "ERR", tag, msg)
