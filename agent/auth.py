"""API keys: capbox_sk_ (full), capbox_pk_ (read-only), capbox_tk_ (scoped, expiring).

A key is `capbox_<kind>_<id><secret>`: the id finds the row, the secret is
stored only as a scrypt hash and compared in constant time.  scrypt is slow
on purpose, so a token that verified is remembered (by a SHA-256 of it and
its stored hash) for a minute; the row itself is read on every request, so
revocation and expiry count at once, from any process.  A token that failed
is remembered too (by its SHA-256, for a minute), and at most SCRYPT_SLOTS
hashes run at once: a flood of bad keys costs one scrypt per distinct key
and never holds more than those workers, so other requests go on."""
import collections
import dataclasses
import hashlib
import hmac
import os
import secrets
import threading
import time
from typing import Optional

from agent.errors import AgentError, not_found

PREFIX = "capbox_"
KINDS = {"sk": "full", "pk": "read-only", "tk": "scoped"}
ID_LEN = 8
SECRET_LEN = 32
SCRYPT = {"n": 1 << 14, "r": 8, "p": 1, "dklen": 32}
CACHE_S = 60.0
BAD_CACHE = 10000        # failed tokens remembered
SCRYPT_SLOTS = 2         # hashes at once (the box has two cores); more callers are told to retry


@dataclasses.dataclass(frozen=True)
class ApiKey:
    id: str
    kind: str
    name: str
    scopes: tuple
    created: float
    expires: Optional[float]
    revoked: Optional[float]

    @property
    def read_only(self) -> bool:
        return self.kind == "pk"

    def allows(self, method: str, scope: str) -> bool:
        """sk: everything; pk: reads; tk: reads, and writes within its scopes."""
        if self.kind == "sk":
            return True
        if method in ("GET", "HEAD", "OPTIONS"):
            return True
        return self.kind == "tk" and (scope in self.scopes or "*" in self.scopes)

    def public(self) -> dict:
        return {"id": self.id, "kind": self.kind, "access": KINDS[self.kind], "name": self.name,
                "scopes": list(self.scopes), "created": self.created, "expires": self.expires,
                "revoked": self.revoked}


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)


