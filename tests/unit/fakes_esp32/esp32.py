"""esp32 module (the parts a controller may use): mcu_temperature, NVS."""
_nvs = {}


def _fake_reset():
    _nvs.clear()


def mcu_temperature():
    return 41


class NVS:
    def __init__(self, namespace):
        self._ns = _nvs.setdefault(namespace, {})

    def set_i32(self, key, value):
        self._ns[key] = int(value)

    def get_i32(self, key):
        if key not in self._ns:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        return self._ns[key]

    def set_blob(self, key, value):
        self._ns[key] = bytes(value)

    def get_blob(self, key, buf):
        if key not in self._ns:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        v = self._ns[key]
        buf[:len(v)] = v
        return len(v)

    def erase_key(self, key):
        if key not in self._ns:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        del self._ns[key]

    def commit(self):
        pass
