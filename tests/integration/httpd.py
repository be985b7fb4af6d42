"""A local HTTP server for bench tests (UpdateFirmware downloads,
GetDiagnostics uploads): `handler` a BaseHTTPRequestHandler subclass (its
log_message is silenced here), served on 127.0.0.1 from a thread."""
import http.server
import threading


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass


class LocalHTTP:
    def __init__(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