def _row_key(row) -> ApiKey:
    return ApiKey(row["id"], row["kind"], row["name"], tuple(s for s in row["scopes"].split(",") if s),
                  row["created"], row["expires"], row["revoked"])


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate (DER), as `AB:CD:...`: what the console shows and --pin takes."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class KeyStore:
    def __init__(self, store):
        self.store = store
        self._cache: dict = {}
        self._gates: dict = {}
        self._lock = threading.Lock()
        self._bad: collections.OrderedDict = collections.OrderedDict()   # sha256(token) -> expiry
        self._slots = threading.BoundedSemaphore(SCRYPT_SLOTS)
        self.counts = {"hashes": 0, "failed_cached": 0, "busy": 0}   # for /v1/health

    def create(self, kind: str, name: str, scopes: tuple = (), ttl_s: Optional[float] = None) -> tuple:
        """A new key: (the key string, shown once; its ApiKey)."""
        if kind not in KINDS:
            raise AgentError("VALIDATION_ERROR", f"key kind must be one of {', '.join(KINDS)}", {"field": "kind"})
        if kind == "tk" and not ttl_s:
            ttl_s = 24 * 3600.0
        key_id = secrets.token_hex(ID_LEN // 2)
        secret = secrets.token_urlsafe(SECRET_LEN)[:SECRET_LEN]
        salt = os.urandom(16)
        now = time.time()
        expires = now + ttl_s if ttl_s else None
        self.store.write(lambda c: c.execute(
            "INSERT INTO api_keys (id, kind, name, salt, hash, scopes, created, expires) VALUES (?,?,?,?,?,?,?,?)",
            (key_id, kind, name, salt, _hash(secret, salt), ",".join(scopes), now, expires)))
        return f"{PREFIX}{kind}_{key_id}{secret}", self.get(key_id)

    def get(self, key_id: str) -> Optional[ApiKey]:
        rows = self.store.query("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        return _row_key(rows[0]) if rows else None

    def list(self) -> list:
        return [_row_key(r) for r in self.store.query("SELECT * FROM api_keys ORDER BY created")]

    def revoke(self, key_id: str) -> bool:
        done = self.store.write(lambda c: c.execute(
            "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id)).rowcount)
        with self._lock:
            self._cache.pop(key_id, None)
        return bool(done)

    def listing(self) -> dict:
        """GET /v1/keys and the consoles: every key, never its secret."""
        items = [k.public() for k in self.list()]
        return {"count": len(items), "keys": items}

    def issue(self, kind: str, name: str, scopes: str = "", ttl_s: int = 0) -> dict:
        """A new key for a face (scopes comma-separated): the key string, shown once, with its public fields."""
        token, key = self.create(kind, name, tuple(s for s in scopes.split(",") if s), ttl_s or None)
        return {"key": token, **key.public()}

    def withdraw(self, key_id: str) -> dict:
        """revoke() for a face: NOT_FOUND when no active key has this id."""
        if not self.revoke(key_id):
            raise not_found("API key", key_id)
        return {"revoked": True, "id": key_id}

    def count(self) -> int:
        return self.store.query("SELECT COUNT(*) AS n FROM api_keys")[0]["n"]

    def _cached(self, key_id: str, digest: bytes) -> bool:
        with self._lock:
            hit = self._cache.get(key_id)
        return bool(hit and hit[0] > time.monotonic() and hmac.compare_digest(hit[1], digest))

    def _known_bad(self, digest: bytes) -> bool:
        with self._lock:
            expiry = self._bad.get(digest)
            if expiry is not None and expiry < time.monotonic():
                del self._bad[digest]
                expiry = None
            if expiry is not None:
                self.counts["failed_cached"] += 1
        return expiry is not None

    def _remember_bad(self, digest: bytes) -> None:
        with self._lock:
            self._bad[digest] = time.monotonic() + CACHE_S
            self._bad.move_to_end(digest)
            while len(self._bad) > BAD_CACHE:
                self._bad.popitem(last=False)

    def _scrypt(self, secret: str, salt: bytes) -> bytes:
        """The hash, in one of SCRYPT_SLOTS; a busy box says retry rather than queue workers behind it."""
        if not self._slots.acquire(timeout=0.5):
            self.counts["busy"] += 1
            raise AgentError("RATE_LIMIT_EXCEEDED", "too many key checks at once; retry in a second",
                             {"retry_after_seconds": 1, "reason": "auth_busy"})
        try:
            self.counts["hashes"] += 1
            return _hash(secret, salt)
        finally:
            self._slots.release()

    def verify(self, token: Optional[str]) -> ApiKey:
        """The key a bearer token names, or AgentError INVALID_API_KEY."""
        if not token:
            raise AgentError("INVALID_API_KEY", "an API key is required (Authorization: Bearer capbox_…)")
        bad = AgentError("INVALID_API_KEY", "the API key is invalid, expired or revoked")
        if not token.isascii() or not token.startswith(PREFIX) or len(token) != len(PREFIX) + 3 + ID_LEN + SECRET_LEN:
            raise bad
        token_digest = hashlib.sha256(token.encode()).digest()
        if self._known_bad(token_digest):
            raise bad
        kind, key_id, secret = token[7:9], token[10:10 + ID_LEN], token[10 + ID_LEN:]
        # the row is read every time (a revocation by another process counts at
        # once); only the slow hash is skipped for a token that verified lately
        rows = self.store.query("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        if not rows:
            self._scrypt(secret, b"\0" * 16)  # the same work, so timing does not tell ids apart
            self._remember_bad(token_digest)
            raise bad
        row = rows[0]
        digest = hashlib.sha256(token.encode() + row["hash"]).digest()
        if not self._cached(key_id, digest):
            with self._lock:
                gate = self._gates.setdefault(key_id, threading.Lock())
            with gate:  # a burst of new connections with one key costs one scrypt, not one each
                if not self._cached(key_id, digest):
                    if not hmac.compare_digest(self._scrypt(secret, row["salt"]), row["hash"]) or row["kind"] != kind:
                        self._remember_bad(token_digest)
                        raise bad
                    with self._lock:
                        self._cache[key_id] = (time.monotonic() + CACHE_S, digest)
        key = _row_key(row)
        if key.revoked or (key.expires and key.expires < time.time()):
            raise bad
        return key
