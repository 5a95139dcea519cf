"""Boot time of disk images under qemu (TCG here): a box's first boot, then its second.

    python bench/boot.py NAME=DISK.img [NAME=DISK.img ...] [--rounds 1] [--first-only] [--parallel] [--json FILE]

For each round, each image in turn (back to back, so that images compared
see the same host load): a fresh box (a new overlay on the image, a 4 GiB
disk) is powered on and timed to `/v1/health` healthy, with the milestones
the image test reads on ttyS1 (tests/image: loader, slot opened, systemd,
agent ready).  Once the slot's check after the boot has finished (`verified
(dm-verity`: every block read once), the box is powered off and on again:
the second boot, with the box's secrets made and its slot checked, timed the
same way.  The host's load average at each power-on is recorded, and the kernel's own start on the
guest's clock (`kernel_guest`: what the initramfs's first line says, without firmware and boot loader).  --parallel boots
the images of a round at the same time (a machine others share: each sees the same load).  Prints one
JSON object; with --results, writes its section of bench/RESULTS.md.
Loopback only (qemu user networking, restrict=on)."""
import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.image.qemu import Vm  # noqa: E402
from tests.image.test_image import MILESTONES  # noqa: E402
sys.path.insert(0, str(ROOT / "bench"))
from sections import markers, write_section  # noqa: E402

LIMIT_S = 600


# and the initramfs's first line (image/initramfs/.../capbox/init): the kernel is up
INITRAMFS = "capbox: initramfs started"
BOOT_MILESTONES = (("kernel", INITRAMFS), *MILESTONES)
# that line's own figure: the kernel's start on the guest's clock (no firmware, no boot loader)
KERNEL_UP = re.compile(re.escape(INITRAMFS) + r" \(kernel up ([0-9.]+) s\)")


def milestones(vm) -> dict:
    out = {name: round(t, 1) for name, text in BOOT_MILESTONES if (t := vm.console.first(text)) is not None}
    up = next((m for _, line in vm.console.lines if (m := KERNEL_UP.search(line))), None)
    if up:
        out["kernel_guest"] = float(up.group(1))
    return out


def boot(disk: pathlib.Path, workdir: pathlib.Path, fresh: bool) -> tuple:
    """(the boot's figures, the running Vm)."""
    vm = Vm(disk, workdir, fresh=fresh, disk_size="4G" if fresh else None)
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    vm.start()
    try:
        t, _, _ = vm.wait_http("/v1/health", LIMIT_S, lambda s, b: s == 200 and b.get("status") == "healthy")
    except BaseException:
        vm.stop()
        raise
    return {"healthy_s": round(t, 1), "host_load": load, "qemu_cpu_s": qemu_cpu_s(vm)}, vm


def qemu_cpu_s(vm) -> float:
    """The CPU time qemu has used so far (user + system): the emulated work, which the host's load
    stretches over more wall time but does not add to; comparable between rounds of unequal load."""
    fields = open(f"/proc/{vm.proc.pid}/stat").read().rpartition(")")[2].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def one_box(disk: pathlib.Path, workdir: pathlib.Path, first_only: bool = False) -> dict:
    first, vm = boot(disk, workdir, fresh=True)
    if first_only:
        try:
            time.sleep(3)                # systemd prints "Started" after the fact
            first.update(milestones(vm))
        finally:
            vm.power_off()
        return {"first": first}
    try:
        deadline = time.monotonic() + LIMIT_S
        while vm.console.first("verified (dm-verity") is None and time.monotonic() < deadline:
            vm.check()
            time.sleep(2)
        first.update(milestones(vm))
    finally:
        vm.power_off()
    second, vm = boot(disk, workdir, fresh=False)
    try:
        time.sleep(3)                    # systemd prints "Started" after the fact
        second.update(milestones(vm))
    finally:
        vm.power_off()
    return {"first": first, "second": second}


def one_run(name: str, disk: pathlib.Path, r: int, first_only: bool) -> dict:
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"capbox-boot-{name}-"))
    try:
        result = {"image": name, "round": r + 1, "at": time.strftime("%H:%M:%S", time.gmtime()),
                  **one_box(disk, work, first_only)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def section(out: dict, note: str) -> str:
    begin, end = markers("boot")
    cell = lambda b, k: f"{b[k]:.1f}" if b.get(k) is not None else "–"    # noqa: E731
    rows = [f"| {r['image']} | {r['round']} ({r['at']} UTC) | {which} | {cell(b, 'loader')} | {cell(b, 'kernel')} | "
            f"{cell(b, 'opened')} | {cell(b, 'systemd')} | {cell(b, 'agent')} | **{cell(b, 'healthy_s')}** | "
            f"{cell(b, 'qemu_cpu_s')} | {cell(b, 'verified')} | {b['host_load']} |"
            for r in out["runs"] for which in ("first", "second") if (b := r.get(which))]
    return "\n".join([
        begin, "## Boot time: first and second boot of a box (bench/boot.py)", "",
        "qemu TCG, `-smp 2 -m 1024`, OVMF, a fresh 4 GiB box per image; seconds from power-on to each milestone "
        "on ttyS1 and to `/v1/health` healthy over HTTPS.  " + (
            "The second boot is the same box powered on again after its first boot's slot check finished: secrets "
            "made, slot checked (no whole-slot read).  " if any("second" in r for r in out["runs"]) else
            "First boots only (`--first-only`).  ") + (
            "The images of a round booted at the same time (`--parallel`: the same host load for each, and each "
            "slowed by the other).  " if out.get("parallel") else "Images in a round ran back to back.  ") + note, "",
        "| image | round | boot | loader | initramfs | slot opened | systemd | agent ready | healthy | "
        "qemu CPU to healthy | slot checked | host load at power-on |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", *rows, "", *spread(out["runs"]), end, ""])


def spread(runs: list) -> list:
    """Per image and boot: the healthy figures of its rounds, lowest to highest."""
    lines = []
    for name in dict.fromkeys(r["image"] for r in runs):
        for which in ("first", "second"):
            if not any(which in r for r in runs if r["image"] == name):
                continue
            ts = sorted(r[which]["healthy_s"] for r in runs if r["image"] == name)
            cpu = sorted(r[which]["qemu_cpu_s"] for r in runs if r["image"] == name)
            lines.append(f"- {name}, {which} boot: healthy at {ts[0]:.1f}–{ts[-1]:.1f} s over {len(ts)} run(s)"
                         f" ({', '.join(f'{t:.1f}' for t in ts)}); qemu CPU {cpu[0]:.1f}–{cpu[-1]:.1f} s")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+", metavar="NAME=DISK.img")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--first-only", action="store_true",
                    help="first boots only (no slot check wait, no second boot): quicker A/B rounds")
    ap.add_argument("--parallel", action="store_true",
                    help="boot the images of a round at the same time (on a shared machine: the same load for each)")
    ap.add_argument("--json", help="also write the result to this file")
    ap.add_argument("--results", help="write the boot section of this RESULTS.md")
    ap.add_argument("--note", default="", help="said in the section (e.g. that the machine was shared)")
    args = ap.parse_args()
    images = [(name, pathlib.Path(path)) for name, _, path in (a.partition("=") for a in args.images)]
    runs = []
    for r in range(args.rounds):
        if args.parallel:
            with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
                runs += list(pool.map(lambda image: one_run(*image, r, args.first_only), images))
        else:
            runs += [one_run(name, disk, r, args.first_only) for name, disk in images]
    out = {"runs": runs, "parallel": args.parallel}
    print(json.dumps(out, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    if args.results:
        write_section(args.results, "boot", section(out, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
