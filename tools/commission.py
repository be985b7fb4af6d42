"""The installer's commissioning flow against the bench, without a phone:
the bench's BLE central (control command `ble`) carries the line protocol
of docs/commissioning.md to the firmware.

    .venv/bin/python tools/commission.py --control 7001 --state sim-state id
    .venv/bin/python tools/commission.py --control 7001 --state sim-state \\
        set OcppServerAddress ws://10.0.0.5:9000/ocpp  set Phase Three.Phase  get Phase  reboot

Requests: id | keys | get KEY | set KEY VALUE | reboot | raw LINE. An OTP is
sent first when a request needs one: --otp CODE, or (playing BrightBlu
support) the next HOTP of the bench's factory secret (DIR/board.json), whose
counter this tool keeps in DIR/otp_counter. Prints each request and answer.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lib import otp  # noqa: E402
from tools.simkit.client import Control  # noqa: E402

NEEDS_OTP = ("get", "set", "reboot")


def support_otp(state):
    """The next HOTP value for the bench in state (what support would issue)."""
    with open(os.path.join(state, "board.json")) as f:
        secret = bytes.fromhex(json.load(f)["otp_secret"])
    path = os.path.join(state, "otp_counter")
    counter = 0
    if os.path.exists(path):
        with open(path) as f:
            counter = int(f.read().strip() or 0)
    with open(path, "w") as f:
        f.write(str(counter + 1))
    return otp.hotp(secret, counter)


def parse_requests(words):
    reqs = []
    i = 0
    while i < len(words):
        w = words[i].lower()
        if w in ("id", "keys", "reboot", "bye"):
            reqs.append(w.upper())
            i += 1
        elif w == "get":
            reqs.append("GET " + words[i + 1])
            i += 2
        elif w == "set":
            reqs.append("SET %s %s" % (words[i + 1], words[i + 2]))
            i += 3
        elif w == "raw":
            reqs.append(words[i + 1])
            i += 2
        else:
            raise SystemExit("unknown request %r (id, keys, get KEY, set KEY VALUE, reboot, raw LINE)" % w)
    return reqs


class Session:
    def __init__(self, ctl, timeout=5.0):
        self.ctl = ctl
        self.timeout = timeout
        self.pending = ""

    def open(self):
        if not self.ctl.cmd({"cmd": "ble", "op": "connect"})["linked"]:
            raise SystemExit("the firmware is not running (no board link)")

    def ask(self, line):
        self.ctl.cmd({"cmd": "ble", "op": "write", "data": line + "\n"})
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            r = self.ctl.cmd({"cmd": "ble", "op": "read"})
            self.pending += r["data"]
            if "\n" in self.pending:
                answer, self.pending = self.pending.split("\n", 1)
                return answer
            if not r["linked"]:
                return "(disconnected)"
            time.sleep(0.05)
        return "(no answer)"

    def close(self):
        self.ctl.cmd({"cmd": "ble", "op": "disconnect"})


def run(port, state, words, code=None, out=print):
    reqs = parse_requests(words)
    ctl = Control(port)
    answers = []
    try:
        s = Session(ctl)
        s.open()
        if any(r.split(" ")[0].lower() in NEEDS_OTP for r in reqs):
            code = code or support_otp(state)
            a = s.ask("AUTH " + code)
            out("AUTH %s -> %s" % (code, a))
            answers.append(a)
        for r in reqs:
            a = s.ask(r)
            out("%s -> %s" % (r, a))
            answers.append(a)
        if "REBOOT" not in reqs:
            s.close()
    finally:
        ctl.close()
    return answers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--control", type=int, required=True, help="bench control port")
    ap.add_argument("--state", default="sim-state", help="bench state directory (factory OTP secret)")
    ap.add_argument("--otp", help="one-time password from support (default: the next one from the state dir)")
    ap.add_argument("requests", nargs="+")
    a = ap.parse_args()
    answers = run(a.control, a.state, a.requests, a.otp)
    sys.exit(0 if all(x.startswith("OK") for x in answers) else 1)


if __name__ == "__main__":
    main()
