"""The verifier: a pool of workers that put one question to N chosen paths
at once, each with its own timeout, and turn the answers into a verdict.

Strategies choose the N: diverse (one of each method and endpoint in turn),
fastest (lowest average latency), reliable (highest success rate),
balanced (success rate over latency).  Paths that are down are only used
when too few others are left; fewer than 3 usable paths is
INSUFFICIENT_PATHS.  A TLS check uses the URL paths: each connects
(its resolver's address, its proxy, its namespace) and reads the leaf
certificate."""
import collections
import concurrent.futures
import ipaddress
import re
import threading
import time
import urllib.parse
import uuid
from typing import Optional

from agent.bus import iso
from agent.errors import AgentError
from agent.verify import consensus, paths as pathmod, probes

STRATEGIES = ("diverse", "fastest", "reliable", "balanced")
COMPARE_METHODS = ("content_hash", "full_content", "headers_only")
MIN_PATHS, MAX_PATHS = 3, 40
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
PATH_KIND = {"dns": "dns", "url": "url", "tls": "url"}   # a certificate is fetched through the URL paths
DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$", re.I)


def check_domain(domain: str) -> str:
    d = (domain or "").strip().lower()
    try:
        d = d.encode("idna").decode("ascii") if d and not d.isascii() else d
    except UnicodeError:
        d = ""
    if not DOMAIN.match(d) or "." not in d.strip("."):
        raise AgentError("INVALID_DOMAIN", f"{domain!r} is not a domain name", {"field": "domain"})
    return d.rstrip(".")


def check_url(url: str) -> str:
    u = urllib.parse.urlsplit((url or "").strip())
    try:
        port_ok = u.port is None or 0 < u.port < 65536
    except ValueError:
        port_ok = False
    if u.scheme not in ("http", "https") or not u.hostname or not port_ok or " " in url.strip():
        raise AgentError("INVALID_URL", f"{url!r} is not an http(s) URL", {"field": "url"})
    return url.strip()


def check_tls_target(host: str, port, sni: str, fingerprint: Optional[str]) -> tuple:
    """(host, port, SNI, fingerprint) checked: a name or an address, 1-65535, a name, 64 hex digits."""
    h = (host or "").strip().strip("[]")
    try:
        ipaddress.ip_address(h)
    except ValueError:
        h = check_domain(h)
        sni = sni or h
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise AgentError("VALIDATION_ERROR", "port must be between 1 and 65535", {"field": "port"})
    if sni:
        try:
            sni = check_domain(sni)
        except AgentError:
            raise AgentError("VALIDATION_ERROR", f"sni {sni!r} is not a host name", {"field": "sni"}) from None
    fp = None
    if fingerprint:
        fp = fingerprint.strip().lower().replace(":", "")
        if not FINGERPRINT.match(fp):
            raise AgentError("VALIDATION_ERROR", "local_fingerprint must be a SHA-256 (64 hex digits, colons allowed)",
                             {"field": "local_fingerprint"})
    return h, port, sni, fp


def check_limits(num_paths, timeout) -> None:
    if isinstance(num_paths, bool) or not isinstance(num_paths, int) or not MIN_PATHS <= num_paths <= MAX_PATHS:
        raise AgentError("INVALID_NUM_PATHS", f"num_paths must be between {MIN_PATHS} and {MAX_PATHS}",
                         {"field": "num_paths", "min": MIN_PATHS, "max": MAX_PATHS})
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 30:
        raise AgentError("INVALID_TIMEOUT", "timeout must be between 1 and 30 seconds",
                         {"field": "timeout", "min": 1, "max": 30})


