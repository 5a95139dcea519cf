"""The capbox command line."""
import argparse
import csv
import json
import os
import socket
import sys
import time

from agent import __version__

FLOW_COLUMNS = ["src", "dst", "sport", "dport", "proto", "vlan", "packets", "bytes", "first", "last",
                "rtt_ms", "retransmissions", "packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev",
                "duration_s", "out_of_order", "state", "app", "end"]
PROGRESS_MIN_BYTES = 32 << 20


def _fail(message: str) -> int:
    print(f"capbox: error: {message}", file=sys.stderr)
    return 1


def _progress_bar():
    """A one-line progress bar on stderr, only for a terminal."""
    start = time.monotonic()

    def show(fraction: float):
        width = 40
        done = int(fraction * width)
        sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {fraction * 100:5.1f}%  "
                         f"{time.monotonic() - start:6.1f}s")
        sys.stderr.flush()
    return show


def _num(n) -> str:
    return f"{n:,}"


def _plural(n: int, word: str) -> str:
    return f"{_num(n)} {word}{'' if n == 1 else 's'}"


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _print_report(r: dict) -> None:
    pct = (lambda part: f"{100 * part / r['packets']:.1f}%") if r["packets"] else (lambda part: "-")
    print(f"file        {r['file']} (link {r['link']})")
    print(f"packets     {_num(r['packets'])}   bytes {_num(r['bytes'])} ({_human_bytes(r['bytes'])})"
          f"   duration {r['duration_s']:.3f} s")
    if r["avg_pps"]:
        print(f"rate        {r['avg_pps']:,.1f} packets/s   {_human_bytes(r['avg_bps'] / 8)}/s")
    fp = r["flows_by_proto"]
    print(f"flows       {_num(r['flows'])}   (tcp {_num(fp['tcp'])}, udp {_num(fp['udp'])}, "
          f"icmp {_num(fp['icmp'])}, other {_num(fp['other'])})"
          + (f"   evicted {_num(r['flows_evicted'])}" if r["flows_evicted"] else ""))
    for key in ("malformed", "truncated"):
        reasons = ", ".join(f"{k} {_num(v)}" for k, v in r[key]["by_reason"].items())
        print(f"{key:<11} {_num(r[key]['total'])}" + (f"   ({reasons})" if reasons else ""))
    if r.get("backend"):
        print(f"capture     {r['backend']}: {_num(r['received'])} received by the kernel, "
              f"{_num(r['dropped'])} dropped")
    if r["filtered_out"]:
        print(f"filtered    {_num(r['filtered_out'])} packets did not match the filter")
    for title, mix in (("layers", r["protocols"]["layers"]), ("apps", r["protocols"]["applications"])):
        items = sorted(mix.items(), key=lambda kv: -kv[1]["packets"])
        print(f"{title:<11} " + ", ".join(f"{k} {pct(v['packets'])}" for k, v in items))
    if r["top_talkers"]:
        print("top talkers")
        print(f"  {'address':<40} {'bytes':>14} {'packets':>10} {'flows':>8}")
        for h in r["top_talkers"]:
            print(f"  {h['addr']:<40} {_num(h['bytes']):>14} {_num(h['packets']):>10} {_num(h['flows']):>8}")


