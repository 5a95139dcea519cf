"""agent.client as a script would use it, against the real agent: the
monitor's helpers, typed errors, a streamed upload, and an event stream that
survives its connection being cut."""
import socket
import threading

import pytest

from agent import client as api
from tests.agent.conftest import wait_for
from tests.conftest import pcap


def test_threat_helpers_and_typed_errors(agent):
    c = agent.client
    name = agent.pcap(pcap("zeek__tls_ssl.v3.pcap"))
    c.capture_start(file=name, pace=0, loop=False)
    listed = wait_for(lambda: c.list_threats(severity="high")["threats"], timeout=30)
    assert listed[0]["attack_type"] == "tls_downgrade"
    detail = c.get_threat(listed[0]["id"])
    assert detail["evidence"] and detail["id"] == listed[0]["id"]
    marked = c.mark_threat(listed[0]["id"], "acknowledged", note="seen by the SOC")
    assert (marked["status"], marked["note"]) == ("acknowledged", "seen by the SOC")
    assert c.get_stats("1h")["detection"]["threats_detected"] == 1

    with pytest.raises(api.NotFound) as e:
        c.get_threat("thr_000000000000")
    assert e.value.code == "THREAT_NOT_FOUND" and e.value.status == 404
    with pytest.raises(api.BadRequest):
        c.mark_threat(listed[0]["id"], "bogus")
    with pytest.raises(api.Unauthorized):
        api.Client(agent.url, "capbox_sk_wrong").list_threats()
    with pytest.raises(api.ApiError) as e:                 # no verification paths are configured
        c.verify_dns("example.com", "A", num_paths=3)
    assert e.value.status in (400, 503) and e.value.code
    with pytest.raises(api.NotFound):
        c.stop_deception("dec_000000000000")


def test_upload_job_streams_a_capture_and_the_job_completes(agent):
    c = agent.client
    job = c.upload_job(pcap("ndpi__sip.pcap"))
    assert job["status"] == "queued"
    done = wait_for(lambda: c.get(f"/v1/jobs/{job['job_id']}")["status"] in ("completed", "failed")
                    and c.get(f"/v1/jobs/{job['job_id']}"), timeout=60)
    assert done["status"] == "completed" and done["total_packets"] == 112


class Cutter:
    """A TCP relay to the agent whose connections can be cut, as a proxy or a flaky link would."""

    def __init__(self, port: int):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.conns: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:                       # the agent is going away at the end of the test
                a.close()
                continue
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(x, y):
        try:
            while data := x.recv(65536):
                y.sendall(data)
        except OSError:
            pass
        for s in (x, y):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def close(self):
        self.cut()
        self.listener.close()


def test_follow_resumes_after_the_connection_is_cut_without_losing_events(agent):
    relay = Cutter(agent.port)
    try:
        c = api.Client(f"http://127.0.0.1:{relay.port}", agent.key, timeout=30)
        got: list = []
        stream = c.follow("capture:state", retry_s=0.2)
        reader = threading.Thread(target=lambda: [got.append(ev) for ev in stream], daemon=True)
        reader.start()
        demo = dict(file="demo", pace=0, loop=True)
        agent.client.capture_start(**demo)
        wait_for(lambda: len(got) >= 1, timeout=20)
        relay.cut()                                   # the stream drops; follow() reconnects by itself
        agent.client.capture_stop("first")            # published while the client may still be away
        agent.client.capture_start(**demo)
        agent.client.capture_stop("second")
        wait_for(lambda: len(got) >= 4, timeout=30)
        kinds = [(ev["event"], ev["data"]["data"].get("reason")) for ev in got[:4]]
        assert kinds == [("capture_started", None), ("capture_stopped", "first"), ("capture_started", None),
                         ("capture_stopped", "second")]
        ids = [int(ev["id"]) for ev in got]
        assert ids == sorted(set(ids))                # nothing twice, in order
    finally:
        relay.close()
