"""A call's ladder diagram (a call flow, as sngrep draws one): one column
per participant, one arrow per SIP message in time order, RTP streams as
double arrows where they start; as text for a terminal, or as SVG."""
import functools
import html

escape = functools.partial(html.escape, quote=False)   # xml.sax.saxutils.escape's output, without xml.sax's 9 modules

COL = 26            # text: characters between two lifelines
SVG_COL = 220       # SVG: pixels between two lifelines
SVG_ROW = 28
SVG_LEFT = 150
SVG_TOP = 70


def _columns(detail: dict) -> list:
    cols = list(detail["participants"])
    for st in detail.get("streams", []):
        for ep in (_ep(st["src"], st["sport"]), _ep(st["dst"], st["dport"])):
            if ep not in cols:
                cols.append(ep)
    return cols


def _ep(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def rows(detail: dict, short: bool = False) -> list:
    """(time, source, destination, label, kind) in time order; kind sip, retransmission or rtp."""
    out = []
    for e in detail["events"]:
        label = e["message_type"] + (" (SDP)" if e["details"].get("sdp") else "")
        out.append((e["ts"], e["source"], e["destination"], label, "retransmission" if e["retransmission"] else "sip"))
    for st in detail.get("streams", []):
        if st["kind"] != "rtp":
            continue
        label = (f"RTP {st['packets']} lost {max(st['lost'], 0)}" if short else
                 f"RTP {st['packets']} pkts, lost {max(st['lost'], 0)}, jitter {st['mean_jitter_ms']:.2f} ms")
        out.append((st["first_ns"] / 1e9, _ep(st["src"], st["sport"]), _ep(st["dst"], st["dport"]), label, "rtp"))
    out.sort(key=lambda r: r[0])
    return out


def text(detail: dict) -> str:
    cols = _columns(detail)
    width = 14 + COL * (len(cols) - 1) + 2
    m = detail["metrics"]
    lines = [f"Call-ID {detail['call_id']}  {detail['method']} {detail['state']}  {detail['type']}  "
             f"from {detail['from']} to {detail['to']}",
             f"start {detail['start_time']}  duration {m['duration_ms'] / 1000:.3f} s"
             + (f"  setup {m['setup_time_ms']:.0f} ms" if m.get("setup_time_ms") is not None else "")
             + (f"  MOS {m['mos']}" if m.get("mos") is not None else ""), ""]
    header = " " * 14
    for i, c in enumerate(cols):
        header = header[:14 + COL * i - len(c) // 2].ljust(14 + COL * i - len(c) // 2) + c
    lines.append(header.rstrip())

    def lifelines() -> list:
        row = [" "] * width
        for i in range(len(cols)):
            row[14 + COL * i] = "|"
        return row
    lines.append("".join(lifelines()).rstrip())
    t0 = detail["start_ts"]
    for ts, src, dst, label, kind in rows(detail, short=True):
        row = lifelines()
        row[:13] = list(f"{ts - t0:>12.3f} ")
        a, b = 14 + COL * cols.index(src), 14 + COL * cols.index(dst)
        lo, hi = min(a, b), max(a, b)
        line = "=" if kind == "rtp" else "." if kind == "retransmission" else "-"
        for x in range(lo + 1, hi):
            row[x] = line
        if a < b:
            row[hi - 1] = ">"
        elif a > b:
            row[lo + 1] = "<"
        else:
            row[a + 1:a + 3] = list("<>")
        span = hi - lo - 3
        tag = f" {label} "[:max(span, 0)]
        start = lo + 2 + max(0, (span - len(tag)) // 2)
        row[start:start + len(tag)] = list(tag)
        lines.append("".join(row).rstrip())
    return "\n".join(lines) + "\n"


def svg(detail: dict) -> str:
    cols = _columns(detail)
    events = rows(detail)
    w = SVG_LEFT + SVG_COL * max(1, len(cols) - 1) + 160
    h = SVG_TOP + SVG_ROW * (len(events) + 1) + 20
    t0 = detail["start_ts"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="monospace" font-size="12">',
           '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
           '<path d="M0,0 L10,4 L0,8 z" fill="#222"/></marker></defs>',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="10" y="18" font-weight="bold">{escape(detail["call_id"])} — {escape(detail["method"])} '
           f'{escape(detail["state"])} ({escape(detail["type"])})</text>']
    for i, c in enumerate(cols):
        x = SVG_LEFT + SVG_COL * i
        out.append(f'<text x="{x}" y="{SVG_TOP - 20}" text-anchor="middle" font-weight="bold">{escape(c)}</text>')
        out.append(f'<line x1="{x}" y1="{SVG_TOP - 10}" x2="{x}" y2="{h - 10}" stroke="#999" stroke-dasharray="4,3"/>')
    colours = {"sip": "#222", "retransmission": "#b36b00", "rtp": "#1b6ac9"}
    for n, (ts, src, dst, label, kind) in enumerate(events):
        y = SVG_TOP + SVG_ROW * (n + 1)
        a, b = SVG_LEFT + SVG_COL * cols.index(src), SVG_LEFT + SVG_COL * cols.index(dst)
        colour = colours[kind]
        dash = ' stroke-dasharray="6,3"' if kind == "retransmission" else ""
        width = 3 if kind == "rtp" else 1.5
        out.append(f'<text x="10" y="{y + 4}" fill="#555">{ts - t0:.3f}</text>')
        if a == b:
            out.append(f'<path d="M{a},{y - 6} h30 v12 h-28" fill="none" stroke="{colour}" stroke-width="{width}"'
                       f' marker-end="url(#arrow)"{dash}/>')
            tx = a + 40
            anchor = "start"
        else:
            out.append(f'<line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="{colour}" stroke-width="{width}"'
                       f' marker-end="url(#arrow)"{dash}/>')
            tx = (a + b) // 2
            anchor = "middle"
        out.append(f'<text x="{tx}" y="{y - 5}" text-anchor="{anchor}" fill="{colour}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
