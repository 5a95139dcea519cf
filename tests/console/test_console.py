"""The agent's console on a real pty (os.openpty), used as a person would:
log in, run every command, read what comes back; and what the line may do
to it: wrong passwords, garbage, 100 kB lines, idle, a device that vanishes."""
import json
import os
import random
import time

from agent.client import ApiError, Client
from tests.agent.conftest import wait_for
from tests.console.conftest import PASSWORD, PROMPT, FdEnd, Terminal, assert_fits


def open_console(console_agent, pty_pair, extra: str = "", pw: str = PASSWORD):
    master, path, _ = pty_pair
    agent = console_agent(path, extra, pw)
    wait_for(lambda: agent.client.health()["components"]["console"]["state"] == "open", timeout=15)
    term = Terminal(FdEnd(master))
    term.expect("capbox console on")
    return agent, term


def test_every_command_over_a_pty(console_agent, pty_pair):
    agent, term = open_console(console_agent, pty_pair)
    term.login()
    c = agent.client

    def run(command: str) -> str:
        out = term.run(command)
        assert_fits(out)
        return out

    def run_json(command: str):
        line = term.run(command + " --json").strip()
        assert "\n" not in line
        return json.loads(line)

    out = run("help")
    for verb in ("status", "capture start", "flows top", "threats", "threat ID", "anomalies", "verify-dns",
                 "fw status", "fw verify", "net show", "keys create", "logs", "exit"):
        assert verb in out
    assert [x["command"] for x in run_json("help capture")["commands"]] == ["capture start", "capture stop",
                                                                          "capture status"]

    out = run("status")
    assert out.startswith("capbox 0.1.0") and "capture   idle: no active capture" in out
    assert run_json("status")["health"]["components"]["console"]["logged_in"] is True

    assert "idle: no active capture" in run("capture status")
    name = agent.pcap(os.path.join(os.path.dirname(__file__), "..", "..", "agent", "data", "demo.pcap"))
    out = run(f"capture start {name} --filter tcp --loop")
    assert "capture started" in out and f"pcapfile on {name}, filter tcp" in out
    st = c.capture_status()                             # the agent's own answer, over HTTP
    assert st["running"] and st["bpf"] == "tcp" and st["backend"] == "pcapfile"
    assert run_json("capture status")["run_id"] == st["run_id"]
    assert "already running" in run("capture start demo")

    wait_for(lambda: c.capture_flows(limit=3)["count"] == 3, timeout=10)
    out = run("flows top 3")
    shown = int(out.split()[0])
    assert "active flows, by bytes" in out and 1 <= shown <= 3
    rows = out.splitlines()[2:]
    assert len(rows) == shown and all(" tcp " in r for r in rows)
    flows = run_json("flows top 3 --sort packets")
    assert flows["sort"] == "packets" and 1 <= len(flows["flows"]) <= 3
    assert "usage: flows top" in run("flows top zero")

    assert "capture stopped" in run("capture stop")
    assert not c.capture_status()["running"]
    assert c.capture_status()["last_run"]["reason"] == "console"
    assert "no active capture" in run("capture stop")
    assert "no interface named 'nosuch0'" in run("capture start nosuch0")
    assert "outside the allowed directories" in run("capture start ../../../etc/passwd.pcap")

    assert run("threats 5").startswith("0 of 0 threats")
    assert run_json("threats")["total"] == 0
    assert "THREAT_NOT_FOUND" in run("threat thr_000000000000")
    # the demo capture at full speed: its weak TLS handshake becomes a threat
    assert "capture started" in run(f"capture start {name} --pace 0")

    def settled():
        first = c.get("/v1/threats")
        time.sleep(0.3)
        again = c.get("/v1/threats")
        return again if again["total"] and again["total"] == first["total"] else None
    listing = wait_for(settled, timeout=20)
    out = run("threats")
    assert out.startswith(f"{listing['count']} of {listing['total']} threats")
    assert all(t["id"] in out and t["attack_type"] in out for t in listing["threats"])
    threat = listing["threats"][0]
    out = run(f"threat {threat['id']}")
    assert f"threat    {threat['id']}   status new" in out and threat["description"][:40] in out.replace("\n", " ")
    assert run_json(f"threat {threat['id']}")["evidence"] == c.get(f"/v1/threats/{threat['id']}")["evidence"]
    try:
        expected = c.get("/v1/anomalies", limit=10)
        assert run("anomalies").startswith(f"{len(expected['anomalies'])} of ")
    except ApiError as e:
        assert e.code == "METRICS_NOT_COMPUTED" and e.code in run("anomalies")
    assert "INSUFFICIENT_PATHS" in run("verify-dns example.com")
    assert run_json("verify-dns example.com")["error"]["code"] == "INSUFFICIENT_PATHS"
    assert "INVALID_DOMAIN" in run("verify-dns 'not a domain!'")

    out = run("fw status")
    assert out.startswith("card      none at") and "keyring" in out
    assert "FORBIDDEN" in run("fw verify ../../../etc/passwd")
    assert "no file 'nothing.img'" in run("fw verify nothing.img")

    out = run("net show")
    assert "127.0.0.1" in out and "lo " in out
    assert any(i["name"] == "lo" for i in run_json("net show")["interfaces"])

    out = run("keys create --kind pk --name from-the-console")
    token = out.splitlines()[0]
    assert token.startswith("capbox_pk_") and "not shown again" in out
    assert Client(agent.url, token).get("/v1/ping")["pong"]      # the new key works over REST
    key_id = out.splitlines()[1].split()[1].rstrip(",")
    assert "from-the-console" in run("keys list")
    assert f"revoked {key_id}" in run(f"keys revoke {key_id}")
    try:
        Client(agent.url, token).get("/v1/ping")
        raise AssertionError("a revoked key still works")
    except ApiError as e:
        assert e.code == "INVALID_API_KEY"
    assert "NOT_FOUND" in run("keys revoke 00000000")

    out = run("logs 20")
    assert "console" in out and "logged in" in out
    assert run_json("logs 3")["returned"] == 3
    assert "UNKNOWN_COMMAND" in run("reboot")
    assert "capture takes: capture start" in run("capture pause")
    assert "No closing quotation" in run("capture start 'demo")

    # --json on the verbs not yet seen that way: the REST answer, one line
    def rest(path, **query):
        try:
            return c.get(path, **query)
        except ApiError as e:
            return {"error": {"code": e.code}}
    assert run_json("fw status")["target"] == rest("/v1/firmware")["target"]
    assert [k["id"] for k in run_json("keys list")["keys"]] == [k["id"] for k in rest("/v1/keys")["keys"]]
    assert run_json("fw verify nothing.img")["error"]["code"] == \
        rest("/v1/firmware/verify", firmware_path="nothing.img")["error"]["code"]
    assert run_json("anomalies 1").keys() == rest("/v1/anomalies", limit=1).keys()
    run("capture stop")                  # the file may have ended by itself
    assert run_json("capture start demo")["running"] and run_json("capture stop")["stopped"] is True
    assert run_json("capture stop")["stopped"] is False
    created = run_json("keys create --name scripted")
    assert run_json(f"keys revoke {created['id']}")["id"] == created["id"]

    term.send("exit --json\r")
    term.expect('{"logged_out":true}')
    term.expect("Logged out")
    term.expect("Password: ")
    wait_for(lambda: not agent.client.health()["components"]["console"]["logged_in"], timeout=5)


