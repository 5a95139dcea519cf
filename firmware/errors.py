"""Why a firmware image was refused: one reason code per failure, each with
the exit status `capbox fw verify` ends with (tests assert codes, not text)."""
import enum
from typing import Optional


class Reason(enum.Enum):
    """A verdict's reason; the value is the CLI's exit status for it."""

    OK = 0
    TRUNCATED = 10          # the file ends before its header or its payload does
    BAD_MAGIC = 11          # not a capbox firmware image
    UNSUPPORTED_FORMAT = 12 # a format version this capbox does not read
    MALFORMED = 13          # impossible header fields, or bytes after the payload
    HASH_MISMATCH = 14      # the payload is not the one the header's SHA-256 names
    MALFORMED_SIGNATURE = 15  # the signature file is not a minisign signature
    UNKNOWN_KEY = 16        # signed by a key that is not trusted here
    BAD_SIGNATURE = 17      # the signature or its trusted comment does not verify
    WRONG_TARGET = 18       # built for another hardware target
    ROLLBACK = 19           # rollback index below the highest one accepted

    @property
    def code(self) -> str:
        return self.name.lower()


class FirmwareError(Exception):
    """A firmware operation that could not be done (bad key file, missing
    file, a card that refused).  `reason` is set when it is a verdict."""

    def __init__(self, message: str, reason: Optional[Reason] = None):
        super().__init__(message)
        self.message = message
        self.reason = reason

