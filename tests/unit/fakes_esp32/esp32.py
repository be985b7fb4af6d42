"""esp32 module (the parts a controller may use): mcu_temperature, NVS,
Partition. Partition follows ports/esp32/esp32_partition.c over a NOR flash
model: an erase sets a 4 KiB sector to 0xFF, a program can only clear bits
(so a write over unerased flash reads back wrong), the 3-argument
writeblocks erases the range first, the 4-argument one does not; out of
range is ESP_ERR_INVALID_SIZE. `flash` is the test side: the partition
table (the board definition's by default), each partition's bytes, every
erase and program, and injected failures."""
import errno
import os

_nvs = {}
SECTOR = 4096
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                     "boards", "JOLT", "partitions-jolt.csv")
_TYPES = {"app": 0, "data": 1}
_SUBTYPES = {"factory": 0, "ota_0": 0x10, "ota_1": 0x11, "ota": 0, "phy": 1, "nvs": 2, "fat": 0x81}


def read_table(path=TABLE):
    """[(label, type, subtype, address, size)] of a partitions CSV."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, typ, sub, off, size = [c.strip() for c in line.split(",")[:5]]
                sub = _SUBTYPES[sub] if sub in _SUBTYPES else int(sub, 0)
                rows.append((name, _TYPES[typ], sub, int(off, 0), int(size, 0)))
    return rows


class Flash:
    def reset(self, table=None):
        self.table = table or read_table()
        self.data = {}          # label -> bytearray (created on first use, erased: 0xFF)
        self.erased = []        # (label, offset) of every sector erase
        self.programmed = []    # (label, offset, length) of every program
        self.fail_write = {}    # label -> block: writeblocks of that block raises (ESP_FAIL)
        self.drop_write = {}    # label -> block: that program reports success, nothing sticks
        self.corrupt_read = {}  # label -> offset: a read covering it returns that byte flipped

    def bytes(self, label):
        if label not in self.data:
            size = [r[4] for r in self.table if r[0] == label][0]
            self.data[label] = bytearray(b"\xff" * size)
        return self.data[label]

    def written(self, label):
        return [e for e in self.erased if e[0] == label] + [p for p in self.programmed if p[0] == label]


flash = Flash()


def _fake_reset():
    _nvs.clear()
    flash.reset()


def _esp_err(code, name):
    # check_esp_err (ports/esp32/mphalport.c): known codes become errno values, others OSError(code, name)
    return OSError(code, name)


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=SECTOR):
        row = None
        if isinstance(id, int):
            if id not in (0, 1):
                raise ValueError()
            row = [r for r in flash.table if r[1] == 0][0]  # the first app partition
        else:
            for t in (0, 1):
                row = row or next((r for r in flash.table if r[0] == id and r[1] == t), None)
        if row is None:
            raise OSError(errno.ENOENT)
        self._row = row
        self._bs = block_size

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=SECTOR):
        return [Partition(r[0], block_size) for r in flash.table
                if r[1] == type and subtype in (0xFF, r[2]) and label in (None, r[0])]

    def info(self):
        label, typ, sub, addr, size = self._row
        return (typ, sub, addr, size, label, False)

    def _range(self, off, n):
        if off < 0 or off + n > self._row[4]:
            raise _esp_err(0x104, "ESP_ERR_INVALID_SIZE")

    def _erase(self, off, n):
        if off % SECTOR or n % SECTOR:
            raise OSError(errno.EINVAL)  # ESP_ERR_INVALID_ARG: erase_range needs sectors
        self._range(off, n)
        label = self._row[0]
        d = flash.bytes(label)
        for o in range(off, off + n, SECTOR):
            d[o:o + SECTOR] = b"\xff" * SECTOR
            flash.erased.append((label, o))

    def readblocks(self, block_num, buf, offset=0):
        off = block_num * self._bs + offset
        mv = memoryview(buf)
        self._range(off, len(mv))
        label = self._row[0]
        mv[:] = flash.bytes(label)[off:off + len(mv)]
        bad = flash.corrupt_read.get(label)
        if bad is not None and off <= bad < off + len(mv):
            mv[bad - off] ^= 0x10

    def writeblocks(self, block_num, buf, offset=None):
        off = block_num * self._bs
        data = bytes(memoryview(buf))
        label = self._row[0]
        if flash.fail_write.get(label) == block_num:
            raise _esp_err(-1, "ESP_FAIL")
        if offset is None:
            self._erase(off, len(data))  # a simple write erases first (SECTOR blocks)
        else:
            off += offset
        self._range(off, len(data))
        flash.programmed.append((label, off, len(data)))
        if flash.drop_write.get(label) == block_num:
            return
        d = flash.bytes(label)
        for i, b in enumerate(data):
            d[off + i] &= b  # NOR: a program clears bits, never sets them

    def ioctl(self, op, arg):
        if op in (1, 2, 3):  # init, deinit, sync
            return 0
        if op == 4:
            return self._row[4] // self._bs
        if op == 5:
            return self._bs
        if op == 6:
            if self._bs != SECTOR:
                return -errno.EINVAL
            self._erase(arg * SECTOR, SECTOR)
            return 0
        return None

    def set_boot(self):
        pass


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
