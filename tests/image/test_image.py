"""The disk image, booted under qemu and used as a person would (make image-test).

One box for most of the module, in this order: it boots to a healthy agent
(/v1/health over HTTPS on the forwarded port); the serial console on ttyS0
shows the certificate's fingerprint and a one-time setup code, takes a login
with the code (which sets a password) and `status`, and makes the API key
the rest of the test uses; /v1/health verifies against that fingerprint and
plain HTTP gets nothing; /v1/system shows the slots; the agent captures from
the guest's NIC; a signed update of the next version goes into the other
slot, the box reboots into it and commits it; a bundle signed by an unknown
key is refused and nothing changes; a deliberately broken update is tried
once and the box falls back to the good slot by itself.  Both UKIs pass
sbverify.  A second box from the same image has secrets of its own (none of
either box's are in the build output); one byte of its active root slot is
then flipped on its disk, and it refuses that slot and comes up healthy on
the other.  Timings go to
build/image/test/timings.json, which `make image-test` writes into
bench/RESULTS.md."""
import base64
import http.client
import json
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from tests.conftest import ROOT
from agent.client import Client, PinMismatch
from tests.image.qemu import API_PORT, Vm

pytestmark = pytest.mark.image

BUILD = ROOT / "build" / "image"
OUT = BUILD / "out"
WORK = BUILD / "work"
TEST = BUILD / "test"
IMAGE = ROOT / "image"
KEYS = BUILD / "keys"
CAPBOX = ROOT / ".venv" / "bin" / "capbox"
BOOT_LIMIT_S = 300
DISK_GIB = 4
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
    cmdline = cmdline.partition("=")[2].strip('"') + " " + (d / "root.img.verity").read_text().strip()
    sh(IMAGE / "mkuki.sh", WORK / "boot" / "vmlinuz.lz4", WORK / "boot" / "initrd.img", d / "os-release",
       cmdline, d / "capbox.efi", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SB_KEY": str(KEYS / "secureboot-db.key"),
                                       "SB_CERT": str(KEYS / "secureboot-db.crt")})
    bundle = d / f"capbox-{version}.bundle"
    sh(CAPBOX, "update", "build", "--rootfs", d / "root.img", "--uki", d / "capbox.efi", "--version", version,
       "--rollback", rollback, "--target", release["target"], "--build-id", rel["build_id"], "--key", key,
       "-o", bundle)
    TIMINGS[f"bundle_{name}_build_s"] = round(time.monotonic() - t, 1)
    TIMINGS[f"bundle_{name}_bytes"] = bundle.stat().st_size
    return bundle, pathlib.Path(f"{bundle}.minisig")


