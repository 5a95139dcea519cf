"""GET /v1/system and POST /v1/system/update against the agent process, on a
box made of files (CAPBOX_SYSTEM_ROOT): the bundle as the body, its signature
in a header; refusals leave every byte as it was."""
import base64
import time

import pytest

from agent.client import Client
from tests.agent.conftest import IDLE, AgentProcess
from tests.update.conftest import Made


@pytest.fixture
def agent(box):
    a = AgentProcess(box.data_dir, IDLE, env={"CAPBOX_SYSTEM_ROOT": str(box.root)})
    a.viewer = Client(a.url, a.client.post("/v1/keys", {"kind": "pk", "name": "viewer"})["key"])
    yield a
    a.stop()


def post(client: Client, made: Made, query=None, signature=None, ctype="application/octet-stream"):
    headers = {"Content-Type": ctype}
    sig = made.signature if signature is None else signature
    if sig:
        headers["X-Capbox-Signature"] = base64.b64encode(sig.encode()).decode()
    r = client.raw("POST", "/v1/system/update", made.path.read_bytes(), headers, query)
    return r.status, r.json()


def test_system_shows_the_slots(agent, box):
    st = agent.viewer.get("/v1/system")
    assert st["image"] and st["booted_slot"] == "a" and st["committed_slot"] == "a" and st["trial"] is None
    assert st["release"]["version"] == "1.0.0" and st["data_persistent"] is True
    assert set(st["slots"]) == {"a", "b"} and st["slots"]["a"]["booted"] and st["slots"]["a"]["committed"]
    assert st["slots"]["b"]["partition"] == str(box.parts["b"])
    assert st["slots"]["b"]["rootfs"]["filesystem"] == "squashfs"


def test_update_installs_into_the_other_slot_and_reboots(agent, box, make_bundle):
    made = make_bundle("2.0.0", 2)
    status, r = post(agent.client, made)
    assert status == 202, r
    assert r["slot"] == "b" and r["version"] == "2.0.0" and r["rebooting"] and r["verdict"]["reason"] == "ok"
    assert box.parts["b"].read_bytes()[:len(made.rootfs)] == made.rootfs and box.oneshot() == "capbox-b.efi"
    deadline = time.monotonic() + 10
    while not box.platform.reboot_request.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert box.platform.reboot_request.exists()
    st = agent.viewer.get("/v1/system")
    assert st["trial"]["slot"] == "b" and st["slots"]["b"]["status"] == "installed"
    status, r = post(agent.client, made)                        # one trial at a time
    assert status == 409 and r["error"]["code"] == "CONFLICT"
    box.boot()
    st = agent.viewer.get("/v1/system")
    assert st["booted_slot"] == "b" and st["slots"]["b"]["status"] == "trying" and st["release"]["version"] == "2.0.0"


def test_refusals_write_nothing(agent, box, make_bundle, stranger):
    agent.viewer.get("/v1/system")                              # this boot recorded
    before = box.snapshot()
    made = make_bundle("2.0.0", 2, signer=stranger)
    status, r = post(agent.client, made, {"reboot": "false"})
    assert status == 422 and r["error"]["code"] == "UPDATE_REJECTED" and r["error"]["details"]["reason"] == "unknown_key"
    good = make_bundle("2.0.0", 2)
    tampered = bytearray(good.path.read_bytes())
    tampered[len(tampered) // 2] ^= 1
    good.path.with_suffix(".bad").write_bytes(bytes(tampered))
    status, r = post(agent.client, Made(good.path.with_suffix(".bad"), good.signature, b""))
    assert status == 422 and r["error"]["details"]["reason"] == "hash_mismatch"
    status, r = post(agent.client, good, signature="")
    assert status == 400 and r["error"]["details"]["field"] == "X-Capbox-Signature"
    status, r = post(agent.client, good, ctype="application/json")
    assert status == 415
    status, r = post(agent.viewer, good)
    assert status == 403
    assert box.snapshot() == before and not box.platform.reboot_request.exists()


def test_health_shows_both_parts_of_what_runs_on_the_box(agent, box, make_bundle):
    """One software service: /v1/health shows the card's firmware and the system's booted slot; the card
    and the system raise their rollback floors through one state (no lost record between the two)."""
    sw = agent.viewer.health()["components"]["software"]
    assert sw["status"] == "running" and not sw["critical"]
    assert sw["system"] == {"image": True, "booted_slot": "a"}
    assert sw["card"]["present"] is False and sw["card"]["device"]
    status, r = post(agent.client, make_bundle("2.0.0", 2), query={"reboot": "false"})
    assert status == 202, r
    box.boot()
    assert agent.viewer.health()["components"]["software"]["system"]["booted_slot"] == "b"


def test_the_card_and_the_system_share_one_floor_state(box):
    from agent.software import Software
    sw = Software(box.cfg, box.platform)
    assert sw.card.state is sw.system.floors
