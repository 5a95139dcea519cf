"""GET /v1/pcap and `capbox pcap` against the real agent process: real
captures replayed and recorded with rotation (and, in one test, encrypted),
then the packets of a window and filter, of a threat, a call and a flow
fetched with curl and the CLI, held to tcpdump over the original capture
(same packets, same bytes and times) and to capinfos; retention that takes
a threat's packets, and hostile requests."""
import os
import subprocess
import sys
import urllib.parse

import pytest

from agent.client import ApiError
from tests.agent.conftest import wait_for
from tests.agent.test_recording import capinfos_count, make_key
from tests.conftest import ROOT, pcap
from tests.pcapfiles import read_packets, read_pcapng


def curl(agent, out, key=None, **query) -> tuple:
    """(status, headers) of GET /v1/pcap with curl, the body in `out`."""
    url = f"{agent.url}/v1/pcap?{urllib.parse.urlencode(query)}"
    p = subprocess.run(["curl", "-sS", "-D", "-", "-o", str(out), "-H", f"Authorization: Bearer {key or agent.key}",
                        url], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def tcpdump(src, bpf, tmp_path, since_ns=0, until_ns=1 << 64) -> list:
    """The packets of a capture that pass a filter, by tcpdump, inside the window."""
    out = tmp_path / "tcpdump.pcap"
    p = subprocess.run(["tcpdump", "-r", str(src), "-w", str(out), bpf], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [x for x in read_packets(out) if since_ns <= x[0] <= until_ns]


def capbox_pcap(agent, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "pcap", *map(str, argv), "--url", agent.url, "--key",
                           agent.key], cwd=ROOT, capture_output=True, text=True, timeout=120)


def run_file(agent, name: str, **kw) -> None:
    """Replay a capture to its end (the recording's files closed with it)."""
    agent.client.capture_start(file=name, **kw)
    wait_for(lambda: not agent.client.capture_status()["running"], timeout=60)


def seconds(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def test_a_window_a_threat_and_their_age(agent, tmp_path):
    tls, mixed = pcap("zeek__tls_ssl.v3.pcap"), pcap("ndpi__1kxun.pcap")
    agent.client.post("/v1/capture/recording", {"rotate_mb": 1})
    run_file(agent, agent.pcap(tls))
    threat = wait_for(lambda: agent.client.list_threats(attack_type="tls_downgrade")["threats"])[0]
    run_file(agent, agent.pcap(mixed))
    recs = agent.client.get("/v1/recordings")["recordings"]
    assert len(recs) == 4
    index = agent.data_dir / "recordings-index"
    wait_for(lambda: index.is_dir() and {p.name for p in index.iterdir()} == {r["name"] + ".json" for r in recs})
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in index.iterdir())   # indexed as they closed
    assert oct(index.stat().st_mode & 0o777) == "0o700"

    # a window and a filter: what tcpdump finds there, from the one file the window touches
    src = read_packets(mixed)
    since, until = src[500][0], src[900][0]
    out = tmp_path / "window.pcapng"
    status, h = curl(agent, out, since=seconds(since), until=seconds(until), bpf="tcp port 80")
    assert status == 200 and h.get("content-type") == "application/vnd.tcpdump.pcap-ng", h
    want = tcpdump(mixed, "tcp port 80", tmp_path, since, until)
    got = read_pcapng(out)["packets"]
    assert got == want and len(got) > 50
    assert capinfos_count(out) == len(want)
    assert h["x-capbox-files"] == "1" and int(h["x-capbox-ranges"]) < 8   # not every file, not every range

    # every kept packet of a filter: the two captures, in order
    status, _ = curl(agent, out, bpf="udp")
    assert status == 200
    assert read_pcapng(out)["packets"] == tcpdump(tls, "udp", tmp_path) + tcpdump(mixed, "udp", tmp_path)

    # a threat: the CLI writes what tcpdump finds with the threat's filter in its window
    detail = agent.client.get_threat(threat["id"])
    assert detail["packets"]["state"] == "kept" and len(detail["packets"]["files"]) == 1
    r = capbox_pcap(agent, "--threat", threat["id"], "-w", tmp_path / "threat.pcapng")
    assert r.returncode == 0, r.stderr
    w = detail["packets"]["window"]
    want = tcpdump(tls, w["bpf"], tmp_path, w["since_ns"], w["until_ns"])
    got = read_pcapng(tmp_path / "threat.pcapng")["packets"]
    assert got == want and len(got) > 10 and capinfos_count(tmp_path / "threat.pcapng") == len(got)
    assert oct((tmp_path / "threat.pcapng").stat().st_mode & 0o777) == "0o600"
    # tcpdump-style words narrow it further
    r = capbox_pcap(agent, "--threat", threat["id"], "-w", tmp_path / "syn.pcapng", "tcp[tcpflags] & tcp-syn != 0")
    assert r.returncode == 0, r.stderr
    assert read_pcapng(tmp_path / "syn.pcapng")["packets"] == tcpdump(
        tls, f"({w['bpf']}) and (tcp[tcpflags] & tcp-syn != 0)", tmp_path, w["since_ns"], w["until_ns"])

    # retention takes the threat's recording: its detail and /v1/pcap say its packets aged out
    agent.client.post("/v1/capture/recording", {"keep_mb": 2})
    run_file(agent, agent.pcap(mixed))
    names = {x["name"] for x in agent.client.get("/v1/recordings")["recordings"]}
    assert recs[0]["name"] not in names
    gone = agent.client.get_threat(threat["id"])["packets"]
    assert gone["state"] == "aged_out" and gone["files"] == []
    with pytest.raises(ApiError) as e:
        agent.client.pcap(open(os.devnull, "wb"), threat=threat["id"])
    assert (e.value.status, e.value.code) == (404, "NO_PACKETS_KEPT") and "aged out" in e.value.message
    r = capbox_pcap(agent, "--threat", threat["id"], "-w", tmp_path / "old.pcapng")
    assert r.returncode == 1 and "aged out" in r.stderr and "NO_PACKETS_KEPT" in r.stderr
    assert not (tmp_path / "old.pcapng").exists() and not (tmp_path / "old.pcapng.part").exists()
    sidecars = {p.name for p in (agent.data_dir / "recordings-index").iterdir()}
    assert sidecars <= {n + ".json" for n in names}          # the index follows retention


def test_hostile_and_empty_requests(agent, tmp_path):
    agent.client.post("/v1/capture/recording", {"rotate_mb": 1})
    run_file(agent, agent.pcap(pcap("zeek__wikipedia.pcap")))
    out = tmp_path / "x.pcapng"
    for query, code in [({"bpf": "tcp and ("}, "VALIDATION_ERROR"), ({"flow": str(1 << 63)}, "VALIDATION_ERROR"),
                        ({"flow": "-1"}, "VALIDATION_ERROR"), ({"since": "yesterday"}, "VALIDATION_ERROR"),
                        ({"since": "1e30"}, "VALIDATION_ERROR"), ({"since": "5", "until": "4"}, "VALIDATION_ERROR"),
                        ({"bpf": "x" * 5000}, "VALIDATION_ERROR"), ({"threat": "thr_nope"}, "THREAT_NOT_FOUND"),
                        ({"call": "nope"}, "SESSION_NOT_FOUND"), ({"flow": "999999"}, "FLOW_NOT_FOUND"),
                        ({"flow": "7", "threat": "thr_x"}, "VALIDATION_ERROR"),
                        ({"since": "1", "until": "2"}, "NO_PACKETS_KEPT")]:
        status, _ = curl(agent, out, **query)
        assert 400 <= status < 500, query
        assert code in out.read_text(), (query, out.read_text())
    # a window the recordings cover with nothing that matches: an empty pcapng that opens
    status, _ = curl(agent, out, bpf="udp port 9")
    assert status == 200 and read_pcapng(out)["packets"] == [] and capinfos_count(out) == 0
    # a huge window is every kept packet
    status, _ = curl(agent, out, since="0", until="9999999999")
    assert status == 200 and read_pcapng(out)["packets"] == read_packets(pcap("zeek__wikipedia.pcap"))
    # a recording whose index sidecar was damaged is indexed again
    for p in (agent.data_dir / "recordings-index").iterdir():
        p.write_text("{not json")
    status, _ = curl(agent, out, bpf="tcp")
    assert status == 200 and read_pcapng(out)["packets"] == tcpdump(pcap("zeek__wikipedia.pcap"), "tcp", tmp_path)


def test_encrypted_recordings_are_decrypted_on_the_fly(agent, tmp_path):
    src = pcap("ndpi__1kxun.pcap")
    make_key(agent)
    agent.client.post("/v1/capture/recording", {"rotate_mb": 1})
    agent.client.post("/v1/capture/encryption", {"key_file": "rec.key"})
    run_file(agent, agent.pcap(src))
    assert all(r["encrypted"] for r in agent.client.get("/v1/recordings")["recordings"])
    packets = read_packets(src)
    since, until = packets[100][0], packets[1600][0]
    status, h = curl(agent, tmp_path / "e.pcapng", since=seconds(since), until=seconds(until), bpf="tcp")
    assert status == 200 and int(h["x-capbox-files"]) == 3
    got = read_pcapng(tmp_path / "e.pcapng")["packets"]
    assert got == tcpdump(src, "tcp", tmp_path, since, until) and capinfos_count(tmp_path / "e.pcapng") == len(got)
    # a read-only key may not read encrypted packets decrypted
    reader = agent.client.post("/v1/keys", {"kind": "pk", "name": "r"})["key"]
    status, _ = curl(agent, tmp_path / "r.json", key=reader, bpf="tcp")
    assert status == 403 and "FORBIDDEN" in (tmp_path / "r.json").read_text()
    # without its key in the key directory a file cannot be read: nothing is kept that can be
    (agent.data_dir / "keys" / "rec.key").unlink()
    status, _ = curl(agent, tmp_path / "n.json", bpf="tcp")
    assert status == 404 and "NO_PACKETS_KEPT" in (tmp_path / "n.json").read_text()


def test_a_call_and_a_flow(agent, tmp_path):
    sip = pcap("ndpi__sip.pcap")
    agent.client.post("/v1/capture/recording", {"rotate_mb": 1})
    run_file(agent, agent.pcap(sip))
    calls = wait_for(lambda: agent.client.get("/v1/calls")["calls"])
    call = max(calls, key=lambda c: c["metrics"]["packets"])
    r = capbox_pcap(agent, "--call", call["session_id"], "-w", tmp_path / "call.pcapng")
    assert r.returncode == 0, r.stderr
    got = read_pcapng(tmp_path / "call.pcapng")["packets"]
    status, h = curl(agent, tmp_path / "call2.pcapng", call=call["session_id"])
    assert status == 200 and read_pcapng(tmp_path / "call2.pcapng")["packets"] == got
    assert got == tcpdump(sip, h["x-capbox-filter"], tmp_path, int(h["x-capbox-since-ns"]),
                          int(h["x-capbox-until-ns"]))
    # and the filter is the call's: every SIP message of it is there
    detail = agent.client.get(f"/v1/sessions/{call['session_id']}")
    bpf = " or ".join(f"(host {e['source'].rsplit(':', 1)[0]} and port {e['source'].rsplit(':', 1)[1]} and "
                      f"host {e['destination'].rsplit(':', 1)[0]} and port {e['destination'].rsplit(':', 1)[1]})"
                      for e in detail["events"])
    start, end = int(detail["start_ts"] * 1e9) - 10**9, int(detail["end_ts"] * 1e9) + 10**9
    signalling = tcpdump(sip, bpf, tmp_path, start, end)
    assert signalling and all(p in got for p in signalling)        # every SIP message of the call
    assert len(got) >= call["metrics"]["packets"]

    # a flow of a running capture: its packets as recorded so far are tcpdump's, in order
    wiki = pcap("zeek__wikipedia.pcap")
    agent.client.capture_start(file=agent.pcap(wiki), pace=0.2)     # 32 s: the flow stays in the table
    flow = wait_for(lambda: agent.client.capture_flows(sort="packets", proto="tcp", min_packets=10)["flows"],
                    timeout=30)[0]

    def fetched():      # its packets reach the file being written within flush_ms
        status, h = curl(agent, tmp_path / "flow.pcapng", flow=flow["id"])
        assert status == 200, (tmp_path / "flow.pcapng").read_text(errors="replace")
        return read_pcapng(tmp_path / "flow.pcapng")["packets"] and h
    h = wait_for(fetched, timeout=20, interval=0.5)
    got = read_pcapng(tmp_path / "flow.pcapng")["packets"]
    want = tcpdump(wiki, h["x-capbox-filter"], tmp_path, int(h["x-capbox-since-ns"]), int(h["x-capbox-until-ns"]))
    assert got and got == want[:len(got)], ({k: v for k, v in h.items() if k.startswith("x-")}, len(want))
    assert f"port {flow['sport']}" in h["x-capbox-filter"] and f"host {flow['src']}" in h["x-capbox-filter"]

    # the capture stops: the flow has left the table, and its packets are still found by its id (the log
    # service remembers the ended flows of the last capture), all that was recorded of it
    agent.client.capture_stop()
    status, h2 = wait_for(lambda: (lambda r: r[0] == 200 and r)(curl(agent, tmp_path / "ended.pcapng",
                                                                      flow=flow["id"])), timeout=20, interval=0.5)
    ended = read_pcapng(tmp_path / "ended.pcapng")["packets"]
    assert h2["x-capbox-filter"] == h["x-capbox-filter"] and int(h2["x-capbox-until-ns"]) >= int(h["x-capbox-until-ns"])
    assert len(ended) >= len(got) and ended == want[:len(ended)]
    with pytest.raises(ApiError) as e:
        agent.client.get("/v1/pcap", flow=999999)
    assert e.value.status == 404 and e.value.code == "FLOW_NOT_FOUND"


def test_flow_filters_meet_tcpdump_also_for_tagged_flows(tmp_path, synthetic_pcap):
    """Every flow of the synthetic capture (802.1Q-tagged ones too, and IPv6): the flow's window and filter
    through the index and C equal tcpdump with that filter over the original capture."""
    from agent.recordings import packets
    from agent.recordings.index import RecordingIndex
    from hwdrivers import CaptureConfig, RecordConfig, RunResult, Session
    src = synthetic_pcap[0]
    rec = tmp_path / "rec"
    rec.mkdir()
    with Session(CaptureConfig(source=src)) as s:
        s.start_recording(RecordConfig(str(rec), rotate_bytes=1 << 20, lossless=True), None)
        while s.run() != RunResult.EOF:
            pass
        s.stop_recording()
        flows = s.active_flows(limit=100000, order="packets")
    index = RecordingIndex(rec, tmp_path)
    picked = [f for f in flows if f.vlan][:3] + [f for f in flows if f.family == 6][:2] + \
        [f for f in flows if f.proto == 1][:1] + flows[:2]
    assert any(f.vlan for f in picked) and any(f.family == 6 for f in picked)
    for f in picked:
        w = packets.flow_window(f, 0)
        sources, _ = packets.plan(index, None, w)
        with open(tmp_path / "f.pcapng", "wb") as out:
            for chunk in packets.stream(sources, w):
                out.write(chunk)
        got = read_pcapng(tmp_path / "f.pcapng")["packets"]
        assert got == tcpdump(src, w.bpf, tmp_path, w.since_ns, w.until_ns), w
        assert len(got) == f.total_packets, w
