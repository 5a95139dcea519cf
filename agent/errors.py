"""Errors the agent's faces (REST, console, TUI) turn into answers.

One base class with a code and an HTTP status; tests assert codes, never
message text.  The codes are the seeds' catalogue."""
from typing import Optional

STATUS = {
    "VALIDATION_ERROR": 400,
    "METRICS_NOT_COMPUTED": 400,
    "NO_FILE": 400,
    "INVALID_FILE": 400,
    "JOB_NOT_COMPLETED": 400,
    "INVALID_API_KEY": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "JOB_NOT_FOUND": 404,
    "SESSION_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "NOT_CAPTURING": 409,
    "ALREADY_CAPTURING": 409,
    "CONFLICT": 409,
    "CANNOT_DELETE_JOB": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "FIRMWARE_REJECTED": 422,
    "UPDATE_REJECTED": 422,
    "FILE_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "INTEGRITY_ERROR": 422,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "DATABASE_ERROR": 500,
    "CAPTURE_ERROR": 500,
    "UPDATE_FAILED": 500,
    "BACKEND_UNAVAILABLE": 503,
    "CARD_UNAVAILABLE": 503,
    "SERVICE_UNAVAILABLE": 503,
    "INVALID_URL": 400,
    "INVALID_DOMAIN": 400,
    "INVALID_NUM_PATHS": 400,
    "INVALID_TIMEOUT": 400,
    "INSUFFICIENT_PATHS": 503,
    "PATH_UNAVAILABLE": 503,
    "VERIFICATION_TIMEOUT": 504,
    "THREAT_NOT_FOUND": 404,
    "NO_PACKETS_KEPT": 404,          # no kept recording covers the window (never recorded, or aged out)
    "FLOW_NOT_FOUND": 404,           # not in the running capture's flow table
    "NO_FILTER": 422,                # a threat or call names nothing to find its packets by
    "SESSION_NOT_FOUND": 404,
    "SESSION_CONFLICT": 409,
    "TOKEN_NOT_FOUND": 404,
    "JOB_QUEUE_FULL": 503,
    "INSUFFICIENT_STORAGE": 507,
}


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
