"""Offline jobs over real HTTP against the agent subprocess: uploads (streamed,
with flat memory), refusals, progress over Server-Sent Events, sessions,
deletion during and after processing, a restart with a job in flight,
retention; and the live capture's calls."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid

import psutil
import pytest

from agent.calls import ladder, offline
from agent.client import ApiError
from tests.agent.conftest import wait_for
from tests.conftest import ROOT, pcap

GENSIP = [sys.executable, str(ROOT / "bench" / "gensip.py")]
FAX = "ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"
IDLE = "[capture]\nautostart = false\n"


class Multipart:
    """A multipart/form-data body read from disk as it is sent (never whole in memory)."""

    def __init__(self, path: str, field: str = "file", filename: str = ""):
        self.boundary = uuid.uuid4().hex
        name = filename or os.path.basename(path)
        self.parts = [
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n".encode(),
            path,
            f"\r\n--{self.boundary}--\r\n".encode()]
        self.length = len(self.parts[0]) + os.path.getsize(path) + len(self.parts[2])
        self.content_type = f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self):
        yield self.parts[0]
        with open(self.parts[1], "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
        yield self.parts[2]


def upload(agent, path: str, **kw):
    """(status, JSON body) of POST /v1/jobs with the file streamed."""
    body = Multipart(path, **kw)
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=120)
    try:
        conn.request("POST", "/v1/jobs", body=iter(body), headers={
            "Authorization": f"Bearer {agent.key}", "Content-Type": body.content_type,
            "Content-Length": str(body.length)}, encode_chunked=False)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def finished(agent, job_id: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed") else None)(
        agent.client.get(f"/v1/jobs/{job_id}")), timeout=timeout)


def job_events(agent, job_id: str, timeout: float = 60) -> list:
    """The job's Server-Sent Events until the stream ends."""
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=timeout)
    conn.request("GET", f"/v1/jobs/{job_id}/events", headers={"Authorization": f"Bearer {agent.key}"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
    out, ev = [], {}
    for raw in r:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in ev:
                out.append(json.loads(ev["data"]))
            ev = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(": ")
            ev[k] = v
    conn.close()
    return out


@pytest.fixture(scope="module")
def slow_pcap(tmp_path_factory):
    """Many short calls: most of the work is Python's, so a job runs a few seconds."""
    path = tmp_path_factory.mktemp("gensip") / "slow.pcap"
    subprocess.run([*GENSIP, "-o", str(path), "--calls", "2500", "--duration", "0.2", "--concurrency", "500"],
                   check=True, capture_output=True)
    return str(path)


def expect_error(fn, status, code):
    with pytest.raises(ApiError) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value
    return e.value


def test_upload_process_and_read_sessions(agent, tshark):
    status, body = upload(agent, pcap(FAX))
    assert status == 201 and body["status"] == "queued" and set(body) == {"job_id", "status"}
    job = finished(agent, body["job_id"])
    assert job["status"] == "completed" and job["progress"] == 100 and job["session_count"] == 2
    assert job["total_packets"] == 1552 and job["filename"] == FAX and job["size_bytes"] == os.path.getsize(pcap(FAX))
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]
    listed = agent.client.get("/v1/jobs")
    assert listed["total"] == 1 and listed["jobs"][0]["job_id"] == body["job_id"]

    page = agent.client.get(f"/v1/jobs/{body['job_id']}/sessions")
    assert (page["page"], page["limit"], page["total"]) == (1, 50, 2)
    want = {c.call_id: c.summary() for c in offline.analyse(pcap(FAX)).calls}
    for s in page["sessions"]:
        w = want[s["session_key"]]
        assert {k: s[k] for k in ("events_count", "participants", "state", "type")} == \
               {k: w[k] for k in ("events_count", "participants", "state", "type")}
        assert s["metrics"] == w["metrics"]
    assert [s["session_key"] for s in agent.client.get(f"/v1/jobs/{body['job_id']}/sessions", page=2, limit=1)[
        "sessions"]] == [page["sessions"][1]["session_key"]]

    call = next(s for s in page["sessions"] if s["metrics"]["rtp_packets"])
    detail = agent.client.get(f"/v1/sessions/{call['session_id']}")
    assert detail["job_id"] == body["job_id"] and len(detail["events"]) == call["events_count"] == 69
    first = detail["events"][0]
    assert (first["protocol"], first["message_type"], first["source"], first["destination"]) == (
        "SIP", "INVITE", "10.35.60.72:5060", "10.35.60.100:5060")
    assert set(first["details"]) >= {"call_id", "from", "to", "cseq"} and first["details"]["cseq"] == "1 INVITE"
    assert {(st["src"], st["packets"]) for st in detail["streams"]} == {("10.23.1.52", 1171), ("10.35.60.100", 159)}
    assert detail["duration_ms"] == call["metrics"]["duration_ms"] and detail["packet_count"] == 1399
    drawn = agent.client.get(f"/v1/sessions/{call['session_id']}/ladder")
    assert drawn == {"session_id": call["session_id"], "text": ladder.text(detail)}
    assert drawn["text"].startswith(f"Call-ID {detail['call_id']}") and "200 OK" in drawn["text"]

    e = expect_error(lambda: agent.client.get(f"/v1/sessions/{uuid.uuid4()}"), 404, "SESSION_NOT_FOUND")
    assert e.details["resource"] == "call_session"
    # the events of a finished job: one snapshot that says so, and the stream ends
    [snap] = job_events(agent, body["job_id"])
    assert (snap["type"], snap["job_id"]) == ("status", body["job_id"])
    assert snap["data"] == {"status": "completed", "progress": 100, "session_count": 2, "total_packets": 1552,
                            "total_bytes": job["total_bytes"]}


def test_every_job_route_knows_a_missing_job(agent):
    missing = str(uuid.uuid4())
    c = agent.client
    for call in (lambda: c.get(f"/v1/jobs/{missing}"), lambda: c.delete(f"/v1/jobs/{missing}"),
                 lambda: c.get(f"/v1/jobs/{missing}/sessions"), lambda: c.get(f"/v1/jobs/{missing}/events")):
        expect_error(call, 404, "JOB_NOT_FOUND")


def test_bad_uploads(make_agent, tmp_path):
    agent = make_agent(IDLE + "[jobs]\nmax_size_mb = 1\n")
    text = tmp_path / "notes.pcap"
    text.write_text("this is not a capture\n" * 10)
    status, body = upload(agent, str(text))
    assert (status, body["error"]["code"]) == (400, "INVALID_FILE")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert upload(agent, str(empty))[1]["error"]["code"] == "INVALID_FILE"
    status, body = upload(agent, pcap(FAX), field="capture")
    assert (status, body["error"]["code"]) == (400, "NO_FILE")
    r = agent.client.raw("POST", "/v1/jobs", b'{"file": "x"}', {"Content-Type": "application/json"})
    assert (r.status, r.json()["error"]["code"]) == (400, "NO_FILE")
    big = tmp_path / "big.pcap"
    with open(pcap(FAX), "rb") as f:
        data = f.read()
    big.write_bytes(data + data[24:] * 4)  # 1.3 MB: over the 1 MB limit
    status, body = upload(agent, str(big))
    assert (status, body["error"]["code"], body["error"]["details"]["max_size_mb"]) == (413, "FILE_TOO_LARGE", 1)
    # a body far over every limit is refused when its headers are in, before it is sent
    for path, code in (("/v1/jobs", "FILE_TOO_LARGE"), ("/v1/capture/start", "PAYLOAD_TOO_LARGE")):
        with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent.key}\r\n"
                      f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {100 << 20}\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        head, _, payload = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413") and json.loads(payload)["error"]["code"] == code
    assert agent.client.get("/v1/jobs")["total"] == 0
    assert not [p for p in (agent.data_dir / "jobs").iterdir()]  # nothing left behind


