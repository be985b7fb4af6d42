"""One module drives the outputs (safety-interlock issue): relay, lock and
pilot PWM are commanded only by firmware/outputs.py, so the interlock written
there cannot be bypassed by another module."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVES = re.compile(r"\b(relay|lock)\.set\(|\bset_duty\(")


def test_only_the_output_interlock_drives_relay_lock_and_pwm():
    drivers = set()
    for dirpath, _, files in os.walk(os.path.join(ROOT, "firmware")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    if DRIVES.search(f.read()):
                        drivers.add(os.path.relpath(path, ROOT))
    assert drivers == {"firmware/outputs.py"}
