"""/v1 deception and honeytokens: sessions start and stop, tokens listed, triggers reported."""
from agent.api.app import WRITE, Api
from agent.api.validate import Field
from agent.deception.honeytokens import PROFILES, TYPES

START = {"target_domain": Field(str), "attacker_ip": Field(str), "threat_id": Field(str, ""),
         "behavior_profile": Field(str, "", choices=("",) + tuple(PROFILES), doc="default: [deception]'s"),
         "duration_minutes": Field(int, 0, 0, 1440, doc="default: [deception]'s; at most 1440")}
STOP = {"session_id": Field(str)}
TOKENS = {"triggered": Field(str, "", choices=("", "true", "false")), "token_type": Field(str, "", choices=("",) + TYPES),
          "limit": Field(int, 100, 1, 1000), "offset": Field(int, 0, 0)}
TRIGGER = {"token": Field(str), "source_ip": Field(str, ""), "context": Field(dict, {})}


def open_session(agent, target_domain, attacker_ip, threat_id, behavior_profile, duration_minutes) -> dict:
    """A deception session from a start body (START's fields, validated): the threat it answers must exist."""
    if threat_id:
        agent.threats.get_row(threat_id)
    return agent.deception.start_session(target_domain, attacker_ip, behavior_profile, duration_minutes,
                                         threat_id or None)


def register(api: Api) -> None:
    agent = api.agent

    @api.route("POST", "/v1/deception/start", "Start a deception session against an attacker (201)", access=WRITE,
               rate="deception_start", body=START, tag="deception")
    def start(**body):
        return 201, open_session(agent, **body)

    @api.route("POST", "/v1/deception/stop", "Stop a deception session (409 when already stopped)", access=WRITE,
               body=STOP, tag="deception")
    def stop(session_id):
        return agent.deception.stop_session(session_id)

    @api.route("GET", "/v1/deception/<session_id>", "One deception session and its statistics", tag="deception")
    def session(session_id):
        return agent.deception.session(session_id)

    @api.route("GET", "/v1/honeytokens", "Honeytokens with their trigger state", query=TOKENS, tag="honeytokens")
    def tokens(triggered, token_type, limit, offset):
        return agent.deception.tokens(None if not triggered else triggered == "true", token_type, limit, offset)

    @api.route("POST", "/v1/honeytokens/trigger", "Report that a honeytoken was used", access=WRITE, body=TRIGGER,
               tag="honeytokens")
    def trigger(token, source_ip, context):
        return agent.deception.trigger(token, source_ip or None, via="report", context=context)
