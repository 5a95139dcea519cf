"""What a box does during its boot, from its own journal (a profile, not a benchmark).

    python bench/bootprofile.py DISK.img OUTDIR [--env NAME=VALUE ...] [--probe] [--second]
    python bench/bootprofile.py --cpu OUTDIR/profile-BOOT.txt

Boots a fresh box (a copy of the image, a 4 GiB overlay) to `/v1/health`
healthy, waits for the slot check, powers it off, and copies the guest's
journal off its data partition (debugfs: no mount, no loop device) into
OUTDIR: `journalctl -o short-monotonic` of it (first.txt) and the ttyS1
console (first-ttyS1.log).  --env lines go into the box's
/var/lib/capbox/capbox.env before its first boot, e.g.
PYTHONPROFILEIMPORTTIME=1 (the agent's imports then land in the journal).
--probe puts a sitecustomize.py on the agent's PYTHONPATH that, once per
boot, snapshots the guest's CPU and block counters when the agent starts and
when it is ready, then `systemd-analyze blame` / `critical-chain`, lsmod and
ps (profile-BOOT.txt in OUTDIR; the image itself is not changed); each
snapshot has every process's and kernel thread's CPU time, /proc/interrupts,
/proc/softirqs, reclaim counters and the clocksource.  --cpu prints where the
guest's CPU went at each snapshot: per command (kernel threads by kind), what
PID 1 reaped (the initramfs's tools, generators, oneshots), the biggest
interrupt counts.
--second also boots it a second time (second.txt: both boots' journal).
Loopback only (qemu user networking, restrict=on)."""
import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.image.qemu import Vm  # noqa: E402

DATA_PART = 4
SLOT_CHECKED = "verified (dm-verity"
PROBE = pathlib.Path(__file__).with_name("bootprobe.py")     # the sitecustomize.py it puts there
PROBE_DONE = "capbox-probe: done"


