"""lib/ftp: passive-mode STOR against a real FTP server (pyftpdlib) and a
scripted one (multi-line replies, refusals, a PASV reply without parentheses)."""
import asyncio
import socket
import threading

import pytest

from lib import ftp

# pyftpdlib 2.2 on Python 3.11: asyncore/asynchat deprecation; anonymous may write (a test server).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")


def opener(host, port, ssl_ctx=None, server_hostname=None):
    return asyncio.open_connection(host, port)


def body_of(data, piece=7):
    async def body(w):
        for i in range(0, len(data), piece):
            w.write(data[i:i + piece])
            await w.drain()
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    root = tmp_path_factory.mktemp("ftp")
    (root / "diag").mkdir(parents=True)
    auth = DummyAuthorizer()
    auth.add_user("jolt", "p@ss:w", str(root), perm="elradfmw")
    auth.add_anonymous(str(root), perm="elrw")

    class H(FTPHandler):
        pass

    H.authorizer = auth
    H.passive_ports = None
    H.auth_failed_timeout = 0.05  # (3 s by default)
    srv = ThreadedFTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, kwargs={"timeout": 0.05}, daemon=True)
    t.start()
    yield root, srv.address[1]
    srv.close_all()


def test_parse():
    assert ftp.parse("ftp://h") == ("anonymous", "jolt@", "h", 21, "")
    assert ftp.parse("ftp://u:p%40x@h:2121/a/b") == ("u", "p@x", "h", 2121, "a/b/")
    assert ftp.parse("ftp://u@h/a/") == ("u", "", "h", 21, "a/")
    for bad in ("http://h/x", "ftp://h:0/x", "ftp://h:x/", "ftp:///x", "ftp://h /x", None,
                "ftp://u:p%0D%0ADELE%20x@h/", "ftp://h/a%0Ab"):
        with pytest.raises(ValueError):
            ftp.parse(bad)


def test_stor_with_user_and_password_into_a_folder(server):
    root, port = server
    data = bytes(range(256)) * 40 + b"\r\nlast line\n"  # binary (TYPE I): every byte as sent
    asyncio.run(ftp.stor(opener, "ftp://jolt:p%%40ss%%3Aw@127.0.0.1:%d/diag" % port, "x.log", body_of(data)))
    assert (root / "diag" / "x.log").read_bytes() == data


def test_stor_anonymous(server):
    root, port = server
    asyncio.run(ftp.stor(opener, "ftp://127.0.0.1:%d/" % port, "a.log", body_of(b"hello\n")))
    assert (root / "a.log").read_bytes() == b"hello\n"


def test_wrong_password_and_missing_folder_are_refused(server):
    root, port = server
    with pytest.raises(OSError) as e:
        asyncio.run(ftp.stor(opener, "ftp://jolt:nope@127.0.0.1:%d/diag" % port, "refused.log", body_of(b"x")))
    assert str(e.value).startswith("530")
    with pytest.raises(OSError) as e:
        asyncio.run(ftp.stor(opener, "ftp://jolt:p%%40ss%%3Aw@127.0.0.1:%d/nowhere" % port, "refused.log",
                             body_of(b"x")))
    assert str(e.value)[:1] == "5"
    assert not list(root.rglob("refused.log"))


class Scripted:
    """One-connection FTP server speaking the given replies; records commands."""

    def __init__(self, pasv_fmt, replies):
        self.cmds = []
        self.data = b""
        self.ctl = socket.socket()
        self.ctl.bind(("127.0.0.1", 0))
        self.ctl.listen(1)
        self.dsock = socket.socket()
        self.dsock.bind(("127.0.0.1", 0))
        self.dsock.listen(1)
        dp = self.dsock.getsockname()[1]
        self.replies = dict(replies)
        self.replies.setdefault("PASV", pasv_fmt % (dp >> 8, dp & 255))
        self.port = self.ctl.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        c, _ = self.ctl.accept()
        f = c.makefile("rb")
        c.sendall(b"220-Welcome\r\n220-to the\r\n220 scripted server\r\n")
        for line in f:
            cmd = line.decode().strip()
            self.cmds.append(cmd)
            verb = cmd.split()[0]
            c.sendall((self.replies.get(verb, "200 ok") + "\r\n").encode())
            if verb == "STOR" and self.replies.get(verb, "150")[:1] == "1":
                d, _ = self.dsock.accept()
                while True:
                    b = d.recv(4096)
                    if not b:
                        break
                    self.data += b
                d.close()
                c.sendall(b"226-Transfer\r\n226 complete\r\n")
            if verb == "QUIT":
                break
        c.close()


def test_multi_line_replies_a_user_needing_no_password_and_pasv_without_parentheses():
    s = Scripted("227 Entering Passive Mode 127,0,0,1,%d,%d", {"USER": "230 in", "STOR": "150 go"})
    asyncio.run(ftp.stor(opener, "ftp://127.0.0.1:%d/d/e" % s.port, "f.log", body_of(b"abc" * 100)))
    assert s.data == b"abc" * 100
    assert s.cmds == ["USER anonymous", "TYPE I", "PASV", "STOR d/e/f.log", "QUIT"]


def test_a_refused_stor_and_a_bad_pasv_reply_fail():
    s = Scripted("227 Entering Passive Mode (127,0,0,1,%d,%d)", {"STOR": "553 not allowed", "USER": "331 pw"})
    with pytest.raises(OSError, match="553 not allowed"):
        asyncio.run(ftp.stor(opener, "ftp://u:p@127.0.0.1:%d/" % s.port, "f.log", body_of(b"x")))
    assert s.cmds[:2] == ["USER u", "PASS p"]
    s = Scripted("227 no address %d %d", {})
    with pytest.raises(OSError, match="bad PASV reply"):
        asyncio.run(ftp.stor(opener, "ftp://127.0.0.1:%d/" % s.port, "f.log", body_of(b"x")))
