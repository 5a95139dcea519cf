"""The threaded WSGI server that serves the Bottle app: waitress.

Chosen over cheroot by measurement (bench/RESULTS.md): with 50 keep-alive
clients on two cores cheroot's tail latency reached a second (its select
loop sees a connection a worker hands back only at its next timeout), while
waitress's event loop hands requests to its worker threads at once.

waitress reads a whole request body before the app sees it (spooling large
ones to a temporary file, so memory stays flat).  Upload routes may send up
to the jobs limit; every other route keeps the small limit, checked as soon
as the headers are in, so a huge body to a JSON route is refused before it
is read.  Refusals waitress makes itself carry the API's JSON envelope."""
import copy
import logging

import waitress
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask

log = logging.getLogger(__name__)
logging.getLogger("waitress").setLevel(logging.ERROR)  # it logs every queued task at WARNING


class Server:
    def __init__(self, app, host: str, port: int, threads: int, max_body: int, connection_limit: int = 1000,
                 max_upload: int = 0, uploads: tuple = (), upload_max: int = 0, error_body=None):
        """max_upload: the largest body a JSON route takes (firmware images);
        uploads: (method, path) pairs whose bodies may reach upload_max bytes (files);
        error_body(status, reason, path) -> JSON bytes for refusals waitress makes."""
        # the app answers 413 with the envelope above each route's limit; far larger bodies waitress refuses itself
        small = max(64 * max_body, 64 << 20, max_upload)
        self.server = waitress.create_server(
            app, host=host, port=port, threads=threads, connection_limit=connection_limit,
            channel_timeout=120, ident="capbox", expose_tracebacks=False, clear_untrusted_proxy_headers=True,
            max_request_body_size=max(small, upload_max))
        small_adj = copy.copy(self.server.adj)
        small_adj.max_request_body_size = small
        upload_routes = {(m, p.rstrip("/")) for m, p in uploads}

        class Parser(HTTPRequestParser):
            def parse_header(self, header_plus):
                super().parse_header(header_plus)
                if (self.command, self.path.rstrip("/")) not in upload_routes:
                    self.adj = small_adj  # the body check that follows uses this limit

        class JsonErrorTask(ErrorTask):
            def execute(self):
                if error_body is None:
                    return super().execute()
                e = self.request.error
                body = error_body(e.code, e.reason, getattr(self.request, "path", "") or "")
                self.status = f"{e.code} {e.reason}"
                self.response_headers.append(("Content-Type", "application/json"))
                self.set_close_on_finish()
                self.content_length = len(body)
                self.write(body)

        class Channel(HTTPChannel):
            parser_class = Parser
            error_task_class = JsonErrorTask

        self.server.channel_class = Channel
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
