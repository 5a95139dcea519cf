"""Errors the agent's faces (REST, console, TUI) turn into answers.

One base class with a code and an HTTP status; tests assert codes, never
message text.  The codes are the seeds' catalogue."""
from typing import Optional

# code: (HTTP status, what it means and what to do), served at GET /docs/errors#CODE, where every
# error answer's documentation_url points
CATALOGUE = {
    "VALIDATION_ERROR": (400, "A parameter is missing, of the wrong type, out of range or not one of its choices. "
                              "details.field names it; the OpenAPI document has every constraint."),
    "METRICS_NOT_COMPUTED": (400, "There are no traffic windows yet. Run POST /v1/windows/compute on a capture file, "
                                  "or let a live capture run for one window."),
    "NO_FILE": (400, "The upload has no part named 'file'. Send multipart/form-data with the capture in 'file'."),
    "INVALID_FILE": (400, "The file is not a pcap or pcapng capture, or it is damaged. capinfos tells what it is."),
    "JOB_NOT_COMPLETED": (400, "The job is still queued or running: wait for it (GET /v1/jobs/{id}/events) first."),
    "INVALID_API_KEY": (401, "No key, an unknown, revoked or expired key. Send 'Authorization: Bearer capbox_…'; "
                             "the first admin key is in DATA_DIR/admin.key."),
    "FORBIDDEN": (403, "The key may not do this: read-only (pk) keys cannot write, scoped (tk) keys only write to "
                       "their scopes, and some routes need a full (sk) key."),
    "NOT_FOUND": (404, "No such route or object. The id may be mistyped, or the object removed by retention."),
    "JOB_NOT_FOUND": (404, "No job with this id: it never existed or was removed after [jobs] retention_hours."),
    "SESSION_NOT_FOUND": (404, "No call or deception session with this id."),
    "METHOD_NOT_ALLOWED": (405, "The route exists, but not with this method; details.allowed lists those it takes."),
    "NOT_CAPTURING": (409, "Nothing is being captured. Start a capture first (POST /v1/capture/start)."),
    "ALREADY_CAPTURING": (409, "A capture is running. Stop it first, or change its filter with /v1/capture/filter."),
    "CONFLICT": (409, "The object is not in a state that allows this (already stopped, already exists)."),
    "CANNOT_DELETE_JOB": (409, "The job is running: wait for it, or DELETE with ?cancel=true."),
    "PAYLOAD_TOO_LARGE": (413, "The request body is larger than this route takes."),
    "FILE_TOO_LARGE": (413, "The upload is larger than [jobs] max_size_mb; details.max_size_mb says how large."),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Wrong Content-Type: JSON routes take application/json, uploads "
                                    "multipart/form-data, update bundles application/octet-stream."),
    "FIRMWARE_REJECTED": (422, "The firmware image failed verification (signature, target, version or rollback "
                               "floor); details.reason says which. Nothing was loaded."),
    "UPDATE_REJECTED": (422, "The update bundle failed verification; details.reason says why. Nothing was "
                             "installed and the running slot is unchanged."),
    "INTEGRITY_ERROR": (422, "An encrypted recording failed authentication: the file was changed or the key is "
                             "wrong."),
    "RATE_LIMIT_EXCEEDED": (429, "Too many requests, or too many failed authentications, from this client. Wait "
                                 "Retry-After seconds."),
    "INTERNAL_ERROR": (500, "A fault inside the agent. The request was not applied; the agent log has the details "
                            "under the request_id."),
    "DATABASE_ERROR": (500, "The agent's store failed (disk full or damaged). The log has the details."),
    "CAPTURE_ERROR": (500, "The capture backend failed to open or read: interface gone, permissions (root or "
                           "CAP_NET_RAW), or an unreadable file."),
    "UPDATE_FAILED": (500, "Installing a verified bundle failed part way; the running slot is unchanged."),
    "BACKEND_UNAVAILABLE": (503, "This capture backend cannot run here; GET /v1/capture/backends says why."),
    "CARD_UNAVAILABLE": (503, "The capture card is absent or busy."),
    "SERVICE_UNAVAILABLE": (503, "The agent is starting, stopping, or too busy for this request. Retry after "
                                 "Retry-After seconds."),
    "INVALID_URL": (400, "The URL to verify is not an absolute http(s) URL with a host."),
    "INVALID_DOMAIN": (400, "The domain to verify is not a valid DNS name."),
    "INVALID_NUM_PATHS": (400, "num_paths is out of range; details.min and details.max give the range."),
    "INVALID_TIMEOUT": (400, "timeout is out of range (1 to 30 seconds)."),
    "INSUFFICIENT_PATHS": (503, "Fewer independent verification paths are configured or up than the check needs; "
                                "add resolvers or proxies in [verify]."),
    "PATH_UNAVAILABLE": (503, "A verification path named in the request is unknown or down (GET /v1/paths)."),
    "VERIFICATION_TIMEOUT": (504, "Not enough paths answered within the timeout."),
    "THREAT_NOT_FOUND": (404, "No threat with this id."),
    "NO_PACKETS_KEPT": (404, "No kept recording covers this window: its packets were never recorded, or retention "
                             "(recording keep_mb, keep_s) has deleted them. details.kept has the oldest and newest "
                             "kept packet."),
    "FLOW_NOT_FOUND": (404, "The flow is neither in the running capture's table nor among the last capture's "
                            "ended flows the log service remembers (conn logging off, or too long ago). Ask "
                            "GET /v1/pcap with since, until and a bpf of its hosts and ports instead."),
    "NO_FILTER": (422, "The threat or call names no address to find its packets by; ask GET /v1/pcap with a window "
                       "and a bpf instead."),
    "SESSION_CONFLICT": (409, "A deception session is already active for this target, or the session is already "
                              "stopped."),
    "TOKEN_NOT_FOUND": (404, "No honeytoken with this value."),
    "JOB_QUEUE_FULL": (503, "The job queue is full: wait for jobs to finish, then upload again."),
    "INSUFFICIENT_STORAGE": (507, "The data partition is too full for this; free space or lower retention."),
}
STATUS = {code: status for code, (status, _) in CATALOGUE.items()}


class AgentError(Exception):
    """A refusal with a code from STATUS, a message for people and details for programs."""

    def __init__(self, code: str, message: str, details: Optional[dict] = None, status: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = status or STATUS.get(code, 400)


def validation(message: str, field: Optional[str] = None, **details) -> AgentError:
    if field:
        details["field"] = field
    return AgentError("VALIDATION_ERROR", message, details)


def not_found(what: str, ident) -> AgentError:
    return AgentError("NOT_FOUND", f"{what} {ident} not found", {"id": ident})
