"""Going over a window set (baseline learning, detection, the summary) reads it a chunk at a time: the
memory it takes must not grow with the set.  The live baseline is learned over a day of 10 s windows
(8,640): loaded at once as dicts that was 200 MB of Python objects, the soak's one-time step of 80 MB."""
import json
import tracemalloc
import types

import pytest

from agent.analysis import anomalies, baselines
from agent.analysis import windows as offline
from agent.analysis.windowsets import CHUNK, AnalysisService
from agent.config import AnalysisSection
from agent.store import Store
from tests.conftest import pcap


@pytest.fixture(scope="module")
def real_windows():
    ws, error = offline.compute(pcap("ndpi__gnutella.pcap"), 10)
    assert error is None
    return [w for w in ws if w["record_count"]]


@pytest.fixture
def service(tmp_path):
    store = Store(tmp_path / "capbox.db")
    store.start()
    svc = AnalysisService()
    svc.start(types.SimpleNamespace(cfg=types.SimpleNamespace(analysis=AnalysisSection()), store=store, bus=None))
    yield svc
    svc.stop()
    store.close()


def fill(svc, windows: list, n: int) -> int:
    """A live set of n windows, the real ones over and over, numbered on."""
    set_id = svc._new_set("live", "test", 10, "running")
    for lo in range(0, n, 500):
        batch = []
        for i in range(lo, min(n, lo + 500)):
            w = json.loads(json.dumps(windows[i % len(windows)]))
            w.update(window_id=i, window_start=i * 10.0, window_end=i * 10.0 + 10)
            batch.append(w)
        svc._store_windows(set_id, batch)
    return set_id


def peak_of(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_learning_memory_does_not_grow_with_the_windows(service, real_windows):
    small, large = fill(service, real_windows, 500), fill(service, real_windows, 4000)
    peaks = {n: peak_of(lambda s=s: service.generate_baselines(set_id=s, force=True, name=f"n{n}"))
             for n, s in ((500, small), (4000, large))}
    # all at once, 8 times the windows took 8 times the memory (4,000 windows: about 90 MB)
    assert peaks[4000] < 1.5 * peaks[500], peaks
    assert peaks[4000] < 8 * 2**20, peaks
    detect = peak_of(lambda: service.detect(set_id=large, force=True))
    summary = peak_of(lambda: service.summary(set_id=large))
    assert detect < 16 * 2**20 and summary < 8 * 2**20, (detect, summary)


def test_chunked_passes_see_every_window_once(service, real_windows):
    n = 2 * CHUNK + 37
    set_id = fill(service, real_windows, n)
    stored = [json.loads(json.dumps(real_windows[i % len(real_windows)])) for i in range(n)]
    service.generate_baselines(set_id=set_id, force=True)
    assert service.baseline() == json.loads(json.dumps(baselines.learn(stored)))
    assert service.baselines()["learned_from"]["bandwidth"]["windows"] == n
    assert service.summary(set_id)["total_windows"] == n
    assert service.summary(set_id)["packets"] == sum(w["record_count"] for w in stored)
    result = service.detect(set_id=set_id, force=True, baseline="none")
    assert result["windows"] == n
    for i, w in enumerate(stored):
        w.update(window_id=i, window_start=i * 10.0, window_end=i * 10.0 + 10)
    assert result["anomaly_count"] == len(anomalies.detect_all(stored, AnalysisSection()))
    part = service.detect(set_id=set_id, force=True, window_start=(CHUNK - 100) * 10.0,
                          window_end=(CHUNK + 200) * 10.0)
    assert part["windows"] == 300


def test_a_series_over_its_cap_keeps_exact_moments_and_a_sample():
    values = [float((i * 7919) % 1000) for i in range(5000)]
    series = baselines.Series(cap=256)
    for v in values:
        series.add(v)
    got, exact = series.describe(), baselines.describe(values)
    assert got["count"] == 5000 and got["sampled"] == 256 and len(series.values) == 256
    for k in ("mean", "min", "max", "std"):
        assert got[k] == pytest.approx(exact[k], rel=1e-9)
    assert abs(got["median"] - exact["median"]) < 100       # a uniform sample of a uniform spread
    under = baselines.Series(cap=256)
    for v in values[:256]:
        under.add(v)
    assert under.describe() == baselines.describe(values[:256])       # exact below the cap


def test_a_compute_job_hands_windows_on_as_they_close(service):
    """A capture file's windows go to the store (and the detector) in batches as the core closes them:
    the same windows, in order, as computed all at once, and none kept by compute itself."""
    path = pcap("ndpi__gnutella.pcap")
    whole, _ = offline.compute(path, 1)
    batches: list = []
    kept, error = offline.compute(path, 1, sink=batches.append)
    assert error is None and kept == [] and len(batches) >= 1
    assert [w for b in batches for w in b] == whole
    set_id = service._new_set("pcap", path, 1, "queued")
    service._compute_job(set_id, path, 1)
    assert service.job(set_id)["status"] == "complete" and service.job(set_id)["window_count"] == len(whole)
    stored = service.windows(set_id, limit=len(whole))["windows"]
    assert [w["window_id"] for w in stored] == [w["window_id"] for w in whole]
    found = service.anomalies(set_id, limit=1000)["total"]
    assert found == len(anomalies.detect_all(whole, AnalysisSection()))
