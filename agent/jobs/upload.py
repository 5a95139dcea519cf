"""A capture file from a multipart/form-data upload, streamed to disk.

The server streams the request body to the app (nothing is spooled), so
the part named `file` is copied out in chunks: memory stays flat whatever
the size.  The first bytes must be a pcap or pcapng
magic; the size is checked as the bytes come."""
import os
import shutil
import uuid

import multipart

from agent.errors import AgentError

CHUNK = 1 << 20
MULTIPART_SLACK = 64 << 10        # headers and boundaries around the file in the body
PCAP_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def capture_format(head: bytes):
    """pcap, pcapng, or None by the file's first bytes."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    return None


def too_large(max_bytes: int) -> AgentError:
    mb = max_bytes // (1 << 20)
    return AgentError("FILE_TOO_LARGE", f"the file is larger than {mb} MB", {"max_size_mb": mb})


def receive(environ: dict, directory: str, max_bytes: int) -> tuple:
    """(file name, path of the received file, size, format) of the `file` part.
    The file is written to directory as upload-*.part; the caller renames it."""
    ctype = environ.get("CONTENT_TYPE", "")
    mime, params = multipart.parse_options_header(ctype)
    if mime != "multipart/form-data" or not params.get("boundary"):
        raise AgentError("NO_FILE", "no file uploaded: send multipart/form-data with the capture in a part named 'file'",
                         {"content_type": mime or None, "field": "file"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > max_bytes + MULTIPART_SLACK:
        raise too_large(max_bytes)
    free = shutil.disk_usage(directory).free
    if length and length > free:
        raise AgentError("INSUFFICIENT_STORAGE", "not enough disk space for the upload",
                         {"needed_bytes": length, "free_bytes": free})
    stream = environ["wsgi.input"]
    parser = multipart.PushMultipartParser(params["boundary"], content_length=length or -1, max_header_size=8192,
                                           max_header_count=16, max_segment_count=64)
    path = os.path.join(directory, f"upload-{uuid.uuid4().hex}.part")
    out = None
    name, size, head = "", 0, b""
    writing = done = False
    try:
        left = length
        while not parser.closed:
            chunk = stream.read(min(CHUNK, left) if length else CHUNK)
            left -= len(chunk)
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    writing = event.name == "file" and out is None
                    if writing:
                        name = os.path.basename(event.filename or "").strip() or "upload.pcap"
                        out = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
                elif event is None:
                    done = done or writing
                    writing = False
                elif writing:
                    if len(head) < 4:
                        head += bytes(event[:4 - len(head)])
                        if len(head) == 4 and capture_format(head) is None:
                            raise _invalid(name, "the file is not a pcap or pcapng capture (by its first bytes)")
                    size += len(event)
                    if size > max_bytes:
                        raise too_large(max_bytes)
                    out.write(event)
            if not chunk:
                break
    except multipart.ParserError as e:
        _discard(out, path)
        raise AgentError("VALIDATION_ERROR", f"malformed multipart body: {e}", {"reason": "malformed_multipart"}) from None
    except BaseException:
        _discard(out, path)
        raise
    if out is None:
        raise AgentError("NO_FILE", "no file uploaded: the form has no part named 'file'", {"field": "file"})
    out.close()
    if not done or len(head) < 4:
        os.unlink(path)
        if not done:
            raise AgentError("VALIDATION_ERROR", "the upload ended before the file did", {"reason": "incomplete_body"})
        raise _invalid(name, "the file is empty or too short to be a capture")
    return name, path, size, capture_format(head)


def _invalid(name: str, message: str) -> AgentError:
    return AgentError("INVALID_FILE", message, {"field": "file", "filename": name})


def _discard(out, path: str) -> None:
    if out is not None:
        out.close()
        try:
            os.unlink(path)
        except OSError:
            pass