def _print_json(r: dict) -> None:
    json.dump(r, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _emit_report(r: dict, as_json: bool) -> int:
    err = r["error"]
    if err and r["packets"] == 0:
        return _fail(err["message"])
    if as_json:
        _print_json(r)
    else:
        _print_report(r)
    if err:
        return _fail(f"{err['message']} (the report covers what was read before)")
    return 0


def cmd_analyze(args) -> int:
    from agent import report
    from hwdrivers import CaptureError
    opts = report.Options(bpf=args.bpf or "", top=args.top, idle_timeout_s=args.idle_timeout,
                          window_s=args.window if args.windows else 0)
    show = None
    if sys.stderr.isatty() and not args.json and os.path.isfile(args.file) \
            and os.path.getsize(args.file) >= PROGRESS_MIN_BYTES:
        show = _progress_bar()
    try:
        r = report.analyze(args.file, opts, progress=show)
    except CaptureError as e:
        return _fail(e.message)
    finally:
        if show:
            sys.stderr.write("\n")
    rc = _emit_report(r, args.json)
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


def _file_windows(args):
    """Windows of args.file, or (None, exit code) after a one-line error."""
    from hwdrivers import CaptureError
    from agent.analysis import windows as offline
    try:
        found, error = offline.compute(args.file, args.window, args.bpf or "", long_flow_s=args.long_lived)
    except CaptureError as e:
        return None, _fail(e.message)
    if error is not None and not found:
        return None, _fail(error.message)
    if error is not None:
        print(f"capbox: warning: {error.message} (windows cover what was read before)", file=sys.stderr)
    return found, 0


def _store(args):
    from agent.store import Store
    cfg = _load_config(args)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(cfg.db_path), cfg


def cmd_baseline(args) -> int:
    from agent.analysis import baselines
    from agent.config import ConfigError
    windows, rc = _file_windows(args)
    if windows is None:
        return rc
    learned = baselines.learn(windows)
    if not any(v.get("count") for v in learned.values()):
        return _fail(f"{args.file}: no traffic to learn from")
    try:
        store, _ = _store(args)
    except ConfigError as e:
        return _fail(f"config: {e}")
    try:
        baselines.save(store, args.name, learned, args.window, os.path.abspath(args.file), len(windows))
    finally:
        store.close()
    if args.json:
        print(json.dumps({"name": args.name, "windows": len(windows), "baselines": learned}, indent=2))
    else:
        print(f"baseline {args.name!r} learned from {len(windows)} windows of {args.window} s ({args.file})")
        for kind, stats in baselines.stats_view(learned).items():
            if kind == "protocol":
                stats = {f"{name} share": round(v, 3) for name, v in stats["distribution"]["l4"].items()}
            print(f"  {kind:<11} " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    return 0


def cmd_anomalies(args) -> int:
    from agent.analysis import anomalies, baselines, export
    from agent.config import ConfigError
    baseline = {}
    try:
        cfg = _load_config(args)
    except ConfigError as e:
        return _fail(f"config: {e}")
    if args.baseline:
        store, cfg = _store(args)
        try:
            baseline = baselines.load(store, args.baseline)
        finally:
            store.close()
        if not baseline:
            return _fail(f"no baseline {args.baseline!r} in {cfg.db_path} (capbox baseline FILE --name {args.baseline})")
    windows, rc = _file_windows(args)
    if windows is None:
        return rc
    found = anomalies.detect_all(windows, cfg.analysis, baseline)
    if args.format in ("csv", "jsonl"):
        sys.stdout.write(export.render(found, args.format, "anomalies"))
    elif args.format == "json":
        print(json.dumps({"file": args.file, "windows": len(windows), "baseline": args.baseline or None,
                          "anomaly_count": len(found), "summary": anomalies.summarize(found), "anomalies": found},
                         indent=2))
    else:
        print(f"{len(found)} anomalies in {len(windows)} windows of {args.window} s"
              + (f" against baseline {args.baseline!r}" if args.baseline else ""))
        for a in found:
            print(f"  window {a['window_id']:>4}  {a['severity']:<6} {a['type']:<16} {a['message']}")
    return 0


def cmd_capture(args) -> int:
    from agent import report
    from hwdrivers import CaptureError
    opts = report.Options(bpf=args.bpf or "", top=args.top, idle_timeout_s=args.idle_timeout)
    live = report.LiveOptions(backend=args.backend, snaplen=args.snaplen, buffer_size_mb=args.buffer_mb,
                              promisc=not args.no_promisc, fanout_group=args.fanout_group,
                              duration_s=args.duration, count=args.count)
    try:
        r = report.capture(args.iface, opts, live)
    except CaptureError as e:
        return _fail(e.message)
    return _emit_report(r, args.json)


def cmd_flows(args) -> int:
    from agent import report
    from hwdrivers import CaptureError
    opts = report.Options(bpf=args.bpf or "", idle_timeout_s=args.idle_timeout)
    errors = []
    out = sys.stdout
    writer = None
    count = 0
    try:
        for rec in report.flows(args.file, opts, errors):
            row = rec.as_dict()
            row = {k: row[k] for k in FLOW_COLUMNS}
            if args.format == "csv":
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=FLOW_COLUMNS, lineterminator="\n")
                    writer.writeheader()
                row["first"] = f"{row['first']:.6f}"
                row["last"] = f"{row['last']:.6f}"
                writer.writerow(row)
            else:
                out.write(("[\n" if count == 0 else ",\n") + json.dumps(row))
            count += 1
    except CaptureError as e:
        return _fail(e.message)
    except BrokenPipeError:
        return 0
    if args.format == "csv" and writer is None:
        csv.writer(out, lineterminator="\n").writerow(FLOW_COLUMNS)
    if args.format == "json":
        out.write("[]\n" if count == 0 else "\n]\n")
    if errors:
        return _fail(f"{errors[0].message} (the flows above were read before it)")
    return 0


def cmd_detect(args) -> int:
    from hwdrivers import CaptureError
    from agent.config import ConfigError
    from agent.detectors.offline import detect_file
    try:
        cfg = _load_config(args)
    except ConfigError as e:
        return _fail(f"config: {e}")
    try:
        found, error, detectors = detect_file(args.file, cfg.detection, args.bpf or "")
    except CaptureError as e:
        return _fail(e.message)
    keys = ("type", "severity", "confidence", "src", "dst", "protocol", "description", "evidence", "first_seen",
            "attacker", "attacker_mac", "score")
    for d in found:
        row = {k: getattr(d, k) for k in keys}
        if args.json:
            try:
                print(json.dumps(row, default=str))
            except BrokenPipeError:
                return 0
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.first_seen))
            who = d.attacker + (f" ({d.attacker_mac})" if d.attacker_mac and d.attacker_mac != d.attacker else "")
            print(f"{when}  {d.severity:<8} {d.confidence:.2f} {d.type:<13} {d.protocol:<4} {who} -> {d.dst}")
            print(f"    {d.description}")
    if not args.json:
        counts = ", ".join(f"{d.name} {d.counts['raised']}" for d in detectors)
        print(f"{len(found)} threats ({counts})", file=sys.stderr)
    if error is not None:
        return _fail(f"{error.message} (the threats above were found before it)")
    return 0


