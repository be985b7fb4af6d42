# Modules that are needed rarely (e.g. request validation, a few times an
# hour) are imported when needed and dropped again, so their code does not
# sit on the heap between uses.
import sys


def load(name):
    __import__(name)
    return sys.modules[name]


def drop(name):
    if name in sys.modules:
        del sys.modules[name]
    dot = name.rfind(".")
    if dot > 0:
        parent = sys.modules.get(name[:dot])
        if parent is not None:
            try:
                delattr(parent, name[dot + 1:])
            except (AttributeError, KeyError):  # MicroPython: KeyError
                pass
