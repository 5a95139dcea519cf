"""`capbox threats` run as an operator would, against a running agent:
list, follow (as new threats are raised), show, mark, a pipe into head."""
import json
import os
import subprocess
import sys

from tests.agent.conftest import wait_for
from tests.conftest import ROOT, pcap


def capbox(agent, *argv, **kw):
    return subprocess.run([sys.executable, "-m", "agent", *argv, "--url", agent.url, "--key", agent.key],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, **kw)


def test_list_follow_show_and_mark(agent):
    follow = subprocess.Popen([sys.executable, "-m", "agent", "threats", "--follow", "--json", "--url", agent.url,
                               "--key", agent.key], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert capbox(agent, "threats").stdout.strip().endswith("0 threats")
        name = agent.pcap(pcap("zeek__tls_ssl.v3.pcap"))
        agent.client.capture_start(file=name, pace=0, loop=False)
        line = follow.stdout.readline()                 # a threat raised after the follow began
        followed = json.loads(line)
        assert followed["attack_type"] == "tls_downgrade" and followed["severity"] == "high"
    finally:
        follow.terminate()
        follow.wait(10)
    listed = [json.loads(x) for x in capbox(agent, "threats", "--json", "--severity", "high").stdout.splitlines()]
    assert [t["id"] for t in listed] == [followed["id"]]
    assert capbox(agent, "threats", "list", "--severity", "low").stdout.strip().endswith("0 threats")
    table = capbox(agent, "threats").stdout
    assert followed["id"] in table and "tls_downgrade" in table and "1 threats" in table
    shown = json.loads(capbox(agent, "threats", "show", followed["id"], "--json").stdout)
    assert shown["evidence"] and shown["id"] == followed["id"]
    r = capbox(agent, "threats", "mark", followed["id"], "false_positive", "--note", "lab test")
    assert r.returncode == 0 and "false_positive" in r.stdout
    assert agent.client.get_threat(followed["id"])["status"] == "false_positive"
    r = capbox(agent, "threats", "show", "thr_000000000000")
    assert r.returncode == 1 and "THREAT_NOT_FOUND" in r.stderr


def closed_pipe_run(argv: list) -> subprocess.CompletedProcess:
    """argv with its standard output a pipe nobody reads any more (`… | head -1` once head has exited)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "agent", *argv], cwd=ROOT, stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(w)


def test_a_reader_that_went_away_ends_the_command_quietly(agent):
    name = agent.pcap(pcap("zeek__tls_ssl.v3.pcap"))
    agent.client.capture_start(file=name, pace=0, loop=False)
    wait_for(lambda: agent.client.list_threats()["total"] >= 1, timeout=30)
    for argv in (["threats", "--json", "--url", agent.url, "--key", agent.key],
                 ["threats", "--follow", "--url", agent.url, "--key", agent.key],
                 ["analyze", "--json", pcap("zeek__wikipedia.pcap")],
                 ["calls", "--json", pcap("ndpi__sip.pcap")]):
        r = closed_pipe_run(argv)
        assert r.returncode in (1, 141), (argv, r.stderr)     # 141 as a shell says SIGPIPE; rich's own exit 1
        assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, (argv, r.stderr)


def test_no_agent_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "agent", "threats", "--url", "http://127.0.0.1:9", "--key", "k"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "does not answer" in r.stderr and "Traceback" not in r.stderr
