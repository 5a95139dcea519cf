#!/usr/bin/env bash
# bench/fpga.sh - the fpga backend through fpga-sim next to pcapfile on the
# 5M-packet capture (large.pcap), and its section of bench/RESULTS.md.
#
# fpga-sim runs as its own process (the card), fed from large.pcap; firmware
# goes in the way an operator puts it in: built, signed, trusted and loaded
# with `capbox fw`.  Then bench/fpga.py times, in interleaved rounds, a
# capture through `fpga` and one through `pcapfile` to the end of the input.
#
# Called by bench/run.sh (the section lands in its RESULTS.md), or alone:
# `bash bench/fpga.sh` replaces only the "fpga" section of bench/RESULTS.md.
# Knobs: DATA (as run.sh), FPGA_ROUNDS=5, OUT (a results directory), WAIT_IDLE=120,
# FPGA_REPORT=DIR (only rewrite the section from that run's fpga.tsv).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-${TMPDIR:-/tmp}/capbox-bench}
LARGE=$DATA/large.pcap
ROUNDS=${FPGA_ROUNDS:-5}
STANDALONE=${OUT:+no}
OUT=${OUT:-$DATA/fpga-$(date -u +%Y%m%dT%H%M%SZ)}
CAPBOX=$REPO/.venv/bin/capbox
PY=$REPO/.venv/bin/python
DEVICE=/dev/shm/capbox-fpga-bench-$$
WORK=$OUT/fpga-work
SIM_PID=""

cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null; return 0; }
trap cleanup EXIT

if [ -n "${FPGA_REPORT:-}" ]; then OUT=$FPGA_REPORT; STANDALONE=""; fi   # only rewrite the section from a run's fpga.tsv
if [ -z "${FPGA_REPORT:-}" ]; then
[ -x "$CAPBOX" ] || { echo "bench/fpga.sh: $CAPBOX missing: make build first" >&2; exit 1; }
[ -s "$LARGE" ] && [ -s "$LARGE.truth.json" ] || { echo "bench/fpga.sh: $LARGE missing: run bench/run.sh once" >&2; exit 1; }
mkdir -p "$WORK"

echo "=== fpga: fpga-sim fed from $LARGE at $DEVICE"
"$CAPBOX" fpga-sim --source "$LARGE" --device "$DEVICE" > "$WORK/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 50); do [ -e "$DEVICE" ] && grep -q "no firmware yet" "$WORK/sim.log" && break; sleep 0.1; done
head -c 1048576 /dev/urandom > "$WORK/bitstream.bin"
"$CAPBOX" fw build "$WORK/bitstream.bin" --target capbox-fpga1 --version 1.0.0 --rollback 1 -o "$WORK/fw.img"
"$CAPBOX" fw keygen -s "$WORK/vendor.key" -p "$WORK/vendor.pub" --trust --data-dir "$WORK/var" > /dev/null
"$CAPBOX" fw sign "$WORK/fw.img" -s "$WORK/vendor.key" > /dev/null
"$CAPBOX" fw load "$WORK/fw.img" --device "$DEVICE" --data-dir "$WORK/var"

# on a shared machine anything else running skews the rows: wait (up to WAIT_IDLE s) for quiet
waited=0
while :; do
  b0=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat); sleep 2; b1=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
  busy=$(( 100 * (b1 - b0) / ($(getconf CLK_TCK) * 2 * $(nproc)) ))
  [ "$busy" -lt 10 ] && break
  waited=$((waited + 2))
  [ "$waited" -ge "${WAIT_IDLE:-120}" ] && { echo "machine still $busy % busy: measuring anyway"; break; }
done

git -C "$REPO" rev-parse --short HEAD > "$OUT/fpga-rev" 2>/dev/null || echo "?" > "$OUT/fpga-rev"
"$PY" "$REPO/bench/fpga.py" "$LARGE" "$DEVICE" "$SIM_PID" "$ROUNDS" "$OUT/fpga.tsv"
fi

"$PY" - "$OUT" <<'PYEOF' > "$OUT/fpga.md"
import csv, os, statistics, sys
out = sys.argv[1]
rows = [r for r in csv.DictReader(open(os.path.join(out, "fpga.tsv")), delimiter="\t") if r["round"] != "0"]
def med(backend, key):
    return statistics.median(float(r[key]) for r in rows if r["backend"] == backend)
n = int(rows[0]["packets"])
print("## fpga backend via fpga-sim: large.pcap (5,000,000 packets, 200,000 flows)")
print()
import time
when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(os.path.join(out, "fpga.tsv"))))
rev_file = os.path.join(out, "fpga-rev")
rev = open(rev_file).read().strip() if os.path.exists(rev_file) else "?"
print(f"Measured {when} (git {rev}); raw rows in `{out}/fpga.tsv`.")
print()
print(f"`bash bench/fpga.sh`: fpga-sim (the card model) runs as its own process fed from large.pcap; firmware "
      "built, signed, trusted and loaded with `capbox fw`; then a capture to the end of the input through "
      f"each backend, in {len(rows) // 2} interleaved rounds after a warm-up (medians). Both sessions meter flows "
      "as `capbox analyze` does; packets and flows of every run equal the truth file. CPU = this process "
      "(driver + core); the card model's CPU is its own process's (on a card, the FPGA's work).")
print()
print("| backend | runs | wall s min / med / max | packets/s (at median wall) | ns/packet | host CPU s (med) | card model CPU s (med) | other processes' CPU s (max) |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
for b in ("pcapfile", "fpga"):
    walls = sorted(float(r["wall_s"]) for r in rows if r["backend"] == b)
    w = statistics.median(walls)
    model = f"{med(b, 'sim_cpu_s'):.2f}" if b == "fpga" else "-"
    print(f"| `{b}` | {len(walls)} | {walls[0]:.3f} / {w:.3f} / {walls[-1]:.3f} | {n / w:,.0f} | {w / n * 1e9:.0f} | "
          f"{med(b, 'cpu_s'):.2f} | {model} | {max(float(r['other_cpu_s']) for r in rows if r['backend'] == b):.2f} |")
print()
ratio = med("fpga", "wall_s") / med("pcapfile", "wall_s")
host = med("fpga", "cpu_s") / med("pcapfile", "cpu_s")
print(f"Through `fpga` a capture takes {ratio:.2f}× pcapfile's wall time here, with the card model spending "
      f"{med('fpga', 'sim_cpu_s'):.2f} CPU s (on a card, the FPGA's work) beside the host's, and the host "
      f"{host:.2f}× pcapfile's CPU (frames arrive in the DMA ring instead of being read from the file). "
      "Packets and flows: equal in every run.")
PYEOF
cat "$OUT/fpga.md"

if [ -z "$STANDALONE" ]; then   # alone: replace only this section of RESULTS.md
  "$PY" - "$REPO/bench/RESULTS.md" "$OUT/fpga.md" <<'PYEOF'
import re, sys
dest, section = sys.argv[1], open(sys.argv[2]).read().strip()
text = open(dest).read()
start = text.find("## fpga backend via fpga-sim")
if start >= 0:
    nxt = text.find("\n## ", start + 1)
    text = text[:start] + section + "\n" + (text[nxt:] if nxt >= 0 else "")
else:
    at = text.find("\n## Targets")
    text = (text[:at] + "\n" + section + "\n" + text[at:]) if at >= 0 else text.rstrip() + "\n\n" + section + "\n"
open(dest, "w").write(text)
PYEOF
  echo "bench/RESULTS.md: fpga section updated (raw: $OUT)"
fi
