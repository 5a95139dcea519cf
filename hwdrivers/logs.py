"""Protocol log lines made in C (cdef/logs.h): the dns, conn, http and tls records of
agent.logs as JSON lines, paired and formatted in the core, so a record
costs no Python object.  Attached to a Session (Session.set_logger) a Logger
logs its DNS messages, HTTP heads and TLS handshakes in the capture path; it is fed the raw flow records a
Session drains (Session.flows_through), or told which flows ended (ended()), and hands back what it does not log
(flows without IP addresses).  Take the lines from any thread."""
from hwdrivers._hw import ffi, lib

KINDS = {"dns": lib.HW_LOG_DNS, "conn": lib.HW_LOG_CONN, "http": lib.HW_LOG_HTTP, "tls": lib.HW_LOG_TLS}
REST_MAX = 4096                  # indexes handed back per call: more than a Session drains at once
_FLOW_SIZE = ffi.sizeof("struct hw_flow_record")
assert ffi.offsetof("struct hw_flow_record", "id") == 0 and _FLOW_SIZE % 8 == 0


def flow_ids(buf, n: int) -> list:
    """The ids of n struct hw_flow_record, read in one slice (no cdata access per flow)."""
    return memoryview(ffi.buffer(buf, n * _FLOW_SIZE)).cast("Q")[::_FLOW_SIZE // 8].tolist()


def uid(salt: bytes, flow_id: int) -> str:
    """Zeek-like connection uid: 'C' + 17 hex digits, stable for a flow within one capture run (the salt)."""
    out = ffi.new("char[19]")
    lib.hw_log_uid(salt, flow_id, out)
    return ffi.string(out).decode()


class Logger:
    """The C logger of some of `types` (those in KINDS); `kinds` says which.  bytes_max: the lines of one type
    held until the next take (past it a line is dropped and counted in stats()["dropped"]; 0: no bound, for a
    file taken after each batch: a lossless session hands back while over 1 MB is held).  path: every line starts with Zeek's "_path" (its type).  suites: {code: IANA
    name} for the tls lines' cipher (unnamed ones are written 0x%04x)."""

    def __init__(self, types, salt: bytes, pending_max: int = 65536, bytes_max: int = 0, path: bool = False,
                 suites: dict = None):
        if len(salt) != 16:
            raise ValueError("the uid salt is 16 bytes")
        self.kinds = tuple(sorted(t for t in types if t in KINDS))
        lg = lib.hw_logger_new(sum(1 << KINDS[t] for t in self.kinds), salt, pending_max, bytes_max, path)
        if lg == ffi.NULL:
            raise MemoryError("no memory for the log table")
        self._lg = ffi.gc(lg, lib.hw_logger_free)
        for code, name in (suites or {}).items():
            if code <= 0xFFFF and lib.hw_logger_suite(lg, code, name.encode()):
                raise MemoryError("no memory for the cipher suite names")
        self._rest = ffi.new("int32_t[]", REST_MAX)
        self._len = ffi.new("size_t *")

    def flows(self, buf, n: int) -> list:
        """n struct hw_flow_record (their http requests still waiting go out): the indexes of those left to
        Python (no IP addresses)."""
        return self._left(lib.hw_logger_flows(self._lg, buf, n, self._rest))

    def _left(self, n: int) -> list:
        return self._rest[0:n] if n else []

    def ended(self, flow_id: int) -> None:
        """A flow left the table (its record not fed to flows()): its http requests still waiting go out."""
        lib.hw_logger_ended(self._lg, flow_id)

    def expire(self, now: float, wait_s: float) -> None:
        """Queries unanswered wait_s before now (packet time; the newest DNS message's, if later) go alone."""
        lib.hw_logger_expire(self._lg, int(now * 1e9), int(wait_s * 1e9))

    def flush(self) -> None:
        lib.hw_logger_flush(self._lg)

    def take(self, copy: bool = True) -> list:
        """[(type, bytes of '\\n'-ended JSON lines)] made since the last take, types with none left out.
        copy=False: a memoryview of the logger's own buffer instead, valid until the next take (no copy of
        megabytes of lines only to be written out)."""
        out = []
        for kind in self.kinds:
            p = lib.hw_logger_take(self._lg, KINDS[kind], self._len)
            if self._len[0]:
                view = memoryview(ffi.buffer(p, self._len[0]))
                out.append((kind, view.tobytes() if copy else view))
        return out

    def stats(self) -> dict:
        s = ffi.new("struct hw_logger_stats *")
        lib.hw_logger_stats(self._lg, s)
        return {"records": {k: s.records[KINDS[k]] for k in self.kinds},
                "dropped": {k: s.dropped[KINDS[k]] for k in self.kinds}, "held_early": s.held_early,
                "pending": s.pending, "now": s.now_ns / 1e9}


class IndexKeys:
    """What the log index keeps of each JSON line (its "ts", addresses, community ID and the search text of the
    key `fields`), read in C (hw_log_index) where Python parsed every line for it.  One per log type; its
    buffers are reused from call to call."""

    FIELDS_MAX = 16

    def __init__(self, fields):
        if len(fields) > self.FIELDS_MAX:
            raise ValueError(f"at most {self.FIELDS_MAX} key fields")
        self._fields = b"".join(f.encode() + b"\0" for f in fields) + b"\0"
        self._lens = ffi.new("size_t[3]")
        self._cap = self._lines = 0

    def read(self, buf: bytes, lines: int):
        """(ts, python, keys, hosts, cids) of buf's lines (as many as str.splitlines() makes of it: lines): lists
        of the packet times, of the indexes of lines whose entries Python must make (parsing them), of the
        search texts, of two addresses a line ("" for none) and of community IDs ("" for none); None when
        Python must read all of buf."""
        lines += 1
        need = len(buf) + 2 * lines + 16
        if need > self._cap or lines > self._lines:
            self._cap, self._lines = max(need, 2 * self._cap), max(lines, 2 * self._lines)
            self._out = [ffi.new("char[]", self._cap) for _ in range(3)]
            self._ts = ffi.new("double[]", self._lines)
            self._py = ffi.new("uint8_t[]", self._lines)
        n = lib.hw_log_index(buf, len(buf), self._fields, self._lines, self._ts, self._py, *self._out, self._lens)
        if n < 0 or n >= lines:
            return None
        keys, hosts, cids = (ffi.unpack(o, self._lens[i]).decode("ascii").split("\n")[:-1]
                             for i, o in enumerate(self._out))
        flags = ffi.unpack(ffi.cast("char *", self._py), n)
        python = [i for i, x in enumerate(flags) if x] if b"\x01" in flags else []
        return ffi.unpack(self._ts, n), python, keys, hosts, cids
