"""The commands that find things in a capture file, or check them: detect,
baseline, anomalies, calls, callflow, verify, verify-dns, verify-tls."""
import argparse
import json
import os
import sys
import time

from agent.cli.common import (add_capture_file, console, escape, fail, leave, load_config, num, piped, positive,
                              print_json, print_lines, progress, severity, warn)
from agent.detectors.detector import SEVERITIES


def _analysis_config(args):
    """The configuration with --long-lived as analysis.long_lived_s: the windows name flows open that long,
    and the anomaly is raised for them (one threshold, not one for each)."""
    return load_config(args, {"analysis": {"long_lived_s": args.long_lived}} if args.long_lived else None)


def _file_windows(args, cfg):
    """Windows of args.file, or (None, exit code) after a one-line error."""
    from hwdrivers import CaptureError
    from agent.analysis import windows as offline
    try:
        found, error = offline.compute(args.file, args.window, args.bpf, long_flow_s=cfg.analysis.long_lived_s)
    except CaptureError as e:
        return None, fail(e.message)
    if error is not None and not found:
        return None, fail(error.message)
    if error is not None:
        warn(f"{error.message} (windows cover what was read before)")
    return found, 0


def _store(args):
    from agent.store import Store
    cfg = load_config(args)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(cfg.db_path), cfg


def cmd_baseline(args) -> int:
    from agent.analysis import baselines
    from agent.config import ConfigError
    try:
        cfg = _analysis_config(args)
    except ConfigError as e:
        return fail(f"config: {e}")
    windows, rc = _file_windows(args, cfg)
    if windows is None:
        return rc
    learned = baselines.learn(windows)
    if not any(v.get("count") for v in learned.values()):
        return fail(f"{args.file}: no traffic to learn from")
    try:
        store, _ = _store(args)
    except ConfigError as e:
        return fail(f"config: {e}")
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
        cfg = _analysis_config(args)
    except ConfigError as e:
        return fail(f"config: {e}")
    if args.baseline:
        store, _ = _store(args)
        try:
            baseline = baselines.load(store, args.baseline)
        finally:
            store.close()
        if not baseline:
            return fail(f"no baseline {args.baseline!r} in {cfg.db_path} (capbox baseline FILE --name {args.baseline})")
    windows, rc = _file_windows(args, cfg)
    if windows is None:
        return rc
    found = anomalies.detect_all(windows, cfg.analysis, baseline)
    fmt = "jsonl" if args.json else args.format
    if fmt in ("csv", "jsonl"):
        sys.stdout.write(export.render(found, fmt, "anomalies"))
    elif fmt == "json":
        print(json.dumps({"file": args.file, "windows": len(windows), "baseline": args.baseline or None,
                          "anomaly_count": len(found), "summary": anomalies.summarize(found), "anomalies": found},
                         indent=2))
    else:
        out = console()
        out.print(f"{len(found)} anomalies in {len(windows)} windows of {args.window} s"
                  + (f" against baseline {args.baseline!r}" if args.baseline else ""), markup=False)
        for a in found:
            out.print(f"  window {a['window_id']:>4}  {severity(a['severity'], 6)} {escape(a['type']):<16} "
                      f"{escape(a['message'])}")
    return 0


