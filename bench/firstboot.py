"""What a box's first boot pays over its second: the firmware's empty variable store, or the disk's first-boot work.

    python bench/firstboot.py DISK.img [--rounds 3] [--json FILE]

bench/boot.py's first boot is a new disk overlay and a new OVMF variable store at once; its second boot
has both from the first.  Per round, one box at a time (the host's load is recorded at each power-on):

  X1  a fresh box: a new disk overlay, a new variable store (bench/boot.py's first boot)
  Y   a new disk overlay (its first boot) with the variable store X had after X1
  X2  box X powered on again (bench/boot.py's second boot)
  Z   a copy of X's disk after X1 (its second boot) with a new variable store

X1 - Y and Z - X2 are what the empty variable store costs (the firmware, before and after the boot loader);
X1 - Z and Y - X2 what the disk's first boot costs (the box's secrets, the data partition's first mount,
/var's upper layer, the journal's first files ...).  Y, X2 and Z are booted in a rotating order.  Prints
one JSON object per round: each boot's healthy time, qemu CPU and milestones (bench/boot.py's).
Loopback only (qemu user networking, restrict=on)."""
import argparse
import json
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.image.qemu import OVMF_VARS, Vm  # noqa: E402
from boot import LIMIT_S, milestones, qemu_cpu_s  # noqa: E402


def timed(vm: Vm, wait_checked: bool = False) -> dict:
    """One power-on to healthy, then off (after the slot's check, when the disk is to boot again)."""
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    vm.start()
    try:
        t, _, _ = vm.wait_http("/v1/health", LIMIT_S, lambda s, b: s == 200 and b.get("status") == "healthy")
        cpu = qemu_cpu_s(vm)
        deadline = time.monotonic() + LIMIT_S
        while wait_checked and vm.console.first("verified (dm-verity") is None and time.monotonic() < deadline:
            vm.check()
            time.sleep(2)
        time.sleep(0 if wait_checked else 3)     # systemd prints "Started" after the fact
        return {"healthy_s": round(t, 1), "qemu_cpu_s": cpu, "host_load": load, **milestones(vm)}
    finally:
        vm.power_off()


def one_round(disk: pathlib.Path, work: pathlib.Path, r: int) -> dict:
    out = {"round": r + 1, "X1": timed(Vm(disk, work / "x", fresh=True, disk_size="4G"), wait_checked=True)}
    (work / "z").mkdir()
    shutil.copy(work / "x" / "overlay.qcow2", work / "z" / "overlay.qcow2")
    shutil.copy(OVMF_VARS, work / "z" / "OVMF_VARS.fd")
    Vm(disk, work / "y", fresh=True, disk_size="4G")            # its new overlay ...
    shutil.copy(work / "x" / "OVMF_VARS.fd", work / "y" / "OVMF_VARS.fd")   # ... and X's variable store
    order = ["Y", "X2", "Z"]
    for name in order[r % 3:] + order[:r % 3]:
        out[name] = timed(Vm(disk, work / {"Y": "y", "X2": "x", "Z": "z"}[name], fresh=False))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("disk", type=pathlib.Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the rounds to this file")
    args = ap.parse_args()
    runs = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="capbox-firstboot-") as tmp:
            runs.append(one_round(args.disk, pathlib.Path(tmp), r))
        print(json.dumps(runs[-1]), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
