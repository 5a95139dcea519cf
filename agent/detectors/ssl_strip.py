"""SSL stripping: a host the client reached over HTTPS (SNI), or that asked
for HTTPS (a redirect to https://), served over plain HTTP.

Reads TLS hellos (which hosts are HTTPS hosts, and through which server and
MAC) and HTTP heads (requests matched to responses per connection).
Indicators (a finding needs ssl_strip_threshold, 70):
- a redirect to http:// for an HTTPS host (45): the https:// of the real
  redirect rewritten;
- a page served over plain HTTP for an HTTPS host (40);
- credentials or a login form posted over HTTP (40);
- what made the host an HTTPS host: a redirect to https seen (30), or
  only its SNI (20);
- HSTS missing where a response for the host carried it before (30);
- served by another server or MAC than the host's TLS went to (20);
- after a downgrade redirect for the host was seen (20); links or form
  actions rewritten to http:// (15).
An upgrade redirect (http -> https), or HTTP to a host never seen with TLS,
raises nothing.  The source of a finding is whoever served the plain HTTP
(or received the credentials): the server, or the proxy in its place."""
import re
import urllib.parse

from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from agent.detectors.handshake import event_records
from agent.detectors.lan import LEARN_KINDS

CREDENTIAL_FIELDS = re.compile(rb"(?:^|[&?;\s\"'])(?:pass(?:word|wd|wort|code|phrase)?|pwd|pin|secret|"
                               rb"credentials?|user_?pass|login_?password)=", re.I)
LOGIN_PATHS = re.compile(r"log_?in|sign_?in|auth|session|account|password|passwd", re.I)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
PIPELINED = 32         # requests kept per connection, waiting for their responses (past it, the oldest is forgotten)
HTTP_LINK = re.compile(rb"(?:action|href)\s*=\s*[\"']?http://([a-z0-9.-]+)", re.I)