def test_wrong_passwords_lock_the_console_out(console_agent, pty_pair):
    agent, term = open_console(console_agent, pty_pair, "max_failures = 3\nlockout_s = 2\n")
    term.drain()
    for _ in range(3):
        term.send("\r")
        term.expect("Password: ")
        term.send("not the password\r")
        assert "not the" not in term.expect("Login incorrect")      # the password is not echoed
    term.expect("Locked: 3 wrong passwords in a row; try again in 2 s")
    term.send(PASSWORD + "\r")                           # the right one, but locked
    term.expect("Locked: too many wrong passwords")
    detail = agent.client.health()["components"]["console"]
    assert detail["lockouts"] == 1 and detail["failed_logins"] == 3 and detail["logins"] == 0
    time.sleep(2.2)
    term.login()
    assert "capbox 0.1.0" in term.run("status")
    assert agent.stop() == 0


def test_garbage_and_long_lines_are_survived(console_agent, pty_pair):
    # garbage at the password prompt can hold clean lines, each a wrong password: no lockout here
    agent, term = open_console(console_agent, pty_pair, "max_failures = 100\n")
    term.login()
    # what a terminal at 9600 baud looks like to a port at 115200: NULs and high bytes
    term.send(b"\x00\xf8\x80\x00\xe0\xfc\x00\r")
    term.expect("Line noise: 7 unreadable bytes, line ignored (is the terminal set to 115200 8N1?)")
    term.expect(PROMPT)
    seen = term.type_reading(b"s" * 100_000 + b"\r")
    assert seen == "s" * 1024 + "\nLine too long: more than 1024 characters, ignored\n" + PROMPT
    term.type_reading(random.Random(2).randbytes(64 * 1024) + b"\x03\r")
    assert "capbox 0.1.0" in term.run("status")            # still logged in, still answering
    term.send("exit\r")
    term.expect("Password: ")
    term.type_reading(random.Random(1).randbytes(4096) + b"\x03\r")  # at the password
    term.login()
    assert "capture   idle" in term.run("status")
    detail = agent.client.health()["components"]["console"]
    assert detail["noise_bytes"] > 1000 and detail["long_lines"] >= 1 and detail["state"] == "open"
    assert detail["logins"] == 2 and agent.proc.poll() is None


def test_no_password_set_means_nobody_logs_in(console_agent, pty_pair):
    _, term = open_console(console_agent, pty_pair, pw="")
    term.drain()
    term.send("\r")
    term.expect("Password: ")
    term.send("anything goes?\r")
    term.expect("Cannot log in: no console password is set (run `capbox console passwd` on the box)")


def test_idle_logout(console_agent, pty_pair):
    _, term = open_console(console_agent, pty_pair, "idle_timeout_s = 1\n")
    term.login()
    term.expect("Idle for 1 s: logged out", timeout=5)
    term.expect("Password: ")


def test_a_vanished_device_never_takes_the_agent_down(console_agent, pty_pair):
    agent, term = open_console(console_agent, pty_pair)
    term.login()
    _, _, fds = pty_pair
    for fd in list(fds):
        os.close(fd)
        fds.remove(fd)
    console = wait_for(lambda: (lambda d: d if d["state"] in ("waiting", "reopening") else None)(
        agent.client.health()["components"]["console"]), timeout=10)
    assert console["last_error"] and not console["logged_in"]
    assert "went away" in agent.output() or "cannot open" in agent.output()
    assert agent.client.get("/v1/ping")["pong"] and agent.proc.poll() is None
    assert agent.client.health()["components"]["console"]["status"] == "running"
    assert agent.stop() == 0
