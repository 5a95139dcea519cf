"""The console's verbs: each a call of one client method, either the REST
client (agent.client.Client, `capbox console` attached to an agent) or the
agent in this process (agent.console.local.LocalClient, the console inside
`capbox run`): the same services and checks either way.

Text output fits 80 columns.  `--json` anywhere on a line prints the REST
answer instead, as one line of JSON (an error as {"error": {...}}), for
scripts reading the serial line."""
import argparse
import dataclasses
import json
import logging
import os
import shlex
import textwrap
import time
from typing import Callable, Optional

from agent.client import ApiError

log = logging.getLogger(__name__)
WIDTH = 80


@dataclasses.dataclass
class Output:
    text: str = ""          # '\n' line ends; the session writes CRLF
    logout: bool = False


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message):
        raise UsageError(message)

    def exit(self, status=0, message=None):
        raise UsageError(message or "")


@dataclasses.dataclass(frozen=True)
class Verb:
    words: tuple
    usage: str              # the arguments after the words
    summary: str
    handler: Callable       # handler(commands, args) -> (data, lines)
    arguments: tuple = ()   # (flags, argparse keywords) pairs

    def parser(self) -> _Parser:
        p = _Parser(prog=" ".join(self.words), add_help=False)
        for flags, kw in self.arguments:
            p.add_argument(*flags, **kw)
        return p


# ---- formatting ---------------------------------------------------------------------------

def fit(lines: list) -> list:
    """Every line at most WIDTH columns: longer ones wrap under a two-space indent."""
    out = []
    for line in lines:
        if len(line) <= WIDTH:
            out.append(line)
        else:
            out += textwrap.wrap(line, WIDTH, subsequent_indent="  ", break_long_words=True,
                                 break_on_hyphens=False) or [""]
    return out


def wrap(label: str, text: str, width: int = 10) -> list:
    """`label` in a column of `width`, the text wrapped beside it."""
    return textwrap.wrap(str(text), WIDTH, initial_indent=f"{label:<{width}}", subsequent_indent=" " * width,
                         break_long_words=True, break_on_hyphens=False) or [label]


def cut(text, width: int) -> str:
    """At most `width` characters; a longer text keeps its head and tail around a '~'."""
    text = "-" if text is None or text == "" else str(text)
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "~" + text[len(text) - (width - 1 - head):]


def size(n) -> str:
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def when(value) -> str:
    """An ISO 8601 time or epoch seconds as 'YYYY-MM-DD HH:MM:SSZ'."""
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(value))
    return str(value).replace("T", " ")[:19] + "Z"


def span(seconds) -> str:
    s = int(seconds or 0)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h}:{m:02d}:{s:02d}"


def endpoint(addr, port, proto) -> str:
    if not port and proto not in ("tcp", "udp", "sctp"):
        return str(addr)
    return f"[{addr}]:{port}" if ":" in str(addr) else f"{addr}:{port}"


def source_name(capture: dict) -> str:
    src = capture.get("source") or capture.get("interface") or capture.get("file") or "-"
    return os.path.basename(src) if capture.get("backend") == "pcapfile" else src


# ---- the verbs ----------------------------------------------------------------------------

class Commands:
    def __init__(self, client):
        self.client = client

    def run(self, text: str) -> Output:
        """One line typed at the prompt: its output (never an exception)."""
        try:
            words = shlex.split(text)
        except ValueError as e:
            return Output(f"error: {e}\n")
        as_json = "--json" in words
        words = [w for w in words if w != "--json"]
        if not words:
            return Output()
        verb = VERBS.get(tuple(words[:2])) or VERBS.get(tuple(words[:1]))
        if verb is None:
            groups = sorted(" ".join(v.words) for v in VERBS.values() if v.words[0] == words[0])
            hint = f"; {words[0]} takes: {', '.join(groups)}" if groups else "; type help for the commands"
            return self._error(as_json, "UNKNOWN_COMMAND", f"unknown command {' '.join(words[:2])!r}{hint}")
        try:
            args = verb.parser().parse_args(words[len(verb.words):])
            data, lines = verb.handler(self, args)
        except UsageError as e:
            return self._error(as_json, "USAGE", f"{e}; usage: {' '.join(verb.words)} {verb.usage}".rstrip())
        except ApiError as e:
            field = e.details.get("field")
            return self._error(as_json, e.code, e.message + (f" ({field})" if field else ""), e.details)
        except OSError as e:
            return self._error(as_json, "AGENT_UNREACHABLE", f"the agent does not answer: {e}")
        except Exception:   # a console command must never end the console
            log.exception("console command %r failed", words[:2])
            return self._error(as_json, "INTERNAL_ERROR", "the command failed inside the console; the log has why")
        logout = verb.handler is cmd_exit
        if as_json:
            return Output(json.dumps(data, separators=(",", ":"), default=str) + "\n", logout)
        return Output("".join(line + "\n" for line in fit(lines)), logout)

    @staticmethod
    def _error(as_json: bool, code: str, message: str, details: Optional[dict] = None) -> Output:
        if as_json:
            return Output(json.dumps({"error": {"code": code, "message": message, "details": details or {}}},
                                     default=str) + "\n")
        return Output("".join(line + "\n" for line in fit([f"error: {message} [{code}]"])))


