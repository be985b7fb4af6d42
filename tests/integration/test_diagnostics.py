"""GetDiagnostics on the bench (docs/logging.md): the log lines of the SD
card's files (DIR/sd/log/) within startTime..stopTime are uploaded to a local
HTTP server (PUT) and a local FTP server (pyftpdlib, passive mode), with
DiagnosticsStatusNotification Uploading / Uploaded, UploadFailed after the
retries when the server refuses, and TriggerMessage reporting the state."""
import datetime
import re
import threading
import time

import pytest

from tests.integration.httpd import LocalHTTP, Quiet
from tests.integration.rig import Rig

NOTE = "DiagnosticsStatusNotification"
# pyftpdlib 2.2 on Python 3.11: asyncore/asynchat deprecation warnings.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (INF|WRN|ERR|DBG) ")


class Uploads(LocalHTTP):
    """A local HTTP server taking PUT/POST uploads: path -> body; `refuse`: 403."""

    def __init__(self, refuse=False):
        outer = self
        self.got = []  # (method, path, headers, body)
        self.refuse = refuse

        class H(Quiet):
            def do_PUT(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.got.append((self.command, self.path, dict(self.headers), body))
                self.send_response(403 if outer.refuse else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

        super().__init__(H)


def markers(rig, names):
    """One log line per name ("config: <name> -> NotSupported"), each in its own second."""
    for i, n in enumerate(names):
        if i:
            time.sleep(1.05)
        assert rig.call("ChangeConfiguration", {"key": n, "value": "1"})["status"] == "NotSupported"


def stamp_of(text, marker):
    line = [x for x in text.splitlines() if "config: %s -> " % marker in x]
    assert len(line) == 1, text
    return STAMP.match(line[0]).group(1)


def check_window(text, t, present, absent):
    lines = text.splitlines()
    assert lines and all(STAMP.match(x) and STAMP.match(x).group(1) == t for x in lines), text
    for m in present:
        assert "config: %s -> " % m in text
    for m in absent:
        assert "config: %s -> " % m not in text


def statuses(rig, since_t):
    return [p["status"] for p in rig.calls(NOTE, since_t=since_t)]


def get_diagnostics(rig, location, **kw):
    p = {"location": location}
    p.update(kw)
    return rig.call("GetDiagnostics", p)


def test_get_diagnostics_uploads_the_window_by_http_and_ftp(tmp_path, csms):
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    ftp_root = tmp_path / "ftp"
    (ftp_root / "diag").mkdir(parents=True)
    auth = DummyAuthorizer()
    auth.add_user("cs", "secret", str(ftp_root), perm="elradfmw")

    class H(FTPHandler):
        pass

    H.authorizer = auth
    ftpd = ThreadedFTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=ftpd.serve_forever, kwargs={"timeout": 0.05}, daemon=True).start()
    srv = Uploads()
    try:
        with Rig(tmp_path, csms) as rig:
            markers(rig, ["DiagMarkA", "DiagMarkB", "DiagMarkC"])
            # Everything so far: no time window.
            t0 = rig.now()
            name = get_diagnostics(rig, srv.url + "/up/", retries=1)["fileName"]
            assert re.match(r"^diagnostics-[\w-]+-\d{8}T\d{6}Z\.log$", name), name
            rig.wait_call(NOTE, since_t=t0, where=lambda p: p["status"] == "Uploaded")
            assert statuses(rig, t0) == ["Uploading", "Uploaded"]
            method, path, headers, body = srv.got[0]
            assert (method, path) == ("PUT", "/up/" + name)
            text = body.decode()
            assert "app: boot" in text and all(STAMP.match(x) for x in text.splitlines())
            tb = stamp_of(text, "DiagMarkB")
            assert stamp_of(text, "DiagMarkA") < tb < stamp_of(text, "DiagMarkC")
            # One second, to a fixed URL (no trailing slash: as given).
            t1 = rig.now()
            name2 = get_diagnostics(rig, srv.url + "/fixed?k=1", startTime=tb, stopTime=tb)["fileName"]
            rig.wait_call(NOTE, since_t=t1, where=lambda p: p["status"] == "Uploaded")
            method, path, headers, body = srv.got[1]
            assert path == "/fixed?k=1" and name2 in headers["Content-Disposition"]
            check_window(body.decode(), tb, ["DiagMarkB"], ["DiagMarkA", "DiagMarkC"])
            # The same window over FTP, into the folder of the URL.
            t2 = rig.now()
            name3 = get_diagnostics(rig, "ftp://cs:secret@127.0.0.1:%d/diag" % ftpd.address[1],
                                    startTime=tb, stopTime=tb)["fileName"]

            rig.wait_call(NOTE, since_t=t2, where=lambda p: p["status"] == "Uploaded")
            assert statuses(rig, t2) == ["Uploading", "Uploaded"]
            check_window((ftp_root / "diag" / name3).read_text(), tb, ["DiagMarkB"], ["DiagMarkA", "DiagMarkC"])
            log = rig.firmware_log(300)
            assert "bytes uploaded to ftp://...@127.0.0.1:%d/diag" % ftpd.address[1] in log
            assert "secret" not in log
            # Nothing in the window (tomorrow): no fileName, nothing uploaded.
            t3 = rig.now()
            tomorrow = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            assert get_diagnostics(rig, srv.url + "/up/", startTime=tomorrow) == {}
            time.sleep(0.5)
            assert statuses(rig, t3) == [] and len(srv.got) == 2
    finally:
        srv.close()
        ftpd.close_all()


def test_upload_refused_fails_after_the_retries_and_trigger_reports_the_state(tmp_path, csms):
    srv = Uploads(refuse=True)
    try:
        with Rig(tmp_path, csms) as rig:
            t0 = rig.now()
            assert rig.call("TriggerMessage", {"requestedMessage": NOTE})["status"] == "Accepted"
            assert rig.wait_call(NOTE, since_t=t0)["status"] == "Idle"
            t1 = rig.now()
            assert "fileName" in get_diagnostics(rig, srv.url + "/up/", retries=2, retryInterval=2)
            rig.wait_call(NOTE, since_t=t1, where=lambda p: p["status"] == "Uploading")
            time.sleep(0.5)  # between the two attempts
            t2 = rig.now()
            rig.call("TriggerMessage", {"requestedMessage": NOTE})
            assert rig.wait_call(NOTE, since_t=t2)["status"] == "Uploading"
            rig.wait_call(NOTE, timeout=15, since_t=t1, where=lambda p: p["status"] == "UploadFailed")
            assert statuses(rig, t1) == ["Uploading", "Uploading", "Uploading", "UploadFailed"]  # one triggered
            assert len(srv.got) == 2
            assert "upload 2 of 2 to %s/up/ failed" % srv.url in rig.firmware_log(200)
            t3 = rig.now()
            rig.call("TriggerMessage", {"requestedMessage": NOTE})
            assert rig.wait_call(NOTE, since_t=t3)["status"] == "Idle"
            # A location we cannot use: UploadFailed at once, no retry.
            t4 = rig.now()
            assert "fileName" in get_diagnostics(rig, "sftp://127.0.0.1/x", retries=3, retryInterval=30)
            rig.wait_call(NOTE, since_t=t4, where=lambda p: p["status"] == "UploadFailed")
            assert statuses(rig, t4) == ["Uploading", "UploadFailed"]
            # The SD card fails (SDCardFailure): file logging off, nothing to upload, charging unaffected.
            rig.cmd(cmd="fail", part="sd_card", active=True)
            rig.wait_bench(lambda s: "log files off" in rig.firmware_log(100) or
                           "SDCardFailure" in str(rig.calls("StatusNotification")), what="SDCardFailure")
            time.sleep(1.5)
            assert get_diagnostics(rig, srv.url + "/up/") == {}
    finally:
        srv.close()
