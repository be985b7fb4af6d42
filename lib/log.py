# Minimal logger: one line per event (INF/WRN/ERR), optional file sink (SD card)
# that is dropped, never raised, when it fails.
import time

_sink = None


def set_sink(fobj):
    global _sink
    _sink = fobj


def _emit(name, tag, msg):
    global _sink
    line = "%d %s %s: %s\n" % (time.ticks_ms(), name, tag, msg)
    print(line, end="")
    if _sink is not None:
        try:
            _sink.write(line)
        except Exception:
            _sink = None


def info(tag, msg):
    _emit("INF", tag, msg)


def warn(tag, msg):
    _emit("WRN", tag, msg)


def error(tag, msg):
    _emit("ERR", tag, msg)