def cmd_help(c: Commands, a):
    verbs = list({id(v): v for v in VERBS.values()}.values())     # the aliases of exit once
    matches = [v for v in verbs if " ".join(v.words).startswith(" ".join(a.verb))]
    if not matches:
        raise UsageError(f"no command {' '.join(a.verb)!r}")
    lines = [] if a.verb else ["Commands (add --json to any for one line of JSON):"]
    for v in matches:
        usage = " ".join(v.words) + (f" {v.usage}" if v.usage else "")
        if len(usage) > 30:
            lines.append(f"  {usage}")
            usage = ""
        lines += textwrap.wrap(v.summary, WIDTH, initial_indent=f"  {usage:<30} ", subsequent_indent=" " * 33)
    data = [{"command": " ".join(v.words), "usage": v.usage, "summary": v.summary} for v in matches]
    return {"commands": data}, lines


def cmd_exit(c: Commands, a):
    return {"logged_out": True}, []


def cmd_status(c: Commands, a):
    health = c.client.health()
    status = c.client.status()
    cap = c.client.capture_status()
    sysinfo = health.get("system", {})
    lines = [f"capbox {health['version']}   {health['status']}   mode {health['mode']}   "
             f"up {span(health['uptime_seconds'])}"]
    lines += _capture_lines(cap)
    d = status["data"]
    lines.append(f"data      {d['capture_run_count']} capture runs, {d['metric_count']} windows, "
                 f"{d['anomaly_count']} anomalies, {'a' if d['baselines'] else 'no'} baseline")
    load = sysinfo.get("load_average") or [0]
    lines.append(f"host      cpu {sysinfo.get('cpu_percent', 0):.0f}%, memory "
                 f"{sysinfo.get('memory', {}).get('percent', 0):.0f}%, disk {sysinfo.get('disk', {}).get('percent', 0):.0f}%, "
                 f"load {load[0]:.2f}")
    trouble = [f"{name} {comp['status']}" + (f" ({comp['error']})" if comp.get("error") else "")
               for name, comp in health["components"].items() if comp["status"] in ("failed", "stalled")]
    if trouble:
        lines += wrap("trouble", "; ".join(trouble))
    return {"health": health, "status": status, "capture": cap}, lines


def _capture_lines(cap: dict) -> list:
    if not cap["running"]:
        lines = ["capture   idle: no active capture"]
        last = cap.get("last_run")
        if last:
            s = last.get("stats") or {}
            lines += wrap("last run", f"{last['backend']} on {source_name(last)}, {when(last['start_time'])} to "
                                      f"{when(last['stop_time'])} ({last['reason']}), {s.get('packets', 0):,} packets"
                                      + (f"; error: {last['error']}" if last.get("error") else ""))
        return lines
    s = cap["stats"]
    return [f"capture   {cap['backend']} on {source_name(cap)}, filter {cap['bpf'] or 'none'}",
            f"          since {when(cap['start_time'])} ({span(cap['duration'])})",
            f"          {s['packets']:,} packets, {size(s['bytes'])}, {s['flows_active']:,} flows active, "
            f"{s['dropped']:,} dropped, {s['malformed']:,} malformed"]


def cmd_capture_status(c: Commands, a):
    cap = c.client.capture_status()
    lines = _capture_lines(cap)
    if cap["running"]:
        fm = cap["flow_meter"]
        lines.append(f"flows     meter {'on' if fm['enabled'] else 'off'}, idle timeout {fm['idle_timeout_s']} s, "
                     f"active timeout {fm['active_timeout_s']} s")
        if cap.get("source") and source_name(cap) != cap["source"]:
            lines += wrap("source", cap["source"])
    return cap, lines


