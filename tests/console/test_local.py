"""The consoles in the agent's own process call its services (agent.console.local.LocalClient),
not its REST face: they get the answers and the refusals (status, code, message, details) that the
REST client gets from the same agent, and they work on an agent that has no REST face at all."""
import pytest

from agent import config
from agent.cli.box import build_agent
from agent.client import ApiError, Client
from agent.console.local import LocalClient
from agent.runtime import Agent
from tests.agent.conftest import free_port, wait_for


def _config(tmp_path, port: int = 0):
    over = {"agent": {"data_dir": str(tmp_path / "var")}, "capture": {"autostart": False}}
    if port:
        over["api"] = {"listen": f"127.0.0.1:{port}"}
    return config.load(None, overrides=over)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One agent in this process with its REST face: (LocalClient, REST Client) onto it."""
    tmp = tmp_path_factory.mktemp("local")
    port = free_port()
    agent = build_agent(_config(tmp, port), console=False)
    agent.start()
    rest = Client(f"http://127.0.0.1:{port}", (tmp / "var" / "admin.key").read_text().strip())
    wait_for(lambda: rest.status(), timeout=15)
    yield LocalClient(agent), rest
    agent.shutdown()


REFUSED = [
    ("get_threat", ("thr_nope",), {}),
    ("mark_threat", ("thr_nope", "acknowledged"), {}),
    ("mark_threat", ("thr_nope", "bogus"), {}),
    ("list_threats", (), {"limit": 0}),
    ("list_threats", (), {"since": "yesterday"}),
    ("capture_flows", (), {"sort": "nope"}),
    ("capture_metrics", (), {}),
    ("capture_filter", ("tcp port 80",), {}),
    ("capture_start", (), {"interface": "lo", "file": "demo"}),
    ("capture_start", (), {"file": "../../../etc/passwd"}),
    ("capture_start", (), {"file": "demo", "snaplen": 10**9}),
    ("verify_firmware", ("../../outside.img",), {}),
    ("verify_firmware", ("missing.img",), {}),
    ("revoke_key", ("nope",), {}),
    ("create_key", (), {"kind": "zz"}),
    ("call_ladder", ("nope",), {}),
    ("anomalies", (), {"severity": "dire"}),
    ("anomalies_by_type", (), {}),                 # nothing computed yet
    ("windows", (), {"limit": 10**6}),
    ("compute_windows", (), {"source": "pcap"}),
    ("start_deception", ("bank.example", "10.0.0.66"), {"threat_id": "thr_nope"}),
    ("verify_dns", ("bank.example", "PTR"), {}),
]


@pytest.mark.parametrize("method,args,kwargs", REFUSED, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(REFUSED)])
def test_a_refusal_is_the_one_rest_gives(both, method, args, kwargs):
    local, rest = both
    seen = []
    for client in (rest, local):
        with pytest.raises(ApiError) as e:
            getattr(client, method)(*args, **kwargs)
        seen.append((type(e.value), e.value.status, e.value.code, e.value.message, e.value.details))
    assert seen[0] == seen[1]
    assert seen[0][1] < 500, seen[0]


@pytest.mark.parametrize("method,args,kwargs", [
    ("capture_status", (), {}), ("capture_backends", (), {}), ("list_keys", (), {}), ("firmware", (), {}),
    ("system", (), {}), ("list_threats", (), {"limit": 5}), ("calls", (), {}),
])
def test_an_answer_is_the_one_rest_gives(both, method, args, kwargs):
    local, rest = both
    assert getattr(local, method)(*args, **kwargs) == getattr(rest, method)(*args, **kwargs)


def test_health_and_status_are_the_rest_documents(both):
    local, rest = both
    skip = {"timestamp", "uptime_seconds", "system", "interfaces", "components", "losses"}
    assert {k: v for k, v in local.health().items() if k not in skip} == \
           {k: v for k, v in rest.health().items() if k not in skip}
    assert local.health()["components"].keys() == rest.health()["components"].keys()
    assert local.status()["data"] == rest.status()["data"]


def test_the_console_needs_no_rest_face(tmp_path):
    """An agent with no face attached: the console's client still starts, reads and stops a capture."""
    agent = Agent(_config(tmp_path))
    agent.start()
    try:
        c = LocalClient(agent)
        assert "api" not in c.health()["components"]
        started = c.capture_start(file="demo", pace=0, loop=False)
        assert started["running"] and started["backend"] == "pcapfile"
        done = wait_for(lambda: (s := c.capture_status()) and not s["running"] and s, timeout=30)
        assert done["last_run"]["stats"]["packets"] > 0
        key = c.create_key(kind="pk", name="from the console")
        assert key["key"].startswith("capbox_pk_") and key["name"] == "from the console"
        assert [k["id"] for k in c.list_keys()["keys"]][-1] == key["id"]
        assert c.revoke_key(key["id"]) == {"revoked": True, "id": key["id"]}
    finally:
        agent.shutdown()
