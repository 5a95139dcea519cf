"""Protocol logs: what making them costs against `capbox analyze` (the same
captures as bench/eventpath.py), how fast the log service writes them (files
and index), and searches over a day of logs in the index.  One run each (the
machine is shared).  Usage: python bench/logs.py --data DIR --results bench/RESULTS.md"""
import argparse
import os
import pathlib
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.eventpath import cache_bytecode, packets, timed  # noqa: E402
from bench.sections import markers, write_section  # noqa: E402

TYPES = "conn,dns,http,tls,arp,ndp,dhcp"      # sip/rtp add the calls' second pass over the file: left out here
DAY = 86400.0
NAMES = [f"host{i}.example{i % 97}.org" for i in range(5000)]


def cost_rows(data: pathlib.Path, baseline: str, rounds: int, pin: list) -> tuple:
    """The table's rows and the CPU costs (%) of the logs, on the median of each command's runs: {capture:
    (this checkout's, the baseline's or None)}.  Each round runs every command once, interleaved, so a change
    in the machine's load falls on all of them alike; an untimed round first (the file in the page cache, the
    bytecode cached).  pin: a prefix such as taskset's, every command on the same core."""
    builds = [("this", str(REPO / ".venv" / "bin" / "capbox"))] + ([("before", baseline)] if baseline else [])
    rows, costs = [], {}
    empty = data / "empty.pcap"         # a capture of no packet: what each command costs only to start
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for label, path in (("DNS only (200,000 packets)", data / "dns200k.pcap"),
                        ("large.pcap (5,000,000 packets)", data / "large.pcap")):
        if not path.exists():
            rows.append(f"| {label} | | not generated (run `make bench` first) | | | | | | | | |")
            continue
        n = packets(path)
        runs = {(b, c): [] for b, _ in builds for c in ("analyze", "logs", "analyze start", "logs start")}
        records = {}
        for r in range(rounds + 1):
            for build, capbox in builds:
                for pcap, start in ((path, ""), (empty, " start")):
                    analyze = timed(pin + [capbox, "analyze", "--json", str(pcap)])[1]
                    _, cpu, out = timed(pin + [capbox, "logs", "-r", str(pcap), "--type", TYPES, "--json"])
                    records[build] = records.get(build) if start else out.count("\n")
                    if r:                   # round 0 warms up
                        runs[build, "analyze" + start].append(analyze)
                        runs[build, "logs" + start].append(cpu)
        for build, _ in builds:
            a, lg = runs[build, "analyze"], runs[build, "logs"]
            am, lm = statistics.median(a), statistics.median(lg)
            sa, sl = statistics.median(runs[build, "analyze start"]), statistics.median(runs[build, "logs start"])
            cost, cost_min = 100 * (1 - am / lm), 100 * (1 - min(a) / min(lg))
            costs.setdefault(label, []).append(cost)
            each = [100 * (1 - x / y) for x, y in zip(a, lg)]
            rows.append(f"| {label} | {build} | {records[build]:,} | {am:.2f} s ({min(a):.2f}; {n / am / 1e3:,.0f} k) "
                        f"| {lm:.2f} s ({min(lg):.2f}; {n / lm / 1e3:,.0f} k) | **{cost:.1f} %** ({cost_min:.1f} %) "
                        f"| {1e3 * sa:.0f} / {1e3 * sl:.0f} ms | {100 * (1 - (am - sa) / (lm - sl)):.1f} % "
                        f"| {1e6 * (lm - am) / records[build]:.2f} | " + ", ".join(f"{x:.0f}" for x in each)
                        + f" | {max(each) - min(each):.0f} |")
    return rows, costs


def day_of_records(n: int, start: float):
    """n records over 24 h: half dns, a third conn, the rest http and tls, 2,000 clients, 300 servers."""
    from agent.logs.records import Builder
    rng = random.Random(22)
    b = Builder()
    for i in range(n):
        ts = start + DAY * i / n
        client, server = f"10.{rng.randrange(8)}.{rng.randrange(250)}.{rng.randrange(1, 250)}", \
            f"192.0.2.{rng.randrange(1, 255)}" if rng.random() < 0.5 else f"198.51.100.{rng.randrange(1, 60)}"
        head = b.head(ts, i + 1, client, rng.randrange(1024, 65535), server, 53 if i % 2 == 0 else 443,
                      17 if i % 2 == 0 else 6)
        name = rng.choice(NAMES)
        k = i % 6
        if k in (0, 2, 4):
            head.update(trans_id=i & 0xFFFF, query=name, qtype_name="A", rcode_name="NOERROR", rtt=0.01,
                        answers=[f"203.0.113.{i % 250}"], TTLs=[300.0])
            yield "dns", head
        elif k in (1, 3):
            head.update(service="tls", duration=1.5, orig_pkts=10, resp_pkts=12, conn_state="SF", history="ShAaFf")
            yield "conn", head
        elif rng.random() < 0.5:
            head.update(method="GET", host=name, uri=f"/p/{i}", status_code=200, user_agent="bench/1.0")
            yield "http", head
        else:
            head.update(version="TLSv13", cipher="TLS_AES_128_GCM_SHA256", server_name=name,
                        ja3="e7d705a3286e19ea42f587b344ee6865")
            yield "tls", head