def cmd_detect(args) -> int:
    from agent.consumers import Worker, WorkerFailed
    worker = Worker()                                 # first: its imports overlap this process's start
    from hwdrivers import CaptureError
    from agent.config import ConfigError
    try:
        cfg = load_config(args)
    except ConfigError as e:
        worker.close()
        return fail(f"config: {e}")
    from agent.detectors.pipeline import GC_THRESHOLD_OFFLINE, tune_gc
    tune_gc(GC_THRESHOLD_OFFLINE)                     # this process only reads and gathers from here on
    try:
        found, error, counts, gate = worker.detect(args.file, cfg.detection, args.bpf)
    except (CaptureError, WorkerFailed) as e:
        worker.close()
        return fail(getattr(e, "message", str(e)))
    keys = ("type", "severity", "confidence", "src", "dst", "protocol", "description", "evidence", "first_seen",
            "attacker", "attacker_mac", "score")
    threats = worker.threats.rows(args.min_severity)   # one per (type, attacker, target), with counts
    out = None if piped() else console()
    plain = out is None or not out.is_terminal   # into a pipe or a file: rich's rendering of each line cost more
    lines: list = []                   # plain: written at once (a write each, unbuffered, cost 0.05 s on large.pcap)
    stamps: dict = {}                  # second -> its text (large.pcap: 18,648 threats in 300 s)
    for t in threats:
        d = t["detection"]
        if args.json:
            row = {**{k: getattr(d, k) for k in keys}, "count": t["count"], "first_seen": t["first_seen"],
                   "last_seen": t["last_seen"]}
            print(json.dumps(row, default=str))
            continue
        when = stamps.get(second := d.first_seen // 1) or stamps.setdefault(
            second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.first_seen)))
        who = d.attacker + (f" ({d.attacker_mac})" if d.attacker_mac and d.attacker_mac != d.attacker else "")
        times = f" x{t['count']}" if t["count"] > 1 else ""
        what = f"{d.type:<13} {d.protocol:<4} {who} -> {d.dst}{times}"
        if plain:
            lines.append(f"{when}  {d.severity:<8} {d.confidence:.2f} {what}\n    {d.description}\n")
        else:
            out.print(f"{when}  {severity(d.severity)} {d.confidence:.2f} " + escape(what))
            out.print(f"    {d.description}", markup=False)
    sys.stdout.write("".join(lines))
    sys.stdout.flush()                 # before the summary on stderr
    if not args.json:
        counts = ", ".join(f"{name} {c.get('raised', 0)}" for name, c in counts.items())   # (Counters)
        folded = f"; {gate['folded']:,} of {gate['held']:,} DNS queries folded into the next DNS event" if gate else ""
        if gate.get("templates"):
            folded += (f", {gate['repeats']:,} answers read as repeats of {gate['templates']:,} templates "
                       f"({gate['changed']:,} changed, {gate['evicted']:,} evicted, {gate['unfit']:,} unfit)")
        print(f"{len(threats)} threats from {len(found)} findings ({counts}){folded}", file=sys.stderr)
    return leave(fail(f"{error.message} (the threats above were found before it)") if error is not None else 0)


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
        cfg = load_config(args, over)
    except ConfigError as e:
        raise SystemExit(fail(f"config: {e}"))
    return Verifier(cfg.verify), cfg


def _print_verdict(r: dict, what: str) -> None:
    print(f"{what}: {'ATTACK DETECTED' if r['attack_detected'] else 'no attack detected'}")
    print(f"confidence  {r['confidence']} ({r['consensus_percentage']:g}% of {r['paths_succeeded']} answering paths agree;"
          f" {r['paths_checked']} checked, {r['verification_duration_ms']} ms)")
    if "consensus_ips" in r:
        print(f"consensus   {', '.join(r['consensus_ips']) or '(no records)'}")
        if r.get("local_ips") is not None:
            print(f"local       {', '.join(r['local_ips']) or '(no records)'}  [{r['local_source']}]")
    elif r.get("consensus") and "fingerprint" in r["consensus"]:
        c = r["consensus"]
        print(f"consensus   sha256 {c['fingerprint']}\n            issued by {c['issuer']} to {c['subject']},"
              f" valid {c['not_before'][:10]} to {c['not_after'][:10]}")
        if r.get("local"):
            print(f"local       sha256 {r['local']['fingerprint']}  [{r['local_source']}]")
    elif r.get("consensus"):
        c = r["consensus"]
        print(f"consensus   status {c['status_code']}, {c['content_length']} bytes, sha256 {c['content_hash'][:16]}")
    for p in r["path_results"]:
        mark = "ok " if p.get("agreed_with_consensus") else "!! " if p["status"] == "success" else "-- "
        value = ", ".join(p.get("ips", [])) if "ips" in p else p.get("status_code", "")
        if "fingerprint" in p:
            value = f"{p['fingerprint'][:16]} {p['issuer']}"
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
        return fail(f"{e.code}: {e.message}")
    finally:
        verifier.close()
    return _verdict(args, r, f"{r['domain']} {r['record_type']}")


def cmd_verify(args) -> int:
    from agent.errors import AgentError
    verifier, cfg = _verifier(args)
    try:
        n = args.num_paths or max(3, min(10, sum(p.kind == "url" for p in verifier.paths)))
        r = verifier.verify_url(args.url, n, args.timeout, args.strategy or cfg.verify.strategy, args.compare)
    except AgentError as e:
        return fail(f"{e.code}: {e.message}")
    finally:
        verifier.close()
    return _verdict(args, r, r["url"])


def _host_port(text: str) -> tuple:
    """HOST, HOST:PORT or [V6]:PORT; the port defaults to 443."""
    from agent.addresses import split_host_port
    host, port = split_host_port(text)
    if port and not port.isdigit():
        raise SystemExit(fail(f"{text!r}: the port must be a number"))
    return host, int(port) if port else 443


def cmd_verify_tls(args) -> int:
    from agent.errors import AgentError
    verifier, cfg = _verifier(args)
    host, port = _host_port(args.target)
    try:
        n = args.num_paths or max(3, min(10, sum(p.kind == "url" for p in verifier.paths)))
        r = verifier.verify_tls(host, port, args.sni or "", n, args.timeout, args.strategy or cfg.verify.strategy,
                                args.local)
    except AgentError as e:
        return fail(f"{e.code}: {e.message}")
    finally:
        verifier.close()
    return _verdict(args, r, f"{r['host']}:{r['port']}" + (f" (SNI {r['sni']})" if r["sni"] else ""))


