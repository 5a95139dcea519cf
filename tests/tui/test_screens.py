"""Each screen with fixed data, as pictures (pytest-textual-snapshot), and
the keys that change them."""
import pytest

from tests.tui.fake import FakeSource
from tui.app import CapboxApp

SIZE = (80, 24)


def app_for(source=None, refresh_s=0.05):
    return CapboxApp(source or FakeSource(), refresh_s=refresh_s)


async def settle(pilot):
    await pilot.pause(0.4)


@pytest.mark.parametrize("keys", [[], ["f"], ["t"], ["a"], ["l"], ["y"]],
                         ids=["overview", "flows", "threats", "anomalies", "calls", "system"])
def test_screen_snapshots(snap_compare, keys):
    async def run_before(pilot):
        await settle(pilot)
        for k in keys:
            await pilot.press(k)
            await settle(pilot)
    assert snap_compare(app_for(refresh_s=None), terminal_size=SIZE, run_before=run_before)


async def test_flow_filter_as_you_type_and_sort():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        await settle(pilot)
        screen = app.screen
        assert len(screen.rows) == 8 and app.focused.id == "flow-table"
        await pilot.press("slash", "u", "d", "p")
        await settle(pilot)
        assert len(screen.rows) == 4 and all(r["proto"] == "udp" for r in screen.rows)
        await pilot.press("enter", "down")
        await settle(pilot)
        assert app.focused.id == "flow-table"
        assert screen.rows[1]["src"] in str(screen.query_one("#flow-detail").render())
        await pilot.press("ctrl+s")
        assert screen.sort == "packets"


async def test_threat_detail_marks_and_deception():
    source = FakeSource()
    app = app_for(source)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert [t["id"] for t in screen.rows] == ["thr_1a2b3c4d", "thr_5e6f7a8b"]
        detail = str(screen.query_one("#threat-detail").render())
        assert "ATTACK  5/5 paths answered" in detail and "consensus 100%" in detail and "outliers local" in detail
        await pilot.press("k")
        await settle(pilot)
        assert ("mark_threat", ("thr_1a2b3c4d", "acknowledged"), {}) in source.posted
        await pilot.press("d")
        await settle(pilot)
        assert app.screen.query_one("#answer").value == "bank.example"   # the target from the evidence
        await pilot.press("enter")
        await settle(pilot)
        assert ("start_deception", ("bank.example", "10.0.0.53"), {"threat_id": "thr_1a2b3c4d"}) in source.posted
        await pilot.press("down", "x")
        await settle(pilot)
        assert ("mark_threat", ("thr_5e6f7a8b", "false_positive"), {}) in source.posted
        await pilot.press("slash", *"tls")
        await settle(pilot)
        assert [t["attack_type"] for t in screen.rows] == ["tls_downgrade"]


async def test_calls_list_and_the_ladder_of_the_highlighted_call():
    app = app_for()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert [c["state"] for c in screen.rows] == ["in_call", "completed"]
        await pilot.press("down")
        await settle(pilot)
        flow = str(screen.query_one("#call-flow").render())
        assert "Call-ID a84b4c76e66710@10.0.0.5  INVITE completed" in flow
        assert "INVITE (SDP)" in flow and "RTP 1500 lost 3" in flow and "180 Ringing" in flow
        assert flow.index("INVITE (SDP)") < flow.index("180 Ringing") < flow.index("BYE")


