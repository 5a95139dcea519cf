"""The REST face on the agent: the app with every route module, and the
server on its socket.  The entry point (agent.cli.box) builds it and attaches
it; the agent sees only start, probe, where and stop."""
import ssl

from agent.api import analysis, calls, capture, deception, detection, events, export, firmware, jobs, logs, pcap, \
    platform, recording, system
from agent.api.app import Api
from agent.api.server import Limits, Server, Tls
from agent.config import ConfigError

# the route modules, each with register(api); a new resource adds its module here
ROUTES = (platform, capture, export, recording, pcap, analysis, events, detection, deception, firmware, jobs, calls,
          system, logs)


class RestFace:
    def __init__(self, agent):
        self.agent = agent
        self.api = Api(agent)
        for module in ROUTES:
            module.register(self.api)
        a = agent.cfg.api
        host, port = agent.cfg.listen
        tls = Tls(a.tls_cert, a.tls_key, a.client_ca) if a.tls_cert else None
        try:
            self.server = Server(self.api.app, host, port, a.threads, self.api.envelope,
                                 Limits(a.max_connections, a.max_connections_per_client, a.idle_timeout_s,
                                        max(4, a.threads // 4)), tls)
        except ssl.SSLError as e:
            raise ConfigError("api.tls_cert", f"cannot load the TLS certificate and key: {e}") from None
        self.component = None

    def start(self) -> None:
        agent, server = self.agent, self.server
        self.component = agent.health.register("api", critical=True, detail=lambda: {
            "listen": f"{server.scheme}://{server.host}:{server.port}",
            "event_streams": self.api.sse_slots.total(), "connections": server.connections(),
            "auth": dict(agent.keys.counts)})
        agent.health.spawn(self.component, lambda c: server.serve(c))

    def probe(self, timeout: float) -> bool:
        """Alive only if it answers through its own socket; systemd restarts a box whose API does
        not (a dead server thread, every worker stuck)."""
        if self.server.ready and self.server.probe(timeout):
            self.component.beat()
            return True
        return False

    def where(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()
