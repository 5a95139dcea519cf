"""What the index keeps of a protocol log record to find it by: its key words and its two hosts.

A module of its own, importing nothing of capbox: the log indexer (a child process,
agent.logs.indexer) reads every line through it, and must not import the record
Builder's world (the configuration, the capture face, the detectors) to start."""


KEY_FIELDS = {"dns": ("query", "answers"), "http": ("host", "uri", "user_agent"),
              "tls": ("server_name", "ja3", "ja3s", "ja4", "subject", "issuer", "cert_chain_fps"),
              "sip": ("call_id", "request_from", "request_to"), "rtp": ("call_id",), "arp": ("ip", "mac"),
              "ndp": ("ip", "mac"), "dhcp": ("mac", "assigned_addr", "requested_addr"), "conn": ("service",)}


def key_text(kind: str, rec: dict) -> str:
    """What `q` searches in a record: the names and addresses a person looks a record up by."""
    parts = []
    for f in KEY_FIELDS.get(kind, ()):
        v = rec.get(f)
        if isinstance(v, list):
            parts.extend(str(x) for x in v)
        elif v is not None:
            parts.append(str(v))
    return " ".join(parts).lower()


def hosts(rec: dict) -> tuple:
    """The two addresses a record is about (host filter)."""
    if "id.orig_h" in rec:
        return rec["id.orig_h"], rec.get("id.resp_h")
    if "ip" in rec:
        return rec["ip"], None
    return rec.get("client_addr") or rec.get("assigned_addr"), rec.get("server_addr")
