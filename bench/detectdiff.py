"""The guard for changes to the DNS event path: every detector over every
shared capture, the labelled scenarios, seeded randomized DNS streams
(tests/detectors/dnsstream.py) and the bench's DNS capture, run by this
checkout and by a baseline checkout (each in its own venv); the findings
(kind, key, score, indicators, evidence) and the detectors' counters must be
identical.  Usage: python bench/detectdiff.py --baseline /work/main [--bench-pcap FILE]"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
PCAPS = REPO.parent / "shared" / "pcaps"

DUMP = """
import json, sys
from agent.config import DetectionSection
from agent import consumers
from agent.detectors import offline
out = {}
for path in sys.argv[1:]:
    if hasattr(consumers, "Worker"):     # what `capbox detect` runs: the detectors in the consumer worker
        worker = consumers.Worker()
        found, error, counts, _ = worker.detect(path, DetectionSection())
        worker.close()
    else:
        found, error, pipeline = offline.detect_file(path, DetectionSection())
        counts = pipeline.counts()
    out[path.rsplit("/", 1)[-1]] = {
        "error": str(error) if error else "",
        "findings": [{"type": d.type, "key": d.key, "score": d.score, "attacker": d.attacker, "src": d.src,
                      "dst": d.dst, "first_seen": d.first_seen, "description": d.description,
                      "evidence": d.evidence} for d in found],
        "counts": counts}
print(json.dumps(out, sort_keys=True, default=str))
"""


def captures(work: pathlib.Path, seeds: int, bench_pcap: str) -> list:
    sys.path.insert(0, str(REPO))
    from tests.detectors import dnsstream, scenarios
    paths = sorted(str(p) for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    paths += [str(make().write(work)) for make in scenarios.SCENARIOS]
    paths += [str(dnsstream.stream(seed).write(work)) for seed in range(seeds)]
    return paths + ([bench_pcap] if bench_pcap else [])


def dump(checkout: pathlib.Path, paths: list) -> dict:
    py = checkout / ".venv" / "bin" / "python"
    out = subprocess.run([str(py), "-c", DUMP, *paths], capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="a checkout with the per-message path (its own .venv)")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--bench-pcap", default="", help="also the bench's DNS capture (bench/gendns.py)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = captures(pathlib.Path(tmp), args.seeds, args.bench_pcap)
        new, old = dump(REPO, paths), dump(pathlib.Path(args.baseline), paths)
    differ = [name for name in old if old[name] != new.get(name)]
    found = sum(len(v["findings"]) for v in old.values())
    print(f"{len(old)} captures, {found} findings in the baseline; differing: {differ or 'none'}")
    for name in differ[:3]:
        print(name, json.dumps(old[name])[:2000], "\n  now:", json.dumps(new.get(name))[:2000])
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
