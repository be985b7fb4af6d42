# Persistent, crash-safe, bounded append-only record journal (docs/journal.md).
#
# One file of records. Every record is
#   header  <BBBHII: magic 0xA5, type, kind, length, seq, crc   (13 bytes)
#   payload length bytes
# crc = CRC-32 over the first 9 header bytes and the payload. A record whose
# magic, type, length or crc is wrong ends the valid part of the file.
#
# Types: HEAD (first record of every file: seq = next sequence number to hand
# out, payload = <I length of the file when it was written), DATA (seq = the
# record's sequence number, kind = caller's class), ACK / DROP (seq = the
# record it retires, no payload). Appends and acks only ever append; the file
# is rewritten (path + ".new", sync, rename) only by compact().
import os
import struct
from array import array
from micropython import const

from lib import fsutil

try:
    import binascii
except ImportError:  # pragma: no cover
    binascii = None

_MAGIC = const(0xA5)
_T_HEAD = const(1)
_T_DATA = const(2)
_T_ACK = const(3)
_T_DROP = const(4)
_FMT = const("<BBBHII")
HDR = const(13)  # struct.calcsize(_FMT)
HEAD_LEN = const(HDR + 4)  # the HEAD record with its payload
MAX_DATA = const(4096)
_CHUNK = const(256)  # records are checked and copied through a buffer this size, never whole
_VERSION = const(1)  # kind byte of the HEAD record
_DEAD = const(0xFFFFFFFF)  # index "meta" of a retired entry
_SEQ_MASK = const(0xFFFFFFFF)
_SLOTS = const(48)  # index numbers per part (16 entries, 192 bytes)
_BAD = const(0x1000000)  # meta flag while compact() leaves a damaged record out (kind < 256)


class JournalError(Exception):
    pass


class JournalFull(JournalError):
    pass


_table = None


def _crc32_py(data, crc=0):
    # Table-driven CRC-32 (ZIP/IEEE 802.3, reflected poly 0xEDB88320), used
    # only when binascii.crc32 is not built in.
    global _table
    t = _table
    if t is None:
        t = array("I", [0] * 256)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t[i] = c
        _table = t
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


if binascii is not None and hasattr(binascii, "crc32"):
    _crc32 = binascii.crc32
else:  # pragma: no cover - ports built without MICROPY_PY_BINASCII_CRC32
    _crc32 = _crc32_py


def _crc32_from(f, n, mv, crc):
    # CRC-32 continued over the next n bytes of f, read through the buffer mv;
    # None if the file ends first.
    while n:
        k = n if n < len(mv) else len(mv)
        if f.readinto(mv[:k]) != k:
            return None
        crc = _crc32(mv[:k], crc)
        n -= k
    return crc & 0xFFFFFFFF


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


