#!/usr/bin/env bash
# bench/export.sh - what capbox hands on, measured on the 5M-packet synthetic
# capture (large.pcap), in one run:
#
#  1. export   `capbox export large.pcap` (NetFlow v9 and IPFIX) against
#              `softflowd -r large.pcap -v 9`, all to the same nfcapd on
#              127.0.0.1:9995, whole processes timed by ptime.py in interleaved
#              rounds (medians quoted).  Then each exporter once into a fresh
#              nfcapd: flows, packets and bytes read back with nfdump, against
#              the truth file's uniflows, and capbox's v9 records flow for flow
#              against softflowd's (address pair, ports, protocol, packets).
#  2. record   `capbox record large.pcap` plain and encrypted (AES-256-GCM), to
#              tmpfs (/dev/shm: what the CPU does) and to the data disk (every
#              file fsynced), in interleaved rounds with `capbox analyze` (what
#              recording adds to).  MB/s of packet data at the median wall time,
#              and the recorder's writer thread alone (encryption and writes:
#              its own CPU time, from the recorder's counters) per core.
#
# Alone (`bash bench/export.sh`, root: nfcapd's socket buffer) it prepares the
# inputs like run.sh and puts its section into bench/RESULTS.md between the
# export markers, leaving the rest of the file as it is; run.sh calls it with
# --in-run and puts the section into the RESULTS.md it writes.
# Knobs: EXPORT_ROUNDS=5 REC_ROUNDS=3 (after a warm-up round each),
#        REC_TMPFS=/dev/shm (SKIP_DISK=1: no disk rows), and run.sh's DATA.
set -euo pipefail
IN_RUN=""
[ "${1:-}" = "--in-run" ] && IN_RUN=1
source "$(dirname "$0")/run.sh"   # settings and helpers; run.sh's main does not run

EXPORT_ROUNDS=${EXPORT_ROUNDS:-5}
REC_ROUNDS=${REC_ROUNDS:-3}
REC_TMPFS=${REC_TMPFS:-/dev/shm}
REC_SHM=$REC_TMPFS/capbox-bench-rec-$$
REC_DISK=$DATA/rec-$$
KEY=$DATA/bench-rec.key
trap 'cleanup; rm -rf "$REC_SHM" "$REC_DISK"' EXIT

export_race() {
  log "export: capbox export vs softflowd -r, to the same nfcapd"
  N_LARGE=$(truth "$LARGE" packets)
  cat "$LARGE" > /dev/null
  start_nfcapd "$OUT/nfcapd-export-timed"
  RUNS_TSV=$OUT/export-runs.tsv
  : > "$RUNS_TSV"
  for ROUND in $(seq 0 "$EXPORT_ROUNDS"); do
    one_run softflowd-v9 "softflowd -r large.pcap -n 127.0.0.1:9995 -v 9" -- softflowd -r "$LARGE" -n 127.0.0.1:9995 -v 9
    one_run capbox-v9 "capbox export large.pcap --collector 127.0.0.1:9995 --version v9" -- \
      "$CAPBOX" export "$LARGE" --collector 127.0.0.1:9995 --version v9
    one_run capbox-ipfix "capbox export large.pcap --collector 127.0.0.1:9995 --version ipfix" -- \
      "$CAPBOX" export "$LARGE" --collector 127.0.0.1:9995 --version ipfix
    echo "round $ROUND$([ "$ROUND" = 0 ] && echo ' (warm-up)'): $(awk -F'\t' -v r="$ROUND" '$2==r{printf "%s %ss  ", $1, $5}' "$RUNS_TSV")"
  done
  stop_nfcapd
  rm -rf "$OUT/nfcapd-export-timed"
  printf 'key\tlabel\truns\twall_min\twall_med\twall_max\tcpu_med\tpeak_rss_mib_med\tpps_med\texit_codes\n' > "$OUT/export-summary.tsv"
  summarize_rounds "$RUNS_TSV" "$OUT/export-summary.tsv"
  RUNS_TSV=""
  cut -f1,3-10 "$OUT/export-summary.tsv"

  log "export: what nfcapd holds"
  printf 'exporter\tflows\tpackets\tbytes\trecords\tdropped\tskipped\n' > "$OUT/export-checks.tsv"
  local x
  for x in softflowd-v9 capbox-v9 capbox-ipfix capbox-v5; do
    start_nfcapd "$OUT/nfcapd-$x"
    local rec="" drop="" skip=""
    case $x in
      softflowd-v9) softflowd -r "$LARGE" -n 127.0.0.1:9995 -v 9 > "$OUT/$x.out" 2>&1 ;;
      *) "$CAPBOX" export "$LARGE" --collector 127.0.0.1:9995 --version "${x#capbox-}" --json > "$OUT/$x.json"
         read -r rec drop skip <<<"$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["exporters"][0]; print(e["records"], e["records_dropped"], e["records_skipped"])' "$OUT/$x.json")" ;;
    esac
    sleep 2   # the last datagrams reach the collector
    stop_nfcapd
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$x" "$(nf_field "$OUT/nfcapd-$x" Flows)" "$(nf_field "$OUT/nfcapd-$x" Packets)" \
      "$(nf_field "$OUT/nfcapd-$x" Bytes)" "${rec:--}" "${drop:--}" "${skip:--}" >> "$OUT/export-checks.tsv"
  done
  # capbox's v9 records against softflowd's, flow for flow
  python3 - "$OUT/nfcapd-softflowd-v9" "$OUT/nfcapd-capbox-v9" > "$OUT/export-perflow.tsv" <<'EOF'
