"""The image under qemu, as a box on a desk: UEFI firmware (OVMF) with its own
variable store, the disk behind a throwaway overlay, one NIC on user
networking restricted to the host (the API forwarded to a loopback port),
ttyS0 (the capbox console) and ttyS1 (the kernel's console, a log) as TCP
servers on 127.0.0.1, and a hardware watchdog.  KVM is used only where the CPU
offers it and a probe start works; otherwise TCG (IMAGE-NOTES: this machine's
KVM cannot run OVMF).

Every reset of the box (a reboot, the watchdog) is a power cycle: qemu runs
with -no-reboot, and when it exits a new qemu starts on the same disk overlay
and the same firmware variable store.  A warm reset under TCG here once hung
in the firmware for good (the second reboot of a run: no output on either
port for 7 minutes, while a new qemu on a copy of that disk and store booted at
once); a real box's reset does not, and what the test is about (the boot
loader's variables, the disk) survives a power cycle just the same."""
import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import threading
import ssl
import time
from typing import Optional

from agent.client import Client

OVMF_CODE = pathlib.Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = pathlib.Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
ANSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]|\r")
MAX_RESETS = 20
API_PORT = 8443          # the image's HTTPS API (image/capbox.toml)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kvm_usable() -> bool:
    if not os.access("/dev/kvm", os.W_OK):
        return False
    flags = pathlib.Path("/proc/cpuinfo").read_text()
    if " vmx" not in flags and " svm" not in flags:
        return False
    p = subprocess.run(["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-nodefaults",
                        "-display", "none", "-S", "-qmp", "stdio"], input='{"execute":"qmp_capabilities"}\n'
                       '{"execute":"quit"}\n', capture_output=True, text=True, timeout=30)
    return p.returncode == 0


class VmDied(RuntimeError):
    pass


class ConsoleRecorder(threading.Thread):
    """Reads a serial port's TCP server and stamps each line with the seconds
    since qemu started (the boot's milestones come from these)."""

    def __init__(self, port: int, started: float):
        super().__init__(name=f"console-{port}", daemon=True)
        self.port, self.started = port, started
        self.lines: list = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                time.sleep(0.2)
                continue
            s.settimeout(1)
            buf = b""
            with s:
                while not self.stop.is_set():
                    try:
                        data = s.recv(4096)
                    except socket.timeout:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    buf += data
                    *done, buf = buf.split(b"\n")
                    now = time.monotonic() - self.started
                    self.lines += [(now, ANSI.sub("", l.decode(errors="replace")).strip()) for l in done]

    def first(self, text: str, after: float = 0.0) -> Optional[float]:
        """When a line containing `text` first appeared (after `after`), or None."""
        return next((t for t, l in self.lines if t >= after and text in l), None)


