"""What the paths agree on: the consensus answer, who agrees, confidence
bands, outliers, field-level differences and recommendations."""
import collections
import ipaddress
from typing import Optional

BANDS = ((90, "VERY_HIGH"), (70, "HIGH"), (50, "MEDIUM"), (0, "LOW"))


def confidence(percentage: float) -> str:
    return next(name for floor, name in BANDS if percentage >= floor)


def _private(ip: str) -> bool:
    try:
        return not ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


def _agree_dns(a: list, b: list) -> bool:
    return (not a and not b) or bool(set(a) & set(b))


def dns_consensus(results: list, local: Optional[list]) -> dict:
    """results: path results (status, values).  local: the answer the network got, or None."""
    ok = [r for r in results if r["status"] == "success"]
    counts = collections.Counter(tuple(r["values"]) for r in ok)
    consensus = list(max(counts.items(), key=lambda kv: (kv[1], len(kv[0])))[0]) if counts else []
    for r in results:
        if r["status"] == "success":
            r["agreed_with_consensus"] = _agree_dns(r["values"], consensus)
    agreed = sum(1 for r in ok if r["agreed_with_consensus"])
    pct = round(100.0 * agreed / len(ok), 1) if ok else 0.0
    band = confidence(pct)
    local_agrees = None if local is None or not ok else _agree_dns(sorted(local), consensus)
    attack = local_agrees is False and pct >= 50
    outliers = [{"path_id": r["path_id"], "ips": r["values"], "agreed_with_consensus": False}
                for r in ok if not r["agreed_with_consensus"]]
    if local_agrees is False:
        outliers.insert(0, {"path_id": "local", "ips": sorted(local), "agreed_with_consensus": False})
    return {"consensus": consensus, "paths_agreed": agreed, "consensus_percentage": pct, "confidence": band,
            "attack_detected": attack, "local_agrees": local_agrees, "outliers": outliers}


def dns_recommendations(domain: str, c: dict, local: Optional[list], succeeded: int) -> list:
    if not succeeded:
        return ["No verification path answered: check the configured resolvers and proxies (GET /v1/paths)."]
    recs = []
    if c["attack_detected"]:
        recs.append("DNS HIJACKING DETECTED: Local DNS returns different IP.")
        for ip in local:
            recs.append(f"Local IP: {ip}" + (" (private address)" if _private(ip) else ""))
        recs.append(f"Expected IP: {', '.join(c['consensus']) or 'none'} (verified through {c['paths_agreed']} paths)")
        recs.append("Action: Activate deception and log threat.")
    elif c["outliers"]:
        recs.append(f"{len(c['outliers'])} path(s) disagree with the consensus for {domain}: "
                    + ", ".join(o["path_id"] for o in c["outliers"]) + " (a lying or poisoned resolver on that path).")
    else:
        recs.append("DNS resolution is consistent across all paths.")
    if c["confidence"] in ("LOW", "MEDIUM"):
        recs.append(f"Confidence is {c['confidence']}: add independent paths before acting on this result.")
    return recs


def url_key(r: dict, method: str) -> tuple:
    if method == "headers_only":
        return (r["status_code"], r["headers"].get("location", ""), r["headers"].get("content-type", ""),
                "strict-transport-security" in r["headers"])
    if method == "full_content":
        return (r["status_code"], r["normalized_hash"])
    return (r["status_code"], r["content_hash"])


def _diff(path_id: str, r: dict, ref: dict, method: str) -> list:
    out = []
    fields = [("status_code", r.get("status_code"), ref.get("status_code"))]
    if method != "headers_only":
        fields += [("content_hash", r.get("content_hash"), ref.get("content_hash")),
                   ("content_length", r.get("content_length"), ref.get("content_length"))]
    names = sorted(set(r.get("headers", {})) | set(ref.get("headers", {})))
    fields += [(f"header.{n}", r.get("headers", {}).get(n), ref.get("headers", {}).get(n)) for n in names]
    for name, mine, theirs in fields:
        if mine is not None and mine != theirs and not (name == "content_hash" and mine is None):
            out.append({"path": path_id, "field": name, "local_value": mine, "consensus_value": theirs})
    return out


def url_consensus(results: list, local: Optional[dict], method: str) -> dict:
    ok = [r for r in results if r["status"] == "success"]
    groups = collections.Counter(url_key(r, method) for r in ok)
    key = max(groups.items(), key=lambda kv: kv[1])[0] if groups else None
    ref = next((r for r in ok if url_key(r, method) == key), None)
    for r in ok:
        r["agreed_with_consensus"] = url_key(r, method) == key
    agreed = sum(1 for r in ok if r["agreed_with_consensus"])
    pct = round(100.0 * agreed / len(ok), 1) if ok else 0.0
    outliers, differences = [], []
    for r in ok:
        if not r["agreed_with_consensus"]:
            outliers.append({"path_id": r["path_id"], "status_code": r["status_code"], "content_hash": r["content_hash"],
                             "content_length": r["content_length"]})
            differences += _diff(r["path_id"], r, ref, method)
    local_agrees = None
    if local is not None and ref is not None:
        if method == "headers_only" or "content_hash" not in local:
            local_agrees = (local.get("status_code") == ref["status_code"]
                            and (local.get("headers", {}).get("location") or "") == ref["headers"].get("location", ""))
        else:
            local_agrees = url_key({**{"headers": {}, "normalized_hash": None}, **local}, method) == key
        if not local_agrees:
            outliers.insert(0, {"path_id": "local", "status_code": local.get("status_code"),
                                "content_hash": local.get("content_hash"), "content_length": local.get("content_length")})
            differences = _diff("local", {"headers": {}, **local}, ref, method) + differences
    consensus = None if ref is None else {"status_code": ref["status_code"], "content_hash": ref["content_hash"],
                                          "content_length": ref["content_length"], "headers": ref["headers"]}
    return {"consensus": consensus, "paths_agreed": agreed, "consensus_percentage": pct,
            "confidence": confidence(pct), "attack_detected": local_agrees is False and pct >= 50,
            "local_agrees": local_agrees, "outliers": outliers, "differences": differences}