@pytest.fixture(scope="module")
def box(built):
    vm = Vm(OUT / "disk.img", TEST / "vm", disk_size=f"{DISK_GIB}G")     # a disk bigger than the image
    TIMINGS["accelerator"] = vm.accel
    TIMINGS["loadavg_at_boot"] = " ".join(open("/proc/loadavg").read().split()[:3])
    vm.start()
    yield vm
    vm.stop()
    # each boot's milestones, once the console has caught up (systemd prints "Started" after the fact)
    TIMINGS["boots"] = boot_milestones(vm)
    first = TIMINGS["boots"][0] if TIMINGS["boots"] else {}
    for key, name in (("boot_firmware_to_loader_s", "loader"), ("boot_slot_opened_s", "opened"),
                      ("boot_slot_verified_s", "verified"),
                      ("boot_systemd_started_s", "systemd"), ("boot_firstboot_done_s", "firstboot"),
                      ("boot_agent_started_s", "agent")):
        TIMINGS[key] = first.get(name)
    milestones = [(round(t, 1), line) for t, line in vm.console.lines]
    (TEST / "console-ttyS1.txt").write_text("\n".join(f"{t:7.1f} {l}" for t, l in milestones))
    TIMINGS["commit"] = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD").stdout.strip()
    TIMINGS["loadavg"] = " ".join(open("/proc/loadavg").read().split()[:3])
    TIMINGS["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    (TEST / "timings.json").write_text(json.dumps(TIMINGS, indent=2))


MILESTONES = (("loader", "BdsDxe: starting"), ("opened", "opened (dm-verity"), ("verified", "verified (dm-verity"),
              ("refused", "REFUSED"), ("systemd", "Welcome to"), ("firstboot", "Finished capbox-firstboot"),
              ("agent", "Started capbox.service"))


def boot_milestones(vm) -> list:
    """Per boot (power cycle) of a box: seconds from its power-on to each milestone on ttyS1,
    and the host's load average when it was powered on."""
    starts = [0.0] + list(vm.resets)
    loads = [TIMINGS.get("loadavg_at_boot")] + list(vm.reset_loads)
    boots = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        b = {"at_s": round(start, 1), "host_load": loads[i]}
        for name, text in MILESTONES:
            t = next((t for t, line in vm.console.lines if start <= t < end and text in line), None)
            if t is not None:
                b[name] = round(t - start, 1)
        boots.append(b)
    return boots


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


class SerialConsole:
    """ttyS0 as a person at the box sees it (pyserial over qemu's TCP serial port)."""

    def __init__(self, vm):
        import serial
        self.port = serial.serial_for_url(f"socket://127.0.0.1:{vm.ttys0_port}", timeout=1)
        self.seen = b""

    def until(self, marker: bytes, timeout=120, poke=False) -> str:
        """Read until `marker` (docs/CONSOLE.md's prompts); Enter now and then when `poke`."""
        deadline, poked = time.monotonic() + timeout, 0.0
        while time.monotonic() < deadline:
            self.seen += self.port.read(4096)
            if marker in self.seen:
                out, _, self.seen = self.seen.partition(marker)
                return (out + marker).decode(errors="replace")
            if poke and time.monotonic() - poked > 3:
                self.port.write(b"\r")
                poked = time.monotonic()
        raise AssertionError(f"no {marker!r} on ttyS0; got {self.seen[-500:]!r}")

    def say(self, line: str) -> None:
        self.port.write(line.encode() + b"\r")

    def close(self) -> None:
        self.port.close()


def first_login(vm) -> dict:
    """What a person does at a new box: Enter on ttyS0, read the fingerprint and the setup
    code, log in with the code, choose a password, make an API key.  The box's secrets, as seen."""
    con = SerialConsole(vm)
    try:
        con.until(b"Password:", poke=True)
        con.say("")                                        # Enter alone: the notice again, whole
        shown = con.until(b"Password:")
        fp = re.search(r"HTTPS certificate SHA256 ([0-9A-F:]{95})", shown)
        code = re.search(r"setup code ([A-Z0-9-]{19})", shown)
        assert fp and code, shown
        t0 = time.monotonic()
        con.say(code.group(1))
        con.until(b"New password: ")
        password = "own-" + base64.b32encode(fp.group(1).encode()[:10]).decode()
        con.say(password)
        con.until(b"Again: ")
        con.say(password)
        assert "Password set." in con.until(b"capbox> ")
        login_s = time.monotonic() - t0
        con.say("status")
        status = con.until(b"capbox> ")
        con.say("keys create --kind sk --name image-test")
        created = con.until(b"capbox> ")
        key = re.search(r"^(capbox_sk_\S+)", created.replace("\r", ""), re.M)
        assert key, created
        con.say("exit")
        con.until(b"Logged out")
    finally:
        con.close()
    return {"fingerprint": fp.group(1), "code": code.group(1), "password": password, "key": key.group(1),
            "status": status, "login_s": login_s}


def test_serial_console_first_login_shows_the_fingerprint_and_a_setup_code(box):
    seen = first_login(box)
    assert "healthy" in seen["status"] and "capture" in seen["status"], seen["status"]
    TIMINGS["console_login_s"] = round(seen["login_s"], 1)
    box.pin, box.key, box.secrets = seen["fingerprint"], seen["key"], seen


def test_https_verifies_against_the_fingerprint_and_plain_http_gets_nothing(box):
    status, body = box.get("/v1/health")                       # pinned: the fingerprint the console showed
    assert status == 200 and body["status"] == "healthy"
    with pytest.raises(PinMismatch):                          # another box's certificate is not this one
        Client(box.url, None, 10, pin="00" * 32).raw("GET", "/v1/health")
    conn = http.client.HTTPConnection("127.0.0.1", box.api_port, timeout=10)
    try:
        conn.request("GET", "/v1/health")
        r = conn.getresponse()
        plain = (r.status, r.read())
    except OSError as e:
        plain = (None, repr(e).encode())
    finally:
        conn.close()
    assert plain[0] is None or plain[0] >= 400, plain
    assert b"healthy" not in plain[1]
    TIMINGS["plain_http_answer"] = f"HTTP {plain[0]}" if plain[0] else "closed, no answer"


def test_data_partition_grew_to_fill_the_disk(box):
    """1 GiB in the image; the box's disk is 4 GiB: systemd-repart + resize2fs on the first boot."""
    t, _, body = box.wait_http("/v1/health", 180, lambda s, b: b.get("system", {}).get("disk", {}).get(
        "total_bytes", 0) > (DISK_GIB - 1.6) * 2**30)
    TIMINGS["data_partition_bytes"] = body["system"]["disk"]["total_bytes"]
    TIMINGS["data_grown_s"] = round(t, 1)


def test_system_shows_the_slots(box, built):
    assert box.key, "no API key: the console's first login did not make one"
    st = system(box)
    assert st["image"] and st["booted_slot"] == "a" and st["committed_slot"] == "a" and st["trial"] is None
    assert st["release"]["version"] == built["version"] and st["release"]["build_id"] == built["build_id"]
    assert {s["status"] for s in st["slots"].values()} == {"good"}
    assert st["slots"]["a"]["partition"].startswith("/dev/") and st["slots"]["a"]["rootfs"]["filesystem"] == "squashfs"
    assert st["data_persistent"] is True and len(st["machine_id"]) == 32
    assert st["units"]["capbox.service"] == "active"
    assert st["units"]["capbox-tui.service"] == "active"      # the Textual console on tty1
    assert st["units"]["capbox-console.service"] == "active"  # the serial console on ttyS0
    assert st["units"]["capbox-coldplug.service"] == "active"  # udev's coldplug of the rest, after READY
    box.machine_id = st["machine_id"]
    s, keys = box.get("/v1/keys", box.key)
    assert s == 200
    box.admin_key_ids = {k["id"] for k in keys["keys"] if k["kind"] == "sk" and k["name"] != "image-test"}
    assert box.admin_key_ids                                 # the agent's own admin key, made on its first start


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
    assert str(API_PORT) in text and "10.0.2.2" in text, text[:2000]


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
    broken_config.write_text((IMAGE / "capbox.toml").read_text().replace('listen = "0.0.0.0:8443"',
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


# ---- Secure Boot signatures ---------------------------------------------------------------------

def test_sbverify_accepts_both_ukis_and_the_boot_loader(built, tmp_path):
    cert = KEYS / "secureboot-db.crt"
    for name in ("EFI/Linux/capbox-a.efi", "EFI/Linux/capbox-b.efi", "EFI/BOOT/BOOTX64.EFI"):
        f = tmp_path / name.replace("/", "_")
        sh("mcopy", "-n", "-i", f"{OUT / 'disk.img'}@@1M", f"::/{name}", f, env={"MTOOLS_SKIP_CHECK": "1"})
        assert "Signature verification OK" in sh("sbverify", "--cert", cert, f).stdout, name
    # and a key that did not sign them is not taken for it
    sh("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=stranger",
       "-keyout", tmp_path / "s.key", "-out", tmp_path / "s.crt")
    assert subprocess.run(["sbverify", "--cert", str(tmp_path / "s.crt"), str(tmp_path / "EFI_Linux_capbox-a.efi")],
                          capture_output=True).returncode != 0
    TIMINGS["sbverify"] = "3 of 3 OK"


# ---- a second box from the same image ------------------------------------------------------------

@pytest.fixture(scope="module")
def box2(built, box):
    box.stop()                 # one box at a time on this machine's cores (the first is done by now)
    vm = Vm(OUT / "disk.img", TEST / "vm2")
    vm.start()
    yield vm
    vm.stop()


def _scan_build_output(needles: dict) -> list:
    """Which of the needles (name -> bytes) occur in any file of the build's output."""
    found = []
    for f in sorted(OUT.rglob("*")):
        if not f.is_file() or f.suffix == ".zst":          # the .zst is disk.img, compressed
            continue
        tail = b""
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                data = tail + chunk
                found += [f"{name} in {f.name}" for name, n in needles.items() if n in data]
                tail = data[-256:]
    return sorted(set(found))


def test_two_boxes_from_one_image_share_no_secret(box, box2):
    box2.wait_http("/v1/health", BOOT_LIMIT_S, lambda s, b: s == 200 and b.get("status") == "healthy")
    one, two = box.secrets, first_login(box2)
    box2.pin, box2.key, box2.secrets = two["fingerprint"], two["key"], two
    assert one["fingerprint"] != two["fingerprint"] and one["code"] != two["code"]
    st1, st2 = box.machine_id, system(box2)["machine_id"]
    assert len(st2) == 32 and st1 != st2
    s, keys2 = box2.get("/v1/keys", box2.key)
    assert s == 200
    admin2 = {k["id"] for k in keys2["keys"] if k["kind"] == "sk" and k["name"] != "image-test"}
    assert admin2 and not admin2 & box.admin_key_ids, (admin2, box.admin_key_ids)
    needles = {f"{who} setup code": seen["code"].encode() for who, seen in (("box 1", one), ("box 2", two))}
    needles.update({f"{who} fingerprint": seen["fingerprint"].encode() for who, seen in (("box 1", one),
                                                                                          ("box 2", two))})
    needles.update({f"{who} certificate": bytes.fromhex(seen["fingerprint"].replace(":", ""))
                    for who, seen in (("box 1", one), ("box 2", two))})
    assert _scan_build_output(needles) == []
    assert not (OUT / "credentials").exists()
    TIMINGS["two_boxes"] = "no secret shared"


def _flip_byte(overlay: pathlib.Path, offset: int) -> tuple:
    """One byte of the disk behind the overlay changed, as a person with the disk in hand would."""
    out = sh("qemu-io", "-f", "qcow2", "-c", f"read -v {offset} 1", overlay).stdout
    old = int(re.search(r"^[0-9a-f]+:\s+([0-9a-f]{2})", out, re.M).group(1), 16)
    new = old ^ 0xFF
    sh("qemu-io", "-f", "qcow2", "-c", f"write -P {new} {offset} 1", overlay)
    return old, new


def test_a_changed_root_slot_is_refused_and_the_box_falls_back(box2):
    assert system(box2)["booted_slot"] == "a"
    box2.power_off()
    part = next(p for p in json.loads((OUT / "partitions.json").read_text())["partitiontable"]["partitions"]
                if p.get("name") == "root-a")
    offset = part["start"] * 512 + 64 * 1024 * 1024 + 12345    # inside the squashfs (about 140 MB)
    TIMINGS["tamper_byte"] = "root-a + 64 MiB + 12345: 0x%02x -> 0x%02x" % _flip_byte(box2.overlay, offset)
    again = Vm(OUT / "disk.img", TEST / "vm2", fresh=False)
    again.pin, again.key = box2.pin, box2.key
    again.start()
    try:
        t, _, st = wait_system(again, lambda b: b["booted_slot"] == "b", timeout=900)   # two or three boots
        TIMINGS["tampered_boot_to_fallback_s"] = round(t, 1)
        assert st["committed_slot"] == "b" and st["slots"]["a"]["status"] == "bad", st["slots"]
        assert "dm-verity" in st["slots"]["a"]["reason"]
        assert st["history"][-1]["event"] == "verity_refused"
        again.wait_http("/v1/health", 120, lambda s, b: s == 200 and b.get("status") == "healthy")
        text = again.console_text()
        assert "capbox: slot a REFUSED" in text and "resetting into slot b" in text, text[-3000:]
        # one reset when the check after boot finds the block; two when the boot read it first
        # (dm-verity restarts the box, and that boot, its check not done, reads the slot whole)
        assert 1 <= len(again.resets) <= 2, again.resets
    finally:
        again.stop()


def test_a_box_whose_disk_is_on_the_sata_controller_boots(built):
    """The initramfs loads the SATA, USB and SD controllers' drivers only once virtio's and NVMe's bring
    no disk with the ESP (image/initramfs/.../capbox/init): a box that boots from SATA still boots.
    (Last in the file: the other boxes are off by now.)"""
    vm = Vm(OUT / "disk.img", TEST / "vm-sata", disk_size=f"{DISK_GIB}G", disk_bus="ide")
    vm.start()
    try:
        t, _, _ = vm.wait_http("/v1/health", BOOT_LIMIT_S, lambda s, b: s == 200 and b.get("status") == "healthy")
        TIMINGS["sata_boot_to_healthy_s"] = round(t, 1)
        text = vm.console_text()
        started = next(line for line in text.splitlines() if "BdsDxe: starting" in line)
        assert "/Sata(" in started and "capbox: slot a opened" in text, text[-3000:]
        assert not vm.resets, vm.resets
    finally:
        vm.stop()