def sh(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


def data_partition(disk: pathlib.Path) -> tuple:
    """(offset, size) in bytes of the data partition."""
    table = json.loads(sh("sfdisk", "--json", disk).stdout)["partitiontable"]
    p = table["partitions"][DATA_PART - 1]
    sector = table.get("sectorsize", 512)
    return p["start"] * sector, p["size"] * sector


def with_env(image: pathlib.Path, work: pathlib.Path, env: list, probe: bool) -> pathlib.Path:
    """A sparse copy of the image whose data partition holds capbox.env with these lines (and the probe)."""
    disk = work / "disk.img"
    sh("cp", "--sparse=always", image, disk)
    if probe:
        env = [*env, "PYTHONPATH=/var/lib/capbox/probe"]
    if not env:
        return disk
    off, size = data_partition(disk)
    part = work / "data.img"
    sh("dd", f"if={disk}", f"of={part}", "bs=1M", f"skip={off // 2**20}", f"count={size // 2**20}",
       "conv=sparse", "status=none")
    local = work / "capbox.env"
    local.write_text("".join(f"{line}\n" for line in env))
    sh("debugfs", "-w", "-R", f"write {local} capbox/capbox.env", part)
    if probe:
        shutil.copy(PROBE, work / "sitecustomize.py")
        sh("debugfs", "-w", "-R", "mkdir capbox/probe", part)
        sh("debugfs", "-w", "-R", f"write {work / 'sitecustomize.py'} capbox/probe/sitecustomize.py", part)
    sh("dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={off // 2**20}", "conv=notrunc,sparse", "status=none")
    part.unlink()
    return disk


def journal(vm: Vm, work: pathlib.Path, out: pathlib.Path, name: str) -> None:
    """The box's journal (its /var is /data/var/SLOT/upper) as text in out/NAME.txt."""
    raw = work / "raw.img"
    sh("qemu-img", "convert", "-O", "raw", vm.overlay, raw)
    off, size = data_partition(raw)
    part = work / "data.img"
    sh("dd", f"if={raw}", f"of={part}", "bs=1M", f"skip={off // 2**20}", f"count={size // 2**20}",
       "conv=sparse", "status=none")
    raw.unlink()
    dump = work / f"journal-{name}"
    shutil.rmtree(dump, ignore_errors=True)
    dump.mkdir()
    for slot in ("a", "b"):
        subprocess.run(["debugfs", "-R", f"rdump /var/{slot}/upper/log/journal {dump}", str(part)],
                       capture_output=True)
    listing = subprocess.run(["debugfs", "-R", "ls -p capbox", str(part)], capture_output=True, text=True).stdout
    for f in re.findall(r"/(profile-[0-9a-f]+\.txt)/", listing):
        subprocess.run(["debugfs", "-R", f"dump capbox/{f} {out / f}", str(part)], capture_output=True)
    part.unlink()
    files = sorted(str(p) for p in dump.rglob("*.journal"))
    text = subprocess.run(["journalctl", "--no-pager", "-o", "short-monotonic", *(f"--file={f}" for f in files)],
                          capture_output=True, text=True).stdout if files else "(no journal)\n"
    (out / f"{name}.txt").write_text(text)
    shutil.copytree(dump, out / f"journal-{name}", dirs_exist_ok=True)


def boot(vm: Vm, out: pathlib.Path, name: str, probe: bool = False) -> dict:
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    vm.start()
    try:
        t, _, _ = vm.wait_http("/v1/health", 600, lambda s, b: s == 200 and b.get("status") == "healthy")
        deadline = time.monotonic() + 300
        while vm.console.first(SLOT_CHECKED) is None and time.monotonic() < deadline:
            vm.check()
            time.sleep(2)
        time.sleep(15)
        while probe and vm.console.first(PROBE_DONE) is None and time.monotonic() < deadline:
            vm.check()
            time.sleep(2)
    finally:
        vm.power_off()
    shutil.copy(vm.serial1_log, out / f"{name}-ttyS1.log")
    return {"healthy_s": round(t, 1), "host_load": load}


def cpu_table(profile: str, top: int = 20) -> str:
    """Where the guest's CPU went by each snapshot of a --probe profile (seconds of guest CPU)."""
    hz, lines = 100, []
    for snap in re.split(r"^== ", profile, flags=re.M)[1:]:
        if snap.startswith("coldimport"):
            head, a, b = snap.splitlines()[:3]
            t0, t1 = (float(x) for x in head.split(": ")[1].split(" -> "))
            d = [(int(y) - int(x)) / hz for x, y in zip(a.split()[1:8], b.split()[1:8])]
            lines.append(f"== {head.split(':')[0]}: {t1 - t0:.1f} s, guest CPU user {d[0]:.1f} s, "
                         f"system {d[2]:.1f} s, softirq {d[6]:.1f} s")
            continue
        parts = dict(re.findall(r"^-- ([^\n]+)\n(.*?)(?=^-- |\Z)", snap, flags=re.M | re.S))
        cpu = [int(x) / hz for x in parts.get("/proc/stat", "cpu").split("\n")[0].split()[1:8]]
        lines.append(f"== {snap.splitlines()[0]}: guest CPU user {cpu[0]:.1f} s, system {cpu[2]:.1f} s, "
                     f"idle {cpu[3]:.1f} s, iowait {cpu[4]:.1f} s, softirq {cpu[6]:.1f} s")
        per: dict = {}
        for m in re.finditer(r"^(\d+) \((.*)\) (.*)$", parts.get("pid stat", ""), flags=re.M):
            f = m.group(3).split()
            utime, stime, cutime, cstime = (int(x) / hz for x in f[11:15])
            comm = re.sub(r"\d+", "N", m.group(2)) if m.group(2).startswith(("kworker", "ksoftirqd", "migration",
                                                                                "cpuhp")) else m.group(2)
            a = per.setdefault(comm, [0.0, 0.0, 0])
            a[0], a[1], a[2] = a[0] + utime, a[1] + stime, a[2] + 1
            if m.group(1) == "1":
                per["(reaped by PID 1)"] = [cutime, cstime, 0]
        lines.append(f"   {'command':34} {'user':>6} {'system':>7} procs")
        for comm, (u, st, n) in sorted(per.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:top]:
            lines.append(f"   {comm[:34]:34} {u:6.1f} {st:7.1f} {n or '':>5}")
        ints = [l.split() for l in parts.get("interrupts", "").splitlines()[1:]]
        counts = sorted(((sum(int(x) for x in p[1:3] if x.isdigit()), " ".join(p[3:])[:40] or p[0]) for p in ints
                         if len(p) > 2), reverse=True)[:6]
        lines.append("   interrupts: " + "; ".join(f"{what} {n}" for n, what in counts))
        lines.append("   clocksource: " + parts.get("clocksource", "?").split("\n")[0])
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--cpu"]:
        print(cpu_table(pathlib.Path(sys.argv[2]).read_text()))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("out")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--probe", action="store_true", help="snapshot the guest's counters (above)")
    ap.add_argument("--second", action="store_true", help="also a second boot of the same box")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="capbox-bootprofile-"))
    try:
        disk = with_env(pathlib.Path(args.image), work, args.env, args.probe)
        result = {"first": boot(Vm(disk, work, fresh=True, disk_size="4G"), out, "first", args.probe)}
        journal(Vm(disk, work, fresh=False), work, out, "first")
        if args.second:
            result["second"] = boot(Vm(disk, work, fresh=False), out, "second", args.probe)
            journal(Vm(disk, work, fresh=False), work, out, "second")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