def test_a_large_upload_is_streamed_with_flat_memory(agent, tmp_path):
    path = tmp_path / "large.pcap"
    subprocess.run([*GENSIP, "-o", str(path), "--calls", "160", "--duration", "60", "--concurrency", "160"],
                   check=True, capture_output=True)
    size = os.path.getsize(path)
    assert size > 150 << 20
    proc = psutil.Process(agent.proc.pid)

    def anon() -> int:
        """Resident memory of the agent's own (anonymous) pages: the heap, not the page cache
        of the file being read."""
        m = proc.memory_info()
        return m.rss - m.shared
    base = anon()
    peak = [base, 0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], anon())
            peak[1] = max(peak[1], proc.memory_info().rss)
    t = threading.Thread(target=sample)
    t.start()
    try:
        status, body = upload(agent, str(path))
        assert status == 201
        job = finished(agent, body["job_id"], timeout=120)
    finally:
        stop.set()
        t.join()
    assert job["status"] == "completed" and job["session_count"] == 160 and job["size_bytes"] == size
    truth = json.load(open(str(path) + ".truth.json"))
    assert job["total_packets"] == truth["packets"]
    grew = (peak[0] - base) >> 20
    print(f"anonymous RSS grew {grew} MiB, peak RSS {peak[1] >> 20} MiB, for a {size >> 20} MiB upload")
    assert grew < 64, f"the agent's memory grew {grew} MiB for a {size >> 20} MiB upload"


def test_progress_events_in_order_and_completion(make_agent, slow_pcap):
    agent = make_agent(IDLE + "[jobs]\nworkers = 1\n")
    first = upload(agent, slow_pcap)[1]["job_id"]     # keeps the one worker busy
    second = upload(agent, slow_pcap)[1]["job_id"]
    events = job_events(agent, second)
    kinds = [(e["type"], e["data"].get("status")) for e in events]
    assert kinds[0] == ("status", "queued") and kinds[-1] == ("status", "completed")
    assert ("status", "running") in kinds
    progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
    assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] < 100
    packets = [e["data"]["packets"] for e in events if e["type"] == "progress"]
    assert packets == sorted(packets)
    done = events[-1]["data"]
    assert done["sessions"] == 2500 and done["packets"] > 0 and done["bytes"] > 0 and done["progress"] == 100
    assert all(e["job_id"] == second and e["timestamp"] for e in events)
    assert finished(agent, first)["status"] == "completed"


