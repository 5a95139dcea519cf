"""Flow collectors for the export tests: the real nfcapd on loopback (read
back with nfdump), a UDP sink that turns what it received into a capture for
tshark, and an IPFIX-over-TCP receiver that hands each message on to nfcapd."""
import ipaddress
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
ICMP = (1, 58)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nfcapd:
    """nfcapd on 127.0.0.1:<port> writing into `directory`; stop() flushes its file."""

    def __init__(self, directory: pathlib.Path):
        if not shutil.which("nfcapd"):
            pytest.skip("nfcapd is not installed (make test installs nfdump)")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.log_path = self.dir.parent / f"{self.dir.name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["nfcapd", "-w", str(self.dir), "-b", "127.0.0.1", "-p", str(self.port),
                                      "-B", str(8 << 20), "-t", "3600"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while b"Startup" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nfcapd did not start: {self.log_path.read_text(errors='replace')}")
            time.sleep(0.02)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Let the last datagrams land, then SIGTERM: nfcapd writes its file and exits."""
        if self.proc.poll() is None:
            time.sleep(0.2)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def records(self) -> list:
        """Every flow record nfcapd stored, as nfdump's JSON prints them."""
        self.stop()
        out = subprocess.run(["nfdump", "-R", str(self.dir), "-o", "json"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return json.loads(out) if out.strip() else []

    def summary(self) -> dict:
        """nfdump -I: Flows, Packets, Bytes, Sequence failures..."""
        self.stop()
        out = subprocess.run(["nfdump", "-R", str(self.dir), "-I"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def nf_key(rec: dict) -> tuple:
    """(src, dst, sport, dport, proto, vlan) of an nfdump JSON record; ICMP without ports."""
    src = rec.get("src4_addr") or rec.get("src6_addr")
    dst = rec.get("dst4_addr") or rec.get("dst6_addr")
    proto = rec["proto"]
    ports = (None, None) if proto in ICMP else (rec["src_port"], rec["dst_port"])
    return (ipaddress.ip_address(src).compressed, ipaddress.ip_address(dst).compressed, *ports, proto,
            rec.get("src_vlan", 0))


def expected_uniflows(rows, family: int = 0) -> list:
    """The records a unidirectional exporter owes for `capbox flows` rows: one
    per direction that saw packets, as (key, packets, bytes)."""
    out = []
    for r in rows:
        proto = PROTO_NUMBERS.get(r["proto"]) or int(r["proto"])
        if family and ipaddress.ip_address(r["src"]).version != family:
            continue
        src, dst = ipaddress.ip_address(r["src"]).compressed, ipaddress.ip_address(r["dst"]).compressed
        fwd_ports = (None, None) if proto in ICMP else (r["sport"], r["dport"])
        rev_ports = (None, None) if proto in ICMP else (r["dport"], r["sport"])
        if r["packets_fwd"]:
            out.append(((src, dst, *fwd_ports, proto, r["vlan"]), r["packets_fwd"], r["bytes_fwd"]))
        if r["packets_rev"]:
            out.append(((dst, src, *rev_ports, proto, r["vlan"]), r["packets_rev"], r["bytes_rev"]))
    return out


class UdpSink:
    """Collects datagrams on a loopback port until stopped; write_pcap() frames
    them as IPv4/UDP packets (LINKTYPE_RAW) for tshark."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="udp-sink", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65535))
            except socket.timeout:
                pass

    def stop(self) -> list:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.datagrams

    def write_pcap(self, path) -> None:
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
            for i, d in enumerate(self.datagrams):
                udp = struct.pack("!HHHH", 40000, self.port, 8 + len(d), 0) + d
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                                 socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
                ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
                f.write(struct.pack("<IIII", 1, i, len(ip + udp), len(ip + udp)) + ip + udp)


def _checksum(b: bytes) -> int:
    total = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


class TcpRelay:
    """An IPFIX-over-TCP collector: reads the stream, cuts it into messages by
    their length field and forwards each as one datagram to `udp_target`."""

    def __init__(self, udp_target: str):
        host, port = udp_target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.messages = 0
        self.connections = 0
        self.errors: list = []
        self._thread = threading.Thread(target=self._serve, name="tcp-relay", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        conn, _ = self.listener.accept()
        self.connections += 1
        buf = b""
        with conn:
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                buf += data
                while len(buf) >= 4:
                    version, length = struct.unpack("!HH", buf[:4])
                    if version != 10 or length < 16:
                        self.errors.append(f"bad message header {buf[:4].hex()}")
                        return
                    if len(buf) < length:
                        break
                    out.sendto(buf[:length], self.target)
                    self.messages += 1
                    buf = buf[length:]
        if buf:
            self.errors.append(f"{len(buf)} bytes of a cut message at the end")

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)
        self.listener.close()


def tshark_decode(tshark: str, pcap, port: int) -> tuple:
    """(expert items of warning severity and above, decoded field rows) for a
    capture of flow export datagrams."""
    expert = subprocess.run([tshark, "-r", str(pcap), "-d", f"udp.port=={port},cflow", "-q", "-z", "expert,warn"],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ, LC_ALL="C"))
    assert expert.returncode == 0, expert.stderr
    warnings = [line for line in expert.stdout.splitlines()
                if line.strip() and not line.startswith(("=", "Warns", "Errors", "   Frequency"))]
    return warnings, expert.stdout
