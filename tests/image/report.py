"""`python -m tests.image.report`: the disk image section of bench/RESULTS.md
from the last `make image-test` (build/image/test/timings.json, the build's
build-timings.tsv).  Only this section is replaced; the others are left as
they are."""
import datetime
import json
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from sections import markers, write_section  # noqa: E402  (bench/ holds the one section writer)

RESULTS = ROOT / "bench" / "RESULTS.md"
TIMINGS = ROOT / "build" / "image" / "test" / "timings.json"
SECTION = "image-test"
BEGIN, END = markers(SECTION)
TARGETS = {"build": 240, "zst_mb": 200, "boot": 30}


def fmt(v, unit="s") -> str:
    return "–" if v is None else f"{v:.1f} {unit}" if isinstance(v, float) else f"{v} {unit}"


def section(t: dict) -> str:
    mb = lambda n: None if n is None else round(n / 1e6, 1)    # noqa: E731
    # the run's own commit, load and date (timings.json), not the time of writing
    commit = t.get("commit") or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                               capture_output=True, text=True).stdout.strip()
    stages = [k for k in t if k.startswith("build_") and k not in (
        "build_total", "build_disk_img_bytes", "build_disk_img_allocated_bytes", "build_disk_img_zst_bytes",
        "build_root_img_bytes", "build_uki_bytes", "build_bundle_bytes", "build_debian_packages")]
    load = t.get("loadavg") or " ".join(open("/proc/loadavg").read().split()[:3])
    build_s, zst, boot = t.get("build_total"), mb(t.get("build_disk_img_zst_bytes")), t.get("boot_to_health_s")

    def met(value, limit):
        return "–" if value is None else ("**met**" if value < limit else "**not met**")
    lines = [
        BEGIN,
        "## Disk image: build, size, boot, update and fallback under qemu",
        "",
        f"`make image-test` on {t.get('date') or datetime.date.today()} (commit {commit}), {platform.machine()}, "
        f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores shared with other "
        f"work (load average {load} at the end), qemu {t.get('accelerator', '?').upper()}, "
        "`-smp 2 -m 1024`, OVMF, user networking `restrict=on`.  Seconds are wall time.",
        "",
        "| what | measured | target | |",
        "|---|---:|---:|---|",
        f"| build (`make image`, apt cache warm) | {fmt(build_s)} | < 240 s | {met(build_s, TARGETS['build'])} |",
        f"| compressed image (`disk.img.zst`, zstd -10 --long=31) | {fmt(zst, 'MB')} | < 200 MB | "
        f"{met(zst, TARGETS['zst_mb'])} |",
        f"| boot to a healthy agent (qemu start → `/v1/health` healthy over HTTPS; first boot: secrets made) | "
        f"{fmt(boot)} | < 30 s (quiet machine) | {met(boot, TARGETS['boot'])} |",
        f"| serial console on ttyS0: Enter → `Password:` → logged in (pyserial over the TCP serial port) | "
        f"{fmt(t.get('console_login_s'))} | | " + ("**works**" if t.get("console_login_s") else "–") + " |",
        f"| HTTPS pinned to the fingerprint the console showed; plain HTTP to the port answered | "
        f"{t.get('plain_http_answer', '–')} | refused | " + ("**met**" if t.get("plain_http_answer") else "–") + " |",
        f"| two boxes from one image: fingerprints, setup codes, machine ids, admin keys differ; none in the "
        f"build output | {t.get('two_boxes', '–')} | | " + ("**met**" if t.get("two_boxes") else "–") + " |",
        f"| one byte of the active slot flipped ({t.get('tamper_byte', '–')}): refused, fell back to b, healthy "
        f"| {fmt(t.get('tampered_boot_to_fallback_s'))} | | "
        + ("**met**" if t.get("tampered_boot_to_fallback_s") else "–") + " |",
        f"| a box whose disk is on the SATA controller (the initramfs's second round of drivers): boot to "
        f"healthy | {fmt(t.get('sata_boot_to_healthy_s'))} | | "
        + ("**met**" if t.get("sata_boot_to_healthy_s") else "–") + " |",
        f"| data partition grown to fill a {4} GiB disk (systemd-repart, resize2fs): ext4 size | "
        f"{fmt(mb(t.get('data_partition_bytes')), 'MB')} | > 1 GiB image | "
        + ("**met**" if t.get("data_partition_bytes") else "–") + " |",
        f"| sbverify: both UKIs and systemd-boot | {t.get('sbverify', '–')} | | "
        + ("**met**" if t.get("sbverify") else "–") + " |",
        f"| signed update: upload, verify, write slot b | {fmt(t.get('update_upload_verify_write_s'))} | | |",
        f"| signed update: POST → rebooted into b, healthy, committed | {fmt(t.get('update_to_committed_s'))} | "
        "same run | " + ("**met**" if t.get("update_to_committed_s") else "–") + " |",
        f"| broken update: POST → tried once, fell back to b, healthy | {fmt(t.get('broken_update_to_fallback_s'))} "
        "| same run | " + ("**met**" if t.get("broken_update_to_fallback_s") else "–") + " |",
        "",
        "Build stages: " + ", ".join(f"{k[6:]} {t[k]:.1f} s" for k in stages) + ".  "
        f"Sizes: disk.img {mb(t.get('build_disk_img_bytes'))} MB apparent, "
        f"{mb(t.get('build_disk_img_allocated_bytes'))} MB allocated; root slot (squashfs) "
        f"{mb(t.get('build_root_img_bytes'))} MB; UKI {mb(t.get('build_uki_bytes'))} MB; update bundle "
        f"{mb(t.get('build_bundle_bytes'))} MB; {int(t.get('build_debian_packages', 0))} Debian packages.",
        "",
        "Boot milestones of the first boot (seconds after qemu started, from the ttyS1 console): firmware hands "
        f"over to systemd-boot {fmt(t.get('boot_firmware_to_loader_s'))}, root slot opened through "
        f"dm-verity {fmt(t.get('boot_slot_opened_s'))}, systemd starts "
        f"{fmt(t.get('boot_systemd_started_s'))}, first-boot secrets made "
        f"{fmt(t.get('boot_firstboot_done_s'))}, capbox.service ready {fmt(t.get('boot_agent_started_s'))}, "
        f"`/v1/health` healthy {fmt(boot)}, every block of the slot checked (capbox-verify-slot.service, "
        f"after the agent) {fmt(t.get('boot_slot_verified_s'))}; the host's load average when the box booted: "
        f"{t.get('loadavg_at_boot', '–')}.  Under TCG the boot follows the host's load: a figure measured while "
        "other engineers' suites run on the same two cores is not the quiet-machine figure the target is for.",
        "",
        "Every boot of the first box (seconds from its power-on: firmware → systemd-boot, slot opened (or read "
        "whole), systemd, first-boot secrets, agent ready, every block checked; host load average at power-on):",
        "",
        "| boot at | loader | slot opened | systemd | firstboot | agent ready | slot checked | host load |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        *[f"| {b['at_s']:.0f} s | {fmt(b.get('loader'))} | {fmt(b.get('opened'))} | {fmt(b.get('systemd'))} | "
          f"{fmt(b.get('firstboot'))} | {fmt(b.get('agent'))} | {fmt(b.get('verified'))} | "
          f"{b.get('host_load') or '–'} |"
          for b in t.get("boots", [])],
        "",
        "Resets (each a power cycle of the VM: the first update's reboot, the broken update's reboot, its "
        f"fallback): at {', '.join(f'{r:.0f} s' for r in t.get('resets_s', [])) or '–'} of the run.",
        "",
        *([t["notes"], ""] if t.get("notes") else []),
        "The run's log: `build/image/test/` (pytest output in `image-test.log`, the console in "
        "`console-ttyS1.txt`, qemu's serial logs under `vm/`).",
        END,
    ]
    return "\n".join(lines)


def main() -> int:
    if not TIMINGS.exists():
        print(f"{TIMINGS}: no timings (the image test did not run)", file=sys.stderr)
        return 1
    write_section(RESULTS, SECTION, section(json.loads(TIMINGS.read_text())) + "\n")
    print(f"{RESULTS}: image-test section written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
