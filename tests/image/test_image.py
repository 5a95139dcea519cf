"""The disk image, booted under qemu and used as a person would (make image-test).

One box for the whole module, in this order: it boots to a healthy agent
(/v1/health over the forwarded port); /v1/system shows the slots; the serial
console on ttyS0 takes a login and `status`; the agent captures from the
guest's NIC; a signed update of the next version goes into the other slot,
the box reboots into it and commits it; a bundle signed by an unknown key is
refused and nothing changes; a deliberately broken update is tried once and
the box falls back to the good slot by itself.  Timings go to
build/image/test/timings.json, which `make image-test` writes into
bench/RESULTS.md."""
import base64
import json
import pathlib
import shutil
import subprocess
import time

import pytest

from tests.conftest import ROOT
from tests.image.qemu import Vm

pytestmark = pytest.mark.image

BUILD = ROOT / "build" / "image"
OUT = BUILD / "out"
WORK = BUILD / "work"
TEST = BUILD / "test"
IMAGE = ROOT / "image"
CAPBOX = ROOT / ".venv" / "bin" / "capbox"
BOOT_LIMIT_S = 300
TIMINGS: dict = {}


def sh(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


def bump(version: str, n: int) -> str:
    major, minor, patch = map(int, version.split("."))
    return f"{major}.{minor}.{patch + n}"


@pytest.fixture(scope="module")
def built():
    if not (OUT / "disk.img").exists() or not (WORK / "rootfs" / "opt" / "capbox").is_dir():
        pytest.fail(f"no image in {OUT}: `make image-test` builds it first (make image)")
    release = json.loads((WORK / "release.json").read_text())
    TEST.mkdir(parents=True, exist_ok=True)
    for line in (OUT / "build-timings.tsv").read_text().splitlines():
        k, _, v = line.partition("\t")
        TIMINGS[f"build_{k}"] = float(v)
    return release


def make_bundle(release: dict, name: str, version: str, rollback: int, config: pathlib.Path,
                key: pathlib.Path) -> tuple:
    """A bundle from the image's own tree, with its release (and agent config) as given."""
    d = TEST / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    rel = dict(release, version=version, rollback_index=rollback, build_id=f"{release['build_id']}-{name}")
    (d / "release.json").write_text(json.dumps(rel, indent=2))
    t = time.monotonic()
    sh(IMAGE / "mkroot.sh", WORK / "rootfs", d / "root.img", d / "release.json", config)
    osrel = (WORK / "os-release").read_text().replace(release["version"], version)
    (d / "os-release").write_text(osrel)
    cmdline = next(l for l in (IMAGE / "build.sh").read_text().splitlines() if l.startswith("CMDLINE="))
    sh(IMAGE / "mkuki.sh", WORK / "boot" / "vmlinuz", WORK / "boot" / "initrd.img", d / "os-release",
       cmdline.partition("=")[2].strip('"'), d / "capbox.efi")
    bundle = d / f"capbox-{version}.bundle"
    sh(CAPBOX, "update", "build", "--rootfs", d / "root.img", "--uki", d / "capbox.efi", "--version", version,
       "--rollback", rollback, "--target", release["target"], "--build-id", rel["build_id"], "--key", key,
       "-o", bundle)
    TIMINGS[f"bundle_{name}_build_s"] = round(time.monotonic() - t, 1)
    TIMINGS[f"bundle_{name}_bytes"] = bundle.stat().st_size
    return bundle, pathlib.Path(f"{bundle}.minisig")


@pytest.fixture(scope="module")
def box(built):
    vm = Vm(OUT / "disk.img", TEST / "vm")
    vm.key = (OUT / "credentials" / "admin.key").read_text().strip()
    TIMINGS["accelerator"] = vm.accel
    vm.start()
    yield vm
    vm.stop()
    # the first boot's milestones, once the console has caught up (systemd prints "Started" after the fact)
    first_reset = vm.resets[0] if vm.resets else float("inf")
    for key, text in (("boot_firmware_to_loader_s", "BdsDxe: starting"), ("boot_systemd_started_s", "Welcome to"),
                      ("boot_agent_started_s", "Started capbox.service")):
        t = vm.console.first(text)
        TIMINGS[key] = round(t, 1) if t is not None and t < first_reset else None
    milestones = [(round(t, 1), line) for t, line in vm.console.lines]
    (TEST / "console-ttyS1.txt").write_text("\n".join(f"{t:7.1f} {l}" for t, l in milestones))
    TIMINGS["commit"] = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD").stdout.strip()
    TIMINGS["loadavg"] = " ".join(open("/proc/loadavg").read().split()[:3])
    TIMINGS["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    (TEST / "timings.json").write_text(json.dumps(TIMINGS, indent=2))


def system(vm) -> dict:
    status, body = vm.get("/v1/system", vm.key)
    assert status == 200, body
    return body


def wait_system(vm, want, timeout=BOOT_LIMIT_S) -> tuple:
    return vm.wait_http("/v1/system", timeout, lambda s, b: s == 200 and want(b), key=vm.key)


def install(vm, bundle: pathlib.Path, sig: pathlib.Path) -> tuple:
    header = base64.b64encode(sig.read_bytes()).decode()
    return vm.post_file("/v1/system/update", vm.key, bundle, {"X-Capbox-Signature": header})


# ---- the box comes up ------------------------------------------------------------------

def test_boots_to_a_healthy_agent(box):
    t, status, body = box.wait_http("/v1/health", BOOT_LIMIT_S, lambda s, b: s == 200 and b.get("status") == "healthy")
    TIMINGS["boot_to_health_s"] = round(t, 1)
    assert body["version"] and body["components"]["api"]["status"] == "running"


def test_system_shows_the_slots(box, built):
    st = system(box)
    assert st["image"] and st["booted_slot"] == "a" and st["committed_slot"] == "a" and st["trial"] is None
    assert st["release"]["version"] == built["version"] and st["release"]["build_id"] == built["build_id"]
    assert {s["status"] for s in st["slots"].values()} == {"good"}
    assert st["slots"]["a"]["partition"].startswith("/dev/") and st["slots"]["a"]["rootfs"]["filesystem"] == "squashfs"
    assert st["data_persistent"] is True and len(st["machine_id"]) == 32
    assert st["units"]["capbox.service"] == "active"
    assert st["units"]["capbox-tui.service"] == "active"      # the Textual console on tty1
    assert st["units"]["capbox-console.service"] == "active"  # the serial console on ttyS0
    box.machine_id = st["machine_id"]


def test_serial_console_login_and_status(box):
    have = subprocess.run([str(CAPBOX), "console", "--help"], capture_output=True).returncode == 0
    if not have:
        pytest.skip("this capbox has no serial console (`capbox console`, issue 10): the image runs it on ttyS0 "
                    "(capbox-console.service) once it is there; nothing to log into yet")
    import serial
    password = (OUT / "credentials" / "console.password").read_text().strip()
    port = serial.serial_for_url(f"socket://127.0.0.1:{box.ttys0_port}", timeout=1)
    seen = b""

    def until(marker: bytes, timeout=90, poke=False) -> bytes:
        """Read until `marker` (docs/CONSOLE.md's prompts); Enter now and then when `poke`."""
        nonlocal seen
        deadline, poked = time.monotonic() + timeout, 0.0
        while time.monotonic() < deadline:
            seen += port.read(4096)
            if marker in seen:
                out, seen = seen, b""
                return out
            if poke and time.monotonic() - poked > 3:
                port.write(b"\r")
                poked = time.monotonic()
        raise AssertionError(f"no {marker!r} on ttyS0; got {seen[-500:]!r}")
    try:
        t0 = time.monotonic()
        until(b"Password:", poke=True)
        port.write(password.encode() + b"\r")
        assert b"Logged in" in until(b"capbox> ")
        TIMINGS["console_login_s"] = round(time.monotonic() - t0, 1)
        port.write(b"status\r")
        out = until(b"capbox> ").decode(errors="replace")
        assert "healthy" in out and "capture" in out, out
        port.write(b"exit\r")
        until(b"Logged out")
    finally:
        port.close()


def test_agent_captures_from_the_guest_nic(box):
    def status():
        s, body = box.get("/v1/capture/status", box.key)
        assert s == 200, body
        return body
    first = status()
    assert first["running"] and first["interface"] == "eth0" and first["backend"] == "afpacket"
    for _ in range(20):                      # traffic through the NIC: these requests themselves
        box.get("/v1/health")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        later = status()
        if later["stats"]["packets"] >= first["stats"]["packets"] + 40:
            break
        time.sleep(2)
    assert later["stats"]["packets"] >= first["stats"]["packets"] + 40, (first["stats"], later["stats"])
    s, flows = box.get("/v1/capture/flows?limit=50", box.key)
    assert s == 200
    text = json.dumps(flows)
    assert "8080" in text and "10.0.2.2" in text, text[:2000]


# ---- updates -------------------------------------------------------------------------------

def test_signed_update_installs_into_the_other_slot_and_commits(box, built):
    new = bump(built["version"], 1)
    bundle, sig = make_bundle(built, "next", new, built["rollback_index"] + 1, IMAGE / "capbox.toml",
                              BUILD / "keys" / "capbox-update.key")
    t0 = time.monotonic()
    status, r = install(box, bundle, sig)
    assert status == 202, r
    assert r["slot"] == "b" and r["version"] == new and r["rebooting"]
    TIMINGS["update_upload_verify_write_s"] = round(time.monotonic() - t0, 1)
    box.wait_down()
    t, _, st = wait_system(box, lambda b: b["booted_slot"] == "b" and b["committed_slot"] == "b")
    TIMINGS["update_to_committed_s"] = round(time.monotonic() - t0, 1)
    assert st["release"]["version"] == new and st["slots"]["b"]["status"] == "good"
    assert st["slots"]["a"]["status"] == "good" and st["trial"] is None and st["machine_id"] == box.machine_id
    events = [h["event"] for h in st["history"]]
    assert events[-3:] == ["trial_armed", "trial_boot", "committed"], events
    box.new_version = new


def test_bundle_signed_by_an_unknown_key_is_refused_and_nothing_is_written(box, built, tmp_path):
    sh(CAPBOX, "fw", "keygen", "-s", tmp_path / "stranger.key", "-p", tmp_path / "stranger.pub")
    bundle, sig = make_bundle(built, "stranger", bump(built["version"], 5), built["rollback_index"] + 5,
                              IMAGE / "capbox.toml", tmp_path / "stranger.key")
    before = system(box)
    status, r = install(box, bundle, sig)
    assert status == 422 and r["error"]["code"] == "UPDATE_REJECTED", r
    assert r["error"]["details"]["reason"] == "unknown_key"
    after = system(box)
    assert after["slots"] == before["slots"] and after["trial"] is None and after["oneshot_entry"] is None
    assert after["history"] == before["history"]


def test_broken_update_falls_back_to_the_good_slot(box, built):
    broken_config = TEST / "broken.toml"
    broken_config.write_text((IMAGE / "capbox.toml").read_text().replace('listen = "0.0.0.0:8080"',
                                                                          'listen = "no port here"'))
    version = bump(built["version"], 2)
    bundle, sig = make_bundle(built, "broken", version, built["rollback_index"] + 2, broken_config,
                              BUILD / "keys" / "capbox-update.key")
    t0 = time.monotonic()
    status, r = install(box, bundle, sig)
    assert status == 202 and r["slot"] == "a", r
    box.wait_down()
    t, _, st = wait_system(box, lambda b: b["slots"]["a"]["status"] == "bad", timeout=600)
    TIMINGS["broken_update_to_fallback_s"] = round(time.monotonic() - t0, 1)
    assert st["booted_slot"] == "b" and st["committed_slot"] == "b" and st["trial"] is None
    assert st["release"]["version"] == box.new_version
    assert "configuration does not load" in st["slots"]["a"]["reason"], st["slots"]["a"]
    assert [h["event"] for h in st["history"]][-3:] == ["trial_armed", "trial_boot", "fell_back"]
    box.wait_http("/v1/health", 120, lambda s, b: s == 200 and b.get("status") == "healthy")
    # four boots in all: the first, the good update's trial, the broken one's, the fallback
    assert len(box.resets) == 3 and box.console_text().count("Welcome to") == 4, box.resets
    TIMINGS["resets_s"] = box.resets
