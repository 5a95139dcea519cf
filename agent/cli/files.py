"""The commands that work on a capture file, as tcpdump, softflowd and nfdump
users expect: analyze, flows, export, record, decrypt.  Each takes the file
as FILE or -r FILE, and a BPF expression after it (or --bpf)."""
import csv
import json
import os
import socket
import sys

from agent import report
from agent.cli.common import (add_capture_file, fail, human_bytes, load_config, num, plural, positive, print_json,
                              progress, seconds_or_never)
from hwdrivers import CaptureError, ExporterConfig, RecordConfig

FLOW_COLUMNS = ["src", "dst", "sport", "dport", "proto", "vlan", "packets", "bytes", "first", "last",
                "rtt_ms", "retransmissions", "packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev",
                "duration_s", "out_of_order", "state", "app", "end", "vlan_inner", "tunnel", "tunnel_src",
                "tunnel_dst", "tunnel_id", "tunnel_id_rev"]


def open_private(path: str):
    """A file only its owner reads (0600), as everything capbox writes, even over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _print_report(r: dict) -> None:
    pct = (lambda part: f"{100 * part / r['packets']:.1f}%") if r["packets"] else (lambda part: "-")
    print(f"file        {r['file']} (link {r['link']})")
    print(f"packets     {num(r['packets'])}   bytes {num(r['bytes'])} ({human_bytes(r['bytes'])})"
          f"   duration {r['duration_s']:.3f} s")
    if r["avg_pps"]:
        print(f"rate        {r['avg_pps']:,.1f} packets/s   {human_bytes(r['avg_bps'] / 8)}/s")
    fp = r["flows_by_proto"]
    print(f"flows       {num(r['flows'])}   (tcp {num(fp['tcp'])}, udp {num(fp['udp'])}, "
          f"icmp {num(fp['icmp'])}, other {num(fp['other'])})"
          + (f"   evicted {num(r['flows_evicted'])}" if r["flows_evicted"] else ""))
    for key in ("malformed", "truncated"):
        reasons = ", ".join(f"{k} {num(v)}" for k, v in r[key]["by_reason"].items())
        print(f"{key:<11} {num(r[key]['total'])}" + (f"   ({reasons})" if reasons else ""))
    if r.get("backend"):
        print(f"capture     {r['backend']}: {num(r['received'])} received by the kernel, "
              f"{num(r['dropped'])} dropped")
    if r["filtered_out"]:
        print(f"filtered    {num(r['filtered_out'])} packets did not match the filter")
    for title, mix in (("layers", r["protocols"]["layers"]), ("apps", r["protocols"]["applications"])):
        items = sorted(mix.items(), key=lambda kv: -kv[1]["packets"])
        print(f"{title:<11} " + ", ".join(f"{k} {pct(v['packets'])}" for k, v in items))
    if r["top_talkers"]:
        print("top talkers")
        print(f"  {'address':<40} {'bytes':>14} {'packets':>10} {'flows':>8}")
        for h in r["top_talkers"]:
            print(f"  {h['addr']:<40} {num(h['bytes']):>14} {num(h['packets']):>10} {num(h['flows']):>8}")


def emit_report(r: dict, as_json: bool) -> int:
    err = r["error"]
    if err and r["packets"] == 0:
        return fail(err["message"])
    if as_json:
        print_json(r)
    else:
        _print_report(r)
    if err:
        return fail(f"{err['message']} (the report covers what was read before)")
    return 0


def cmd_analyze(args) -> int:
    opts = report.Options(bpf=args.bpf, top=args.top, idle_timeout_s=args.idle_timeout,
                          window_s=args.window if args.windows else 0)
    try:
        with progress(args.file) as show:
            r = report.analyze(args.file, opts, progress=show)
    except CaptureError as e:
        return fail(e.message)
    rc = emit_report(r, args.json)
    if args.windows and not args.json and r["packets"]:
        print()
        _print_windows(r["windows"])
    return rc


def _print_windows(windows: list) -> None:
    print(f"{'window':>6} {'start':>17} {'packets':>9} {'bytes':>12} {'Mbit/s':>8} {'pps':>9} {'new conn':>8} "
          f"{'p95 rtt ms':>10} {'top source':<20}")
    for w in windows:
        top = w["bandwidth"]["top_src_bytes"]
        rtt = w["latency"]["p95_rtt"]
        print(f"{w['window_id']:>6} {w['window_start']:>17.3f} {w['record_count']:>9,} {w['bandwidth']['bytes']:>12,} "
              f"{w['bandwidth']['avg_bps'] / 1e6:>8.3f} {w['bandwidth']['avg_pps']:>9.1f} {w['connections']['total']:>8,} "
              f"{'-' if rtt is None else f'{rtt:.1f}':>10} {top[0]['host'] if top else '-':<20}")


def cmd_flows(args) -> int:
    opts = report.Options(bpf=args.bpf, idle_timeout_s=args.idle_timeout)
    fmt = "json" if args.json else args.format
    errors = []
    try:
        out = open(args.write, "w", newline="") if args.write else sys.stdout
    except OSError as e:
        return fail(f"cannot write {args.write}: {e.strerror}")
    writer = csv.DictWriter(out, fieldnames=FLOW_COLUMNS, lineterminator="\n")
    if fmt == "csv":
        writer.writeheader()
    count = 0
    try:
        with progress(args.file) as show:
            for rec in report.flows(args.file, opts, errors, progress=show):
                row = rec.as_dict()
                row = {k: row[k] for k in FLOW_COLUMNS}
                if fmt == "csv":
                    row["first"] = f"{row['first']:.6f}"
                    row["last"] = f"{row['last']:.6f}"
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row) + "\n")
                count += 1
    except CaptureError as e:
        return fail(e.message)
    finally:
        if out is not sys.stdout:
            out.close()
    if args.write:
        print(f"{plural(count, 'flow')} written to {args.write}", file=sys.stderr)
    if errors:
        return fail(f"{errors[0].message} (the flows above were read before it)")
    return 0


def collector_address(value: str, default_port: int = 9995) -> tuple:
    """HOST:PORT, [V6]:PORT or HOST as (numeric address, port); names are resolved."""
    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{value!r} is not HOST:PORT")
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        port = int(port)
    except ValueError:
        raise ValueError(f"port {port!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise ValueError(f"cannot resolve {host!r}: {e.strerror}") from None
    return infos[0][4][0], port


def cmd_export(args) -> int:
    collectors = []
    for value in args.collector:
        try:
            host, port = collector_address(value)
        except ValueError as e:
            return fail(f"--collector {e}")
        collectors.append(ExporterConfig(host=host, port=port, version=args.version, transport=args.transport,
                                         biflow=args.biflow, observation_domain=args.observation_domain,
                                         mtu=args.mtu))
    opts = report.Options(bpf=args.bpf, idle_timeout_s=args.idle_timeout)
    xopts = report.ExportOptions(active_timeout_s=args.active_timeout, sample_rate=args.sample)
    try:
        with progress(args.file) as show:
            r = report.export(args.file, collectors, opts, xopts, progress=show)
    except CaptureError as e:
        return fail(e.message)
    if args.json:
        print_json(r)
    else:
        for e in r["exporters"]:
            extra = ""
            if e["records_dropped"] or e["records_skipped"]:
                extra = f", {num(e['records_dropped'])} dropped, {num(e['records_skipped'])} not exportable in {e['version']}"
            print(f"{e['host']}:{e['port']} {e['version']}/{e['transport']}: {plural(e['flows'], 'flow')} as "
                  f"{plural(e['records'], 'record')} in {plural(e['messages'], 'message')} ({human_bytes(e['bytes'])})"
                  + extra)
    if r["error"]:
        return fail(f"{r['error']['message']} (the flows before it were exported)")
    if any(e["records_dropped"] or e["send_errors"] for e in r["exporters"]):
        errs = "; ".join(f"{e['host']}:{e['port']}: {e['last_error']}" for e in r["exporters"] if e["last_error"])
        return fail(f"some records were not delivered ({errs or 'socket full'})")
    if not any(e["records"] for e in r["exporters"]):
        skipped = sum(e["records_skipped"] for e in r["exporters"])
        why = f" ({plural(skipped, 'flow')} not exportable in {args.version})" if skipped else ""
        return fail(f"nothing was exported: no flow record reached any collector{why}")
    return 0


def cmd_record(args) -> int:
    from agent.recordings import keys
    from agent.recordings.keys import KeyFileError
    if args.interface:
        args.source = args.interface
    elif args.read:
        args.source = args.read
    elif args.words:
        args.source = args.words.pop(0)
    else:
        return fail("give what to record: FILE, -r FILE or -i INTERFACE", 2)
    if args.words and args.bpf:
        return fail("give the filter once: --bpf EXPR or an expression at the end", 2)
    args.bpf = " ".join(args.words) or args.bpf or ""
    key = None
    if args.key_file:
        try:
            key = keys.load(args.key_file)
        except KeyFileError as e:
            return fail(e.message)
    if not os.path.isdir(args.dir):
        return fail(f"no directory {args.dir}")
    rec = RecordConfig(directory=os.path.abspath(args.dir), prefix=args.prefix, bpf="",
                       if_name=os.path.basename(args.source), snaplen=args.snaplen,
                       rotate_bytes=args.rotate_mb << 20, rotate_s=args.rotate_s, keep_bytes=args.keep_mb << 20,
                       keep_s=args.keep_s, fsync=not args.no_fsync)
    opts = report.Options(bpf=args.bpf)
    live = None
    if not os.path.exists(args.source) and args.source != "-":
        live = report.LiveOptions(backend=args.backend, duration_s=args.duration, count=args.count)
    try:
        r = report.record(args.source, rec, key, opts, live)
    except CaptureError as e:
        return fail(e.message)
    if args.json:
        print_json(r)
    else:
        st = r["recording"]
        enc = f", encrypted (key id {st['key_id']})" if st["encrypted"] else ""
        print(f"recorded {num(st['packets'])} of {num(r['packets_captured'])} packets "
              f"({human_bytes(st['bytes'])}) into {plural(st['files'], 'file')} in {args.dir}{enc}"
              + (f"; {plural(st['files_deleted'], 'old file')} deleted" if st["files_deleted"] else "")
              + (f"; {num(st['dropped'])} dropped" if st["dropped"] else ""))
    if r["error"]:
        return fail(f"{r['error']['message']} (the packets before it were recorded)")
    if r["recording"]["write_errors"]:
        return fail(r["recording"]["last_error"])
    return 0


def cmd_decrypt(args) -> int:
    from agent.recordings import crypt, keys
    if args.input != "-" and args.output != "-" and os.path.exists(args.output) \
            and os.path.samefile(args.input, args.output):
        return fail("the output would overwrite the input")
    try:
        with open(args.input, "rb") as f:
            header = crypt.read_header(f)
    except OSError as e:
        return fail(f"cannot read {args.input}: {e.strerror}")
    except crypt.FormatError as e:
        return fail(f"{args.input}: {e.message}")
    try:
        if args.key_file:
            key = keys.load(args.key_file)
        else:
            cfg = load_config(args)
            key = keys.find(cfg.data_dir, header.key_id)
            if key is None:
                return fail(f"no key with id {header.key_id} in {keys.key_dir(cfg.data_dir)}; give --key-file")
    except keys.KeyFileError as e:
        return fail(e.message)
    if crypt.key_id(key) != header.key_id:
        return fail(f"{args.input}: the key's id {crypt.key_id(key)} is not the file's {header.key_id}: wrong key")
    out = sys.stdout.buffer if args.output == "-" else open_private(args.output)
    try:
        result = crypt.decrypt_file(args.input, out, key)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    e = result.error
    where = "standard output" if args.output == "-" else args.output
    if args.json:
        print(json.dumps({"input": args.input, "output": where, "chunks": result.chunks, "bytes": result.bytes,
                          "key_id": header.key_id, "error": e.message if e else None}), file=sys.stderr
              if args.output == "-" else sys.stdout)
    if e is None:
        if not args.json:
            print(f"decrypted {plural(result.chunks, 'chunk')} ({human_bytes(result.bytes)}) into {where}",
                  file=sys.stderr)
        return 0
    return fail(f"{args.input}: {e.message}; {where} holds the {plural(result.chunks, 'chunk')} "
                 f"({human_bytes(result.bytes)}) before it")


def add_parsers(sub) -> None:
    a = sub.add_parser("analyze", help="summarise a capture file (tcpdump -r style: analyze -r F tcp port 443)")
    add_capture_file(a)
    a.add_argument("--json", action="store_true", help="one JSON object instead of text")
    a.add_argument("--top", type=int, default=10, metavar="N", help="top talkers to list (default 10)")
    a.add_argument("--idle-timeout", type=seconds_or_never, default=0, metavar="S",
                   help="end flows idle this long, like a flow meter (default 0: never)")
    a.add_argument("--windows", action="store_true", help="traffic windows too (a table, or 'windows' in JSON)")
    a.add_argument("--window", type=positive, default=10, metavar="S", help="window size (default 10 s)")
    a.set_defaults(func=cmd_analyze, capture_file=True)

    f = sub.add_parser("flows", help="one row per flow of a capture file (CSV, or --json lines)")
    add_capture_file(f)
    f.add_argument("--format", choices=["csv", "json"], default="csv", help="json: one flow per line (as --json)")
    f.add_argument("--json", action="store_true", help="one JSON object per flow, one per line")
    f.add_argument("-w", "--write", metavar="FILE", help="write the rows into FILE instead of standard output")
    f.add_argument("--idle-timeout", type=seconds_or_never, default=0, metavar="S",
                   help="end flows idle this long (default 0: never)")
    f.set_defaults(func=cmd_flows, capture_file=True)

    x = sub.add_parser("export", help="export the flows of a capture file to collectors (IPFIX, NetFlow v9/v5)")
    add_capture_file(x)
    x.add_argument("--collector", action="append", required=True, metavar="HOST:PORT",
                   help="a collector (repeat for several); port 9995 when left out")
    x.add_argument("--protocol", "--version", dest="version", choices=["ipfix", "v9", "v5"], default="ipfix",
                   help="ipfix (default), v9 or v5")
    x.add_argument("--transport", choices=["udp", "tcp"], default="udp", help="tcp: IPFIX only")
    x.add_argument("--biflow", action="store_true", help="IPFIX: one RFC 5103 record per conversation")
    x.add_argument("--observation-domain", type=int, default=0, metavar="N",
                   help="IPFIX observation domain / v9 source id / v5 engine id")
    x.add_argument("--sample", type=int, default=1, metavar="N", help="meter one packet in N (announced to the collector)")
    x.add_argument("--active-timeout", type=seconds_or_never, default=0, metavar="S",
                   help="report long flows every S seconds (default 0: one record per conversation)")
    x.add_argument("--idle-timeout", type=seconds_or_never, default=0, metavar="S",
                   help="end flows idle this long (default 0: never)")
    x.add_argument("--mtu", type=int, default=1400, help="UDP message size limit (default 1400)")
    x.add_argument("--json", action="store_true", help="counters of every exporter as JSON")
    x.set_defaults(func=cmd_export, capture_file=True)

    rc = sub.add_parser("record", help="record a capture file or an interface into rotating pcapng files")
    rc.add_argument("words", nargs="*", metavar="SOURCE [EXPRESSION]",
                    help="a capture file or an interface (unless -r or -i), then a BPF expression")
    rc.add_argument("-r", "--read", metavar="FILE", help="record from this capture file")
    rc.add_argument("-i", "--interface", metavar="IFACE", help="record from this interface")
    rc.add_argument("-w", "--dir", required=True, metavar="DIR", help="directory for the files")
    rc.add_argument("--prefix", default="capbox", help="file names: PREFIX-<UTC>-<seq>.pcapng[.enc]")
    rc.add_argument("--bpf", metavar="EXPR", help="only packets matching this filter are recorded (or give it last)")
    rc.add_argument("-s", "--snaplen", type=int, default=0, help="bytes kept of each packet (default 0: all)")
    rc.add_argument("--rotate-mb", type=int, default=100, metavar="MB", help="new file after MB (default 100; 0 never)")
    rc.add_argument("--rotate-s", type=int, default=0, metavar="S", help="new file after S seconds of packet time")
    rc.add_argument("--keep-mb", type=int, default=0, metavar="MB", help="delete the oldest files beyond MB in total")
    rc.add_argument("--keep-s", type=int, default=0, metavar="S", help="delete files older than S seconds")
    rc.add_argument("--key-file", metavar="FILE", help="encrypt with this AES-256 key file (32 bytes, mode 0600)")
    rc.add_argument("--no-fsync", action="store_true", help="do not fsync files as they are closed")
    rc.add_argument("--backend", default="afpacket", choices=["afpacket", "pcap"], help="interfaces")
    rc.add_argument("--duration", type=float, default=0, metavar="S", help="interfaces: stop after S seconds")
    rc.add_argument("-c", "--count", type=int, default=0, metavar="N", help="interfaces: stop after N packets")
    rc.add_argument("--json", action="store_true")
    rc.set_defaults(func=cmd_record)

    d = sub.add_parser("decrypt", help="decrypt an encrypted recording into a plain pcapng")
    d.add_argument("input", help="a .pcapng.enc recording")
    d.add_argument("output", help="the pcapng to write, mode 0600 ('-' for standard output)")
    d.add_argument("--key-file", metavar="FILE", help="the key (default: the one with the file's key id in DATA_DIR/keys)")
    d.add_argument("--config", metavar="FILE")
    d.add_argument("--data-dir", metavar="DIR")
    d.add_argument("--json", action="store_true", help="what was decrypted, as one object")
    d.set_defaults(func=cmd_decrypt)