def url_recommendations(c: dict, succeeded: int) -> list:
    if not succeeded:
        return ["No verification path answered: check the configured paths (GET /v1/paths)."]
    recs = []
    fields = {d["field"] for d in c["differences"]}
    if c["attack_detected"]:
        recs.append(f"ATTACK DETECTED: Local response differs from {c['consensus_percentage']:g}% of verification paths.")
    elif c["outliers"]:
        recs.append(f"{len(c['outliers'])} path(s) saw a different response: "
                    + ", ".join(o["path_id"] for o in c["outliers"]) + " (tampering on that path).")
    else:
        recs.append("No attack detected. All paths agree on response.")
    changed = [name for field, name in (("content_hash", "hash"), ("content_length", "length")) if field in fields]
    if changed:
        recs.append(f"Content has been modified (different {' and '.join(changed)}).")
    if "status_code" in fields:
        recs.append("Status code differs from the consensus.")
    if "header.location" in fields:
        recs.append("Redirect target differs from the consensus (a rewritten redirect: SSL stripping?).")
    if "header.server" in fields:
        recs.append("Server header differs from expected value.")
    if "header.strict-transport-security" in fields:
        recs.append("HSTS header differs: it was removed or added on the way.")
    if c["attack_detected"]:
        recs.append("Action: Activate deception layer and log threat.")
    if c["confidence"] in ("LOW", "MEDIUM"):
        recs.append(f"Confidence is {c['confidence']}: add independent paths before acting on this result.")
    return recs


CERT_FIELDS = ("fingerprint", "issuer", "subject", "not_before", "not_after")


def tls_consensus(results: list, local: Optional[str]) -> dict:
    """The leaf fingerprint most paths were served, and whether the one seen on the wire (local) is it."""
    ok = [r for r in results if r["status"] == "success"]
    counts = collections.Counter(r["fingerprint"] for r in ok)
    fp = max(counts.items(), key=lambda kv: kv[1])[0] if counts else None
    ref = next((r for r in ok if r["fingerprint"] == fp), None)
    for r in ok:
        r["agreed_with_consensus"] = r["fingerprint"] == fp
    agreed = sum(1 for r in ok if r["agreed_with_consensus"])
    pct = round(100.0 * agreed / len(ok), 1) if ok else 0.0
    outliers, differences = [], []
    for r in ok:
        if not r["agreed_with_consensus"]:
            outliers.append({"path_id": r["path_id"], **{k: r[k] for k in CERT_FIELDS}})
            differences += [{"path": r["path_id"], "field": k, "local_value": r[k], "consensus_value": ref[k]}
                            for k in CERT_FIELDS if r[k] != ref[k]]
    local_agrees = None if local is None or ref is None else local == fp
    if local_agrees is False:
        outliers.insert(0, {"path_id": "local", "fingerprint": local})
        differences.insert(0, {"path": "local", "field": "fingerprint", "local_value": local, "consensus_value": fp})
    return {"consensus": ref and {k: ref[k] for k in (*CERT_FIELDS, "self_issued")}, "paths_agreed": agreed,
            "consensus_percentage": pct, "confidence": confidence(pct),
            "attack_detected": local_agrees is False and pct >= 50, "local_agrees": local_agrees,
            "outliers": outliers, "differences": differences}


def tls_recommendations(target: str, c: dict, succeeded: int) -> list:
    if not succeeded:
        return ["No verification path completed a handshake: check the configured paths (GET /v1/paths)."]
    recs = []
    others = [o for o in c["outliers"] if o["path_id"] != "local"]
    if c["attack_detected"]:
        recs.append(f"TLS INTERCEPTION DETECTED: the certificate seen locally for {target} is not the one "
                    f"{c['consensus_percentage']:g}% of verification paths are served.")
        recs.append(f"Expected certificate: sha256 {c['consensus']['fingerprint']}, issued by {c['consensus']['issuer']} "
                    f"(verified through {c['paths_agreed']} paths)")
        recs.append("Action: Activate deception and log threat; do not trust this network for TLS to that host.")
    elif c["local_agrees"]:
        recs.append(f"The certificate seen locally for {target} is the one independent paths are served: "
                    "no interception on this network.")
    else:
        recs.append(f"Certificates for {target} are consistent across all paths." if not others else
                    f"No local certificate to compare; {c['paths_agreed']} path(s) agree on one certificate.")
    if others:
        recs.append(f"{len(others)} path(s) were served another certificate: "
                    + ", ".join(o["path_id"] for o in others) + " (an intercepting proxy or a spoofed address on that path).")
    if c["confidence"] in ("LOW", "MEDIUM"):
        recs.append(f"Confidence is {c['confidence']}: add independent paths before acting on this result.")
    return recs
