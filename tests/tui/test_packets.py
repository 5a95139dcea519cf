"""The console's flow, threat and call screens against a real agent, keys
pressed as a person would: a flow's detail shows its protocol log lines (the
records GET /v1/logs gives for its community ID), and p saves the packets of
a flow, a threat and a call into the directory typed, each file what
GET /v1/pcap gives for it (a running flow: what was recorded so far), private
(0600), never overwriting."""
import stat
import time

from textual.widgets import Input

from tests.agent.conftest import wait_for
from tests.conftest import pcap
from tests.pcapfiles import read_pcapng
from tui.app import CapboxApp
from tui.screens.packets import LOG_KINDS, LOG_LIMIT, flow_community_id, summary
from tui.source import remote


async def until(pilot, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.2)


def run_file(c, name: str, **kw) -> None:
    c.capture_start(file=name, **kw)
    wait_for(lambda: not c.capture_status()["running"], timeout=60)


async def save(app, pilot, directory, what: str):
    """p, the directory typed into the dialog, enter; the path the notification names."""
    said = lambda: [n.message for n in app._notifications if n.message.startswith(f"packets of {what} saved: ")]
    before = len(said())
    await pilot.press("p")
    await until(pilot, lambda: isinstance(app.focused, Input))
    app.focused.value = str(directory)
    await pilot.press("enter")
    await until(pilot, lambda: len(said()) > before)
    return said()[before].split(": ", 1)[1].rsplit(" (", 1)[0]


def fetched(c, tmp_path, **query) -> list:
    out = tmp_path / "want.pcapng"
    with open(out, "wb") as f:
        c.pcap(f, **query)
    return read_pcapng(out)["packets"]


async def test_log_lines_and_saved_packets_of_a_flow_a_threat_and_a_call(agent, tmp_path):
    c = agent.client
    c.post("/v1/capture/recording", {"rotate_mb": 1})
    run_file(c, agent.pcap(pcap("zeek__tls_ssl.v3.pcap")))                  # a tls_downgrade threat
    run_file(c, agent.pcap(pcap("ndpi__sip.pcap")))                          # calls
    threat = wait_for(lambda: c.list_threats(attack_type="tls_downgrade")["threats"])[0]
    wait_for(lambda: c.get("/v1/calls")["calls"])                        # the call saved below
    c.capture_start(file=agent.pcap(pcap("zeek__wikipedia.pcap")), pace=0.2)   # 32 s: flows stay in the table
    out = tmp_path / "saved"
    app = CapboxApp(remote(agent.url, agent.key), refresh_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f")
        await until(pilot, lambda: app.screen.name == "flows" and app.screen.rows)
        screen = app.screen

        def current():
            row = screen.query_one("DataTable").cursor_row
            return screen.rows[row] if 0 <= row < len(screen.rows) else None

        def http_lines_shown():
            f = current()
            shown, lines = screen.log_lines
            return f is not None and shown == f["id"] and any(" http " in x for x in lines)
        def with_http_lines() -> set:
            return {r.get("community_id") for r in c.get("/v1/logs/http", limit=1000)["records"]}
        # down the table to a flow whose http lines the agent has (the console asks again every 2 s, the agent
        # writes them every second; the rows move as the flows grow: the cursor stays on its flow).  Not to any
        # HTTP flow: one whose request has no answer yet has no line, and under load waiting on those in turn
        # outlasted the capture (a full run: the table empty, nothing shown)
        deadline = time.monotonic() + 90
        while not http_lines_shown():
            assert time.monotonic() < deadline, ("no flow showed http lines", screen.log_lines)
            f = current()
            if f is None or flow_community_id(f) not in with_http_lines():
                await pilot.press("down" if f is None or screen.query_one("DataTable").cursor_row < len(screen.rows) - 1
                                  else "home")
            await pilot.pause(0.5)
        f = current()
        cid = flow_community_id(f)
        want = [summary(k, r) for k in LOG_KINDS for r in c.get(f"/v1/logs/{k}", community_id=cid,
                                                                 limit=LOG_LIMIT)["records"]]
        await pilot.pause(2.5)                   # the lines are asked again: the same as the API's now
        detail = str(screen.query_one("#flow-detail").render())
        assert screen.log_lines == (f["id"], want) and all(line in detail for line in want), (detail, want)
        path = await save(app, pilot, out, f"flow {f['id']}")  # as recorded so far: what the API gives after
        got = read_pcapng(path)["packets"]
        c.capture_stop()
        wait_for(lambda: not c.capture_status()["running"], timeout=30)
        assert got and got == fetched(c, tmp_path, flow=f["id"])[:len(got)]
        assert stat.S_IMODE((out / f"flow-{f['id']}.pcapng").stat().st_mode) == 0o600

        await pilot.press("t")
        await until(pilot, lambda: app.screen.name == "threats" and app.screen.rows)
        ids = [t["id"] for t in app.screen.rows]
        for _ in range(ids.index(threat["id"])):
            await pilot.press("down")
        path = await save(app, pilot, out, f"threat {threat['id']}")
        assert read_pcapng(path)["packets"] == fetched(c, tmp_path, threat=threat["id"])

        await pilot.press("l")
        await until(pilot, lambda: app.screen.name == "calls" and app.screen.rows)
        sid = app.screen.rows[0]["session_id"]
        first = await save(app, pilot, out, f"call {sid}")
        again = await save(app, pilot, out, f"call {sid}")      # saved twice: a second file, the first kept
        assert first != again and first.endswith(".pcapng") and again.endswith("-1.pcapng")
        assert read_pcapng(first)["packets"] == read_pcapng(again)["packets"] == fetched(c, tmp_path, call=sid)
        assert read_pcapng(first)["packets"]
