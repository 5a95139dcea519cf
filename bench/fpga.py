"""bench/fpga.py - capture throughput of the fpga backend (the driver, fed by
fpga-sim in another process) next to pcapfile, on the same capture file.

Each round runs both, interleaved: a Session to the end of the input with
what `capbox analyze` uses (no idle or active timeout, 4M flows), timed in
this process (wall, and CPU of this process: the host's side).  The card
model's CPU is read from /proc for its own process.  Writes one TSV row per
run and prints a summary; the packets and flows of every run must equal the
generator's truth file.

usage: fpga.py CAPTURE DEVICE SIM_PID ROUNDS OUT.tsv"""
import json
import os
import resource
import sys
import time

from hwdrivers import CaptureConfig, RunResult, Session

TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (user nice system irq softirq)."""
    with open("/proc/stat") as f:
        v = f.readline().split()[1:]
    return (int(v[0]) + int(v[1]) + int(v[2]) + int(v[5]) + int(v[6])) / TICKS


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one(backend: str, source: str, sim_pid: int) -> dict:
    cfg = CaptureConfig(source=source, backend=backend, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 22)
    sim0 = proc_cpu(sim_pid) if backend == "fpga" else 0.0
    m0, c0, t0 = machine_busy(), self_cpu(), time.perf_counter()
    with Session(cfg) as s:
        while s.run(timeout_ms=1000) != RunResult.EOF:
            pass
        wall = time.perf_counter() - t0
        c = s.counters()
    cpu = self_cpu() - c0
    sim_cpu = (proc_cpu(sim_pid) - sim0) if backend == "fpga" else 0.0
    # what other processes took meanwhile: on a shared 2-core machine it skews the row
    other = max(0.0, machine_busy() - m0 - cpu - sim_cpu)
    return {"backend": backend, "wall": wall, "cpu": cpu, "sim_cpu": sim_cpu, "other": other,
            "packets": c.packets, "flows": c.flows_created, "bytes": c.bytes}


def main() -> int:
    capture, device, sim_pid, rounds, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    truth = json.load(open(capture + ".truth.json"))
    with open(out, "w") as f:
        f.write("round\tbackend\twall_s\tcpu_s\tsim_cpu_s\tother_cpu_s\tpackets\tflows\tbytes\tpps\n")
        for r in range(rounds + 1):                 # round 0 warms up
            for backend, source in (("pcapfile", capture), ("fpga", device)):
                x = one(backend, source, sim_pid)
                ok = (x["packets"], x["flows"]) == (truth["packets"], truth["flows"])
                if not ok:
                    print(f"{backend}: {x['packets']} packets, {x['flows']} flows; truth {truth['packets']}, "
                          f"{truth['flows']}", file=sys.stderr)
                    return 1
                pps = x["packets"] / x["wall"]
                f.write(f"{r}\t{backend}\t{x['wall']:.3f}\t{x['cpu']:.3f}\t{x['sim_cpu']:.3f}\t{x['other']:.2f}\t{x['packets']}\t"
                        f"{x['flows']}\t{x['bytes']}\t{pps:.0f}\n")
                print(f"round {r} {backend:<8} {x['wall']:.3f} s  {pps:,.0f} packets/s  cpu {x['cpu']:.2f} s"
                      + (f"  card model cpu {x['sim_cpu']:.2f} s" if backend == "fpga" else "")
                      + f"  other processes {x['other']:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