def _verifier(args):
    from agent.config import ConfigError
    from agent.verify.verifier import Verifier
    over = {}
    if getattr(args, "resolver", None):
        over["verify"] = {"resolvers": args.resolver}
    if getattr(args, "proxy", None):
        over.setdefault("verify", {})["http_proxies"] = args.proxy
    if getattr(args, "socks", None):
        over.setdefault("verify", {})["socks_proxies"] = args.socks
    try:
        cfg = _load_config(args, over)
    except ConfigError as e:
        raise SystemExit(_fail(f"config: {e}"))
    return Verifier(cfg.verify), cfg


def _print_verdict(r: dict, what: str) -> None:
    print(f"{what}: {'ATTACK DETECTED' if r['attack_detected'] else 'no attack detected'}")
    print(f"confidence  {r['confidence']} ({r['consensus_percentage']:g}% of {r['paths_succeeded']} answering paths agree;"
          f" {r['paths_checked']} checked, {r['verification_duration_ms']} ms)")
    if "consensus_ips" in r:
        print(f"consensus   {', '.join(r['consensus_ips']) or '(no records)'}")
        if r.get("local_ips") is not None:
            print(f"local       {', '.join(r['local_ips']) or '(no records)'}  [{r['local_source']}]")
    elif r.get("consensus"):
        c = r["consensus"]
        print(f"consensus   status {c['status_code']}, {c['content_length']} bytes, sha256 {c['content_hash'][:16]}")
    for p in r["path_results"]:
        mark = "ok " if p.get("agreed_with_consensus") else "!! " if p["status"] == "success" else "-- "
        value = ", ".join(p.get("ips", [])) if "ips" in p else p.get("status_code", "")
        print(f"  {mark}{p['path_id']:<48} {p['status']:<8} {p['latency_ms']:>8.1f} ms  {value}{p.get('error') or ''}")
    for d in r.get("differences", []):
        print(f"  difference  {d['path']}: {d['field']} {d['local_value']!r} (consensus {d['consensus_value']!r})")
    for line in r["recommendations"]:
        print(f"  * {line}")


def cmd_verify_dns(args) -> int:
    from agent.errors import AgentError
    verifier, cfg = _verifier(args)
    try:
        r = verifier.verify_dns(args.domain, args.type, args.num_paths or max(3, min(10, len(verifier.paths))),
                                args.timeout, args.strategy or cfg.verify.strategy,
                                local_ips=args.local.split(",") if args.local else None)
    except AgentError as e:
        return _fail(f"{e.code}: {e.message}")
    finally:
        verifier.close()
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print_verdict(r, f"{r['domain']} {r['record_type']}")
    return 2 if r["attack_detected"] else 0


def cmd_verify(args) -> int:
    from agent.errors import AgentError
    verifier, cfg = _verifier(args)
    try:
        n = args.num_paths or max(3, min(10, sum(p.kind == "url" for p in verifier.paths)))
        r = verifier.verify_url(args.url, n, args.timeout, args.strategy or cfg.verify.strategy, args.compare)
    except AgentError as e:
        return _fail(f"{e.code}: {e.message}")
    finally:
        verifier.close()
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print_verdict(r, r["url"])
    return 2 if r["attack_detected"] else 0


def _file_calls(path: str):
    """(offline.Result, exit code): the calls of a capture file, or a one-line error."""
    from hwdrivers import CaptureError
    from agent.calls import offline
    show = None
    if sys.stderr.isatty() and os.path.isfile(path) and os.path.getsize(path) >= PROGRESS_MIN_BYTES:
        bar = _progress_bar()
        show = lambda fraction, packets, bytes_: bar(fraction)  # noqa: E731
    try:
        result = offline.analyse(path, progress=show)
    except CaptureError as e:
        return None, _fail(e.message)
    finally:
        if show:
            sys.stderr.write("\n")
    if result.error is not None and not result.calls:
        return None, _fail(result.error.message)
    if result.error is not None:
        print(f"capbox: warning: {result.error.message} (calls cover what was read before)", file=sys.stderr)
    return result, 0


