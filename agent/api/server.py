"""The threaded WSGI server (cheroot) that serves the Bottle app."""
import logging
import threading

from cheroot import wsgi

log = logging.getLogger(__name__)


class Server:
    def __init__(self, app, host: str, port: int, threads: int):
        self.server = wsgi.Server((host, port), app, numthreads=threads, max=threads * 8,
                                  server_name="capbox", timeout=30, shutdown_timeout=2)
        self.server.prepare()  # binds now, so a busy port is an error at start
        self.host, self.port = self.server.bind_addr[:2]
        self._thread = None

    def serve(self, component) -> None:
        component.beat()
        log.info("REST API on http://%s:%d/v1", self.host if ":" not in self.host else f"[{self.host}]", self.port)
        self.server.serve()

    def stop(self) -> None:
        self.server.stop()
