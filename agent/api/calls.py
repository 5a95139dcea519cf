"""/v1 call sessions: one in detail (a job's or the live capture's), its ladder
as text, and the live capture's calls."""
from agent.api.app import Api
from agent.api.jobs import PAGE
from agent.api.validate import Field

CALLS = {**PAGE, "state": Field(str, "", doc="only calls in this state (in_call, completed, rejected, ...)")}


def register(api: Api) -> None:
    agent = api.agent

    @api.route("GET", "/v1/sessions/<session_id>", "A call session with its events (a job's or the live capture's)",
               tag="calls")
    def session(session_id):
        return agent.calls.session_detail(session_id)

    @api.route("GET", "/v1/sessions/<session_id>/ladder",
               "A call session's ladder diagram as text (what `capbox callflow` prints and the console shows)",
               tag="calls")
    def session_ladder(session_id):
        return agent.calls.ladder(session_id)

    @api.route("GET", "/v1/calls", "The live capture's calls: going on, then finished, newest first", query=CALLS,
               tag="calls")
    def calls(page, limit, state):
        return agent.calls.calls(page, limit, state)
