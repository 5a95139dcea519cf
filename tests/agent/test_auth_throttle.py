"""Failed authentications back off per client address (429 + Retry-After),
and a flood of bad keys from many addresses does not starve anyone else:
failed keys are remembered and at most two scrypt hashes run at once."""
import http.client
import json
import secrets
import threading
import time

from tests.agent.conftest import wait_for


def _get(port: int, path: str, key: str = "", source: str = "127.0.0.1", timeout: float = 10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def _bad_key(real: str) -> str:
    """Well formed, with the real key's id (so the server must hash it), a wrong secret."""
    return real[:18] + secrets.token_urlsafe(32)[:32]


def test_failed_logins_back_off_per_address(agent):
    attacker = "127.0.0.3"
    for _ in range(6):   # five free, the sixth sets a one-second wait
        assert _get(agent.port, "/v1/status", _bad_key(agent.key), attacker)[0] == 401
    status, headers, body = _get(agent.port, "/v1/status", _bad_key(agent.key), attacker)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    err = json.loads(body)["error"]
    assert err["code"] == "RATE_LIMIT_EXCEEDED" and err["details"]["reason"] == "auth_failures"
    # even the right key waits out the backoff from that address; everyone else is served
    assert _get(agent.port, "/v1/status", agent.key, attacker)[0] == 429
    assert _get(agent.port, "/v1/status", agent.key, "127.0.0.4")[0] == 200
    time.sleep(int(headers["Retry-After"]) + 0.2)
    assert _get(agent.port, "/v1/status", _bad_key(agent.key), attacker)[0] == 401
    status, headers, _ = _get(agent.port, "/v1/status", _bad_key(agent.key), attacker)
    assert status == 429 and int(headers["Retry-After"]) >= 2   # the wait doubles


def _auth(agent) -> dict:
    return agent.client.health()["components"]["api"]["auth"]


def test_a_failed_key_is_hashed_once(agent):
    bad = _bad_key(agent.key)
    before = _auth(agent)
    for i in range(10):   # from ten addresses: the backoff is not what stops the hashing
        assert _get(agent.port, "/v1/status", bad, f"127.0.5.{i + 1}")[0] == 401
    after = _auth(agent)
    assert after["hashes"] - before["hashes"] == 1
    assert after["failed_cached"] - before["failed_cached"] == 9


def test_a_flood_of_bad_keys_does_not_starve_other_requests(agent):
    assert _get(agent.port, "/v1/status", agent.key)[0] == 200    # the good key is verified (and cached)
    stop = threading.Event()
    counts = {"401": 0, "429": 0, "other": 0}

    def flood(i: int):
        n = 0
        while not stop.is_set():
            source = f"127.0.{10 + i}.{1 + n % 250}"   # a new address every time: no backoff helps
            n += 1
            try:
                status = _get(agent.port, "/v1/status", _bad_key(agent.key), source)[0]
            except OSError:
                status = 0
            counts[str(status) if status in (401, 429) else "other"] += 1
    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(16)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: counts["401"] + counts["429"] > 50, timeout=30)
        worst = 0.0
        for _ in range(20):
            for path, key in (("/v1/health", ""), ("/v1/status", agent.key)):
                t = time.monotonic()
                assert _get(agent.port, path, key, "127.0.0.2")[0] == 200
                worst = max(worst, time.monotonic() - t)
            time.sleep(0.1)
        assert worst < 1.0, worst
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert counts["other"] == 0, counts
