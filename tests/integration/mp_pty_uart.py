# The HAL meter UART interface (docs/hal.md) over a pseudo-terminal path, for
# the MicroPython unix port. The unix port has no os.read/fcntl, but it has
# open(), termios (tcgetattr/tcsetattr/setraw) and select.poll. With the tty
# in raw mode and VMIN = VTIME = 0, read(2) returns at once with what is
# there (0 if nothing), so FileIO.readinto() is non-blocking and returns the
# bytes read; without this it would block until the buffer is full.
import select
import termios

_VTIME = 5  # Linux c_cc indices (termios on MicroPython does not export them)
_VMIN = 6


class PtyUart:
    def __init__(self, path):
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self.inits = []

    def init(self, baud, bits=8, parity=0, stop=1):
        self.inits.append((baud, bits, parity, stop))  # a pty has no line settings

    def write(self, buf):
        return self._f.write(buf)

    def readinto(self, buf):
        return self._f.readinto(buf) or 0

    def any(self):
        # poll says whether bytes wait, not how many
        return 1 if self._poll.poll(0) else 0

    def close(self):
        self._f.close()
