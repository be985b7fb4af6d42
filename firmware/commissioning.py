# Installer commissioning over BLE (the guide's "Charger Configuration"): the
# install app reads the fixed Charger ID and reads/writes the commissioning
# settings; every setting needs a one-time password from support first.
# Transport-independent: a session runs over any link with the HAL BLE
# interface (linked(), recv(), send(), drop(); docs/hal.md). Loaded per
# session and dropped after it (firmware/app.py, lib/transient.py).
#
# Protocol (docs/commissioning.md): UTF-8 lines ending in "\n", one request,
# one answer "OK ..." or "ERR <reason>":
#   ID                 -> OK <Charger ID>      (no OTP needed)
#   KEYS               -> OK <key>,<key>,...   (no OTP needed)
#   AUTH <otp>         -> OK | ERR otp | ERR locked <s> | ERR no-secret | ERR storage
#   GET <key>          -> OK <value> | ERR auth | ERR secret | ERR key
#   SET <key> <value>  -> OK Accepted | OK RebootRequired | ERR Rejected | ERR auth | ERR key
#   REBOOT             -> OK, then the controller restarts (OTP needed)
#   BYE                -> OK, the session ends
# OTP: HOTP (RFC 4226) or TOTP (RFC 6238), HMAC-SHA1, secret from the
# factory's provision.json {"otp": {"secret": hex, "mode": "hotp"|"totp",
# "digits": 6}}. The last counter/time step used is persisted before "OK",
# and only later ones are accepted: an OTP never works twice.
import asyncio
import json
import time
from micropython import const

from lib import fsutil, log, otp

_TAG = const("commission")
KEYS = ("OcppChargerId,OcppServerAddress,WiFiPrimarySsid,WiFiPrimaryPass,WiFiConnect,"
        "WiFiSsid,WiFiPass,Phase,MaxCurrentLimit,FreeMode,AuthorizationKey")
STATE_FILE = "otp_state.json"
_PROVISION_FILE = const("provision.json")
_LINE_MAX = const(600)          # longest request (a 500-character value + key + command)
_HOTP_WINDOW = const(5)         # counters accepted after the last used one
_TOTP_STEP = const(30)          # s
_MAX_FAILS = const(5)           # wrong OTPs before a lockout
_LOCK_S = const(300)            # first lockout; doubles with each further wrong OTP, up to _LOCK_MAX_S
_LOCK_MAX_S = const(86400)
_IDLE_S = const(300)            # a session with no request for this long is dropped
POLL_S = 0.05


def _load_json(path):
    data = fsutil.read(path)
    if data is None:
        return None
    try:
        return json.loads(data.decode())
    except Exception:
        return None


