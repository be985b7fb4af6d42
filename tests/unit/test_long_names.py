"""firmware/names.py lists exactly the string constants over 10 characters,
spelled like names or dotted names, that the device code uses and that are
interned anyway (module names, identifiers) or used by three modules or more:
each such constant costs a heap object per module that uses it unless its
text is interned before the module loads, and anything listed that is not
interned anyway takes a slot of the pools of names (docs/memory.md)."""
import ast
import os
import re

from tools.bench.names import long_names
from tools.mpy_build import device_sources

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
INTERN_LEN = 10  # MicroPython interns string constants up to this length by itself


def device_files():
    for top in ("firmware", "lib", "hal"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            if os.path.join("hal", "mock") in d:  # unit tests' HAL, never on a board
                continue
            for f in files:
                if f.endswith(".py") and f != "names.py":
                    yield os.path.join(d, f)
    yield os.path.join(ROOT, "main.py")
    yield os.path.join(ROOT, "boot.py")


def not_compiled(tree):
    """Docstrings and annotations: MicroPython keeps neither."""
    skip = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        ann = []
        if isinstance(n, ast.AnnAssign):
            ann.append(n.annotation)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = n.args
            ann += [x.annotation for x in a.posonlyargs + a.args + a.kwonlyargs if x.annotation]
            ann += [x.annotation for x in (a.vararg, a.kwarg) if x is not None and x.annotation]
            if n.returns:
                ann.append(n.returns)
        for t in ann:
            skip.update(id(m) for m in ast.walk(t))
    return skip


def long_name_constants():
    """{text: [device files using it]}"""
    used = {}
    for path in device_files():
        with open(path) as f:
            tree = ast.parse(f.read())
        skip = not_compiled(tree)
        for n in ast.walk(tree):
            if (isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
                    and len(n.value) > INTERN_LEN and NAME.match(n.value)):
                files = used.setdefault(n.value, [])
                rel = os.path.relpath(path, ROOT)
                if rel not in files:
                    files.append(rel)
    return used


SHARED = 3  # modules using a text for it to earn a name of its own (16 B each, for a slot)


def interned_anyway():
    """Texts the firmware interns whether listed or not: the names of its
    modules and its identifiers. Listing anything else would take a slot of
    the pools of names, which are the scarcer resource (docs/memory.md)."""
    names = {rel[:-3].replace("/", ".").replace(".__init__", "") for rel in device_sources(ROOT, "all")}
    for path in device_files():
        with open(path) as f:
            tree = ast.parse(f.read())
        for n in ast.walk(tree):
            if isinstance(n, ast.Name):
                names.add(n.id)
            elif isinstance(n, ast.Attribute):
                names.add(n.attr)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, ast.arg):
                names.add(n.arg)
            elif isinstance(n, ast.keyword) and n.arg:
                names.add(n.arg)
    return names


def listed():
    return set(long_names())


def test_every_long_name_constant_interned_anyway_or_widely_shared_is_listed():
    used = long_name_constants()
    anyway = interned_anyway()
    worth = {t: p for t, p in used.items() if t in anyway or len(p) >= SHARED}
    missing = {t: p for t, p in worth.items() if t not in listed()}
    assert len(used) > 100 and len(worth) > 10
    assert not missing, "add these to firmware/names.py: %s" % missing


def test_nothing_is_listed_that_would_cost_a_name_for_too_little():
    used = long_name_constants()
    stale = listed() - set(used)
    assert not stale, "remove these from firmware/names.py (no device code uses them): %s" % sorted(stale)
    anyway = interned_anyway()
    extra = {t for t in listed() if t not in anyway and len(used[t]) < SHARED}
    assert not extra, ("remove these from firmware/names.py: neither a module nor an identifier, and used "
                       "by fewer than %d modules, each takes a slot of the pools of names: %s" % (SHARED, sorted(extra)))