class Verifier:
    def __init__(self, cfg):
        self.cfg = cfg
        try:
            self.paths = pathmod.build(cfg)
        except ValueError as e:
            raise AgentError("VALIDATION_ERROR", f"[verify]: {e}") from None
        self.local_resolver = pathmod.parse_resolver(cfg.local_resolver) if cfg.local_resolver else None
        self.local_proxy = pathmod.parse_proxy(cfg.local_proxy, ("http",)) if cfg.local_proxy else None
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="verify")
        self._lock = threading.Lock()
        self.started = time.time()
        self.history: collections.deque = collections.deque(maxlen=10000)   # (ts, duration_ms, attack)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- choosing paths -------------------------------------------------------------

    def choose(self, kind: str, n: int, strategy: str, wanted: Optional[list] = None) -> list:
        pool = [p for p in self.paths if p.kind == kind]
        if wanted:
            by_id = {p.id: p for p in pool}
            chosen = []
            for pid in wanted:
                p = by_id.get(pid)
                if p is None or p.health.status == "down":
                    raise AgentError("PATH_UNAVAILABLE", f"path {pid} is {'unknown' if p is None else 'down'}",
                                     {"path_id": pid, "status": None if p is None else p.health.status}, status=503)
                chosen.append(p)
            return chosen
        up = [p for p in pool if p.health.status != "down"]
        down = [p for p in pool if p.health.status == "down"]
        if len(up) + len(down) < MIN_PATHS:
            raise AgentError("INSUFFICIENT_PATHS",
                             f"{len(pool)} {kind.upper()} verification path(s) configured, {MIN_PATHS} needed "
                             "(name resolvers or proxies in [verify])",
                             {"available": len(up), "configured": len(pool), "required": MIN_PATHS,
                              "hint": "[verify] resolvers, source_addresses, http_proxies, socks_proxies, namespaces"})
        ordered = self._order(up, strategy) + self._order(down, "reliable")
        if len(up) < MIN_PATHS:
            ordered = ordered[:max(MIN_PATHS, min(n, len(ordered)))]
        return ordered[:n]

    @staticmethod
    def _order(paths: list, strategy: str) -> list:
        lat = lambda p: p.health.avg_latency_ms if p.health.avg_latency_ms is not None else 1e9
        rate = lambda p: p.health.success_rate if p.health.success_rate is not None else 1.0
        if strategy == "fastest":
            return sorted(paths, key=lat)
        if strategy == "reliable":
            return sorted(paths, key=lambda p: (-rate(p), lat(p)))
        if strategy == "balanced":
            return sorted(paths, key=lambda p: -rate(p) / (1 + min(lat(p), 1e6) / 1000))
        # diverse: a path of each method in turn, and within a method each endpoint in turn
        methods: dict = {}
        for p in paths:
            endpoints = methods.setdefault(p.method, {})
            endpoints.setdefault(p.endpoint, collections.deque()).append(p)
        queues = {m: collections.deque(e.values()) for m, e in methods.items()}
        out = []
        while any(queues.values()):
            for endpoints in queues.values():
                if endpoints:
                    q = endpoints.popleft()
                    out.append(q.popleft())
                    if q:
                        endpoints.append(q)
        return out

    # ---- running a check over paths -----------------------------------------------------

    def _run(self, chosen: list, probe, timeout: float) -> list:
        def one(p):
            t0 = time.monotonic()
            try:
                out = probe(p)
                ms = (time.monotonic() - t0) * 1000
                p.health.record(True, ms)
                return {"path_id": p.id, "method": p.method, "status": "success", "latency_ms": round(ms, 1), **out}
            except Exception as e:  # every failure of a path is that path's result, never the request's
                ms = (time.monotonic() - t0) * 1000
                timed_out = isinstance(e, (TimeoutError, concurrent.futures.TimeoutError))
                err = str(e) or type(e).__name__
                p.health.record(False, ms, err)
                return {"path_id": p.id, "method": p.method, "status": "timeout" if timed_out else "failed",
                        "error": err, "latency_ms": round(ms, 1)}
        futures = {self.pool.submit(one, p): p for p in chosen}
        done, _ = concurrent.futures.wait(futures, timeout=timeout + 3)
        results = []
        for fut, p in futures.items():
            if fut in done:
                results.append(fut.result())
            else:
                p.health.record(False, timeout * 1000, "timed out")
                results.append({"path_id": p.id, "method": p.method, "status": "timeout",
                                "error": f"no answer in {timeout:g} s", "latency_ms": round(timeout * 1000, 1)})
        if results and all(r["status"] == "timeout" for r in results):
            raise AgentError("VERIFICATION_TIMEOUT", f"no path answered within {timeout:g} s",
                             {"paths_checked": len(results), "timeout": timeout}, status=504)
        return results

    def _record(self, started: float, attack: bool) -> int:
        ms = int((time.monotonic() - started) * 1000)
        with self._lock:
            self.history.append((time.time(), ms, attack))
        return ms

    # ---- DNS ----------------------------------------------------------------------------

    def verify_dns(self, domain: str, record_type: str = "A", num_paths: int = 10, timeout: float = 10,
                   strategy: str = "diverse", local_ips: Optional[list] = None, paths: Optional[list] = None) -> dict:
        domain = check_domain(domain)
        check_limits(num_paths, timeout)
        if record_type not in probes.RECORD_TYPES:
            raise AgentError("VALIDATION_ERROR", f"record_type must be one of {', '.join(probes.RECORD_TYPES)}",
                             {"field": "record_type"})
        started = time.monotonic()
        chosen = self.choose("dns", num_paths, strategy, paths)
        local_source = "capture" if local_ips is not None else None
        if local_ips is None and self.local_resolver is not None:
            local_path = pathmod.Path("local", "dns", "direct", resolver=self.local_resolver)
            try:
                local_ips = probes.resolve(local_path, domain, record_type, timeout)["values"]
                local_source = f"local resolver {self.local_resolver.label}"
            except Exception:  # the local answer is optional
                local_ips = None
        results = self._run(chosen, lambda p: probes.resolve(p, domain, record_type, timeout), timeout)
        for r in results:
            if r["status"] == "success":
                r["ips"] = r["values"]
        c = consensus.dns_consensus(results, local_ips)
        succeeded = sum(r["status"] == "success" for r in results)
        body = {
            "verification_id": f"ver_{uuid.uuid4().hex[:12]}", "domain": domain, "record_type": record_type,
            "timestamp": iso(time.time()), "attack_detected": c["attack_detected"], "confidence": c["confidence"],
            "paths_checked": len(results), "paths_succeeded": succeeded, "paths_agreed": c["paths_agreed"],
            "consensus_percentage": c["consensus_percentage"], "consensus_ips": c["consensus"],
            "local_ips": local_ips, "local_source": local_source, "strategy": strategy,
            "path_results": [{k: v for k, v in r.items() if k != "values"} for r in results],
            "outliers": c["outliers"], "recommendations": consensus.dns_recommendations(domain, c, local_ips, succeeded)}
        body["verification_duration_ms"] = self._record(started, c["attack_detected"])
        return body

    # ---- URLs ----------------------------------------------------------------------------

    def verify_url(self, url: str, num_paths: int = 10, timeout: float = 15, strategy: str = "diverse",
                   compare_method: str = "content_hash", local: Optional[dict] = None,
                   paths: Optional[list] = None) -> dict:
        url = check_url(url)
        check_limits(num_paths, timeout)
        if compare_method not in COMPARE_METHODS:
            raise AgentError("VALIDATION_ERROR", f"compare_method must be one of {', '.join(COMPARE_METHODS)}",
                             {"field": "compare_method"})
        started = time.monotonic()
        chosen = self.choose("url", num_paths, strategy, paths)
        max_body = self.cfg.max_body_kb * 1024
        local_source = "capture" if local is not None else None
        if local is None and self.local_proxy is not None:
            lp = pathmod.Path("local", "url", "http_proxy", proxy=self.local_proxy)
            try:
                local = probes.fetch(lp, url, timeout, max_body, self.cfg.verify_tls)
                local_source = f"local proxy {self.local_proxy[0]}:{self.local_proxy[1]}"
            except Exception:
                local = None
        results = self._run(chosen, lambda p: probes.fetch(p, url, timeout, max_body, self.cfg.verify_tls), timeout)
        c = consensus.url_consensus(results, local, compare_method)
        succeeded = sum(r["status"] == "success" for r in results)
        body = {
            "verification_id": f"ver_{uuid.uuid4().hex[:12]}", "url": url, "timestamp": iso(time.time()),
            "attack_detected": c["attack_detected"], "confidence": c["confidence"], "paths_checked": len(results),
            "paths_succeeded": succeeded, "paths_agreed": c["paths_agreed"],
            "consensus_percentage": c["consensus_percentage"], "compare_method": compare_method, "strategy": strategy,
            "consensus": c["consensus"], "local": local and {k: v for k, v in local.items() if k != "normalized_hash"},
            "local_source": local_source, "outliers": c["outliers"], "differences": c["differences"],
            "path_results": [{k: v for k, v in r.items() if k != "normalized_hash"} for r in results],
            "recommendations": consensus.url_recommendations(c, succeeded)}
        body["verification_duration_ms"] = self._record(started, c["attack_detected"])
        return body

    # ---- TLS certificates --------------------------------------------------------------------

    def verify_tls(self, host: str, port: int = 443, sni: str = "", num_paths: int = 10, timeout: float = 10,
                   strategy: str = "diverse", local_fingerprint: Optional[str] = None,
                   paths: Optional[list] = None) -> dict:
        """The leaf certificate host:port presents through N URL paths, against the one seen on the wire."""
        host, port, sni, local = check_tls_target(host, port, sni, local_fingerprint)
        check_limits(num_paths, timeout)
        started = time.monotonic()
        chosen = self.choose(PATH_KIND["tls"], num_paths, strategy, paths)
        results = self._run(chosen, lambda p: probes.certificate(p, host, port, sni, timeout), timeout)
        target = f"{host}:{port}" + (f" ({sni})" if sni and sni != host else "")
        c = consensus.tls_consensus(results, local)
        succeeded = sum(r["status"] == "success" for r in results)
        body = {
            "verification_id": f"ver_{uuid.uuid4().hex[:12]}", "host": host, "port": port, "sni": sni or None,
            "timestamp": iso(time.time()), "attack_detected": c["attack_detected"], "confidence": c["confidence"],
            "paths_checked": len(results), "paths_succeeded": succeeded, "paths_agreed": c["paths_agreed"],
            "consensus_percentage": c["consensus_percentage"], "strategy": strategy,
            "consensus": c["consensus"], "local": None if local is None else {"fingerprint": local},
            "local_source": None if local is None else "capture", "local_agrees": c["local_agrees"],
            "outliers": c["outliers"], "differences": c["differences"], "path_results": results,
            "recommendations": consensus.tls_recommendations(target, c, succeeded)}
        body["verification_duration_ms"] = self._record(started, c["attack_detected"])
        return body

    # ---- what the faces show ---------------------------------------------------------------

    def path_views(self) -> dict:
        views = [p.view() for p in self.paths]
        return {"total": len(views), "available": sum(v["status"] != "down" for v in views),
                "by_kind": {k: sum(v["kind"] == k for v in views) for k in ("dns", "url")},
                "local_resolver": self.local_resolver and self.local_resolver.label,
                "local_proxy": self.local_proxy and f"{self.local_proxy[0]}:{self.local_proxy[1]}", "paths": views}

    def stats(self, since: float) -> dict:
        with self._lock:
            rows = [h for h in self.history if h[0] >= since]
        tested = [p for p in self.paths if p.health.avg_latency_ms is not None]
        rates = [p.health.success_rate for p in self.paths if p.health.success_rate is not None]
        fastest = min(tested, key=lambda p: p.health.avg_latency_ms, default=None)
        slowest = max(tested, key=lambda p: p.health.avg_latency_ms, default=None)
        return {"total_verifications": len(rows),
                "average_duration_ms": round(sum(r[1] for r in rows) / len(rows), 1) if rows else 0.0,
                "attacks_detected": sum(r[2] for r in rows),
                "path_statistics": {
                    "total_paths": len(self.paths), "available_paths": sum(p.health.status != "down" for p in self.paths),
                    "average_success_rate": round(sum(rates) / len(rates), 3) if rates else None,
                    "fastest_path": fastest and {"id": fastest.id, "avg_latency_ms": round(fastest.health.avg_latency_ms, 1)},
                    "slowest_path": slowest and {"id": slowest.id, "avg_latency_ms": round(slowest.health.avg_latency_ms, 1)}}}
