"""/v1 detection and verification: POST /v1/verify, POST /v1/verify-dns,
POST /v1/verify-tls, GET /v1/paths, GET /v1/threats, GET/PATCH /v1/threats/{id}."""
import urllib.parse

from agent.api.app import WRITE, Api
from agent.api.validate import Field
from agent.bus import parse_time
from agent.detectors.detector import SEVERITIES
from agent.errors import validation
from agent.threats import STATUSES
from agent.verify.verifier import COMPARE_METHODS, STRATEGIES

VERIFY = {"url": Field(str, doc="http(s) URL to check"), "num_paths": Field(int, 10, doc="3-40"),
          "timeout": Field(float, 15.0, doc="seconds per path, 1-30"),
          "strategy": Field(str, "", choices=("",) + STRATEGIES, doc="default: [verify] strategy"),
          "compare_method": Field(str, "content_hash", choices=COMPARE_METHODS),
          "auto_deception": Field(bool, True, doc="start deception when an attack is found"),
          "paths": Field(list, [], doc="path ids to use instead of a strategy's choice")}
VERIFY_DNS = {"domain": Field(str), "record_type": Field(str, "A", choices=("A", "AAAA", "MX", "TXT")),
              "num_paths": Field(int, 10, doc="3-40"), "timeout": Field(float, 10.0, doc="seconds per path, 1-30"),
              "strategy": Field(str, "", choices=("",) + STRATEGIES), "paths": Field(list, []),
              "local_ips": Field(list, [], doc="the answer the network got (default: [verify] local_resolver's)"),
              "auto_deception": Field(bool, False)}
VERIFY_TLS = {"host": Field(str, doc="host name or address of the TLS server"),
              "port": Field(int, 443, 1, 65535), "sni": Field(str, "", doc="server name to send (default: host)"),
              "num_paths": Field(int, 10, doc="3-40"), "timeout": Field(float, 10.0, doc="seconds per path, 1-30"),
              "strategy": Field(str, "", choices=("",) + STRATEGIES), "paths": Field(list, []),
              "local_fingerprint": Field(str, "", doc="SHA-256 of the leaf certificate seen on the wire (64 hex)",
                                         max_len=95),
              "auto_deception": Field(bool, False)}
THREATS = {"attack_type": Field(str, ""), "severity": Field(str, "", choices=("",) + SEVERITIES),
           "verified": Field(str, "", choices=("", "true", "false")), "status": Field(str, "", choices=("",) + STATUSES),
           "since": Field(str, "", doc="ISO 8601 time or unix seconds"), "limit": Field(int, 100, 1, 1000),
           "offset": Field(int, 0, 0)}
PATCH = {"status": Field(str, choices=STATUSES[1:], doc="acknowledged, confirmed or false_positive"),
         "note": Field(str, "")}


def list_threats(agent, attack_type, severity, verified, status, since, limit, offset) -> dict:
    """Threats for a query (THREATS's fields, validated)."""
    return agent.threats.list(attack_type, severity, None if not verified else verified == "true", _since(since),
                              limit, offset, status)


def _since(text: str):
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise validation("since must be an ISO 8601 time or unix seconds", field="since") from None


def register(api: Api) -> None:
    agent = api.agent

    @api.route("POST", "/v1/verify", "Verify a URL through N independent paths (the seeds' two routes in one)",
               access=WRITE, rate="verify", body=VERIFY, tag="verify")
    def verify(url, num_paths, timeout, strategy, compare_method, auto_deception, paths):
        result = agent.verifier.verify_url(url, num_paths, timeout, strategy or agent.cfg.verify.strategy,
                                           compare_method, paths=paths or None)
        lp = agent.verifier.local_proxy
        host = urllib.parse.urlsplit(result["url"]).hostname
        return {**result, **agent.threats.from_verification("content_tampering", result, lp[0] if lp else "", host,
                                                             auto_deception)}

    @api.route("POST", "/v1/verify-dns", "Verify a DNS answer through N independent paths", access=WRITE,
               rate="verify_dns", body=VERIFY_DNS, tag="verify")
    def verify_dns(domain, record_type, num_paths, timeout, strategy, paths, local_ips, auto_deception):
        return agent.threats.check_dns(domain, record_type, num_paths, timeout, strategy, paths, local_ips,
                                       auto_deception)

    @api.route("POST", "/v1/verify-tls", "Verify a server's certificate through N independent paths",
               access=WRITE, rate="verify", body=VERIFY_TLS, tag="verify")
    def verify_tls(host, port, sni, num_paths, timeout, strategy, paths, local_fingerprint, auto_deception):
        result = agent.verifier.verify_tls(host, port, sni, num_paths, timeout, strategy or agent.cfg.verify.strategy,
                                           local_fingerprint or None, paths or None)
        return {**result, **agent.threats.from_verification("tls_intercept", result, "", result["host"],
                                                             auto_deception)}

    @api.route("GET", "/v1/paths", "Verification paths with their health", tag="verify")
    def paths():
        return agent.verifier.path_views()

    @api.route("GET", "/v1/threats", "Threats, newest first, filtered", rate="threats", query=THREATS, tag="threats")
    def threats(**query):
        return list_threats(agent, **query)

    @api.route("GET", "/v1/threats/<threat_id>", "One threat: evidence, verification, deception, related events",
               rate="threats", tag="threats")
    def threat(threat_id):
        return agent.threats.threat(threat_id)

    @api.route("PATCH", "/v1/threats/<threat_id>", "Mark a threat acknowledged, confirmed or a false positive",
               access=WRITE, body=PATCH, tag="threats")
    def patch(threat_id, status, note):
        return agent.threats.update(threat_id, status, note or None)