def _verdict(args, r: dict, what: str) -> int:
    """The verdict as JSON or text; exit 2 when an attack was detected."""
    if args.json:
        print_json(r)
    else:
        _print_verdict(r, what)
    return 2 if r["attack_detected"] else 0


def _file_calls(path: str):
    """(offline.Result, exit code): the calls of a capture file, or a one-line error."""
    from hwdrivers import CaptureError
    from agent.calls import offline
    try:
        with progress(path) as show:
            result = offline.analyse(path, progress=show)
    except CaptureError as e:
        return None, fail(e.message)
    if result.error is not None and not result.calls:
        return None, fail(result.error.message)
    if result.error is not None:
        warn(f"{result.error.message} (calls cover what was read before)")
    return result, 0


def cmd_calls(args) -> int:
    result, rc = _file_calls(args.file)
    if result is None:
        return rc
    calls = [c.summary() for c in result.calls]
    if args.json:                                      # a stream of records: one session per line
        print_lines({**s, "streams": [st.as_dict() for st in c.streams]} for s, c in zip(calls, result.calls))
        return 1 if result.error else 0
    print(f"{len(calls)} SIP sessions in {args.file} ({num(result.packets)} packets)")
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
        return fail(f"{what} with Call-ID {args.call_id!r} in {args.file} (capbox calls FILE lists them)")
    detail = found[0].detail()
    if args.json:
        print_json(detail)
    elif args.svg:
        try:
            with open(args.svg, "w") as f:
                f.write(ladder.svg(detail))
        except OSError as e:
            return fail(f"cannot write {args.svg}: {e.strerror}")
        print(f"call flow of {detail['call_id']} written to {args.svg}")
    else:
        sys.stdout.write(ladder.text(detail))
    return 0


def add_parsers(sub) -> None:
    d = sub.add_parser("detect", help="run every detector over a capture file and print the threats")
    add_capture_file(d)
    d.add_argument("--json", action="store_true", help="one JSON object per threat, one per line")
    d.add_argument("--config", metavar="FILE", help="thresholds from [detection]")
    d.add_argument("--min-severity", choices=SEVERITIES, default="low", help="leave out threats below this severity")
    d.set_defaults(func=cmd_detect, capture_file=True)

    windowed = argparse.ArgumentParser(add_help=False)  # what baseline and anomalies share
    add_capture_file(windowed)
    windowed.add_argument("--window", type=positive, default=10, metavar="S", help="window size (default 10 s)")
    windowed.add_argument("--long-lived", type=positive, metavar="S",
                          help="flows open this long are long-lived (default analysis.long_lived_s, 3600)")
    windowed.add_argument("--config", metavar="FILE")
    windowed.add_argument("--data-dir", metavar="DIR", help="where the agent keeps its store (default ./var)")

    b = sub.add_parser("baseline", parents=[windowed], help="learn a baseline from a capture file and store it")
    b.add_argument("--name", default="default", help="baseline name (default 'default', the agent's)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_baseline, capture_file=True)

    n = sub.add_parser("anomalies", parents=[windowed], help="traffic anomalies of a capture file")
    n.add_argument("--baseline", metavar="NAME", help="compare with a stored baseline (capbox baseline)")
    n.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table")
    n.add_argument("--json", action="store_true", help="one JSON object per anomaly, one per line (as --format jsonl)")
    n.set_defaults(func=cmd_anomalies, capture_file=True)

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
    t = sub.add_parser("verify-tls", parents=[paths], help="check a server's certificate through independent paths")
    t.add_argument("target", metavar="HOST[:PORT]", help="the TLS server (port 443 unless given)")
    t.add_argument("--sni", metavar="NAME", help="the server name to send (default: HOST)")
    t.add_argument("--local", metavar="SHA256", help="the leaf fingerprint seen on this network, to compare")
    t.add_argument("--timeout", type=float, default=10, metavar="S", help="per path (1-30, default 10)")
    t.set_defaults(func=cmd_verify_tls)

    cl = sub.add_parser("calls", help="the SIP calls of a capture file, with their RTP quality")
    cl.add_argument("file", help="pcap or pcapng file")
    cl.add_argument("--json", action="store_true", help="one JSON object per session (with its RTP streams) per line")
    cl.set_defaults(func=cmd_calls)

    cf = sub.add_parser("callflow", help="the ladder diagram of one call of a capture file")
    cf.add_argument("file", help="pcap or pcapng file")
    cf.add_argument("call_id", metavar="CALL_ID", help="the call's Call-ID (or a unique start of it)")
    cf.add_argument("--svg", metavar="OUT", help="draw it as an SVG picture into OUT instead")
    cf.add_argument("--json", action="store_true", help="the call's detail (events, streams) as one object")
    cf.set_defaults(func=cmd_callflow)