async def test_actions_reach_the_agent_and_errors_are_notifications():
    source = FakeSource()
    app = app_for(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await pilot.press(*"tcp port 443", "enter")
        await settle(pilot)
        assert ("capture_filter", ("tcp port 443",), {}) in source.posted
        await pilot.press("b")
        await pilot.press(*"tcp port", "enter")
        await settle(pilot)
        assert any("bad filter" in n.message for n in app._notifications)
        await pilot.press("w")
        await pilot.press(*"30", "enter")
        await settle(pilot)
        assert ("compute_windows", (), {"source": "live", "window_size": 30}) in source.posted
        await pilot.press("w")
        await pilot.press(*"soon", "enter")
        await settle(pilot)
        assert any("window size" in n.message and n.severity == "error" for n in app._notifications)
        await pilot.press("s")   # capturing: stops
        await settle(pilot)
        assert ("capture_stop", ("console",), {}) in source.posted


async def test_an_unreachable_agent_is_a_notification_not_a_crash():
    from tui.source import remote
    app = CapboxApp(remote("http://127.0.0.1:9", "capbox_sk_x"), refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f", "a", "y", "o")
        await settle(pilot)
        assert any("unreachable" in n.message for n in app._notifications)


def test_firmware_line_reads_v1_firmware():
    from tui.screens.system import firmware_line
    assert firmware_line(None) == "no card or firmware service here"
    fw = {"card": {"present": False, "device": "/dev/shm/capbox-fpga0"}, "target": "capbox-fpga1",
          "rollback_floor": {}}
    assert firmware_line(fw) == "no card at /dev/shm/capbox-fpga0 (target capbox-fpga1), rollback floor none"
    fw = {"card": {"present": True, "device": "/dev/shm/x", "target": "capbox-fpga1", "firmware_state": "running",
                   "firmware_version": "2.0.0", "last_load_error": "crc", "link_up": True},
          "target": "capbox-fpga1", "rollback_floor": {"capbox-fpga1": 5}}
    assert firmware_line(fw) == ("card capbox-fpga1 at /dev/shm/x: running 2.0.0 (load refused: crc), "
                                 "rollback floor capbox-fpga1 5, link up")


@pytest.mark.parametrize("key", ["o", "f", "t", "a", "l", "y"])
async def test_every_footer_fits_80_columns_with_quit_and_help(key):
    from textual.widgets import Footer
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key)
        await settle(pilot)
        keys = {k.key_display or k.key: k for k in app.screen.query_one(Footer).query("FooterKey")}
        assert {"?", "q"} <= set(keys)
        assert all(k.region.right <= SIZE[0] and k.region.width > 0 for k in keys.values())


async def test_question_mark_lists_every_key_of_the_screen_and_the_console():
    app = app_for()
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.press("t")
        await settle(pilot)
        threats = app.screen
        await pilot.press("question_mark")
        await settle(pilot)
        text = str(app.screen.query_one("#help").query_one("Static").render())
        for b in [*threats.BINDINGS, *app.BINDINGS]:
            assert b.description in text
        assert "anomalies" in text and "filter of the running capture" in text
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is threats


class Unreachable:
    """A source whose agent went away after one good answer."""

    def __init__(self):
        self.fake = FakeSource()
        self.down = False

    def __getattr__(self, name):
        def call(*args, **kw):
            if self.down:
                from tui.source import SourceError
                raise SourceError("cannot reach the agent at http://127.0.0.1:8080: connection refused")
            return getattr(self.fake, name)(*args, **kw)
        return call


async def test_an_unreachable_agent_is_drawn_as_such_not_as_its_last_figures():
    from textual.widgets import Sparkline, Static
    source = Unreachable()
    app = app_for(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#pps-line", Sparkline).data
        source.down = True
        await settle(pilot)
        assert "agent unreachable" in str(app.screen.query_one("#state", Static).render())
        assert "does not answer" in str(app.screen.query_one("#rates", Static).render())
        assert not app.screen.query_one("#pps-line", Sparkline).data
        source.down = False
        await pilot.pause(2.5)                              # health is asked again at most every 2 s
        assert "health healthy" in str(app.screen.query_one("#state", Static).render())


async def test_overview_shows_what_the_event_path_lost():
    """No silent loss: health's losses (event ring, the consumer worker's ring, bus) on the overview."""
    source = FakeSource()
    lost = {"event_path": {"event_ring:dns": 3012, "shared_ring:dns": 1027}}
    source.health = lambda: {**FakeSource.health(source), "status": "degraded", "losses": lost}
    app = app_for(source)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        text = app.screen.query_one("#counters").capbox_text
        assert "lost" in text and "event_ring:dns 3012" in text and "shared_ring:dns 1027" in text
        assert "health degraded" in app.screen.query_one("#state").capbox_text
