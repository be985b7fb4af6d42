"""bluetooth (BLE, GATT server side) as the MicroPython docs describe it:
irq(handler) events with tuples, gatts_register_services returning value
handles, gatts_set_buffer/gatts_read/gatts_notify, gap_advertise,
gap_disconnect. `radio` is the test side: a central connecting, writing,
negotiating the MTU and disconnecting."""
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010

radio = None


def _fake_reset():
    global radio
    radio = None


class UUID:
    def __init__(self, value):
        self.value = value if isinstance(value, int) else str(value).upper()

    def __eq__(self, other):
        return isinstance(other, UUID) and other.value == self.value

    def __hash__(self):
        return hash(self.value)


class BLE:
    def __init__(self):
        global radio
        if radio is not None:  # a singleton on the port
            self.__dict__ = radio.__dict__
            return
        radio = self
        self._active = False
        self._irq = None
        self.adv = None         # current advertising payload (None: not advertising)
        self.adv_count = 0
        self.services = None
        self._values = {}
        self._buf = {}
        self._next = 1
        self.conns = set()
        self.notified = []      # (conn, handle, bytes)
        self.notify_fail = False

    def active(self, a=None):
        if a is None:
            return self._active
        self._active = bool(a)

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if not self._active:
            raise OSError(19)
        self.adv = None if interval_us is None else bytes(adv_data or b"")
        if interval_us is not None:
            self.adv_count += 1

    def gatts_register_services(self, services):
        self.services = services
        out = []
        for uuid, chars in services:
            hs = []
            for c in chars:
                h = self._next
                self._next += 1
                self._values[h] = b""
                self._buf[h] = (20, False)
                hs.append(h)
            out.append(tuple(hs))
        return tuple(out)

    def gatts_set_buffer(self, value_handle, len, append=False):
        self._buf[value_handle] = (len, append)

    def gatts_read(self, value_handle):
        v = self._values[value_handle]
        if self._buf[value_handle][1]:
            self._values[value_handle] = b""  # append mode: a read clears the buffer
        return v

    def gatts_write(self, value_handle, data, send_update=False):
        self._values[value_handle] = bytes(data)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        if conn_handle not in self.conns:
            raise OSError(128)  # ENOTCONN
        if self.notify_fail:
            raise OSError(12)   # ENOMEM: the stack's queue is full
        self.notified.append((conn_handle, value_handle, bytes(data)))

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self.conns:
            return False
        self.central_disconnect(conn_handle)
        return True

    # test side (a central)
    def central_connect(self, conn=64):
        self.conns.add(conn)
        self.adv = None  # advertising stops on a connection
        self._irq(1, (conn, 0, b"\x11\x22\x33\x44\x55\x66"))

    def central_write(self, conn, handle, data):
        size, append = self._buf[handle]
        old = self._values[handle] if append else b""
        self._values[handle] = (old + bytes(data))[:size]
        self._irq(3, (conn, handle))

    def central_mtu(self, conn, mtu):
        self._irq(21, (conn, mtu))

    def central_disconnect(self, conn=64):
        self.conns.discard(conn)
        self._irq(2, (conn, 0, b"\x11\x22\x33\x44\x55\x66"))