def _host(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if value.startswith("["):
        return value.split("]")[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _split(url: str):
    """urlsplit, or None for a URL it refuses (an unclosed IPv6 bracket, a bad port): the sender chooses what it
    sends, and one such request or Location raised out of the detectors (`capbox detect` stopped with a traceback).
    A plain path (the usual request target: no scheme, no authority, none of the characters urlsplit removes) is
    split here to urlsplit's own result (3 us each, for 20,020 new targets on large.pcap)."""
    if url[:1] == "/" and url[1:2] != "/" and "\t" not in url and "\r" not in url and "\n" not in url:
        rest, _, fragment = url.partition("#")
        path, _, query = rest.partition("?")
        return urllib.parse.SplitResult("", "", path, query, fragment)
    try:
        return urllib.parse.urlsplit(url)
    except ValueError:
        return None


def parse_http(p: bytes):
    head, sep, body = p.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")   # (latin-1 maps byte to character: one decode, not two a line)
    first = lines[0]
    headers: dict = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if first.startswith("HTTP/"):
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        return {"response": True, "status": int(parts[1]), "headers": headers, "body": body}
    parts = first.split(" ")
    if len(parts) < 3 or not parts[2].startswith("HTTP/"):
        return None
    return {"response": False, "method": parts[0], "target": parts[1], "headers": headers, "body": body,
            "complete_head": bool(sep)}


def parse(ev):
    if ev.kind == "tls":
        snis = [r["sni"] for r in event_records(ev) if r["type"] == "client_hello" and r["sni"]]
        return _facts(ev, {"sni": snis[0]}) if snis else None
    msg = parse_http(ev.payload)
    return _facts(ev, msg) if msg else None


def _facts(ev, f: dict) -> dict:
    """f with the event's own facts (none of f's keys): one dict made, not two merged (40,040 HTTP heads)."""
    f["kind"], f["flow"], f["src"], f["dst"], f["sport"], f["dport"] = (ev.kind, ev.flow_id, ev.src, ev.dst,
                                                                       ev.sport, ev.dport)
    f["src_mac"], f["dst_mac"], f["ts"] = ev.src_mac, ev.dst_mac, ev.ts_ns / 1e9
    return f


class Detector(Base):
    name = "ssl_strip"
    kinds = ("tls", "http")
    learns = tuple(k for k in LEARN_KINDS if k not in ("tls", "http"))
    threshold_key = "ssl_strip_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.tls_hosts = Recent()   # host -> {"ts", "server", "mac"} of its last ClientHello
        self.wants_https = Recent()  # host -> (ts, why): redirected to https
        self.hsts = Recent()         # host -> ts of a response that carried HSTS
        self.downgraded = Recent()   # host -> ts of a redirect to http:// seen for it
        self.pending = Recent()      # flow id -> requests waiting for their response

    def detect(self, f) -> list:
        if f["kind"] == "tls":
            self.tls_hosts[f["sni"]] = {"ts": f["ts"], "server": f["dst"], "mac": f["dst_mac"]}
            return []
        if not f["response"]:
            return self._request(f)
        queue = self.pending.get(f["flow"])
        if not queue:
            return []
        return self._response(f, queue.pop(0))

    def _https_host(self, host: str, ind: Indicators) -> bool:
        wants = self.wants_https.get(host)
        if wants:
            ind.add("https_host", 30, f"{host} asked for HTTPS before ({wants[1]})")
            return True
        if host in self.tls_hosts:
            ind.add("https_host", 20, f"{host} was reached over TLS before (SNI)")
            return True
        return False

    def _request(self, f) -> list:
        h = f["headers"]
        split = _split(f["target"])
        host = _host(h.get("host", "")) or _host((split.hostname if split else None) or "")
        req = {"host": host, "method": f["method"], "target": f["target"], "ts": f["ts"]}
        queue = self.pending.get(f["flow"])
        if queue is None:                       # (a list: a deque(maxlen=) cost 5 times as much to make, for what is
            self.pending[f["flow"]] = [req]     # most often one request)
        else:
            queue.append(req)
            if len(queue) > PIPELINED:
                del queue[0]
        if not host:
            return []
        query = (split.query if split else f["target"].partition("?")[2].partition("#")[0]).encode("latin-1",
                                                                                                   "replace")
        creds = []   # (every match of CREDENTIAL_FIELDS holds a "=": without one, its search is not run)
        body = f["body"]
        if (b"=" in body and CREDENTIAL_FIELDS.search(body)) or (b"=" in query
                                                                and CREDENTIAL_FIELDS.search(b"?" + query)):
            creds.append("a password field")
        if h.get("authorization", "").lower().startswith("basic "):
            creds.append("HTTP Basic credentials")
        if f["method"] == "POST" and h.get("content-type", "").split(";")[0].strip().lower() in FORM_TYPES \
                and LOGIN_PATHS.search(f["target"]):
            creds.append("a login form")
        if not creds:
            return []
        ind = Indicators()
        ind.add("credentials_over_http", 40, f"{' and '.join(creds)} sent in clear to {host}{f['target'][:80]}")
        if not self._https_host(host, ind):
            return self._finding(ind, f, host, req, None, attacker_side="dst")
        if host in self.downgraded:
            ind.add("after_downgrade", 20, f"after a redirect of {host} to plain HTTP")
        self._other_server(host, f["dst"], f["dst_mac"], ind)
        return self._finding(ind, f, host, req, None, attacker_side="dst")

    def _response(self, f, req) -> list:
        host, h, ts = req["host"], f["headers"], f["ts"]
        if not host:
            return []
        location = h.get("location", "")
        target = _split(location) if location else None
        if "strict-transport-security" in h:
            self.hsts[host] = ts      # over plain HTTP a browser ignores it: proof of nothing but the server's habit
        if target and target.scheme == "https" and target.hostname:
            self.wants_https[_host(target.hostname)] = (ts, f"redirect to {location[:80]}")
            return []
        if not self.tls_hosts and not self.wants_https and host not in self.hsts:
            return []     # no host known to be an HTTPS host, nor HSTS from this one: every indicator below needs one
        ind = Indicators()
        subject = host
        if target and target.scheme == "http" and 300 <= f["status"] < 400 and target.hostname:
            subject = _host(target.hostname)
            if subject in self.tls_hosts or subject in self.wants_https:
                self.downgraded[subject] = ts
                ind.add("redirect_to_http", 45, f"{f['status']} redirect of {host}{req['target'][:60]} to {location[:80]}")
        elif f["status"] == 200 and req["method"] in ("GET", "HEAD") and (host in self.tls_hosts or host in self.wants_https):
            ind.add("served_over_http", 40, f"{host}{req['target'][:60]} served in clear (200)")
        if host in self.hsts and "strict-transport-security" not in h and self.hsts[host] < ts:
            ind.add("hsts_missing", 30, f"no Strict-Transport-Security, though {host} sent it before")
        body = f["body"]        # (a link needs "://": the regex's scan of a body without one cost 11 us)
        links = {m.decode("latin-1").lower() for m in HTTP_LINK.findall(body)} if b"://" in body else ()
        rewritten = sorted(l for l in links if l in self.tls_hosts or l in self.wants_https) if links else ()
        if rewritten:
            ind.add("rewritten_links", 15, f"links or forms point to http:// for {', '.join(rewritten[:3])}")
        if not ind:
            return []
        self._https_host(subject, ind)
        if host in self.downgraded and not ind.has("redirect_to_http"):
            ind.add("after_downgrade", 20, f"after a redirect of {host} to plain HTTP")
        self._other_server(subject, f["src"], f["src_mac"], ind)
        return self._finding(ind, f, host, req, f, attacker_side="src")

    def _other_server(self, host: str, ip: str, mac: str, ind: Indicators) -> None:
        tls = self.tls_hosts.get(host)
        if not tls:
            return
        if tls["server"] != ip:
            ind.add("other_server", 20, f"plain HTTP from {ip}, TLS to {host} went to {tls['server']}")
        elif tls["mac"] and mac and tls["mac"] != mac:
            ind.add("other_server", 20, f"plain HTTP through MAC {mac}, TLS to {host} went through {tls['mac']}")

    def _finding(self, ind, f, host, req, resp, attacker_side: str) -> list:
        side = (f["src"], f["src_mac"], f["dst"]) if attacker_side == "src" else (f["dst"], f["dst_mac"], f["src"])
        src, src_mac, victim = side
        # a proxy answering in the server's name (its MAC is not the server's, nor the router's): named by its own
        attacker, spoofed = self.lan.sender(src, src_mac, victim)
        tls = self.tls_hosts.get(host)
        evidence = {"host": host, "method": req["method"], "path": req["target"][:200], "server": src,
                    "client": victim, "tls_seen": bool(tls), "tls_server": tls and tls["server"],
                    "https_reason": (self.wants_https.get(host) or (None, None))[1]}
        verify = {"kind": "url", "url": f"http://{host}{req['target'] if req['target'].startswith('/') else '/'}"}
        if resp is not None:
            evidence.update({"status": resp["status"], "location": resp["headers"].get("location"),
                             "hsts": "strict-transport-security" in resp["headers"],
                             "server_header": resp["headers"].get("server")})
            verify["local"] = {"status_code": resp["status"],
                               "headers": {"location": resp["headers"].get("location") or ""}}
        evidence["spoofed_server"] = spoofed
        return [finding("ssl_strip", ind, ts=f["ts"], src=attacker, dst=victim, protocol="HTTP",
                        summary=f"SSL stripping suspected for {host}", evidence=evidence,
                        key=f"ssl_strip|{src_mac or src}|{victim}", src_mac=src_mac, attacker=attacker,
                        attacker_mac=src_mac, verify=verify)]