def cmd_calls(args) -> int:
    result, rc = _file_calls(args.file)
    if result is None:
        return rc
    calls = [c.summary() for c in result.calls]
    if args.json:
        json.dump({"file": args.file, "packets": result.packets, "bytes": result.bytes, "session_count": len(calls),
                   "sessions": [{**s, "streams": [st.as_dict() for st in c.streams]}
                                for s, c in zip(calls, result.calls)]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 1 if result.error else 0
    print(f"{len(calls)} SIP sessions in {args.file} ({_num(result.packets)} packets)")
    if calls:
        print(f"{'start (UTC)':<23} {'type':<5} {'method':<9} {'state':<10} {'msgs':>4} {'setup ms':>8} "
              f"{'dur s':>8} {'rtp pkts':>8} {'loss %':>6} {'jitter':>6} {'MOS':>4}  call-id / from -> to")
    for s in calls:
        m = s["metrics"]
        setup = "-" if m["setup_time_ms"] is None else f"{m['setup_time_ms']:.0f}"
        mos = "-" if m["mos"] is None else f"{m['mos']:.2f}"
        rtp = m["rtp_packets"]
        print(f"{s['start_time'][:23]:<23} {s['type']:<5} {s['method'][:9]:<9} {s['state']:<10} "
              f"{s['events_count']:>4} {setup:>8} {m['duration_ms'] / 1000:>8.1f} {rtp:>8} "
              f"{(m['rtp_loss'] * 100 if rtp else 0):>6.2f} {m['rtp_jitter_ms']:>6.2f} {mos:>4}  {s['call_id']}")
        print(f"{'':<23} {s['from']} -> {s['to']}")
    return 1 if result.error else 0


def cmd_callflow(args) -> int:
    from agent.calls import ladder
    result, rc = _file_calls(args.file)
    if result is None:
        return rc
    found = [c for c in result.calls if c.call_id == args.call_id] or \
        [c for c in result.calls if c.call_id.startswith(args.call_id)]
    if len(found) != 1:
        what = "no call" if not found else f"{len(found)} calls"
        return _fail(f"{what} with Call-ID {args.call_id!r} in {args.file} (capbox calls FILE lists them)")
    detail = found[0].detail()
    if args.svg:
        try:
            with open(args.svg, "w") as f:
                f.write(ladder.svg(detail))
        except OSError as e:
            return _fail(f"cannot write {args.svg}: {e.strerror}")
        print(f"call flow of {detail['call_id']} written to {args.svg}")
    else:
        sys.stdout.write(ladder.text(detail))
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return n
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
    from agent import report
    from hwdrivers import CaptureError, ExporterConfig
    collectors = []
    for value in args.collector:
        try:
            host, port = collector_address(value)
        except ValueError as e:
            return _fail(f"--collector {e}")
        collectors.append(ExporterConfig(host=host, port=port, version=args.version, transport=args.transport,
                                         biflow=args.biflow, observation_domain=args.observation_domain,
                                         mtu=args.mtu))
    opts = report.Options(bpf=args.bpf or "", idle_timeout_s=args.idle_timeout)
    xopts = report.ExportOptions(active_timeout_s=args.active_timeout, sample_rate=args.sample)
    try:
        r = report.export(args.file, collectors, opts, xopts)
    except CaptureError as e:
        return _fail(e.message)
    if args.json:
        _print_json(r)
    else:
        for e in r["exporters"]:
            extra = ""
            if e["records_dropped"] or e["records_skipped"]:
                extra = f", {_num(e['records_dropped'])} dropped, {_num(e['records_skipped'])} not exportable in {e['version']}"
            print(f"{e['host']}:{e['port']} {e['version']}/{e['transport']}: {_plural(e['flows'], 'flow')} as "
                  f"{_plural(e['records'], 'record')} in {_plural(e['messages'], 'message')} ({_human_bytes(e['bytes'])})"
                  + extra)
    if r["error"]:
        return _fail(f"{r['error']['message']} (the flows before it were exported)")
    if any(e["records_dropped"] or e["send_errors"] for e in r["exporters"]):
        errs = "; ".join(f"{e['host']}:{e['port']}: {e['last_error']}" for e in r["exporters"] if e["last_error"])
        return _fail(f"some records were not delivered ({errs or 'socket full'})")
    return 0


def _load_key_file(path: str) -> bytes:
    from agent.recordings import keys
    return keys.load(path)


def cmd_record(args) -> int:
    from agent import report
    from hwdrivers import CaptureError, RecordConfig
    from agent.recordings.keys import KeyFileError
    key = None
    if args.key_file:
        try:
            key = _load_key_file(args.key_file)
        except KeyFileError as e:
            return _fail(e.message)
    if not os.path.isdir(args.dir):
        return _fail(f"no directory {args.dir}")
    rec = RecordConfig(directory=os.path.abspath(args.dir), prefix=args.prefix, bpf=args.filter or "",
                       if_name=os.path.basename(args.source), snaplen=args.snaplen,
                       rotate_bytes=args.rotate_mb << 20, rotate_s=args.rotate_s, keep_bytes=args.keep_mb << 20,
                       keep_s=args.keep_s, fsync=not args.no_fsync)
    opts = report.Options(bpf=args.bpf or "")
    live = None
    if not os.path.exists(args.source) and args.source != "-":
        live = report.LiveOptions(backend=args.backend, duration_s=args.duration, count=args.count)
    try:
        r = report.record(args.source, rec, key, opts, live)
    except CaptureError as e:
        return _fail(e.message)
    if args.json:
        _print_json(r)
    else:
        st = r["recording"]
        enc = f", encrypted (key id {st['key_id']})" if st["encrypted"] else ""
        print(f"recorded {_num(st['packets'])} of {_num(r['packets_captured'])} packets "
              f"({_human_bytes(st['bytes'])}) into {_plural(st['files'], 'file')} in {args.dir}{enc}"
              + (f"; {_plural(st['files_deleted'], 'old file')} deleted" if st["files_deleted"] else "")
              + (f"; {_num(st['dropped'])} dropped" if st["dropped"] else ""))
    if r["error"]:
        return _fail(f"{r['error']['message']} (the packets before it were recorded)")
    if r["recording"]["write_errors"]:
        return _fail(r["recording"]["last_error"])
    return 0


def cmd_decrypt(args) -> int:
    from agent.recordings import crypt, keys
    if args.input != "-" and args.output != "-" and os.path.exists(args.output) \
            and os.path.samefile(args.input, args.output):
        return _fail("the output would overwrite the input")
    try:
        with open(args.input, "rb") as f:
            header = crypt.read_header(f)
    except OSError as e:
        return _fail(f"cannot read {args.input}: {e.strerror}")
    except crypt.FormatError as e:
        return _fail(f"{args.input}: {e.message}")
    try:
        if args.key_file:
            key = keys.load(args.key_file)
        else:
            cfg = _load_config(args)
            key = keys.find(cfg.data_dir, header.key_id)
            if key is None:
                return _fail(f"no key with id {header.key_id} in {keys.key_dir(cfg.data_dir)}; give --key-file")
    except keys.KeyFileError as e:
        return _fail(e.message)
    if crypt.key_id(key) != header.key_id:
        return _fail(f"{args.input}: the key's id {crypt.key_id(key)} is not the file's {header.key_id}: wrong key")
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    if out is not sys.stdout.buffer:
        os.fchmod(out.fileno(), 0o600)   # decrypted traffic, even over an existing file
    try:
        result = crypt.decrypt_file(args.input, out, key)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    e = result.error
    where = "standard output" if args.output == "-" else args.output
    if e is None:
        print(f"decrypted {_plural(result.chunks, 'chunk')} ({_human_bytes(result.bytes)}) into {where}", file=sys.stderr)
        return 0
    return _fail(f"{args.input}: {e.message}; {where} holds the {_plural(result.chunks, 'chunk')} "
                 f"({_human_bytes(result.bytes)}) before it")


def _idle(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (none) or a number of seconds")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="capbox", description="capbox network capture appliance")
    p.add_argument("--version", action="version", version=f"capbox {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    a = sub.add_parser("analyze", help="summarise a capture file")
    a.add_argument("file", help="pcap or pcapng file ('-' for standard input)")
    a.add_argument("--json", action="store_true", help="one JSON object instead of text")
    a.add_argument("--top", type=int, default=10, metavar="N", help="top talkers to list (default 10)")
    a.add_argument("--bpf", metavar="EXPR", help="only packets matching this BPF filter")
    a.add_argument("--idle-timeout", type=_idle, default=0, metavar="S",
                   help="end flows idle this long, like a flow meter (default 0: never)")
    a.add_argument("--windows", action="store_true", help="traffic windows too (a table, or 'windows' in JSON)")
    a.add_argument("--window", type=_positive, default=10, metavar="S", help="window size (default 10 s)")
    a.set_defaults(func=cmd_analyze)

    windowed = argparse.ArgumentParser(add_help=False)  # what baseline and anomalies share
    windowed.add_argument("file")
    windowed.add_argument("--window", type=_positive, default=10, metavar="S", help="window size (default 10 s)")
    windowed.add_argument("--bpf", metavar="EXPR")
    windowed.add_argument("--long-lived", type=_positive, default=3600, metavar="S",
                          help="flows open this long are long-lived (default 3600)")
    windowed.add_argument("--config", metavar="FILE")
    windowed.add_argument("--data-dir", metavar="DIR", help="where the agent keeps its store (default ./var)")

    b = sub.add_parser("baseline", parents=[windowed], help="learn a baseline from a capture file and store it")
    b.add_argument("--name", default="default", help="baseline name (default 'default', the agent's)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_baseline)

    n = sub.add_parser("anomalies", parents=[windowed], help="traffic anomalies of a capture file")
    n.add_argument("--baseline", metavar="NAME", help="compare with a stored baseline (capbox baseline)")
    n.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table")
    n.set_defaults(func=cmd_anomalies)

    f = sub.add_parser("flows", help="one row per flow of a capture file")
    f.add_argument("file", help="pcap or pcapng file ('-' for standard input)")
    f.add_argument("--format", choices=["csv", "json"], default="csv")
    f.add_argument("--bpf", metavar="EXPR", help="only packets matching this BPF filter")
    f.add_argument("--idle-timeout", type=_idle, default=0, metavar="S",
                   help="end flows idle this long (default 0: never)")
    f.set_defaults(func=cmd_flows)

    x = sub.add_parser("export", help="export the flows of a capture file to collectors (IPFIX, NetFlow v9/v5)")
    x.add_argument("file", help="pcap or pcapng file ('-' for standard input)")
    x.add_argument("--collector", action="append", required=True, metavar="HOST:PORT",
                   help="a collector (repeat for several); port 9995 when left out")
    x.add_argument("--version", choices=["ipfix", "v9", "v5"], default="ipfix")
    x.add_argument("--transport", choices=["udp", "tcp"], default="udp", help="tcp: IPFIX only")
    x.add_argument("--biflow", action="store_true", help="IPFIX: one RFC 5103 record per conversation")
    x.add_argument("--observation-domain", type=int, default=0, metavar="N",
                   help="IPFIX observation domain / v9 source id / v5 engine id")
    x.add_argument("--sample", type=int, default=1, metavar="N", help="meter one packet in N (announced to the collector)")
    x.add_argument("--active-timeout", type=_idle, default=0, metavar="S",
                   help="report long flows every S seconds (default 0: one record per conversation)")
    x.add_argument("--idle-timeout", type=_idle, default=0, metavar="S", help="end flows idle this long (default 0: never)")
    x.add_argument("--bpf", metavar="EXPR", help="only packets matching this BPF filter")
    x.add_argument("--mtu", type=int, default=1400, help="UDP message size limit (default 1400)")
    x.add_argument("--json", action="store_true", help="counters of every exporter as JSON")
    x.set_defaults(func=cmd_export)

    rc = sub.add_parser("record", help="record a capture file or an interface into rotating pcapng files")
    rc.add_argument("source", help="capture file, or an interface name")
    rc.add_argument("--dir", required=True, help="directory for the files")
    rc.add_argument("--prefix", default="capbox", help="file names: PREFIX-<UTC>-<seq>.pcapng[.enc]")
    rc.add_argument("--filter", metavar="EXPR", help="the recording's own BPF filter (the rest is still metered)")
    rc.add_argument("--bpf", metavar="EXPR", help="capture filter: what the capture sees at all")
    rc.add_argument("--snaplen", type=int, default=0, help="bytes kept of each packet (default 0: all)")
    rc.add_argument("--rotate-mb", type=int, default=100, metavar="MB", help="new file after MB (default 100; 0 never)")
    rc.add_argument("--rotate-s", type=int, default=0, metavar="S", help="new file after S seconds of packet time")
    rc.add_argument("--keep-mb", type=int, default=0, metavar="MB", help="delete the oldest files beyond MB in total")
    rc.add_argument("--keep-s", type=int, default=0, metavar="S", help="delete files older than S seconds")
    rc.add_argument("--key-file", metavar="FILE", help="encrypt with this AES-256 key file (32 bytes, mode 0600)")
    rc.add_argument("--no-fsync", action="store_true", help="do not fsync files as they are closed")
    rc.add_argument("--backend", default="afpacket", choices=["afpacket", "pcap"], help="interfaces")
    rc.add_argument("--duration", type=float, default=0, metavar="S", help="interfaces: stop after S seconds")
    rc.add_argument("--count", type=int, default=0, metavar="N", help="interfaces: stop after N packets")
    rc.add_argument("--json", action="store_true")
    rc.set_defaults(func=cmd_record)

    d = sub.add_parser("decrypt", help="decrypt an encrypted recording into a plain pcapng")
    d.add_argument("input", help="a .pcapng.enc recording")
    d.add_argument("output", help="the pcapng to write ('-' for standard output)")
    d.add_argument("--key-file", metavar="FILE", help="the key (default: the one with the file's key id in DATA_DIR/keys)")
    d.add_argument("--config", metavar="FILE")
    d.add_argument("--data-dir", metavar="DIR")
    d.set_defaults(func=cmd_decrypt)

    c = sub.add_parser("capture", help="capture from an interface for a while and summarise it")
    c.add_argument("iface", help="interface name")
    c.add_argument("--backend", default="afpacket", choices=["afpacket", "pcap"])
    c.add_argument("--duration", type=float, default=0, metavar="S", help="stop after S seconds")
    c.add_argument("--count", type=int, default=0, metavar="N", help="stop after N packets")
    c.add_argument("--bpf", metavar="EXPR", help="kernel BPF filter")
    c.add_argument("--snaplen", type=int, default=65535)
    c.add_argument("--buffer-mb", type=int, default=64, help="capture ring size (default 64)")
    c.add_argument("--no-promisc", action="store_true")
    c.add_argument("--fanout-group", type=int, metavar="ID", help="afpacket fanout group")
    c.add_argument("--json", action="store_true")
    c.add_argument("--top", type=int, default=10, metavar="N")
    c.add_argument("--idle-timeout", type=_idle, default=0, metavar="S")
    c.set_defaults(func=cmd_capture)

    d = sub.add_parser("detect", help="run every detector over a capture file and print the threats")
    d.add_argument("file", help="pcap or pcapng file ('-' for standard input)")
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d.add_argument("--bpf", metavar="EXPR")
    d.add_argument("--config", metavar="FILE", help="thresholds from [detection]")
    d.set_defaults(func=cmd_detect)

    paths = argparse.ArgumentParser(add_help=False)   # what verify and verify-dns share
    paths.add_argument("--resolver", action="append", metavar="ADDR",
                       help="a resolver path: udp:ADDR[:PORT], tcp:…, dot:ADDR[:PORT][#NAME] (repeat; default [verify])")
    paths.add_argument("--proxy", action="append", metavar="URL", help="an HTTP proxy path http://HOST:PORT (repeat)")
    paths.add_argument("--socks", action="append", metavar="URL", help="a SOCKS5 path socks5://HOST:PORT (repeat)")
    paths.add_argument("--num-paths", type=int, default=0, metavar="N", help="3-40 (default: up to 10 configured)")
    paths.add_argument("--strategy", choices=["diverse", "fastest", "reliable", "balanced"])
    paths.add_argument("--json", action="store_true")
    paths.add_argument("--config", metavar="FILE", help="paths from [verify]")
    v = sub.add_parser("verify-dns", parents=[paths], help="check a DNS answer through independent paths")
    v.add_argument("domain")
    v.add_argument("--type", default="A", choices=["A", "AAAA", "MX", "TXT"])
    v.add_argument("--timeout", type=float, default=10, metavar="S", help="per path (1-30, default 10)")
    v.add_argument("--local", metavar="IP[,IP]", help="the answer the network got, to compare")
    v.set_defaults(func=cmd_verify_dns)
    u = sub.add_parser("verify", parents=[paths], help="check a URL through independent paths")
    u.add_argument("url")
    u.add_argument("--timeout", type=float, default=15, metavar="S", help="per path (1-30, default 15)")
    u.add_argument("--compare", default="content_hash", choices=["content_hash", "full_content", "headers_only"])
    u.set_defaults(func=cmd_verify)

    cl = sub.add_parser("calls", help="the SIP calls of a capture file, with their RTP quality")
    cl.add_argument("file", help="pcap or pcapng file")
    cl.add_argument("--json", action="store_true", help="the sessions as JSON, with their RTP streams")
    cl.set_defaults(func=cmd_calls)

    cf = sub.add_parser("callflow", help="the ladder diagram of one call of a capture file")
    cf.add_argument("file", help="pcap or pcapng file")
    cf.add_argument("call_id", metavar="CALL_ID", help="the call's Call-ID (or a unique start of it)")
    cf.add_argument("--svg", metavar="OUT", help="draw it as an SVG picture into OUT instead")
    cf.set_defaults(func=cmd_callflow)

    r = sub.add_parser("run", help="run the agent (default: the bundled demo capture, REST on 127.0.0.1:8080)")
    r.add_argument("--config", metavar="FILE", help="TOML configuration file")
    r.add_argument("--source", metavar="demo|FILE|IFACE", help="what to capture at start")
    r.add_argument("--backend", choices=["pcapfile", "pcap", "afpacket", "fpga"])
    r.add_argument("--data-dir", metavar="DIR", help="SQLite store, keys and recordings (default ./var)")
    r.add_argument("--listen", metavar="HOST:PORT", help="REST address (default 127.0.0.1:8080)")
    r.add_argument("--headless", action="store_true", help="no console even on a terminal")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("tui", help="the console, attached to a running agent")
    t.add_argument("--url", default="http://127.0.0.1:8080")
    t.add_argument("--key", help="API key (default: CAPBOX_KEY, or DATA_DIR/admin.key)")
    t.add_argument("--data-dir", metavar="DIR", help="where admin.key is (default ./var)")
    from agent.client import add_tls_arguments
    add_tls_arguments(t)
    t.set_defaults(func=cmd_tui)

    k = sub.add_parser("keys", help="API keys: create, list, revoke")
    k.add_argument("--config", metavar="FILE")
    k.add_argument("--data-dir", metavar="DIR")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    kc = ks.add_parser("create", help="create a key and print it (shown once)")
    kc.add_argument("--kind", choices=["sk", "pk", "tk"], default="pk",
                    help="sk full, pk read-only, tk scoped and expiring (default pk)")
    kc.add_argument("--name", default="api key")
    kc.add_argument("--scopes", default="", help="tk: comma-separated route groups it may write to")
    kc.add_argument("--ttl", type=int, default=0, metavar="SECONDS", help="expire after (tk default: a day)")
    kc.add_argument("--json", action="store_true")
    kl = ks.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--json", action="store_true")
    kr = ks.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id")
    k.set_defaults(func=cmd_keys)

    fb = sub.add_parser("firstboot", help="a box's own secrets, made once: TLS key and certificate, "
                                           "console setup code (the image runs it before the agent)")
    # no --config: a configuration naming the certificate does not load before it exists
    fb.add_argument("--data-dir", metavar="DIR", help="where the agent keeps its state (default ./var)")
    fb.set_defaults(func=cmd_firstboot, config=None)

    from agent import fwcli
    from agent.console import cli as console_cli
    fwcli.add_parsers(sub)
    from agent.update import cli as updatecli
    updatecli.add_parsers(sub)
    console_cli.add_parsers(sub)
    return p


def _load_config(args, overrides=None):
    from agent import config
    over = dict(overrides or {})
    if getattr(args, "data_dir", None):
        over.setdefault("agent", {})["data_dir"] = args.data_dir
    return config.load(args.config, overrides=over)


def cmd_run(args) -> int:
    from agent.config import ConfigError
    over = {}
    if args.source:
        over["capture"] = {"source": args.source}
    if args.backend:
        over.setdefault("capture", {})["backend"] = args.backend
    if args.listen:
        over["api"] = {"listen": args.listen}
    try:
        cfg = _load_config(args, over)
    except ConfigError as e:
        return _fail(f"config: {e}")
    from agent.runtime import Agent
    console = not args.headless and sys.stdin.isatty() and sys.stdout.isatty()
    try:
        agent = Agent(cfg, console=console)
    except ConfigError as e:
        return _fail(f"config: {e}")
    except OSError as e:
        return _fail(f"cannot start: {e}")
    return agent.run_with_console() if console else agent.run_forever()


def cmd_tui(args) -> int:
    from tui.app import CapboxApp
    from tui.source import remote
    from agent.client import default_key
    key = args.key or default_key(args.data_dir or "./var")
    if not key:
        key_file = os.path.join(args.data_dir or "./var", "admin.key")
        return _fail(f"no API key: give --key, set CAPBOX_KEY, or run where {key_file} is readable")
    try:
        source = remote(args.url, key, cacert=args.cacert, pin=args.pin)
    except (ValueError, OSError) as e:
        return _fail(str(e))
    CapboxApp(source).run()
    return 0


def cmd_firstboot(args) -> int:
    from agent import firstboot
    from agent.config import ConfigError
    try:
        cfg = _load_config(args)
        made = firstboot.run(cfg)
    except ConfigError as e:
        return _fail(f"config: {e}")
    except OSError as e:
        return _fail(f"cannot write in {e.filename}: {e.strerror}")
    print(f"firstboot: {', '.join(made) or 'nothing to do'} in {cfg.data_dir}")
    for line in firstboot.notice(cfg.data_dir):
        print(line)
    return 0


def cmd_keys(args) -> int:
    from agent.auth import KeyStore
    from agent.config import ConfigError
    from agent.errors import AgentError
    from agent.store import Store
    try:
        cfg = _load_config(args)
    except ConfigError as e:
        return _fail(f"config: {e}")
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.db_path)
    keys = KeyStore(store)
    try:
        if args.keys_command == "create":
            token, key = keys.create(args.kind, args.name, tuple(s for s in args.scopes.split(",") if s),
                                     args.ttl or None)
            if args.json:
                print(json.dumps({"key": token, **key.public()}))
            else:
                print(token)
                print(f"id {key.id}, {key.kind} ({key.public()['access']}); store it now: it is not shown again",
                      file=sys.stderr)
        elif args.keys_command == "list":
            items = [k.public() for k in keys.list()]
            if args.json:
                print(json.dumps(items, indent=2))
            else:
                print(f"{'id':<10} {'kind':<4} {'state':<8} {'expires':<20} name")
                now = time.time()
                for k in items:
                    state = "revoked" if k["revoked"] else "expired" if k["expires"] and k["expires"] < now else "active"
                    exp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k["expires"])) if k["expires"] else "never"
                    print(f"{k['id']:<10} {k['kind']:<4} {state:<8} {exp:<20} {k['name']}")
        elif not keys.revoke(args.key_id):
            return _fail(f"no active key with id {args.key_id}")
        else:
            print(f"revoked {args.key_id}")
    except AgentError as e:
        return _fail(e.message)
    finally:
        store.close()
    return 0


def main(argv=None) -> int:
    os.umask(0o077)   # whatever the agent or the CLI writes (db, jobs, recordings, decrypted captures) is private
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
