"""The protocol logs of a running agent: a real capture replayed through the
capture path, the records written to files and the index, and found again
through GET /v1/logs (curl), the client, and `capbox logs` as a subprocess;
they equal what `capbox logs -r` makes of the same file."""
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tests.agent.conftest import AgentProcess, ApiError, wait_for
from tests.conftest import pcap

WIKI = "zeek__wikipedia.pcap"
CONFIG = "[capture]\nautostart = false\n[logs]\nrotate_mb = 1\n"


def _offline(path: str, kind: str) -> list:
    out = subprocess.run([sys.executable, "-m", "agent", "logs", "-r", path, "--type", kind, "--json"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [json.loads(x) for x in out.splitlines()]


def _strip(rec: dict) -> dict:
    """A record without what differs between two runs over the same packets (uids are salted per run)."""
    return {k: v for k, v in rec.items() if k not in ("uid", "uids", "_path")}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    a = AgentProcess(tmp_path_factory.mktemp("logs") / "var", CONFIG)
    try:
        a.client.capture_start(file=a.pcap(pcap(WIKI)), pace=0)
        wait_for(lambda: not a.client.capture_status()["running"], timeout=60)
        want = len(_offline(pcap(WIKI), "conn"))
        wait_for(lambda: len(list(a.client.logs("conn"))) >= want, timeout=60)
        yield a
    finally:
        a.stop()


def test_live_logs_equal_offline_logs(replayed):
    a = replayed
    for kind in ("dns", "http", "conn", "arp"):
        live = sorted((json.dumps(_strip(r), sort_keys=True) for r in a.client.logs(kind)))
        offline = sorted((json.dumps(_strip(r), sort_keys=True) for r in _offline(pcap(WIKI), kind)))
        assert live and live == offline, kind
    # the uid joins a flow's records: the dns record's uid is that of its conn record
    conns = {(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]): r["uid"] for r in a.client.logs("conn")
             if "id.orig_p" in r}
    for r in a.client.logs("dns"):
        assert conns[(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])] == r["uid"]


def test_search_by_curl_client_and_cli(replayed):
    a = replayed
    curl = shutil.which("curl")
    out = subprocess.run([curl, "-sf", "-H", f"Authorization: Bearer {a.key}",
                          f"{a.url}/v1/logs/dns?q=upload.wikimedia&limit=1000"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    body = json.loads(out)
    assert body["type"] == "dns" and body["count"] == len(body["records"]) > 0
    assert all("upload.wikimedia" in r["query"] for r in body["records"])
    # host, time window and limit
    http = list(a.client.logs("http"))
    server = http[0]["id.resp_h"]
    mine = list(a.client.logs("http", host=server))
    assert mine == [r for r in http if server in (r["id.orig_h"], r["id.resp_h"])]
    t = http[len(http) // 2]["ts"]
    assert list(a.client.logs("http", since=t)) == [r for r in http if r["ts"] >= t]
    assert list(a.client.logs("http", until=t)) == [r for r in http if r["ts"] < t]
    assert len(list(a.client.logs("http", limit=2))) == 2
    cid = http[0]["community_id"]
    assert {r["community_id"] for r in a.client.logs("http", community_id=cid)} == {cid}
    # capbox logs against the agent, as a subprocess
    p = subprocess.run([sys.executable, "-m", "agent", "logs", "dns", "--host", "141.142.2.2", "--json", "--url", a.url,
                        "--key", a.key], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert lines == list(a.client.logs("dns", host="141.142.2.2")) and lines
    text = subprocess.run([sys.executable, "-m", "agent", "logs", "http", "-q", "wikipedia.org", "--url", a.url,
                           "--key", a.key], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "www.wikipedia.org" in text


def test_bad_queries_are_4xx(replayed):
    a = replayed
    for kind, query, status in (("nope", {}, 404), ("dns", {"host": "not-an-ip"}, 400), ("dns", {"limit": 0}, 400),
                                ("dns", {"since": 10, "until": 5}, 400)):
        with pytest.raises(ApiError) as e:
            list(a.client.logs(kind, **query))
        assert e.value.status == status, (kind, query)
        r = a.client.raw("GET", f"/v1/logs/{kind}", query={**query, "format": "json"})
        assert r.status == status and r.json()["error"]["code"] in ("NOT_FOUND", "VALIDATION_ERROR")
    assert a.client.raw("GET", "/v1/logs/dns", query={"format": "xml"}).status == 400


def test_files_private_drops_counted(replayed):
    a = replayed
    logs = a.data_dir / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for f in logs.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    lines = (logs / "dns.log").read_text().splitlines()
    assert [json.loads(x) for x in lines] == list(a.client.logs("dns"))
    comp = a.client.health()["components"]["logs"]
    assert comp["dropped"] == 0 and comp["records"] > 0 and comp["status"] == "running"
    assert comp["indexer"]["pid"] not in (None, a.proc.pid) and comp["indexer"]["restarts"] == 0   # its own process
    metrics = a.client.raw("GET", "/metrics").body.decode()
    assert "capbox_log_dropped_total 0.0" in metrics
    assert f'capbox_log_records_total{{type="dns"}} {float(len(lines))}' in metrics
    assert os.path.exists(logs / "index.db")