class _Index:
    # The RAM index as small arrays of _SLOTS numbers each: growing it never
    # needs one large free block (a long outage's backlog on a fragmented
    # heap: a flat array of 80 entries already found no 972-byte block).
    def __init__(self):
        self.c = []
        self.n = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.c[i // _SLOTS][i % _SLOTS]

    def __setitem__(self, i, v):
        self.c[i // _SLOTS][i % _SLOTS] = v

    def add(self, seq, off, meta):
        # One entry; a MemoryError (no block for a new part) changes nothing.
        n = self.n
        if n == len(self.c) * _SLOTS:
            self.c.append(array("I", bytes(4 * _SLOTS)))
        a = self.c[n // _SLOTS]
        k = n % _SLOTS
        a[k] = seq
        a[k + 1] = off
        a[k + 2] = meta
        self.n = n + 3

    def cut(self, n):
        # The first n numbers kept; no allocation.
        self.n = n
        c = self.c
        while len(c) * _SLOTS >= n + _SLOTS:
            c.pop()


def _header(typ, kind, ln, seq, payload):
    h = bytearray(HDR)
    struct.pack_into("<BBBHI", h, 0, _MAGIC, typ, kind, ln, seq)
    crc = _crc32(memoryview(h)[:9])
    if ln:
        crc = _crc32(payload, crc)
    struct.pack_into("<I", h, 9, crc & 0xFFFFFFFF)
    return h


class Journal:
    def __init__(self, path, max_bytes=65536):
        if max_bytes < HEAD_LEN + HDR + 1:
            raise ValueError("max_bytes too small")
        self.path = path
        self.max_bytes = max_bytes
        self.compactions = 0  # statistics, for logs and tests
        self.recovered = 0  # how many times open() cut a torn/corrupt tail
        self.skipped = 0  # corrupt live records left out by compact()
        self._chunk = None  # copy() buffer
        self._reset()
        self._open()

    # ---- index -------------------------------------------------------
    # Triples (seq, offset, meta), meta = kind << 16 | length or _DEAD once
    # retired, in _Index parts. Entries are in append (= seq) order; _h is the
    # first entry that may be live. 12 bytes per pending record, no data.

    def _reset(self):
        self._idx = _Index()
        self._h = 0
        self._n = 0  # live entries
        self._live = HEAD_LEN  # bytes the live records (and HEAD) occupy
        self._size = 0  # bytes of the file that are known valid
        self._next = 1
        self._last = 0  # highest DATA seq seen
        self._bad_tail = False

    def _find(self, seq):
        idx = self._idx
        i = self._h * 3
        end = len(idx)
        while i < end:
            s = idx[i]
            if s == seq:
                return i if idx[i + 2] != _DEAD else -1
            if s > seq:
                break
            i += 3
        return -1

    def _kill(self, i):
        idx = self._idx
        self._live -= HDR + (idx[i + 2] & 0xFFFF)
        idx[i + 2] = _DEAD
        self._n -= 1
        h = self._h
        end = len(idx) // 3
        while h < end and idx[h * 3 + 2] == _DEAD:
            h += 1
        self._h = h
        if end >= 16 and self._n * 2 <= end:
            # Half the index retired: keep the live entries only. A record
            # pending for long (an open transaction's map record) would
            # otherwise hold every entry after it in RAM until compaction.
            # In place: no allocation can leave it half moved.
            w = 0
            for r in range(h * 3, len(idx), 3):
                if idx[r + 2] != _DEAD:
                    idx[w] = idx[r]
                    idx[w + 1] = idx[r + 1]
                    idx[w + 2] = idx[r + 2]
                    w += 3
            idx.cut(w)
            self._h = 0

    # ---- open / recovery ----------------------------------------------

    def _open(self):
        p = self.path
        new = p + ".new"
        if _exists(new):
            ok = self._scan(new, True)
            if ok:
                # Complete compaction result: it is the newer state.
                fsutil.replace(new, p)
                return
            if _exists(p):
                # Interrupted while writing .new: the old file is intact.
                try:
                    os.remove(new)
                except OSError:
                    pass
            else:
                fsutil.replace(new, p)  # best effort; should not happen
        self._reset()
        if self._scan(p):
            return
        if _exists(p):
            self.recovered += 1
        # Missing, empty, torn or corrupt tail: rewrite the valid part.
        self.compact()

    def _scan(self, p, exact=False):
        # Stream the file record by record with one 4 KiB buffer; build the
        # index. True if the whole file is valid (and, for a compaction
        # result, exactly as long as its HEAD says).
        self._reset()
        try:
            f = open(p, "rb")
        except OSError:
            return False
        try:
            size = os.stat(p)[6]
            hdr = bytearray(HDR)
            hmv = memoryview(hdr)
            buf = bytearray(_CHUNK)
            bmv = memoryview(buf)
            off = 0
            declared = -1
            head_seq = 0
            while off + HDR <= size:
                if f.readinto(hdr) != HDR:
                    break
                magic, typ, kind, ln, seq, crc = struct.unpack(_FMT, hdr)
                if magic != _MAGIC or ln > MAX_DATA or off + HDR + ln > size:
                    break
                if (off == 0) != (typ == _T_HEAD):
                    break
                if typ == _T_HEAD:
                    if ln != 4:
                        break
                elif typ == _T_DATA:
                    if seq <= self._last:
                        break
                elif typ == _T_ACK or typ == _T_DROP:
                    if ln:
                        break
                else:
                    break
                c = _crc32_from(f, ln, bmv, _crc32(hmv[:9]))
                if c is None or c != crc:
                    break
                if typ == _T_HEAD:
                    head_seq = seq
                    declared = struct.unpack_from("<I", buf, 0)[0]
                elif typ == _T_DATA:
                    self._idx.add(seq, off, kind << 16 | ln)
                    self._n += 1
                    self._live += HDR + ln
                    self._last = seq
                else:
                    i = self._find(seq)
                    if i >= 0:
                        self._kill(i)
                off += HDR + ln
        finally:
            f.close()
        self._size = off
        n = self._last + 1
        self._next = head_seq if head_seq > n else n
        if off == 0:
            return False
        if exact and declared != size:
            return False
        return off == size

    # ---- writing ---------------------------------------------------------

    def _write(self, h, data):
        # Append one record at the known end of the valid part, durably.
        if self._bad_tail:
            self.compact()
        self._bad_tail = True
        f = open(self.path, "r+b")
        try:
            f.seek(self._size)
            f.write(h)
            if data:
                f.write(data)
            f.flush()
        finally:
            f.close()
        fsutil.sync()
        self._bad_tail = False

    def append(self, data, kind=0):
        if isinstance(data, str):
            data = data.encode()
        ln = len(data)
        if ln > MAX_DATA:
            raise ValueError("record too long")
        if not 0 <= kind <= 255:
            raise ValueError("kind")
        need = HDR + ln
        if self._size + need > self.max_bytes or self._dead() > self.max_bytes // 2:
            if self._live + need > self.max_bytes:
                raise JournalFull("journal full")
            self.compact()
        if self._bad_tail:
            self.compact()
        seq = self._next
        h = _header(_T_DATA, kind, ln, seq, data)
        off = self._size
        # The index entry first, in one step: a MemoryError (no heap block to
        # grow it) leaves the journal as it was, nothing written. A failed
        # write takes the entry back (the next write compacts the tail away).
        idx = self._idx
        end = len(idx)
        idx.add(seq, off, kind << 16 | ln)
        try:
            self._write(h, data)
        except BaseException:
            idx.cut(end)
            raise
        self._n += 1
        self._live += need
        self._size = off + need
        self._last = seq
        self._next = (seq + 1) & _SEQ_MASK
        return seq

    def _retire(self, seq, typ):
        i = self._find(seq)
        if i < 0:
            return False
        if self._size + HDR > self.max_bytes:
            # No room for the marker: the rewrite without the record is the
            # ack (nothing changes if it fails).
            self.compact(seq)
            return True
        self._write(_header(typ, 0, 0, seq, None), None)
        self._size += HDR
        self._kill(i)
        if self._dead() > self.max_bytes // 2:
            self.compact()
        return True

    def ack(self, seq):
        """Retire a record the central system confirmed. False if not pending."""
        return self._retire(seq, _T_ACK)

    def drop(self, seq):
        """Retire a record the caller gives up on. False if not pending."""
        return self._retire(seq, _T_DROP)

    def _dead(self):
        return self._size - self._live

    def compact(self, skip=0):
        """Rewrite only the live records (not seq `skip`) to path + ".new", then
        rename it over path. The RAM index changes only after the rename, in
        place: a MemoryError or flash error before leaves the journal as it was."""
        p = self.path
        new = p + ".new"
        idx = self._idx
        src = None
        try:
            src = open(p, "rb")
        except OSError:
            pass
        try:
            out = open(new, "wb")
            try:
                pl = struct.pack("<I", self._live)
                out.write(_header(_T_HEAD, _VERSION, 4, self._next, pl))
                out.write(pl)
                off = HEAD_LEN
                skipped = 0
                if self._n:
                    buf = bytearray(_CHUNK)
                    mv = memoryview(buf)
                    i = self._h * 3
                    while i < len(idx):
                        meta = idx[i + 2]
                        if meta != _DEAD and idx[i] != skip:
                            n = HDR + (meta & 0xFFFF)
                            ok = False
                            if src is not None:
                                # Checked first, then copied: a bad record never reaches the new file.
                                src.seek(idx[i + 1])
                                if src.readinto(mv[:HDR]) == HDR:
                                    crc = struct.unpack_from("<I", buf, 9)[0]
                                    ok = _crc32_from(src, n - HDR, mv, _crc32(mv[:9])) == crc
                            if ok and src is not None:
                                src.seek(idx[i + 1])
                                left = n
                                while left:
                                    k = left if left < _CHUNK else _CHUNK
                                    src.readinto(mv[:k])
                                    out.write(mv[:k])
                                    left -= k
                                off += n
                            else:
                                skipped += 1
                                idx[i + 2] = meta | _BAD  # damaged: left out below
                        i += 3
                if off != self._live or skipped:
                    # Fix up the declared length in the HEAD record.
                    pl = struct.pack("<I", off)
                    out.seek(0)
                    out.write(_header(_T_HEAD, _VERSION, 4, self._next, pl))
                    out.write(pl)
                out.flush()
            finally:
                out.close()
        except BaseException:
            self._undamage()
            raise
        finally:
            if src is not None:
                src.close()
        try:
            fsutil.sync()
            fsutil.replace(new, p)
        except BaseException:
            self._undamage()
            raise
        # The new file holds the live records in the same order: the index
        # takes their new offsets in place, without the retired entries.
        w = 0
        off = HEAD_LEN
        for r in range(self._h * 3, len(idx), 3):
            meta = idx[r + 2]
            if meta != _DEAD and idx[r] != skip and not meta & _BAD:
                idx[w] = idx[r]
                idx[w + 1] = off
                idx[w + 2] = meta
                off += HDR + (meta & 0xFFFF)
                w += 3
        idx.cut(w)
        self._h = 0
        self._n = w // 3
        self._live = off
        self._size = off
        self._bad_tail = False
        self.skipped += skipped
        self.compactions += 1

    def _undamage(self):
        idx = self._idx
        for r in range(2, len(idx), 3):
            m = idx[r]
            if m != _DEAD and m & _BAD:
                idx[r] = m & ~_BAD

    # ---- reading ---------------------------------------------------------

    def _read(self, f, i, buf=None):
        idx = self._idx
        seq = idx[i]
        meta = idx[i + 2]
        ln = meta & 0xFFFF
        f.seek(idx[i + 1])
        h = f.read(HDR)
        if buf is not None and ln <= len(buf):
            data = memoryview(buf)[:ln]  # no heap block for the payload
            got = f.readinto(data) if ln else 0
        else:
            data = f.read(ln) if ln else b""
            got = len(data)
        if len(h) != HDR or got != ln:
            raise JournalError("short record read")
        c = _crc32(data, _crc32(memoryview(h)[:9])) & 0xFFFFFFFF
        if c != struct.unpack_from("<I", h, 9)[0] or struct.unpack_from("<I", h, 5)[0] != seq:
            raise JournalError("record %d corrupt" % seq)
        return (seq, meta >> 16, data)

    def pending(self, limit=None):
        """[(seq, kind, data_bytes)] not yet acked/dropped, in append order."""
        out = []
        if not self._n:
            return out
        idx = self._idx
        f = open(self.path, "rb")
        try:
            i = self._h * 3
            while i < len(idx):
                if idx[i + 2] != _DEAD:
                    if limit is not None and len(out) >= limit:
                        break
                    out.append(self._read(f, i))
                i += 3
        finally:
            f.close()
        return out

    def records(self, buf=None):
        """The pending (seq, kind, data) one at a time, in append order. buf:
        each payload that fits is read into it (data is then a memoryview of
        buf, valid until the next record): a long backlog is never in RAM
        whole."""
        idx = self._idx
        i = self._h * 3
        while i < len(idx):
            if idx[i + 2] != _DEAD:
                f = open(self.path, "rb")
                try:
                    r = self._read(f, i, buf)
                finally:
                    f.close()
                yield r
            i += 3

    def oldest(self, kind):
        """Sequence number of the oldest pending record of kind (from RAM), or None."""
        idx = self._idx
        for i in range(self._h * 3, len(idx), 3):
            meta = idx[i + 2]
            if meta != _DEAD and meta >> 16 == kind:
                return idx[i]
        return None

    def first(self, skip_kind=None, buf=None):
        """The oldest pending (seq, kind, data) whose kind is not skip_kind, or
        None. buf: read the payload into it when it fits (data is then a
        memoryview of buf, valid until buf is reused)."""
        idx = self._idx
        i = self._h * 3
        while i < len(idx):
            meta = idx[i + 2]
            if meta != _DEAD and meta >> 16 != skip_kind:
                f = open(self.path, "rb")
                try:
                    return self._read(f, i, buf)
                finally:
                    f.close()
            i += 3
        return None

    def copy(self, seq, start, end, out):
        """Write bytes start..end of pending record seq's payload into out (a
        stream with write()) through a small buffer, not the record whole (it
        was checked when read). False if seq is no longer pending."""
        i = self._find(seq)
        if i < 0:
            return False
        if self._chunk is None:
            self._chunk = bytearray(_CHUNK)  # kept: a message is sent this way every few seconds
        try:
            f = open(self.path, "rb")
            try:
                f.seek(self._idx[i + 1] + HDR + start)
                fsutil.pipe(f, end - start, out, self._chunk)
            finally:
                f.close()
        except OSError as e:
            raise JournalError("read failed: %r" % (e,))
        return True

    def seqs(self):
        """Pending sequence numbers, in order (from RAM, no flash read)."""
        idx = self._idx
        return [idx[i] for i in range(self._h * 3, len(idx), 3) if idx[i + 2] != _DEAD]

    def count(self):
        return self._n

    def size_bytes(self):
        return self._size

    def free_bytes(self):
        """Bytes still available to records (after compaction, if needed);
        a record of n payload bytes takes n + HDR."""
        f = self.max_bytes - self._live
        return f if f > 0 else 0

    def next_seq(self):
        return self._next