class Commissioning:
    """One session's protocol. memo: a dict the caller keeps across sessions
    (the lockout deadline in ticks_ms; a reboot restarts the lockout)."""

    def __init__(self, cfg, charger_id, clock, root="", memo=None, reboot=None):
        self.cfg = cfg
        self.charger_id = charger_id
        self.clock = clock
        self.root = root
        self.memo = {} if memo is None else memo
        self.reboot = reboot
        self.authed = False
        self.ended = False
        self.reboot_due = False
        self._key = None
        self._mode = "hotp"
        self._digits = 6
        prov = _load_json(root + _PROVISION_FILE)
        o = prov.get("otp") if isinstance(prov, dict) else None
        if isinstance(o, dict):
            try:
                key = bytes.fromhex(o["secret"])
                mode = o.get("mode", "hotp")
                digits = o.get("digits", 6)
                if len(key) < 10 or mode not in ("hotp", "totp") or digits not in (6, 7, 8):
                    raise ValueError("bad otp provisioning")
                self._key, self._mode, self._digits = key, mode, digits
            except (KeyError, ValueError, TypeError) as e:
                log.error(_TAG, "OTP secret unusable: %r" % (e,))
        st = _load_json(root + STATE_FILE)
        if not isinstance(st, dict):
            st = {}
        self._last = st.get("last", -1)  # last counter / time step used
        self._fails = st.get("fails", 0)
        if self._fails >= _MAX_FAILS and "until" not in self.memo:
            self._lock()

    # ---- state --------------------------------------------------------------

    def _save(self):
        fsutil.write_atomic(self.root + STATE_FILE, json.dumps({"last": self._last, "fails": self._fails}))

    def _lock(self):
        s = min(_LOCK_S << min(self._fails - _MAX_FAILS, 16), _LOCK_MAX_S)
        self.memo["until"] = time.ticks_add(time.ticks_ms(), s * 1000)
        return s

    def locked_s(self):
        """Seconds left in the lockout, 0 if none."""
        until = self.memo.get("until")
        if until is None:
            return 0
        left = time.ticks_diff(until, time.ticks_ms())
        if left <= 0:
            return 0
        return (left + 999) // 1000

    # ---- requests -----------------------------------------------------------

    def handle(self, line):
        """Answer of one request line (without its newline)."""
        sp = line.find(" ")
        cmd = line if sp < 0 else line[:sp]
        arg = "" if sp < 0 else line[sp + 1:]
        if cmd == "ID":
            return "OK " + self.charger_id
        if cmd == "KEYS":
            return "OK " + KEYS
        if cmd == "BYE":
            self.ended = True
            self.authed = False
            return "OK"
        if cmd == "AUTH":
            return self._auth(arg.strip())
        if cmd not in ("GET", "SET", "REBOOT"):
            return "ERR command"
        if not self.authed:
            return "ERR auth"
        if cmd == "REBOOT":
            self.reboot_due = True
            log.info(_TAG, "reboot requested")
            return "OK"
        sp = arg.find(" ")
        key = arg if sp < 0 else arg[:sp]
        if ("," + KEYS + ",").find("," + key + ",") < 0 or not key:
            return "ERR key"
        if cmd == "GET":
            known, _ = self.cfg.get_configuration([key])
            if "value" not in known[0]:
                return "ERR secret"  # write-only keys: never read back
            return "OK " + known[0]["value"]
        if sp < 0:
            return "ERR Rejected"
        r = self.cfg.set(key, arg[sp + 1:])
        log.info(_TAG, "set %s: %s" % (key, r))
        if r in ("Accepted", "RebootRequired"):
            return "OK " + r
        return "ERR Rejected"

    def _auth(self, code):
        left = self.locked_s()
        if left:
            return "ERR locked %d" % left
        if self._key is None:
            return "ERR no-secret"
        n = -1
        if code.isdigit() and len(code) == self._digits:
            if self._mode == "totp":
                now = self.clock.now() // _TOTP_STEP
                n = otp.match(self._key, code, max(now - 1, self._last + 1), now + 1, self._digits)
            else:
                n = otp.match(self._key, code, self._last + 1, self._last + _HOTP_WINDOW, self._digits)
        if n < 0:
            self._fails += 1
            self.authed = False
            s = self._lock() if self._fails >= _MAX_FAILS else 0
            try:
                self._save()
            except OSError as e:
                log.error(_TAG, "state write failed: %r" % (e,))
            log.warn(_TAG, "wrong OTP (%d)%s" % (self._fails, " locked %d s" % s if s else ""))
            return "ERR otp"
        last, fails = self._last, self._fails
        self._last = n
        self._fails = 0
        try:
            self._save()  # before OK: a power cut must not make the OTP valid again
        except OSError as e:
            self._last, self._fails = last, fails
            log.error(_TAG, "state write failed: %r" % (e,))
            return "ERR storage"
        self.memo.pop("until", None)
        self.authed = True
        log.info(_TAG, "installer authenticated")
        return "OK"

    # ---- a session over a link ----------------------------------------------

    async def serve(self, link):
        """Answer requests until the link drops, BYE, or _IDLE_S without a request."""
        buf = bytearray()
        idle = time.ticks_ms()
        log.info(_TAG, "session open")
        try:
            while link.linked() and not self.ended:
                data = link.recv()
                if data:
                    buf.extend(data)
                    idle = time.ticks_ms()
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        if len(buf) > _LINE_MAX:
                            buf = bytearray()
                            link.send(b"ERR too-long\n")
                        break
                    raw = bytes(buf[:nl])
                    buf = buf[nl + 1:]
                    try:
                        line = raw.decode().rstrip("\r")
                    except UnicodeError:
                        line = ""
                    link.send((self.handle(line) + "\n").encode())
                    if self.ended:
                        break
                if self.reboot_due and self.reboot is not None:
                    await asyncio.sleep(0.5)  # let the answer leave
                    link.drop()
                    self.reboot()
                    return
                if time.ticks_diff(time.ticks_ms(), idle) > _IDLE_S * 1000:
                    log.info(_TAG, "session idle: dropped")
                    break
                await asyncio.sleep(POLL_S)
            if link.linked():
                link.drop()
        finally:
            self.authed = False  # the session ends with the link
            log.info(_TAG, "session closed")