def cmd_capture_start(c: Commands, a):
    body = {"backend": a.backend, "bpf": a.filter}
    src = a.source
    if a.backend == "pcapfile" or "/" in src or src.endswith((".pcap", ".pcapng", ".cap")) or src == "demo":
        body.update(file=src, pace=a.pace, loop=a.loop)
    else:
        body["interface"] = src
    cap = c.client.capture_start(**body)
    return cap, ["capture started"] + _capture_lines(cap)


def cmd_capture_stop(c: Commands, a):
    r = c.client.capture_stop("console")
    if not r.get("stopped"):
        return r, [r.get("message", "no active capture")]
    s = (r.get("last_run") or {}).get("stats") or r.get("stats") or {}
    return r, [f"capture stopped: {s.get('packets', 0):,} packets, {size(s.get('bytes', 0))}"]


def cmd_flows_top(c: Commands, a):
    r = c.client.capture_flows(limit=a.n, sort=a.sort)
    lines = [f"{r['count']} of {r['active']:,} active flows, by {r['sort']}",
             f"{'source':<22} {'destination':<22} {'proto':<5} {'app':<6} {'packets':>8} {'bytes':>9}"]
    for f in r["flows"]:
        lines.append(f"{cut(endpoint(f['src'], f['sport'], f['proto']), 22):<22} "
                     f"{cut(endpoint(f['dst'], f['dport'], f['proto']), 22):<22} {cut(f['proto'], 5):<5} "
                     f"{cut(f['app'], 6):<6} {f['packets']:>8,} {size(f['bytes']):>9}")
    return r, lines


def cmd_threats(c: Commands, a):
    r = c.client.list_threats(limit=a.n)
    lines = [f"{r['count']} of {r['total']} threats, newest first"]
    if r["threats"]:
        lines.append(f"{'id':<16} {'severity':<8} {'type':<17} {'attacker':<15} {'status':<14} {'n':>4}")
    for t in r["threats"]:
        lines.append(f"{cut(t['id'], 16):<16} {cut(t['severity'], 8):<8} {cut(t['attack_type'], 17):<17} "
                     f"{cut(t['attacker'] or t['source_ip'], 15):<15} {cut(t['status'], 14):<14} {t['count']:>4}")
    return r, lines


