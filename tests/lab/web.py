"""The lab's "public" web servers (run in the inet namespace): a bank site on
HTTP and HTTPS.  Plain HTTP answers with an upgrade redirect to HTTPS, as
real sites do; HTTPS serves a login form and takes the login POST.

    python -m tests.lab.web CERT KEY"""
import http.server
import ssl
import sys
import threading

FORM = (b"<html><body><h1>Lab bank</h1><form method=post action='https://bank.capbox-lab.net/login'>"
        b"<input name=user><input type=password name=password><input type=submit></form>"
        b"<a href='https://shop.capbox-lab.net/'>shop</a></body></html>")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes = b"", headers: dict = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        host = (self.headers.get("Host") or "bank.capbox-lab.net").split(":")[0]
        if not self.server.tls:
            self._send(301, b"", {"Location": f"https://{host}{self.path}"})
        else:
            self._send(200, FORM, {"Content-Type": "text/html", "Strict-Transport-Security": "max-age=600"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self._send(200, b"<html>welcome</html>", {"Content-Type": "text/html"})

    def log_message(self, *args):
        pass


def serve(port: int, tls, cert: str = "", key: str = "") -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    srv.tls = tls
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


if __name__ == "__main__":
    serve(80, False)
    serve(443, True, sys.argv[1], sys.argv[2])
    threading.Event().wait()
