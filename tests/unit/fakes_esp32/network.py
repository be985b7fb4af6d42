"""network (WLAN station) as the MicroPython ESP32 docs describe it: status()
codes, status("rssi") raising OSError while not connected, connect() that
returns at once and completes (or fails) later, and, once connect() was
asked, the driver rejoining the same network after a drop or a failed
attempt by itself (ports/esp32/network_wlan.c: reconnects unlimited by
default) until disconnect(). The test drives the radio with `aps` and `step()`."""
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

wlans = []
aps = {}  # ssid -> {"password": str, "rssi": int}


def _fake_reset():
    del wlans[:]
    aps.clear()


class WLAN:
    def __init__(self, interface_id=STA_IF):
        self._active = False
        self._status = STAT_IDLE
        self.ssid = None
        self._pw = None
        self.connects = []  # (ssid, password) of every connect()
        self.fail_connect = None  # test side: an OSError connect() raises (the port's "Wifi Internal Error")
        self.disconnects = 0
        self._requested = False
        wlans.append(self)

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        if self.fail_connect is not None:
            raise self.fail_connect
        self.ssid, self._pw = ssid, key
        self.connects.append((ssid, key))
        self._requested = True
        self._status = STAT_CONNECTING

    def disconnect(self):
        self.disconnects += 1
        self._requested = False
        self._status = STAT_IDLE

    def isconnected(self):
        return self._status == STAT_GOT_IP

    def status(self, param=None):
        if param is None:
            return self._status
        if param == "rssi":
            if self._status != STAT_GOT_IP:
                raise OSError("STA is not connected")
            return aps[self.ssid]["rssi"]
        raise ValueError("unknown status param")

    def ifconfig(self, *a):
        return ("192.168.4.2", "255.255.255.0", "192.168.4.1", "192.168.4.1")

    # test side: the radio finishes what connect() started, or loses the AP
    def step(self):
        if self._status != STAT_CONNECTING and self._status != STAT_GOT_IP:
            if not self._requested:
                return
            self._status = STAT_CONNECTING  # the driver's own reconnect
        ap = aps.get(self.ssid)
        if ap is None:
            self._status = STAT_NO_AP_FOUND if self._status == STAT_CONNECTING else STAT_BEACON_TIMEOUT
        elif ap["password"] != self._pw:
            self._status = STAT_WRONG_PASSWORD
        else:
            self._status = STAT_GOT_IP