def cmd_threat(c: Commands, a):
    t = c.client.get_threat(a.id)
    lines = [f"threat    {t['id']}   status {t['status']}",
             f"type      {t['attack_type']}, severity {t['severity']}, confidence {t['confidence']}, score {t['score']}"]
    who = t["attacker"] or t["source_ip"] or "-"
    if t.get("attacker_mac") and t["attacker_mac"] != who:
        who += f" ({t['attacker_mac']})"
    lines += wrap("attacker", f"{who} -> {t['dest_ip'] or '-'} ({t['protocol'] or '-'})")
    lines.append(f"seen      {when(t['first_seen'])} to {when(t['last_seen'])}, {t['count']} times")
    lines.append(f"verified  {t['verification_status']}")
    lines += wrap("what", t["description"] or "-")
    for key, value in (t.get("evidence") or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        lines += wrap(f"  {key}", text, 22)
    if t.get("deception_session_id"):
        lines.append(f"deception {t['deception_session_id']}")
    if t.get("note"):
        lines += wrap("note", t["note"])
    return t, lines


def cmd_anomalies(c: Commands, a):
    r = c.client.anomalies(limit=a.n)
    items = r["anomalies"]
    lines = [f"{len(items)} of {r.get('total', len(items))} anomalies"]
    if items:
        lines.append(f"{'window':>6} {'sev':<6} {'type':<16} message")
    for x in items:
        lines += textwrap.wrap(x.get("message") or "", WIDTH, break_long_words=True, break_on_hyphens=False,
                               initial_indent=f"{x['window_id']:>6} {cut(x['severity'], 6):<6} {cut(x['type'], 16):<16} ",
                               subsequent_indent=" " * 31) or [f"{x['window_id']:>6}"]
    return r, lines


def cmd_verify_dns(c: Commands, a):
    r = c.client.verify_dns(a.domain, a.type)
    lines = [f"{r['domain']} {r['record_type']}: {'ATTACK DETECTED' if r['attack_detected'] else 'no attack detected'}"]
    lines += wrap("confidence", f"{r['confidence']}: {r['consensus_percentage']:g}% of {r['paths_succeeded']} "
                                f"answering paths agree ({r['paths_checked']} checked, {r['verification_duration_ms']} ms)",
                  12)
    lines += wrap("consensus", ", ".join(r.get("consensus_ips") or []) or "(no records)", 12)
    if r.get("local_ips") is not None:
        lines += wrap("local", f"{', '.join(r['local_ips']) or '(no records)'} [{r.get('local_source')}]", 12)
    for p in r["path_results"]:
        mark = "ok" if p.get("agreed_with_consensus") else "!!" if p["status"] == "success" else "--"
        value = ", ".join(p.get("ips") or []) or p.get("error") or ""
        lines.append(f"  {mark} {cut(p['path_id'], 34):<34} {cut(p['status'], 8):<8} {p['latency_ms']:>7.1f} ms "
                     f"{cut(value, 16)}")
    for rec in r.get("recommendations", []):
        lines += textwrap.wrap(rec, WIDTH, initial_indent="  * ", subsequent_indent="    ", break_on_hyphens=False)
    if r.get("threat_id"):
        lines.append(f"threat    {r['threat_id']}")
    return r, lines


def cmd_fw_status(c: Commands, a):
    r = c.client.firmware()
    card = r["card"]
    if card.get("present"):
        lines = wrap("card", f"{card.get('target')} (hw {card.get('hw_version')}{', model' if card.get('model') else ''})"
                             f" at {card.get('device')}")
        fw = card.get("firmware_state", "-")
        if card.get("firmware_version"):
            fw += f" {card['firmware_version']} (rollback {card.get('firmware_rollback')})"
        if card.get("last_load_error"):
            fw += f", last load error {card['last_load_error']}"
        lines += wrap("firmware", fw)
        lines.append(f"link      {'up' if card.get('link_up') else 'down'}, dma "
                     f"{'running' if card.get('dma_running') else 'stopped'}, {card.get('rx_packets', 0):,} packets, "
                     f"{card.get('rx_dropped', 0):,} dropped")
    else:
        lines = wrap("card", f"none at {card.get('device')} (target {r['target']})")
    for name, slot in (r.get("slots") or {}).items():
        lines += wrap(f"slot {name}", f"{slot.get('target')} {slot.get('version')}, rollback "
                                      f"{slot.get('rollback_index')}, key {slot.get('key_id')}, loaded "
                                      f"{when(slot.get('loaded_at'))}")
    floor = ", ".join(f"{k} {v}" for k, v in (r.get("rollback_floor") or {}).items())
    lines += wrap("floor", floor or "none yet")
    keys = r["keyring"]["key_ids"]
    lines += wrap("keyring", f"{r['keyring']['dir']}: " + (keys.get("error", "") if isinstance(keys, dict) else
                                                          ", ".join(keys) or "no trusted keys"))
    return r, lines


def cmd_fw_verify(c: Commands, a):
    r = c.client.verify_firmware(a.path, a.sig)
    lines = [f"{a.path}: {'valid' if r['valid'] else 'REJECTED'} ({r['reason']})"]
    lines += wrap("", r.get("message") or "")
    h = r.get("header")
    if h:
        lines += wrap("image", f"target {h.get('target')}, version {h.get('version')}, rollback "
                               f"{h.get('rollback_index')}, {h.get('payload_length', 0):,} bytes of payload")
    if r.get("key_id"):
        lines += wrap("key", r["key_id"] + (f", comment {r['trusted_comment']!r}" if r.get("trusted_comment") else ""))
    return r, lines


def cmd_net_show(c: Commands, a):
    interfaces = c.client.health()["interfaces"]
    lines = []
    for i in interfaces:
        k = i.get("counters") or {}
        lines.append(f"{cut(i['name'], 12):<12} {'up' if i['up'] else 'down':<4} mtu {i['mtu']:<6} "
                     f"{i['mac'] or '-':<17}  rx {size(k.get('bytes_recv')):>9}  tx {size(k.get('bytes_sent')):>9}")
        lines += [f"{'':<12} {addr}" for addr in i["addresses"]]
    return {"interfaces": interfaces}, lines


def _key_line(k: dict) -> str:
    state = "revoked" if k["revoked"] else "expired" if k["expires"] and k["expires"] < time.time() else "active"
    return (f"{k['id']:<10} {k['kind']:<4} {state:<8} {when(k['expires']) if k['expires'] else 'never':<20} "
            f"{cut(k['name'], 34)}")


def cmd_keys_list(c: Commands, a):
    r = c.client.list_keys()
    return r, [f"{'id':<10} {'kind':<4} {'state':<8} {'expires':<20} name"] + [_key_line(k) for k in r["keys"]]


def cmd_keys_create(c: Commands, a):
    r = c.client.create_key(kind=a.kind, name=a.name, scopes=a.scopes, ttl_s=a.ttl)
    return r, [r["key"], f"id {r['id']}, {r['kind']} ({r['access']}): store it now, it is not shown again"]


def cmd_keys_revoke(c: Commands, a):
    r = c.client.revoke_key(a.id)
    return r, [f"revoked {r['id']}"]


def cmd_logs(c: Commands, a):
    r = c.client.recent_logs(limit=a.n, level=a.level)
    lines = []
    for e in reversed(r["logs"]):    # oldest first: the newest ends next to the prompt
        stamp = time.strftime("%H:%M:%S", time.gmtime(e["ts"]))
        logger = e["logger"].removeprefix("agent.")
        lines += textwrap.wrap(f"{logger}: {e['message']}", WIDTH, break_long_words=True, break_on_hyphens=False,
                               initial_indent=f"{stamp} {e['level']:<7} ", subsequent_indent=" " * 17)
    lines.append(f"({r['returned']} of {r['total']} records)")
    return r, lines


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


N = (("n",), {"nargs": "?", "type": _count, "default": 10})
VERBS = {v.words: v for v in (
    Verb(("help",), "[COMMAND]", "this list, or one command's", cmd_help, ((("verb",), {"nargs": "*"}),)),
    Verb(("status",), "", "the agent: health, capture, data, host", cmd_status),
    Verb(("capture", "start"), "SOURCE [--backend NAME] [--filter EXPR] [--pace X] [--loop]",
         "capture an interface, a file in a capture directory, or demo", cmd_capture_start,
         ((("source",), {}), (("--backend",), {"default": ""}), (("--filter", "--bpf"), {"default": ""}),
          (("--pace",), {"type": float, "default": 1.0}), (("--loop",), {"action": "store_true"}))),
    Verb(("capture", "stop"), "", "stop the capture", cmd_capture_stop),
    Verb(("capture", "status"), "", "backend, source, filter, counters", cmd_capture_status),
    Verb(("flows", "top"), "[N] [--sort bytes|packets|last|first]", "the N biggest active flows (10)", cmd_flows_top,
         (N, (("--sort",), {"default": "bytes"}))),
    Verb(("threats",), "[N]", "the N newest threats (10)", cmd_threats, (N,)),
    Verb(("threat",), "ID", "one threat: evidence, verification", cmd_threat, ((("id",), {}),)),
    Verb(("anomalies",), "[N]", "the N newest traffic anomalies (10)", cmd_anomalies, (N,)),
    Verb(("verify-dns",), "DOMAIN [--type A|AAAA|MX|TXT]", "check a DNS answer through independent paths",
         cmd_verify_dns, ((("domain",), {}), (("--type",), {"default": "A"}))),
    Verb(("fw", "status"), "", "the capture card, firmware slots, keyring", cmd_fw_status),
    Verb(("fw", "verify"), "PATH [--sig PATH]", "verify a firmware image in the firmware directory",
         cmd_fw_verify, ((("path",), {}), (("--sig",), {"default": ""}))),
    Verb(("net", "show"), "", "interfaces and their addresses", cmd_net_show),
    Verb(("keys", "list"), "", "API keys (never their secrets)", cmd_keys_list),
    Verb(("keys", "create"), "[--kind sk|pk|tk] [--name NAME] [--scopes S] [--ttl SECONDS]",
         "a new API key, shown once (default pk, read-only)", cmd_keys_create,
         ((("--kind",), {"default": "pk"}), (("--name",), {"default": "console"}), (("--scopes",), {"default": ""}),
          (("--ttl",), {"type": int, "default": 0}))),
    Verb(("keys", "revoke"), "ID", "revoke an API key", cmd_keys_revoke, ((("id",), {}),)),
    Verb(("logs",), "[N] [--level debug|info|warning|error]", "the N latest log records (10)", cmd_logs,
         (N, (("--level",), {"default": ""}))),
    Verb(("exit",), "", "log out (also logout, quit)", cmd_exit),
)}
VERBS[("logout",)] = VERBS[("quit",)] = VERBS[("exit",)]
