"""Errors of the C core, raised as CaptureError with the backend's message."""
import enum

from hwdrivers._hw import lib


class ErrorCode(enum.IntEnum):
    ARG = lib.HW_E_ARG
    NOMEM = lib.HW_E_NOMEM
    OPEN = lib.HW_E_OPEN
    FORMAT = lib.HW_E_FORMAT
    TRUNCATED = lib.HW_E_TRUNCATED
    PERM = lib.HW_E_PERM
    FILTER = lib.HW_E_FILTER
    BACKEND = lib.HW_E_BACKEND
    UNSUPPORTED = lib.HW_E_UNSUPPORTED
    IO = lib.HW_E_IO
    NODEV = lib.HW_E_NODEV
    STATE = lib.HW_E_STATE


class CaptureError(Exception):
    """A backend or the core refused: `code` says why, the message is the backend's."""

    def __init__(self, code: int, message: str):
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = code
        self.message = message
        super().__init__(message)


def check(rc: int, errbuf) -> int:
    """Raise CaptureError for a negative return code, else pass it through."""
    if rc < 0:
        from hwdrivers._hw import ffi
        raise CaptureError(rc, ffi.string(errbuf).decode("utf-8", "replace") or f"error {rc}")
    return rc


class Cancelled(Exception):
    """A run to the end of a file (Session.run_to_eof) that its caller asked to stop."""
