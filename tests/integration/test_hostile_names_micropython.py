"""Input from outside on MicroPython must not grow the interpreter's interned
names: indexing or iterating a str, or chr(), interns the character it makes,
for good (docs/memory.md, "Interned names"). The URL of a GetDiagnostics
upload comes from the central system; the one-time password from whoever
holds a phone near the charger."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

SCRIPT = r"""
import sys
sys.path.insert(0, @ROOT@)
import micropython
from lib import ftp, otp
key = b"12345678901234567890"
# warm up: every code path once, with ASCII only
print("W", ftp.parse("ftp://us%65r:p%40ss@host:21/d%69r/"), otp.match(key, "755224", 0, 0))
micropython.qstr_info()
urls = ok = refused = 0
for k in range(300):
    cp = 0x4e00 + k  # a character nobody interned
    c = bytes([0xE0 | cp >> 12, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F]).decode()
    esc = "".join("%%%02X" % x for x in c.encode())
    u = ftp.parse("ftp://u" + esc + ":" + esc + "@host/" + esc + "/")
    urls += u[0] == "u" + c and u[1] == c and u[4] == c + "/"
    try:
        ftp.parse("ftp://u%%%02X@host/" % (128 + k % 128))  # half a UTF-8 sequence
    except ValueError:
        refused += 1
    ok += otp.match(key, c * 6, 0, 3) == -1 and otp.match(key, "7552" + c + c, 0, 3) == -1
print("RESULT", urls, refused, ok)
micropython.qstr_info()
"""


def run_counting_names(script):
    """Run script (@ROOT@: the project root) on MicroPython: its output
    lines, and the counts of interned names its micropython.qstr_info()
    calls printed."""
    p = subprocess.run([MICROPYTHON, "-c", script.replace("@ROOT@", repr(ROOT))],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    return lines, [ln.split("n_qstr=")[1].split(",")[0] for ln in lines if ln.startswith("qstr pool")]


def test_hostile_urls_and_codes_intern_nothing():
    lines, pools = run_counting_names(SCRIPT)
    warm = [ln for ln in lines if ln.startswith("W ")][0]
    assert warm == "W ('user', 'p@ss', 'host', 21, 'dir/') 0", warm  # RFC 4226 Appendix D: counter 0
    assert [ln for ln in lines if ln.startswith("RESULT")][0].split()[1:] == ["300", "300", "300"]
    assert len(pools) == 2 and pools[0] == pools[1], lines
