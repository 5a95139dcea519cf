"""The victim's browser, as far as the lab needs one: it opens a site by its
http:// address, follows redirects, finds the login form and posts to its
action with a user and a password -- whatever scheme the page says.

    python -m tests.lab.browser URL CAFILE   (prints each step as one line)"""
import re
import ssl
import sys
import urllib.parse
import urllib.request


def browse(url: str, cafile: str) -> list:
    ctx = ssl.create_default_context(cafile=cafile)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
    steps = []
    with opener.open(url, timeout=10) as r:
        page = r.read().decode("latin-1")
        steps.append(f"GET {url} -> {r.status} {r.geturl()}")
        base = r.geturl()
    m = re.search(r"<form[^>]*action=['\"]?([^'\" >]+)", page, re.I)
    if m:
        action = urllib.parse.urljoin(base, m.group(1))
        body = urllib.parse.urlencode({"user": "alice", "password": "hunter2"}).encode()
        with opener.open(urllib.request.Request(action, data=body), timeout=10) as r:
            steps.append(f"POST {action} -> {r.status}")
    return steps


if __name__ == "__main__":
    for line in browse(sys.argv[1], sys.argv[2]):
        print(line, flush=True)
