"""/v1/logs/{type}: the protocol logs (conn, dns, http, tls, sip, rtp, arp,
ndp, dhcp) searched through their index and streamed as they are read,
as one JSON object ({"type", "records": [...], "count"}) or JSON lines."""
import json

import bottle

from agent.api.app import Api
from agent.api.validate import Field
from agent.logs import index
from agent.logs.indexer import INDEX_FILE

MAX_TS = 1e11                     # seconds since the epoch: year 5138
QUERY = {
    "since": Field(float, 0.0, 0, MAX_TS, doc="packet time from (seconds since the epoch; 0: the oldest)"),
    "until": Field(float, 0.0, 0, MAX_TS, doc="packet time before (seconds since the epoch; 0: the newest)"),
    "host": Field(str, "", max_len=64, doc="an IP address at either end of the record"),
    "q": Field(str, "", max_len=256, doc="a substring of the record's names: DNS query and answers, HTTP host, "
                                         "URI and user agent, TLS SNI, JA3/JA4, certificate names, MACs"),
    "community_id": Field(str, "", max_len=64, doc="the flow's community ID (1:...)"),
    "limit": Field(int, 1000, 1, 100000),
    "format": Field(str, "json", choices=("json", "jsonl"), doc="json: one object streamed; jsonl: JSON lines"),
}


def register(api: Api) -> None:
    path = api.agent.cfg.logs_dir / INDEX_FILE

    @api.route("GET", "/v1/logs/<kind>", "Protocol log records of one type (conn, dns, http, tls, sip, rtp, arp, "
               "ndp, dhcp), oldest first, streamed", query=QUERY)
    def logs(kind, since, until, host, q, community_id, limit, format):
        lines = index.search(path, kind, since, until, host, q, community_id, limit)
        if format == "jsonl":
            body = (line + "\n" for line in lines)
            ctype = "application/x-ndjson"
        else:
            body = _array(kind, lines)
            ctype = "application/json"
        keep = {k: v for k, v in bottle.response.headers.items() if k.lower().startswith("x-")}
        return bottle.HTTPResponse(body=body, status=200, headers={**keep, "Content-Type": ctype})


def _array(kind: str, lines):
    """{"type": kind, "records": [...], "count": n}, one piece at a time."""
    yield f'{{"type":{json.dumps(kind)},"records":['
    n = 0
    for line in lines:
        yield ("," if n else "") + line
        n += 1
    yield f'],"count":{n}}}'
