"""REST load: N concurrent clients on GET /v1/capture/status while the agent
captures; latency percentiles, errors, and the capture's drops before/after.

    python bench/load_api.py [--clients 50] [--rate 10] [--seconds 10] [--iface IFACE]

Each client keeps one keep-alive connection and sends --rate requests a
second (a dashboard polling; 0 = back to back, which measures saturation).
The clients are asyncio tasks in one thread, so the load generator's own
scheduling does not show up as server latency.  Loopback only.  Without
--iface the agent replays the demo capture; with --iface it captures there
(the caller feeds the interface).  Prints one JSON object."""
import argparse
import asyncio
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from agent.client import Client  # noqa: E402

PATH = "/v1/capture/status"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(data: pathlib.Path, source: str, port: int, pace: float = 1.0) -> subprocess.Popen:
    cfg = data / "capbox.toml"
    cfg.write_text(f'[capture]\nsource = "{source}"\npace = {pace:.4f}\nloop = true\n')
    env = dict(os.environ, CAPBOX_API_RATE_GET="10000000", CAPBOX_API_RATE_THREATS="10000000")  # one key for all clients
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg), "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if (data / "admin.key").exists():
            try:
                Client(f"http://127.0.0.1:{port}").raw("GET", "/v1/health")
                return proc
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("agent did not start")


def stop_agent(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def one_request(reader, writer, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def client(port: int, request: bytes, rate: float, start: float, end: float, lat: list, errors: list,
                 phase: float):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await one_request(reader, writer, request)  # warm: connection and key check
    loop = asyncio.get_running_loop()
    period = 1.0 / rate if rate else 0.0
    next_at = start + period * phase  # clients spread over the period, as independent pollers are
    while True:
        if period:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += period
        elif loop.time() < start:
            await asyncio.sleep(start - loop.time())
        t0 = loop.time()
        if t0 >= end:
            break
        try:
            status = await one_request(reader, writer, request)
            if status != 200:
                errors.append(status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors.append(type(e).__name__)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        lat.append(loop.time() - t0)
    writer.close()


async def load(port: int, key: str, clients: int, rate: float, seconds: float) -> tuple:
    request = (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    start = loop.time() + 2.0
    lat, errors = [], []
    await asyncio.gather(*(client(port, request, rate, start, start + seconds, lat, errors, i / clients)
                           for i in range(clients)))
    return lat, errors


def drops(c: Client) -> dict:
    m = c.capture_metrics()
    return {"packets": m["packets"], **m["drops"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=10.0, help="requests per second per client, 0 = back to back")
    ap.add_argument("--iface", default="")
    args = ap.parse_args()
    data = pathlib.Path(tempfile.mkdtemp(prefix="capbox-load-"))
    port = free_port()
    proc = start_agent(data, args.iface or "demo", port)
    try:
        key = (data / "admin.key").read_text().strip()
        c = Client(f"http://127.0.0.1:{port}", key)
        time.sleep(1.0)
        before = drops(c)
        lat, errors = asyncio.run(load(port, key, args.clients, args.rate, args.seconds))
        after = drops(c)
        lat.sort()
        n = len(lat)
        q = statistics.quantiles(lat, n=100) if n >= 100 else [lat[-1] if lat else 0.0] * 99
        print(json.dumps({
            "clients": args.clients, "rate_per_client": args.rate, "seconds": args.seconds, "requests": n,
            "requests_per_s": round(n / args.seconds, 1), "errors": len(errors),
            "p50_ms": round(statistics.median(lat) * 1000, 2) if n else None,
            "p99_ms": round(q[98] * 1000, 2), "max_ms": round(lat[-1] * 1000, 2) if n else None,
            "source": args.iface or "demo",
            "capture_packets_during": after["packets"] - before["packets"],
            "capture_drops_during": {k: after[k] - before[k] for k in after if k != "packets"},
        }))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