import collections, csv, subprocess, sys
def uniflows(d):
    out = subprocess.run(["nfdump", "-R", d, "-o", "csv", "-q"], capture_output=True, text=True, check=True).stdout
    c = collections.Counter()
    for f in csv.reader(out.splitlines()):
        if len(f) < 13 or not f[11].strip().isdigit():
            continue
        icmp = f[7].strip() in ("ICMP", "ICMP6")
        c[(f[3].strip(), f[4].strip(), "" if icmp else f[5], "" if icmp else f[6], f[7].strip(), int(f[11]))] += 1
    return c
a, b = uniflows(sys.argv[1]), uniflows(sys.argv[2])
print(f"softflowd\t{sum(a.values())}\ncapbox\t{sum(b.values())}\nin_both\t{sum((a & b).values())}")
EOF
  for x in softflowd-v9 capbox-v9 capbox-ipfix capbox-v5; do rm -rf "$OUT/nfcapd-$x"; done
  cat "$OUT/export-checks.tsv" "$OUT/export-perflow.tsv"
}

recording() {
  log "recording: capbox record large.pcap, plain and encrypted, tmpfs and disk"
  N_LARGE=$(truth "$LARGE" packets)
  [ -s "$KEY" ] || { head -c 32 /dev/urandom > "$KEY"; chmod 600 "$KEY"; }
  mkdir -p "$REC_SHM" "$REC_DISK"
  local need=$(( $(stat -c %s "$LARGE") * 11 / 10 ))
  [ "$(df --output=avail -B1 "$REC_TMPFS" | tail -1)" -gt "$need" ] || die "not enough room in $REC_TMPFS"
  cat "$LARGE" > /dev/null
  RUNS_TSV=$OUT/record-runs.tsv
  : > "$RUNS_TSV"
  rm -f "$OUT"/record-*.log
  local where dir
  for ROUND in $(seq 0 "$REC_ROUNDS"); do
    one_run analyze "capbox analyze --json large.pcap (no recording)" -- "$CAPBOX" analyze --json "$LARGE"
    for where in tmpfs disk; do
      [ "$where" = disk ] && [ -n "${SKIP_DISK:-}" ] && continue
      dir=$REC_SHM; [ "$where" = disk ] && dir=$REC_DISK
      rm -f "$dir"/*; sync
      one_run "record-$where" "capbox record large.pcap --dir $where" -- \
        "$CAPBOX" record "$LARGE" --dir "$dir" --rotate-mb 1024 --json
      rm -f "$dir"/*; sync
      one_run "record-$where-enc" "capbox record large.pcap --dir $where --key-file KEY" -- \
        "$CAPBOX" record "$LARGE" --dir "$dir" --rotate-mb 1024 --key-file "$KEY" --json
    done
    rm -f "$REC_SHM"/* "$REC_DISK"/*
    echo "round $ROUND$([ "$ROUND" = 0 ] && echo ' (warm-up)'): $(awk -F'\t' -v r="$ROUND" '$2==r{printf "%s %ss  ", $1, $5}' "$RUNS_TSV")"
  done
  printf 'key\tlabel\truns\twall_min\twall_med\twall_max\tcpu_med\tpeak_rss_mib_med\tpps_med\texit_codes\n' > "$OUT/record-summary.tsv"
  summarize_rounds "$RUNS_TSV" "$OUT/record-summary.tsv"
  RUNS_TSV=""
  cut -f1,3-10 "$OUT/record-summary.tsv"
}

write_section() {
  python3 - "$OUT" "$LARGE.truth.json" > "$OUT/export-section.md" <<'EOF'
import csv, json, os, statistics, sys
out, truth = sys.argv[1], json.load(open(sys.argv[2]))
def tsv(name):
    p = os.path.join(out, name)
    return list(csv.DictReader(open(p), delimiter="\t")) if os.path.exists(p) else []
cols = ["key", "label", "runs", "wall_min", "wall_med", "wall_max", "cpu_med", "rss", "pps", "codes"]
def summary(name):
    rows = [dict(zip(cols, r)) for r in csv.reader(open(os.path.join(out, name)), delimiter="\t")][1:]
    return {r["key"]: r for r in rows}
def docs(path):
    """The JSON documents a command printed, one per run (ptime appends them to its log)."""
    text, dec, i, found = open(path).read(), json.JSONDecoder(), 0, []
    while True:
        i = text.find("{", i)
        if i < 0:
            return found
        try:
            d, j = dec.raw_decode(text, i)
            found.append(d)
            i = j
        except ValueError:
            i += 1
def ok(flag):
    return "**met**" if flag else "**not met**"
L = []
w = L.append
n, uni = truth["packets"], truth["uniflows"]
w("<!-- export: begin (bench/export.sh) -->")
w("## Flow export and recording (`bench/export.sh`)")
w("")
ex = summary("export-summary.tsv")
w(f"large.pcap: {n:,} packets, {truth['flows']:,} flows, {uni:,} uniflows (conversation directions with packets), "
  f"{truth['bytes_frames'] / 1e9:.2f} GB of frames. Whole processes timed by `ptime.py` in interleaved rounds "
  "(after a warm-up round), medians quoted; every exporter sends to the same nfcapd on 127.0.0.1:9995.")
w("")
w("| command | runs | wall s min / med / max | CPU s (med) | peak RSS MiB | packets/s (at median wall) |")
w("|---|---:|---|---:|---:|---:|")
for k in ("softflowd-v9", "capbox-v9", "capbox-ipfix"):
    r = ex.get(k)
    if r:
        bad = "" if r["codes"] == "[0]" else f" **exit codes {r['codes']}**"
        w(f"| `{r['label']}`{bad} | {r['runs']} | {r['wall_min']} / {r['wall_med']} / {r['wall_max']} | {r['cpu_med']} | "
          f"{float(r['rss']):.1f} | {int(float(r['pps'])):,} |")
w("")
checks = {c["exporter"]: c for c in tsv("export-checks.tsv")}
w("What nfcapd holds, each exporter once into a fresh nfcapd (`nfdump -I`); capbox's own counters beside:")
w("")
w("| exporter | flows (records) | expected | packets | bytes | capbox: records sent / dropped / not exportable | result |")
w("|---|---:|---:|---:|---:|---|---|")
results = {}
for k, c in checks.items():
    want = uni - int(c["skipped"]) if k == "capbox-v5" else uni
    good = c["flows"] == str(want) and (c["dropped"] in ("-", "0"))
    if k != "capbox-v5":
        good = good and c["packets"] == str(n)
    results[k] = good
    note = "-" if c["records"] == "-" else f"{int(c['records']):,} / {c['dropped']} / {int(c['skipped']):,}"
    w(f"| {k} | {int(c['flows']):,} | {want:,} | {int(c['packets']):,} | {int(c['bytes']):,} | {note} | "
      f"{'pass' if good else 'FAIL'} |")
w("")
pf = {r[0]: int(r[1]) for r in csv.reader(open(os.path.join(out, "export-perflow.tsv")), delimiter="\t")} \
    if os.path.exists(os.path.join(out, "export-perflow.tsv")) else {}
perflow_ok = bool(pf) and pf["in_both"] == pf["softflowd"] == pf["capbox"]
if pf:
    w(f"Flow for flow (address pair, ports, protocol, packets), capbox v9 against softflowd v9: {pf['in_both']:,} of "
      f"{pf['capbox']:,} capbox records are also softflowd's ({pf['softflowd']:,}): {'pass' if perflow_ok else 'FAIL'}. "
      "Bytes differ by design: softflowd counts IP bytes, capbox frame bytes (what `capbox flows` reports); "
      "NetFlow v5 carries no IPv6, so those directions are counted as not exportable.")
    w("")
rec = summary("record-summary.tsv") if os.path.exists(os.path.join(out, "record-summary.tsv")) else {}
rates = {}
if rec:
    base = rec.get("analyze")
    w("Recording: `capbox record large.pcap --rotate-mb 1024` (every packet; a file per GB, fsynced when closed), to "
      "tmpfs and to the data disk, plain pcapng and AES-256-GCM (`--key-file`), in interleaved rounds with "
      "`capbox analyze` (what the recording adds to). MB = 10^6 bytes of packet data; the writer thread (encryption, "
      "write(2), fsync) reports its own CPU time, so its rate is per core.")
    w("")
    w("| command | runs | wall s min / med / max | CPU s (med) | packet data MB/s (median wall) | writer thread CPU s (med) | writer MB/s per core |")
    w("|---|---:|---|---:|---:|---:|---:|")
    if base:
        w(f"| `{base['label']}` | {base['runs']} | {base['wall_min']} / {base['wall_med']} / {base['wall_max']} | "
          f"{base['cpu_med']} | {truth['bytes_frames'] / 1e6 / float(base['wall_med']):,.0f} | - | - |")
    for k in ("record-tmpfs", "record-tmpfs-enc", "record-disk", "record-disk-enc"):
        r = rec.get(k)
        if not r:
            continue
        runs = docs(os.path.join(out, f"{k}.log"))[1:]  # the warm-up's first
        data = [d["recording"]["bytes"] for d in runs] or [truth["bytes_frames"]]
        cpu = statistics.median(d["recording"]["writer_cpu_s"] for d in runs) if runs else float("nan")
        mb = statistics.median(data) / 1e6
        rates[k] = (mb / float(r["wall_med"]), mb / cpu if cpu else 0)
        bad = "" if r["codes"] == "[0]" else f" **exit codes {r['codes']}**"
        w(f"| `{r['label']}`{bad} | {r['runs']} | {r['wall_min']} / {r['wall_med']} / {r['wall_max']} | {r['cpu_med']} | "
          f"{rates[k][0]:,.0f} | {cpu:.2f} | {rates[k][1]:,.0f} |")
    w("")
load = {r["section"]: r for r in tsv("load.tsv")}
if load:
    w("Other processes' CPU while this ran (machine busy minus this benchmark's own processes; the machine is "
      "shared): " + "; ".join(f"{k} {r['other_cpu_s']} CPU s in {r['wall_s']} s ({r['other_pct']} % of the machine)"
                              for k, r in load.items()) + ".")
    w("")
w("Targets:")
w("")
sf, cb = ex.get("softflowd-v9"), ex.get("capbox-v9")
if sf and cb:
    faster = float(cb["wall_med"]) < float(sf["wall_med"])
    equal = results.get("capbox-v9") and results.get("softflowd-v9") and perflow_ok
    w(f"- **`capbox export` faster than `softflowd -r`, with equal flow totals** (v9, same nfcapd): "
      f"{cb['wall_med']} s vs {sf['wall_med']} s median wall, {float(sf['wall_med']) / float(cb['wall_med']):.2f}× "
      f"(CPU {cb['cpu_med']} vs {sf['cpu_med']} s); flows {checks.get('capbox-v9', {}).get('flows', '-')} vs "
      f"{checks.get('softflowd-v9', {}).get('flows', '-')} (truth {uni}), the same flow for flow: {ok(faster and equal)}.")
if "record-tmpfs-enc" in rates:
    per_core = rates["record-tmpfs-enc"][1]
    w(f"- **recording + encryption above 1 GB/s of packet data on one core**: the writer thread encrypts and writes "
      f"{per_core:,.0f} MB/s per core (to tmpfs): {ok(per_core > 1000)}. End to end, the whole process (reading the "
      f"file, parsing, metering, copying into the recorder on the capture thread; encrypting and writing on the writer "
      f"thread) moved {rates['record-tmpfs-enc'][0]:,.0f} MB/s encrypted and {rates['record-tmpfs'][0]:,.0f} MB/s plain "
      "(two threads on this 2-core machine, so other load shows in it)"
      + (f". To this machine's disk, with fsync: {rates['record-disk-enc'][0]:,.0f} MB/s end to end "
         f"(plain {rates['record-disk'][0]:,.0f}): the disk's rate, not the CPU's." if "record-disk-enc" in rates else "."))
w("<!-- export: end -->")
print("\n".join(L))
EOF
  cat "$OUT/export-section.md"
}

put_section() { # the section into RESULTS.md: replaces an earlier one, or goes at the end
  python3 - "$RESULTS" "$OUT/export-section.md" <<'EOF'
import re, sys
path, section = sys.argv[1], open(sys.argv[2]).read().strip()
text = open(path).read()
pat = re.compile(r"<!-- export: begin.*?<!-- export: end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text.rstrip("\n") + "\n")
EOF
  echo "section written into $RESULTS (raw: $OUT)"
}

export_main() {
  cd "$REPO"
  if [ -z "$IN_RUN" ]; then
    need_tools
    prepare
    describe_machine
    wait_idle
  fi
  if [ -z "$IN_RUN" ]; then   # run.sh accounts for the whole section itself
    printf 'section\twall_s\tother_cpu_s\tother_pct\n' > "$OUT/load.tsv"
    load_mark; export_race; load_note export
    load_mark; recording; load_note record
  else
    export_race
    recording
  fi
  write_section
  [ -n "$IN_RUN" ] || put_section
}

export_main