def test_delete_during_and_after_processing(make_agent, slow_pcap):
    agent = make_agent(IDLE + "[jobs]\nworkers = 1\n")
    c = agent.client
    running = upload(agent, slow_pcap)[1]["job_id"]
    queued = upload(agent, pcap(FAX))[1]["job_id"]
    wait_for(lambda: c.get(f"/v1/jobs/{running}")["status"] == "running")
    e = expect_error(lambda: c.get(f"/v1/jobs/{running}/sessions"), 400, "JOB_NOT_COMPLETED")
    assert e.details["current_status"] == "running"
    e = expect_error(lambda: c.delete(f"/v1/jobs/{running}"), 409, "CANNOT_DELETE_JOB")
    assert e.details["current_status"] == "running"
    gone = c.request("DELETE", f"/v1/jobs/{running}", query={"cancel": "true"})
    assert gone["cancelled"] is True and gone["job_id"] == running
    expect_error(lambda: c.get(f"/v1/jobs/{running}"), 404, "JOB_NOT_FOUND")
    done = finished(agent, queued)  # the worker went on to the next
    sessions = c.get(f"/v1/jobs/{queued}/sessions")["sessions"]
    assert done["status"] == "completed" and sessions
    assert c.delete(f"/v1/jobs/{queued}") == {"message": "Job deleted successfully", "job_id": queued,
                                              "cancelled": False}
    expect_error(lambda: c.get(f"/v1/sessions/{sessions[0]['session_id']}"), 404, "SESSION_NOT_FOUND")
    assert c.get("/v1/jobs")["total"] == 0 and not list((agent.data_dir / "jobs").iterdir())


def test_a_job_survives_a_restart(make_agent, slow_pcap):
    config = IDLE + "[jobs]\nworkers = 1\n"
    agent = make_agent(config)
    running = upload(agent, slow_pcap)[1]["job_id"]
    queued = upload(agent, pcap(FAX))[1]["job_id"]
    wait_for(lambda: agent.client.get(f"/v1/jobs/{running}")["status"] == "running")
    agent.stop(signal.SIGKILL)  # no chance to tidy up
    again = make_agent(config)
    assert finished(again, running)["status"] == "completed"
    assert finished(again, queued)["session_count"] == 2
    # a job that keeps taking the agent down is failed, not retried forever
    third = upload(again, slow_pcap)[1]["job_id"]
    wait_for(lambda: again.client.get(f"/v1/jobs/{third}")["status"] == "running")
    again.stop(signal.SIGKILL)
    last = make_agent(IDLE + "[jobs]\nworkers = 1\nmax_attempts = 1\n", name="var")
    job = last.client.get(f"/v1/jobs/{third}")
    assert job["status"] == "failed" and "stopped" in job["error"]


def test_finished_jobs_expire(make_agent):
    agent = make_agent(IDLE + "[jobs]\nretention_hours = 0.001\n")
    job_id = upload(agent, pcap(FAX))[1]["job_id"]
    assert finished(agent, job_id)["status"] == "completed"
    wait_for(lambda: agent.client.get("/v1/jobs")["total"] == 0, timeout=15)
    assert not list((agent.data_dir / "jobs").iterdir())


def test_a_damaged_capture_fails_its_job(agent, tmp_path):
    data = open(pcap(FAX), "rb").read()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:50000])
    job = finished(agent, upload(agent, str(cut))[1]["job_id"])
    assert job["status"] == "failed" and "capture" in job["error"]
    # the error names the file as uploaded, never a path on the box
    assert "cut.pcap" in job["error"] and str(agent.data_dir) not in job["error"] and "/" not in job["error"]
    e = expect_error(lambda: agent.client.get(f"/v1/jobs/{job['job_id']}/sessions"), 400, "JOB_NOT_COMPLETED")
    assert e.details["current_status"] == "failed"


def test_live_calls_of_a_capture(agent):
    c = agent.client
    assert c.get("/v1/calls")["total"] == 0
    c.capture_start(file=agent.pcap(pcap(FAX)), pace=25)
    wait_for(lambda: c.get("/v1/calls")["active"] >= 1, timeout=20)
    wait_for(lambda: not c.capture_status()["running"], timeout=30)
    calls = wait_for(lambda: (lambda r: r if r["total"] == 2 and not r["active"] else None)(c.get("/v1/calls")))
    want = {x.call_id: x for x in offline.analyse(pcap(FAX)).calls}
    for s in calls["calls"]:
        w = want[s["call_id"]].summary()
        assert (s["events_count"], s["participants"], s["state"]) == (w["events_count"], w["participants"], w["state"])
        assert s["metrics"]["rtp_packets"] == w["metrics"]["rtp_packets"]
        assert s["metrics"]["rtp_lost"] == w["metrics"]["rtp_lost"]
    one = c.get(f"/v1/sessions/{calls['calls'][0]['session_id']}")
    assert one["job_id"] is None and one["events"]
    assert c.get("/v1/calls", state="completed")["total"] == 2 and c.get("/v1/calls", limit=1)["limit"] == 1
