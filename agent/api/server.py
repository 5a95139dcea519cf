"""The threaded WSGI server that serves the Bottle app: waitress.

Chosen over cheroot by measurement (bench/RESULTS.md): with 50 keep-alive
clients on two cores cheroot's tail latency reached a second (its select
loop sees a connection a worker hands back only at its next timeout), while
waitress's event loop hands requests to its worker threads at once."""
import logging

import waitress

log = logging.getLogger(__name__)
logging.getLogger("waitress").setLevel(logging.ERROR)  # it logs every queued task at WARNING


class Server:
    def __init__(self, app, host: str, port: int, threads: int, max_body: int, connection_limit: int = 1000,
                 max_upload: int = 0):
        # waitress reads a body before the app sees it: the app answers 413 with
        # the envelope above max_body (max_upload: routes that take files); far
        # larger bodies waitress cuts off itself
        self.server = waitress.create_server(
            app, host=host, port=port, threads=threads, connection_limit=connection_limit,
            channel_timeout=120, ident="capbox", expose_tracebacks=False, clear_untrusted_proxy_headers=True,
            max_request_body_size=max(64 * max_body, 64 << 20, max_upload))
        self.host, self.port = self.server.effective_host, int(self.server.effective_port)
        self.ready = False

    def serve(self, component) -> None:
        component.beat()
        self.ready = True
        log.info("REST API on http://%s:%d/v1", self.host if ":" not in self.host else f"[{self.host}]", self.port)
        try:
            self.server.run()
        except OSError:
            if self.ready:  # close() from stop() ends run() this way
                return
            raise

    def stop(self) -> None:
        self.ready = False
        self.server.close()