def indexer_cost(data: pathlib.Path, root: pathlib.Path, rounds: int) -> list:
    """The log indexer's CPU per line on the C logger's own lines of the DNS capture (made first, untimed),
    handed to its Writer (files and index) in 1 MB buffers as the log service hands them: [(type, lines, µs
    a line of each round)]."""
    from agent.logs.indexer import Settings, Writer
    from agent.logs.offline import log_text
    path = data / "dns200k.pcap"
    if not path.exists():
        return []
    made: dict = {"dns": bytearray(), "conn": bytearray()}
    log_text(str(path), tuple(made), lambda kind, lines: made[kind].extend(lines))
    out = []
    for kind, buf in made.items():
        bufs, start = [], 0
        while start < len(buf):
            end = buf.find(b"\n", start + (1 << 20))
            end = len(buf) if end < 0 else end + 1
            bufs.append(bytes(buf[start:end]))
            start = end
        each = []
        for r in range(rounds):
            writer = Writer(Settings(str(root / f"{kind}{r}"), (kind,), 64 << 20, 0, 0))
            t = time.process_time()
            for b in bufs:
                writer.lines(kind, b, 1.0)
                writer.tick(1.0)
            writer.close()
            each.append(1e6 * (time.process_time() - t) / buf.count(b"\n"))
        out.append((kind, buf.count(b"\n"), each))
    return out


def write_day(root: pathlib.Path, n: int, start: float, chunk: int = 50_000) -> tuple:
    """Through the log indexer's own writer (agent.logs.indexer.Writer: each line parsed back, the files, the
    index), as the indexer process gets them: buffers of '\n'-ended lines of one type.  (seconds, records).
    The lines are made in chunks outside the timing (making them costs more than writing them)."""
    import itertools
    import json
    from agent.logs.indexer import Settings, Writer
    writer = Writer(Settings(str(root), ("conn", "dns", "http", "tls"), 64 << 20, 0, 0))
    records = day_of_records(n, start)
    spent = 0.0
    while True:
        lines: dict = {}
        for kind, rec in itertools.islice(records, chunk):
            lines.setdefault(kind, []).append(json.dumps(rec, separators=(",", ":")))
        if not lines:
            break
        bufs = [(kind, ("\n".join(x) + "\n").encode()) for kind, x in lines.items()]
        t = time.monotonic()
        for kind, buf in bufs:
            writer.lines(kind, buf, start)
        writer.tick(time.time())
        spent += time.monotonic() - t
    t = time.monotonic()
    writer.close()
    return spent + time.monotonic() - t, n


