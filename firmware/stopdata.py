# The meter values a StopTransaction carries in its transactionData
# (StopTxnSampledData at Transaction.Begin, StopTxnAlignedData at each clock
# boundary), kept on flash while the transaction runs rather than in RAM (a
# three-phase session's entries are kilobytes of heap), and streamed into the
# StopTransaction's journal record when it stops. After a power cut the
# PowerLoss stop still finds them.
#
# The file: "<local id>\n" then the entries, each a meterValue's JSON,
# separated by ",". Sizes of the entries are known in RAM only for the
# transaction this boot follows (enough to drop the oldest clock entry).
import os

from micropython import const

from lib import fsutil, log

FILE = "stopdata.txt"
_KEEP = const(12)      # Sample.Clock entries kept, the newest
_BUF = 128


class StopData:
    def __init__(self, root):
        self.path = root + FILE
        self.local = None   # the transaction the file is about (None: not known this boot)
        self.sizes = []     # entry sizes, in file order
        self.begun = False  # the first entry is the Transaction.Begin one
        self.head = 0       # bytes of the header line

    def begin(self, local, text):
        """A new transaction: the file holds its Transaction.Begin value
        (text: bytes or a memoryview; None: none)."""
        self.local = local
        head = b"%d\n" % local
        self.head = len(head)
        self.sizes = []
        self.begun = text is not None
        try:
            with open(self.path, "wb") as f:
                f.write(head)
                if text is not None:
                    f.write(text)
                    self.sizes.append(len(text))
        except OSError as e:
            self.local = None
            log.error("meter", "stop data: %r" % (e,))

    def clock(self, text):
        """A Sample.Clock entry of the current transaction; the oldest goes beyond _KEEP."""
        if self.local is None:
            return
        try:
            with open(self.path, "ab") as f:
                if self.sizes:
                    f.write(b",")
                f.write(text)
            self.sizes.append(len(text))
            if len(self.sizes) - self.begun > _KEEP:
                self._drop(1 if self.begun else 0)
        except OSError as e:
            self.local = None  # what is on file is no longer known: no transactionData from it
            log.error("meter", "stop data: %r" % (e,))

    def _drop(self, i):
        # Rewrite the file without entry i and one separator next to it.
        at = self.head + sum(self.sizes[:i]) + i - (1 if i else 0)
        skip = self.sizes[i] + 1
        tmp = self.path + ".new"
        buf = bytearray(_BUF)
        with open(self.path, "rb") as src:
            with open(tmp, "wb") as dst:
                fsutil.pipe(src, at, dst, buf)
                src.seek(at + skip)
                fsutil.pipe(src, None, dst, buf)
        fsutil.replace(tmp, self.path)
        self.sizes.pop(i)

    def items(self, local, instead=None):
        """The kept entries of transaction `local` as an item of
        ocppj.write_obj (fn(out, sep) -> sep); `instead` (JSON text or None)
        when the file is not about it."""
        path = self.path
        known = self.local is None or self.local == local

        def other(out, sep):
            if instead is None:
                return sep
            if sep:
                out.write(b",")
            out.write(instead)
            return True

        def write(out, sep):
            try:
                f = open(path, "rb")
            except OSError:
                return other(out, sep)
            try:
                line = f.readline()
                try:
                    if int(line) != local:
                        return other(out, sep)
                except ValueError:
                    return other(out, sep)
                if os.stat(path)[6] <= len(line):
                    return sep  # nothing kept
                if sep:
                    out.write(b",")
                fsutil.pipe(f, None, out, bytearray(_BUF))
                return True
            finally:
                f.close()

        return write if known else other