class Vm:
    def __init__(self, disk: pathlib.Path, workdir: pathlib.Path, memory_mb: int = 1024, cpus: int = 2,
                 fresh: bool = True, disk_size: Optional[str] = None, disk_bus: str = "virtio"):
        """`fresh`: a new overlay and variable store; else the box in `workdir` powered on again.
        `disk_size` (qemu-img's "4G"): the box's disk is that big, the image at its start.  `disk_bus`:
        qemu's `if=` for it ("ide": the q35's SATA controller)."""
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.overlay = workdir / "overlay.qcow2"
        self.vars = workdir / "OVMF_VARS.fd"
        if fresh:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(disk.resolve()),
                            str(self.overlay), *([disk_size] if disk_size else [])], check=True)
            shutil.copy(OVMF_VARS, self.vars)
        self.api_port, self.ttys0_port, self.ttys1_port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.api_port}"
        self.pin: Optional[str] = None       # the certificate fingerprint its console showed
        self.key: Optional[str] = None
        self.qmp = workdir / "qmp.sock"
        self.serial0_log = workdir / "ttyS0.log"
        self.serial1_log = workdir / "ttyS1.log"
        for log in (self.serial0_log, self.serial1_log):      # appended across power cycles: this box's only
            log.unlink(missing_ok=True)
        self.accel = "kvm" if kvm_usable() else "tcg"
        cpu = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg,thread=multi", "-cpu", "max"]
        self.argv = [
            "qemu-system-x86_64", "-machine", "q35", *cpu, "-smp", str(cpus), "-m", str(memory_mb),
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}",
            "-drive", f"if={disk_bus},format=qcow2,file={self.overlay}",
            "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.api_port}-:{API_PORT}",
            "-device", "virtio-net-pci,netdev=n0",
            "-chardev", f"socket,id=s0,host=127.0.0.1,port={self.ttys0_port},server=on,wait=off,"
                        f"logfile={self.serial0_log},logappend=on",
            "-serial", "chardev:s0",
            "-chardev", f"socket,id=s1,host=127.0.0.1,port={self.ttys1_port},server=on,wait=off,"
                        f"logfile={self.serial1_log},logappend=on",
            "-serial", "chardev:s1",
            "-device", "i6300esb", "-action", "watchdog=reset", "-no-reboot",
            "-display", "none", "-vga", "std",
            "-qmp", f"unix:{self.qmp},server=on,wait=off",
        ]
        self.proc: Optional[subprocess.Popen] = None
        self.started = None
        self.resets: list = []              # seconds since the first start, one per power cycle
        self.reset_loads: list = []         # the host's load average at each
        self.dead: Optional[str] = None
        self.stopping = threading.Event()

    def start(self) -> None:
        self.log = open(self.dir / "qemu.log", "wb")
        self.started = time.monotonic()
        self._launch()
        self.console = ConsoleRecorder(self.ttys1_port, self.started)
        self.console.start()
        self.supervisor = threading.Thread(target=self._supervise, name="qemu-supervisor", daemon=True)
        self.supervisor.start()

    def _launch(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _supervise(self) -> None:
        """A guest reset ends qemu (-no-reboot): power the box on again, unless
        qemu failed (an error status) or it keeps resetting."""
        while not self.stopping.is_set():
            rc = self.proc.wait()
            if self.stopping.is_set():
                return
            if rc != 0 or len(self.resets) >= MAX_RESETS:
                self.dead = f"qemu exited with status {rc} after {len(self.resets)} resets"
                return
            self.resets.append(round(time.monotonic() - self.started, 1))
            self.reset_loads.append(" ".join(open("/proc/loadavg").read().split()[:3]))
            self._launch()

    def alive(self) -> bool:
        return self.proc is not None and self.dead is None

    def check(self) -> None:
        if not self.alive():
            raise VmDied(f"{self.dead or 'qemu did not start'}: "
                         f"{(self.dir / 'qemu.log').read_text(errors='replace')[-2000:]}")

    def console_text(self) -> str:
        """What the kernel and systemd wrote on ttyS1 so far."""
        try:
            return self.serial1_log.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, key: Optional[str] = None, timeout: float = 10) -> Client:
        return Client(self.url, key, timeout, pin=self.pin)

    def get(self, path: str, key: Optional[str] = None, timeout: float = 10) -> tuple:
        """Over HTTPS, pinned to the fingerprint the console showed; before it is known (the
        boot's health polls, which carry no key) the certificate is not checked."""
        if self.pin:
            r = self.client(key, timeout).raw("GET", path)
            status, body = r.status, r.body
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, timeout=timeout, context=ctx)
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
                resp = conn.getresponse()
                status, body = resp.status, resp.read()
            finally:
                conn.close()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"raw": body.decode(errors="replace")}

    def post_file(self, path: str, key: str, body_path: pathlib.Path, headers: dict, timeout: float = 600) -> tuple:
        with open(body_path, "rb") as f:
            r = self.client(key, timeout).raw("POST", path, f, {
                "Content-Type": "application/octet-stream", "Content-Length": str(body_path.stat().st_size),
                **headers})
        return r.status, r.json()

    def wait_http(self, path: str = "/v1/health", timeout: float = 300, want=lambda status, body: status == 200,
                  key: Optional[str] = None) -> tuple:
        """Poll until `want(status, body)`; (seconds since qemu started, status, body)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check()
            try:
                status, body = self.get(path, key, timeout=5)
                last = (status, body)
                if want(status, body):
                    return time.monotonic() - self.started, status, body
            except (OSError, ValueError) as e:
                last = repr(e)
            time.sleep(1)
        raise TimeoutError(f"{path} not as wanted within {timeout} s (last: {str(last)[:500]}); console tail:\n"
                           + self.console_text()[-3000:])

    def wait_down(self, timeout: float = 120) -> float:
        """Until the API stops answering (a reboot has begun)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                self.get("/v1/health", timeout=3)
            except (OSError, ValueError):
                return time.monotonic() - self.started
            time.sleep(0.5)
        raise TimeoutError(f"the box did not go down within {timeout} s")

    def power_off(self, timeout: float = 180) -> None:
        """The power button (ACPI): systemd stops the services and syncs the disks, qemu exits.
        (A kill is a power cut: the agent's store keeps its last commits only in its WAL then.)"""
        self.stopping.set()
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(self.qmp))
                f = s.makefile("rw")
                f.readline()                                   # the greeting
                for cmd in ("qmp_capabilities", "system_powerdown"):
                    f.write(json.dumps({"execute": cmd}) + "\n")
                    f.flush()
                    f.readline()
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.stopping.set()
        self.console.stop.set()
        for _ in range(2):                  # the supervisor may have launched one more as we stopped
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.supervisor.join(5)
        self.log.close()
