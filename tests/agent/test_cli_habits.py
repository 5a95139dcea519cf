"""The habits of tcpdump, softflowd and nfdump users, run as a user runs
them: -r, -i, -w, -c, -s, a trailing BPF expression, a subcommand's own
usage on errors, exit statuses that say whether anything was delivered."""
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.agent.conftest import free_port, wait_for
from tests.conftest import ROOT, pcap


def capbox(*args, cwd=ROOT, timeout=120):
    return subprocess.run([sys.executable, "-m", "agent", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def tcpdump_count(path: str, expr: str) -> int:
    r = subprocess.run(["tcpdump", "-nr", path, expr], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return len(r.stdout.splitlines())


def test_a_trailing_expression_filters_as_tcpdump_does(tshark):
    path = pcap("zeek__wikipedia.pcap")
    want = tcpdump_count(path, "tcp port 80")
    forms = [["analyze", "-r", path, "tcp", "port", "80"], ["analyze", path, "tcp", "port", "80"],
             ["analyze", path, "--bpf", "tcp port 80"], ["analyze", path, "--json", "tcp", "port", "80"]]
    for argv in forms:
        r = capbox(*argv, "--json") if "--json" not in argv else capbox(*argv)
        assert r.returncode == 0, (argv, r.stderr)
        assert json.loads(r.stdout)["packets"] == want > 0, argv
    both = capbox("analyze", path, "udp", "--bpf", "tcp")
    assert both.returncode == 2 and "give the filter once" in both.stderr


def test_flows_write_to_a_file_and_json_lines(tmp_path):
    path = pcap("zeek__wikipedia.pcap")
    r = capbox("flows", "-r", path, "-w", tmp_path / "out.csv", "udp")
    assert r.returncode == 0 and "flows written to" in r.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    lines = [json.loads(x) for x in capbox("flows", path, "--json", "udp").stdout.splitlines()]
    assert len(rows) == len(lines) > 0 and all(row["proto"] == "udp" for row in rows)
    assert oct((tmp_path / "out.csv").stat().st_mode & 0o777) in ("0o600", "0o644")   # the umask's choice


def test_errors_show_the_subcommands_own_usage():
    r = capbox("analyze", pcap("zeek__wikipedia.pcap"), "--no-such-flag")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: capbox analyze") and "unrecognized arguments: --no-such-flag" in r.stderr
    r = capbox("fw", "build", "x", "--bogus")
    assert r.returncode == 2 and r.stderr.startswith("usage: capbox fw build")
    r = capbox("analyze")
    assert r.returncode == 2 and "give a capture file" in r.stderr


def test_an_export_that_delivers_nothing_fails():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        r = capbox("export", pcap("ndpi__http_ipv6.pcap"), "--collector", f"127.0.0.1:{port}", "--protocol", "v5")
        assert r.returncode == 1 and "nothing was exported" in r.stderr and "not exportable in v5" in r.stderr
        ok = capbox("export", pcap("ndpi__http_ipv6.pcap"), "--collector", f"127.0.0.1:{port}", "--protocol", "v9")
        assert ok.returncode == 0, ok.stderr


def test_keys_list_in_an_empty_directory_creates_nothing(tmp_path):
    r = capbox("keys", "--data-dir", tmp_path / "var", "list", cwd=tmp_path)
    assert r.returncode == 0 and "no keys" in r.stdout
    assert capbox("keys", "--data-dir", tmp_path / "var", "list", "--json", cwd=tmp_path).stdout.strip() == "[]"
    assert not (tmp_path / "var").exists() and list(tmp_path.iterdir()) == []
    made = json.loads(capbox("keys", "--data-dir", tmp_path / "var", "create", "--json").stdout)
    revoked = capbox("keys", "--data-dir", tmp_path / "var", "revoke", made["id"], "--json")
    assert json.loads(revoked.stdout) == {"revoked": True, "id": made["id"]}


def test_run_captures_a_file_named_on_the_command_line(tmp_path):
    """The operator at the shell is trusted: any file, not only the capture directories (REST keeps those)."""
    from agent.client import ApiError, Client
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    capture = elsewhere / "wiki.pcap"
    capture.write_bytes(open(pcap("zeek__wikipedia.pcap"), "rb").read())
    config = tmp_path / "capbox.toml"
    config.write_text("[capture]\npace = 0\nloop = false\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--headless", "--source", capture,
                             "--data-dir", tmp_path / "var", "--listen", f"127.0.0.1:{port}", "--config", config],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        key = wait_for(lambda: (tmp_path / "var" / "admin.key").exists()
                       and (tmp_path / "var" / "admin.key").read_text().strip(), timeout=30)
        c = Client(f"http://127.0.0.1:{port}", key)
        last = wait_for(lambda: _try(lambda: c.capture_status().get("last_run")), timeout=30)
        assert last["reason"] == "eof" and last["stats"]["packets"] == 136
        with pytest.raises(ApiError) as e:                     # over REST the capture directories still hold
            c.capture_start(file=str(capture))
        assert e.value.status in (400, 403)
    finally:
        proc.terminate()
        proc.wait(20)


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


@pytest.mark.root
def test_capture_on_loopback_stops_after_count():
    stop = threading.Event()

    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                s.sendto(b"capbox", ("127.0.0.1", 9))
                time.sleep(0.01)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        r = capbox("capture", "-i", "lo", "-c", 5, "-s", 128, "--json", "udp", "port", "9", timeout=60)
    finally:
        stop.set()
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["packets"] >= 5 and rep["flows"] >= 1


def test_capture_from_the_card(card):
    """Without signed firmware the card refuses, said in one line; with it, capture -i DEVICE --backend fpga runs."""
    r = capbox("capture", "-i", card, "--backend", "fpga", "-c", 10, "--json", timeout=60)
    assert r.returncode == 1 and "firmware" in r.stderr and "Traceback" not in r.stderr
    from hwdrivers import fpga
    from tests.conftest import CARD_TARGET
    fpga.load(card, bytes(range(256)) * 40, CARD_TARGET, (1, 0, 0), 1)
    r = capbox("capture", "-i", card, "--backend", "fpga", "-c", 10, "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["packets"] >= 10


def plain_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}


def on_a_terminal(*args, env=None) -> str:
    """What capbox writes to a terminal: run under a real pseudo-terminal, read until it closes."""
    import pty
    main, sub = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "agent", *map(str, args)], cwd=ROOT, stdin=subprocess.DEVNULL,
                         stdout=sub, stderr=subprocess.DEVNULL, close_fds=True,
                         env=dict(plain_env(), PYTHONPATH=str(ROOT), TERM="xterm-256color", **(env or {})))
    os.close(sub)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:              # EIO: the child closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert p.wait(timeout=120) == 0
    return out.decode()


def test_severities_are_coloured_on_a_terminal_only(tmp_path):
    """detect colours a high severity red on a terminal; NO_COLOR and a pipe get the plain word."""
    from tests.detectors.scenarios import arp_poison_gateway
    path = arp_poison_gateway().write(tmp_path)
    piped = subprocess.run([sys.executable, "-m", "agent", "detect", path], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env=dict(plain_env(), PYTHONPATH=str(ROOT)))
    assert piped.returncode == 0 and "arp_spoof" in piped.stdout and "\x1b[" not in piped.stdout
    severity = piped.stdout.split()[2]
    assert severity in ("critical", "high")
    tty = on_a_terminal("detect", path)
    red = "\x1b[1;31m" if severity == "high" else "\x1b[1;37;41m"
    assert red + severity in tty, repr(tty[:300])
    plain = on_a_terminal("detect", path, env={"NO_COLOR": "1"})
    assert "arp_spoof" in plain and "31m" not in plain and "41m" not in plain, repr(plain[:300])