def search_rows(root: pathlib.Path, start: float) -> list:
    from agent.logs.index import query
    from agent.logs.indexer import INDEX_FILE
    path = root / INDEX_FILE
    cases = [("dns, one client, the whole day", dict(kind="dns", host="10.3.17.42", limit=100000)),
             ("dns, q=example42 (a name substring), the whole day, first 1,000", dict(kind="dns", q="example42",
                                                                                    limit=1000)),
             ("dns, q=example42, one hour", dict(kind="dns", q="example42", since=start + 12 * 3600,
                                                 until=start + 13 * 3600, limit=100000)),
             ("http, one server, the whole day", dict(kind="http", host="198.51.100.7", limit=100000)),
             ("tls, q=a rare name, the whole day", dict(kind="tls", q="host4999.example52.org", limit=100000)),
             ("conn, one hour, everything", dict(kind="conn", since=start + 3600, until=start + 7200, limit=100000))]
    rows = []
    for label, q in cases:
        kind = q.pop("kind")
        t = time.monotonic()
        n = sum(1 for _ in query(path, kind, **q))
        rows.append(f"| {label} | {n:,} | {time.monotonic() - t:.3f} s |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/capbox-bench")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    ap.add_argument("--records", type=int, default=1_000_000, help="records in the day of logs")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each command, interleaved")
    ap.add_argument("--baseline", default="", help="another checkout's capbox (before this change), timed too")
    ap.add_argument("--cpu", default="1", help="the core every timed command runs on (taskset -c); '' for none")
    ap.add_argument("--note", default="", help="a sentence on the run's conditions (e.g. a shared machine)")
    args = ap.parse_args()
    data = pathlib.Path(args.data)
    cache_bytecode(data)
    pin = ["taskset", "-c", args.cpu] if args.cpu and shutil.which("taskset") else []
    rows, costs = cost_rows(data, args.baseline, args.rounds, pin)
    mine = [c[0] for c in costs.values()]
    met = "met" if mine and max(mine) < 15 else "not met"
    root = pathlib.Path(tempfile.mkdtemp(prefix="logs-", dir=data))
    try:
        start = 1_700_000_000.0
        indexer = indexer_cost(data, root, args.rounds)
        secs, n = write_day(root, args.records, start)
        size = sum(p.stat().st_size for p in root.iterdir())
        search = search_rows(root, start)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    begin, end = markers("logs")
    load = os.getloadavg()
    before = [c[1] for c in costs.values() if len(c) > 1]
    section = "\n".join([
        begin,
        "## Protocol logs (`bench/logs.py`)",
        "",
        f"On the 2-core machine (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; "
        "above 1, other work shared the cores): read the ratios more than the absolutes."
        + (f"  {args.note}." if args.note else ""),
        "",
        f"**Cost.** `capbox analyze --json` against `capbox logs -r FILE --type {TYPES} --json` (the C pass of "
        "analyze plus every record made and serialised).  Each command ran "
        f"{args.rounds} times, the rounds interleaved (this checkout's analyze and logs"
        + (f", then the baseline's (`{args.baseline}`)" if args.baseline else "") + ", then the next round), "
        "after one untimed round (the file in the page cache, the bytecode cached)"
        + (f", every command on core {args.cpu} (`taskset -c {args.cpu}`: both builds' commands alike, none "
           "migrating between cores mid-run)" if pin else "") + ".  "
        "CPU is user + system seconds of the whole process; each cell gives the median (the lowest; "
        "packets per CPU second of the median).  The cost is 1 - analyze's CPU / logs' CPU on the medians "
        "(on the lowest in brackets), then each round's own and their spread (highest - lowest, points).  "
        "Both commands spend the same CPU to start (Python, imports: the start column, each run on a capture of "
        "no packet, median), which dilutes the cost on a short capture: the cost without it, "
        "1 - (analyze - its start) / (logs - its start), is what the lines cost per packet on a capture of any "
        "length.",
        "",
        "| capture | build | records | analyze CPU, median (lowest; k pkt/s) | logs CPU, median (lowest; k pkt/s) "
        "| cost of the logs, median (lowest) | start, analyze / logs | cost without the start | µs CPU per record "
        "| each round's cost % | spread |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---|---:|",
        *rows,
        "",
        f"Target (issue 22): logs cost < 15 % of analyze's packets/s (judged on the median): **{met}**"
        + (f" (before: {', '.join(f'{c:.0f} %' for c in before)})" if before else "") + ".  "
        "The dns, conn, http and tls lines are made in C (`hwdrivers/src/logs.c`, `logconn.c`, `loghttp.c`, "
        "`logtls.c`: paired as the core parses the messages, no event copied to Python; conn from the expired "
        "flows' raw records) and written by Python as whole buffers, uncopied.  Earlier rounds: lines taken "
        "a megabyte at a time, the DNS pending table touched as used, no snippet copied for the logger, owner "
        "names read once, JSON text without scans or printf (a conn line 0.45 to 0.35 µs); a logger asks the "
        "packet path only for the event kinds it wants (a conn-only logger looks at no payload) and, without "
        "conn, no Python object is made per expired flow (`--type dns` on large.pcap 3.60 to 0.96 s CPU).  Then "
        "`capbox logs -r` loaded what `capbox analyze` loads and no more (0.035 s CPU of every start) and "
        "widened a pipe it writes into to 1 MB (large.pcap "
        "2,400 context switches, 580 after).  Stop 23: expired flows drained through a 4,096-record ring (3,000 "
        "page faults fewer on large.pcap), IPv6 text without a nibble loop, uid hex eight digits at a time, "
        "the DNS pairing hash a multiply a word.  Stop 24, the lines unchanged: the conn lines' community "
        "IDs made two flows at a time (a one-block SHA-1 is one chain of dependent SHA-NI rounds, 46 ns; two "
        "chains interleaved cost 24 ns a digest), round(x, 6) without libm calls (21 to 13.5 ns a time), the "
        "conn state and history without strlen (a conn line 285 to 245 ns in all, 4,096 synthetic flows "
        "through hw_logger_flows), the dns line's nearly constant fields as single runs of text, an answer's "
        "owner that points at the question's name not read again (read_name 112 M to 73 M instructions on "
        "the DNS capture), no list of flow ids for a Builder that waits for nothing; under callgrind (no "
        "SHA-NI there) `logs -r` on the DNS capture 1,395 M to 1,315 M instructions, analyze 611 M.  "
        "This round, the lines unchanged: a line's head and the conn line written at a cursor (their room "
        "taken once, each key a constant run with its comma, no bounds check a field), the community ID's "
        "base64 two digits a lookup (35 to 13 ns an id), a line's whole seconds kept from the line before (a "
        "conn line 208 to 157 ns, 4,096 synthetic flows through hw_logger_flows, the same bytes); "
        "under callgrind `logs -r` on large.pcap 5,782 M to 5,612 M instructions of hwdrivers' code, analyze "
        "4,723 M either way.  "
        "A second round, the lines unchanged: the dns line's question and the fields around its answers at "
        "a cursor, a DNS label's printable run copied 8 bytes a step, an HTTP head's record cleared as its "
        "readers need it (not all 3 KB: 62 M to 47 M instructions for 40,040 heads), a number's digits "
        "counted without a division and written four a division, a string's clean run looked for 8 bytes a step; "
        "under callgrind 5,612 M to 5,561 M.  "
        "A third round, the lines unchanged, after cachegrind's instruction-cache and branch counts and perf's "
        "annotations (instruction counts had stopped predicting CPU): no `rep stos`/`rep movs` on the log path "
        "(GCC's generic tuning made an event head's 91-byte memset, a waiting DNS query's entry with its "
        "256-byte name zeroed by a compound literal, the AA/TC/RA run's copy, the community ID pair's blocks "
        "and an HTTP head's bounded field copies rep instructions, slow to start on this CPU), the TLS test "
        "of every payload one branch-free test of its first and third bytes before the exact ones (a random "
        "first byte has SSLv2's bit one time in two), a line's ts and a conn line's duration from the integer "
        "nanoseconds where the double's rounding cannot matter, and the http table's bucket and entry of the "
        "flows ahead fetched as the expired flows' lines are made (hwint_http_ended 39 to 5 perf samples); "
        "loaded (load 2-6), 13-15 interleaved rounds: `logs -r` on large.pcap 1,089 to 1,060 ms, then 1,033 "
        "to 1,025 ms.  "
        "Tried and dropped: the logger's events made after the batch's packets, one after another (the "
        "packet path's code and theirs evicted each other from the instruction cache: 14.7 M to 13.0 M "
        "first-level misses under cachegrind, no CPU change in 21 rounds), the TLS test without any branch "
        "(90 M instructions more for 0.9 M mispredictions fewer), a prefetch of the http filter's word with "
        "the bucket's, the conn line's names from a table of 16-byte copies (no change measured); "
        "a single id through inline SHA-NI (75 ns either way: the rounds are the cost; "
        "again as two equal chains, 81 ns against OpenSSL's 73), "
        "the payload prefetched in the batch's first pass (no change), the http table's buckets grown with "
        "its flows (2-3 % slower on large.pcap: longer chains of cache-missing nodes), a TCP flow no longer "
        "asked for TLS or HTTP once its first 8 packets named neither (as Zeek's dynamic protocol detection: "
        "a Gnutella flow's TLS upgrade at its ninth packet lost its tls line), IPv6 words from a table of "
        "byte pairs (16 M instructions more), IPv6 zero runs found from a bit mask of zero words (2.7 M more).  "
        "A fourth round, the lines unchanged, from perf's samples of logs against analyze: a flush fetches each "
        "expired flow's table slot and its two talkers' host slots 8 flows ahead (the 8 MB host table's "
        "lookups had been a miss each, worse while the lines churned the caches: hosts find + remove_flow "
        "38 to 7 ms a run in `logs -r`, 30 to 6 in analyze, which gains too; a host slot's counters, in its "
        "second cache line, 11 to 4.5 ms), the conn lines made as the "
        "flows leave the table (64 staged, no copy through the flow ring to Python and back: 1 ms), a dns "
        "line's community ID made with the next one's (two SHA-1 chains; libcrypto 5.0 to 2.5 ms), the conn "
        "line's names' lengths known (no strlen), IPv6 words' hex branch-free.  A fifth round, the lines "
        "unchanged: one community ID per flow, its SHA-1 kept in the flow's table entry (20 spare bytes: still "
        "320) from its first dns, http or tls line and copied by its later lines and its conn line (the DNS "
        "capture: 130,000 SHA-1 to 30,000; logs - analyze 39 to 35 ms there, load 2), a dns line's 1-99 µs rtt "
        "written in place (a store-forwarding stall: 8.2 to 4.4 ns).  "
        "Stop 41, tried and not kept (branch `issue22q`): the lines made by a thread of the logger's own, off "
        "the capture path (the capture thread queued each DNS, HTTP and TLS message's head and payload and each "
        "expired flow, a packet batch's at once, into an 8 MB ring; the logger's thread parsed the messages again "
        "and made the same lines, byte for byte, in the same order at every run).  15 interleaved rounds on both "
        "cores (`--cpu 0,1`): the capture path's CPU (the process's less the log thread's) cost 23.1 % on the DNS "
        "capture against this main's 28.3 %, but 11.0 % on large.pcap against 6.9 %, and the whole process 38.3 % "
        "and 18.5 %: a second busy thread slowed the capture thread's own work by a fifth to a quarter on this "
        "VM's two cores (perf: the file's copy out of the page cache, the flow table and the parse alike); its "
        "thread woken once a packet batch at first (18,000 context switches on large.pcap), then once 256 KB "
        "waited (1,500).  Pinned to one core (`--cpu 1`, 10 rounds): the capture path 23.1 % and 3.1 % against "
        "26.1 % and 7.4 %, the whole process 36.6 % and 9.4 %: not < 15 % on the DNS capture either, for more "
        "CPU in all.  "
        "Output: `logs -r` writes "
        "117 MB; into a pipe (the bench, `| jq`) the kernel's copy is some 15-20 ms of perf's samples, and "
        "`> file` or `> /dev/null` cost the same within this machine's noise (4 runs each, load 3: 1.00, "
        "1.00 and 0.99 s CPU): the bench's pipe measures what a user pays.  "
        "What is left is the making of the lines, spread thin (perf): on large.pcap the conn lines (0.2 µs "
        "a line), the events' parse, pairing and lines (the http table's bucket and node misses most of a "
        "request's cost; read_name), the payload check of every packet and the packet path's misses the "
        "logger's work adds (process_batch 20-25 ms more than analyze's); on the DNS capture 0.45-0.55 µs a record "
        "(200,000 messages parsed, 100,000 pairs, 130,000 lines of 455 bytes: the head with its community ID "
        "about a third), where < 15 % needs "
        "about 0.12.  Both commands run with their bytecode cached (the bench sets `PYTHONPYCACHEPREFIX`): with "
        "`PYTHONDONTWRITEBYTECODE` set, as in this machine's shell, each start compiled some 50 modules.  arp, "
        "ndp and dhcp (rare) are still "
        "made in Python.",
        "",
        f"**Writing.** {n:,} records spread over 24 h (half dns, a third conn, http, tls) through the log "
        "indexer's writer (`agent.logs.indexer.Writer`, what the indexer process runs: what the index keeps of "
        f"each line read in C (`logindex.c`; Python parsed every line before), a "
        f"JSON-lines file per type and the SQLite block index): {secs:.1f} s, {n / secs:,.0f} records/s (the "
        f"lines made beforehand, outside the timing); {size / 1e6:,.0f} MB on disk "
        "(files and index: the index keeps each JSON line too, in blocks of up to 512 lines of one type).",
        "",
        "**The indexer's CPU per line** on the C logger's own lines of the DNS capture (`logs -r` makes them "
        "first), handed to the indexer's writer in 1 MB buffers (files and index; the process's CPU time, "
        f"{args.rounds} rounds): "
        + "; ".join(f"{kind} ({lines:,} lines) {statistics.median(each):.2f} µs median ("
                    + ", ".join(f"{x:.2f}" for x in each) + ")" for kind, lines, each in indexer)
        + ".  What the index keeps of a line (time, addresses, community ID, search text) is read in C "
        "(`hwdrivers/src/logindex.c`); Python parsed every line for it before (orjson).  Before and after, the "
        "same measure interleaved, 3 rounds at load 4-5: dns 6.5-7.4 µs against 3.2-3.7, conn 4.6-5.4 against "
        "2.4-2.8.",
        "",
        "**Search** over that day (`agent.logs.index.query`, what `GET /v1/logs/{type}` streams), each read to "
        "the end:",
        "",
        "| query | records | time |",
        "|---|---:|---:|",
        *search,
        "",
        "Target (issue 22): a log query over 24 h in under 1 s.",
        end,
        "",
    ])
    write_section(args.results, "logs", section)
    print(section)


if __name__ == "__main__":
    main()
