# Modules that are needed rarely (e.g. request validation, a few times an
# hour) are imported when needed and dropped again, so their code does not
# sit on the heap between uses.
import asyncio
import gc
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


def warm(names):
    """Load and drop each module once, at boot. The names a module interns
    stay for good, and MicroPython keeps them in pools that grow by doubling:
    the next pool is one block of about 9 KB on a 32-bit board. Taken at boot,
    while the heap is whole, that block is there; taken at the first use of a
    module hours later, a fragmented heap refuses it (docs/memory.md).
    The parts asyncio loads on first use are loaded here too. (Iterating or
    indexing a str interns each character it makes: the firmware slices
    instead, so running adds no names.)"""
    failed = []
    # Collected first: the garbage boot.py's compile leaves keeps the heap
    # split, and the collection an allocation falls back on did not free it
    # (at 96 KiB the 9 KB pool was refused and App() failed at every boot).
    gc.collect()
    try:
        # The parts of asyncio the application uses, loaded on first use and
        # kept: loaded here while the heap is whole (at 88 KiB, asyncio.lock
        # loaded by App() needed the next pool of names, 1280 entries, found
        # no block for it, and every boot failed).
        loaded = (asyncio.wait_for, asyncio.open_connection, asyncio.Lock, asyncio.Event)
        del loaded
    except MemoryError:
        failed.append("names")  # interned when first used, as without this
    for n in names:
        # Each module's garbage collected before the next loads: the heap
        # stays in one piece for the next pool of names (at 88 KiB it found
        # no 9 KB block without this, and the modules after were not warmed).
        gc.collect()
        before = set(sys.modules)
        try:
            load(n)
        except MemoryError:
            failed.append(n)  # loaded again when used, as without this
        for m in [m for m in sys.modules if m not in before]:
            drop(m)  # and what it imported (lib.otp for the commissioning)
    return failed
