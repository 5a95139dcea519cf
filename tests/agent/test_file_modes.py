"""What the agent writes is private: directories 0700, files 0600 (the
database with its key hashes, uploaded captures, recordings, keys), also
where an older version left a data directory 0755."""
import stat

from tests.agent.conftest import AgentProcess, IDLE, wait_for
from tests.agent.test_jobs_api import FAX, finished, upload
from tests.conftest import pcap


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_directories_0700_and_files_0600(tmp_path):
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    (data / "pcaps").mkdir(mode=0o755)
    a = AgentProcess(data, IDLE)
    try:
        status, job = upload(a, pcap(FAX))
        assert status == 201
        assert finished(a, job["job_id"])["status"] == "completed"
        a.client.capture_start(file="demo", pace=1.0, loop=True)
        a.client.post("/v1/capture/recording", {"action": "start"})
        wait_for(lambda: a.client.get("/v1/capture/recording")["current_file"])
        dirs = [data, data / "pcaps", data / "jobs", data / "recordings", data / "keys"]
        files = [data / "capbox.db", data / "capbox.db-wal", data / "admin.key",
                 *(data / "jobs").iterdir(), *(data / "recordings").iterdir()]
        assert len(files) >= 5
        assert {str(d): oct(_mode(d)) for d in dirs} == {str(d): "0o700" for d in dirs}
        assert {str(f): oct(_mode(f)) for f in files if f.is_file()} == \
            {str(f): "0o600" for f in files if f.is_file()}
    finally:
        a.stop()
