"""Configuration: one TOML file parsed into frozen per-section dataclasses.

Every key has a default here; a file or a CAPBOX_<SECTION>_<KEY> environment variable
overrides it.  Validated once, at start; an error names the key (`capture.snaplen: ...`).
"""
import dataclasses
import json
import os
import pathlib
import tomllib
from typing import Any, Optional

from agent.addresses import parse_collector
from agent.configrules import RULES
from agent.logs import TYPES as LOG_TYPES
from hwdrivers import CAPTURE_DEFAULTS, Tunnels

PACKAGE_DATA = pathlib.Path(__file__).resolve().parent / "data"
DEMO_PCAP = PACKAGE_DATA / "demo.pcap"


class ConfigError(Exception):
    """A bad configuration value; `key` is section.name."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclasses.dataclass(frozen=True)
class AgentSection:
    data_dir: str = "./var"         # the store, keys, recordings, jobs, firmware (/var/lib/capbox on the image)
    log_level: str = "info"
    name: str = "capbox"            # this box's name in events sent elsewhere (EVE `host`)


@dataclasses.dataclass(frozen=True)
class CaptureSection:
    source: str = "demo"            # demo, a capture file, or an interface name
    backend: str = ""               # empty: pcapfile for files, afpacket for interfaces
    bpf: str = ""                   # a libpcap filter expression: only matching packets are seen at all
    snaplen: int = CAPTURE_DEFAULTS.snaplen                # bytes kept of each packet
    buffer_size_mb: int = CAPTURE_DEFAULTS.buffer_size_mb  # the kernel ring (afpacket, pcap)
    promisc: bool = CAPTURE_DEFAULTS.promisc               # interfaces: every frame on the wire, not only those for this box
    fanout_group: int = CAPTURE_DEFAULTS.fanout_group      # afpacket: PACKET_FANOUT group id shared with other readers (-1: none)
    autostart: bool = True          # capture `source` as the agent starts
    interface_wait_s: int = 0       # an interface `source` not there yet at start (udev still at it): wait this long
    # the box replays its autostart file (the demo) at the recorded pace and in a loop, unlike C's and the
    # API's default (once, as fast as possible): a deliberate difference, not a second default
    pace: float = 1.0               # file replay speed; 0 = as fast as possible
    loop: bool = True               # file replay starts over at the end
    pcap_dirs: tuple = ()           # where capture files may be named from (plus data_dir/pcaps)
    event_ring: int = CAPTURE_DEFAULTS.event_ring  # packet events queued for Python; beyond it they are dropped and counted


@dataclasses.dataclass(frozen=True)
class FlowsSection:
    enabled: bool = True
    idle_timeout_s: int = 300       # a flow with no packet for this long ends (0: never)
    active_timeout_s: int = 1800    # a flow open this long is reported and starts again (0: never)
    max_flows: int = 1 << 20        # flows metered at once; a packet of a new flow beyond it is counted, not metered
    sampling_rate: int = 1          # meter one packet in N (announced to collectors); 1: every packet


@dataclasses.dataclass(frozen=True)
class ExportSection:
    # collectors every capture exports to from the start: "ipfix://HOST:PORT",
    # "ipfix+tcp://HOST:PORT", "v9://HOST:PORT", "v5://HOST:PORT" (more over REST)
    collectors: tuple = ()
    export_interval_s: int = 60     # a partly filled message leaves at most this late (the seeds' 60 s)
    template_refresh_s: int = 60    # UDP: templates resent at least this often
    observation_domain: int = 0
    mtu: int = 1400


@dataclasses.dataclass(frozen=True)
class RecordingSection:
    enabled: bool = False           # record every capture from its start
    prefix: str = "capbox"          # file names: <prefix>-<UTC>-<seq>.pcapng[.enc]
    rotate_mb: int = 100            # a new file after this many MB (0: never)
    rotate_s: int = 0               # or after this many seconds of packet time (0: never)
    keep_mb: int = 1024             # retention: the recordings together at most this (0: no limit)
    keep_s: int = 0                 # retention: files older than this go (0: no limit)
    bpf: str = ""                   # the recording's own filter (a tunnel's: on the packet inside)
    bpf_outer: bool = False         # the filter sees a tunnel's outer packet instead
    snaplen: int = 0                # bytes kept of each packet (0: all)
    buffer_kb: int = 1024           # one write, one encrypted chunk
    flush_ms: int = 1000            # a packet reaches its file at most this late
    key_file: str = ""              # encrypt from the start with this key file in <data_dir>/keys


@dataclasses.dataclass(frozen=True)
class LogsSection:
    """Protocol logs (docs/LOGS.md): JSON lines per type under <data_dir>/logs and an index for GET /v1/logs.
    Retention is one policy with the recordings': each keeps its own keep_mb and keep_s (by write time)."""
    enabled: bool = True
    types: tuple = LOG_TYPES
    rotate_mb: int = 64             # a type's file starts again after this many MB (<type>.log.<UTC time>)
    keep_mb: int = 2048             # retention: the log files (and the index) together at most this (0: no limit)
    keep_s: int = 7 * 86400         # retention: records written longer ago than this go (0: no limit)
    queue: int = 65536              # capture output waiting to be logged; beyond it, dropped and counted


@dataclasses.dataclass(frozen=True)
class AnalysisSection:
    """Traffic windows, baselines, and the anomaly thresholds (against a baseline when there is one)."""
    window_s: int = 10
    baseline_duration_hours: float = 24.0  # live windows learned before the baseline is complete
    spike_factor: float = 3.0          # over the recent median (no baseline) or the baseline's p99
    spike_min_bps: float = 1_000_000.0 # below this a window is too small to spike
    spike_history: int = 5             # windows needed before a spike can be called without a baseline
    scan_ports: int = 50               # distinct ports of few hosts one source reaches
    scan_hosts: int = 50               # distinct hosts, with mostly refused or unanswered attempts
    scan_refused_share: float = 0.5
    scan_memory: int = 6               # windows a source's probes add up over
    rtt_ms: float = 300.0              # handshake RTT p95 (no baseline): medium; 3x: high
    response_ms: float = 1000.0        # first request -> first response p95: medium; 5x: high
    loss_percent: float = 5.0          # retransmitted share of a flow's segments: medium (with the sample below)
    loss_high_percent: float = 50.0    # ... high
    loss_min_segments: int = 50        # segments a flow sends in a window before its share counts
    loss_min_retransmissions: int = 4  # below loss_min_segments: a stall, this many retransmissions at the high share
    protocol_shift: float = 0.3        # a protocol's share moved this far from the baseline's mean
    protocol_min_packets: int = 200
    long_lived_s: int = 3600           # a flow open this long


@dataclasses.dataclass(frozen=True)
class DetectionSection:
    """Detector thresholds (a finding's score, 0-100, must reach them) and what they know of the network."""
    enabled: bool = True
    dns_threshold: int = 40
    ssl_strip_threshold: int = 70
    arp_spoof_threshold: int = 80
    tls_downgrade_threshold: int = 50
    ndp_threshold: int = 60            # NDP spoofing and rogue Router Advertisements
    dhcp_threshold: int = 60           # rogue DHCPv4/v6 servers
    tls_intercept_threshold: int = 60  # certificates not the name's own
    syn_flood_threshold: int = 60      # one source's SYN flood (per-source summaries counted in C)
    dhcp_servers: tuple = ()           # the network's DHCP servers (else the first one heard)
    gateways: tuple = ()               # gateway IPs: an ARP claim on them weighs more (else inferred)
    local_suffixes: tuple = ("local", "lan", "home", "internal", "intranet", "corp", "localdomain", "home.arpa",
                             "test", "invalid", "localhost", "example")   # names that may resolve to private addresses
    arp_binding_ttl_s: int = 14400     # an IP->MAC binding older than this may change silently
    dedup_s: int = 300                 # the same finding again within this is counted, not raised
    verify: bool = True                # findings that say what to check go to verification (when paths exist)
    process: bool = True               # in a worker process on a core of their own (false: a thread of the agent)
    dns_fold: bool = True              # the C core folds each DNS query into the next DNS event (one event, not two)
    dns_repeats: bool = True           # with dns_fold: answers that repeat their template are read as a few fields


@dataclasses.dataclass(frozen=True)
class VerifySection:
    """Verification paths.  None by default: nothing leaves the box until the
    operator names resolvers, source addresses, proxies or namespaces."""
    resolvers: tuple = ()              # "udp:ADDR[:PORT]", "tcp:ADDR[:PORT]", "dot:ADDR[:PORT][#TLS-NAME]"
    source_addresses: tuple = ()       # each makes a path per resolver (DNS) and a direct path (URLs)
    http_proxies: tuple = ()           # "http://HOST:PORT"
    socks_proxies: tuple = ()          # "socks5://HOST:PORT" (a Tor client is one of these)
    namespaces: tuple = ()             # network namespaces (/run/netns/NAME): a path per resolver, and direct
    direct: bool = False               # URLs fetched straight from the box (its own resolver) as a path
    local_resolver: str = ""           # the resolver the network's clients use: the "local" answer to compare
    local_proxy: str = ""              # the proxy the network's clients use: the "local" page to compare
    default_num_paths: int = 10
    default_timeout: int = 15          # seconds per path (URLs); DNS requests default to 10
    strategy: str = "diverse"
    workers: int = 16                  # threads checking paths
    max_body_kb: int = 2048            # a page read for comparison is cut here
    verify_tls: bool = False           # https through paths: certificates checked (off: an interceptor is what we look for)


@dataclasses.dataclass(frozen=True)
class DeceptionSection:
    auto_activate: bool = True         # a verified threat starts a session against its attacker by itself
    default_behavior_profile: str = "average_user"
    default_duration_minutes: int = 30
    interval_s: float = 20.0           # between decoys of a session (a profile scales it)
    target_port: int = 80              # decoy HTTP logins go to target_domain on this port
    max_sessions: int = 32


@dataclasses.dataclass(frozen=True)
class JobsSection:
    """Offline jobs: uploaded captures processed in the background."""
    workers: int = 2                   # jobs processed at once (each one C core pass at a time)
    max_size_mb: int = 10240           # the largest upload (the seeds' 10 GB)
    max_queued: int = 100              # jobs waiting; more uploads are refused (503) until some finish
    retention_hours: float = 24.0      # finished jobs, their files and sessions are removed after this
    max_attempts: int = 2              # a job running when the agent stopped is requeued until this many starts
    dir: str = ""                      # empty: <data_dir>/jobs


@dataclasses.dataclass(frozen=True)
class CallsSection:
    """SIP calls and their RTP: live (from the capture) and in jobs."""
    enabled: bool = True               # follow the live capture's calls
    idle_timeout_s: int = 300          # a live call with no packet for this long is over
    ended_grace_s: int = 5             # after the BYE is answered, RTP still counted this long
    max_calls: int = 100000            # calls followed at once (live) or in one file
    max_streams: int = 65536           # RTP/RTCP streams measured at once
    live_history: int = 10000          # finished live calls kept in the store (oldest go first)


@dataclasses.dataclass(frozen=True)
class ApiSection:
    listen: str = "127.0.0.1:8080"
    threads: int = 64              # server workers; each open event stream holds one
    max_body_kb: int = 1024
    max_connections: int = 4096    # open at once (also kept below the descriptor limit)
    max_connections_per_client: int = 512
    idle_timeout_s: int = 30       # a connection silent this long is closed
    tls_cert: str = ""             # PEM; set with tls_key: the API speaks only HTTPS (TLS 1.2+)
    tls_key: str = ""
    client_ca: str = ""            # PEM CA bundle; set: clients must present a certificate it signed
    cors_origins: tuple = ()
    sse_keepalive_s: int = 30
    sse_max_streams_per_key: int = 100
    sse_backlog: int = 1000          # events kept per channel for a client resuming with Last-Event-ID
    documentation_url: str = ""        # where error answers point; "": this agent's own GET /docs/errors
    # requests per minute by route class (the seeds' figures)
    rate_get: int = 1000
    rate_write: int = 120
    rate_verify: int = 60
    rate_verify_dns: int = 120
    rate_threats: int = 300
    rate_deception_start: int = 10


@dataclasses.dataclass(frozen=True)
class EveSection:
    """Events for SIEMs as EVE JSON lines (docs/EVENTS.md): a rotated file and syslog collectors.
    Event types: alert (threats), anomaly, flow (every expired flow: heavy), dns (every DNS message: heavy)."""
    file: str = ""                  # empty: no file; a relative path is under the data dir (e.g. "eve.json")
    file_types: tuple = ("alert", "anomaly")
    rotate_mb: int = 100            # a new file after this many MB (eve.json.1 ... eve.json.N)
    keep_files: int = 5
    syslog: tuple = ()              # collectors: "udp://HOST[:514]", "tcp://HOST[:601]", "tls://HOST[:6514]"
    syslog_types: tuple = ("alert", "anomaly")
    syslog_facility: str = "local5"
    syslog_ca: str = ""             # tls: CA file the collector's certificate must chain to (empty: the system's)
    syslog_cert: str = ""           # tls: a client certificate (with syslog_key) for collectors that ask for one
    syslog_key: str = ""
    queue: int = 10000              # events waiting per output; beyond it the oldest is dropped (and counted)


@dataclasses.dataclass(frozen=True)
class StoreSection:
    path: str = ""                  # empty: <data_dir>/capbox.db
    stats_interval_s: int = 10      # a stats sample (rates, CPU, memory) this often
    retention_days: int = 30        # NOT ENFORCED yet: nothing in the store is removed by age (issue 22)


@dataclasses.dataclass(frozen=True)
class FirmwareSection:
    dir: str = ""                   # empty: <data_dir>/firmware (images the API may name, and the slot state)
    keyring: str = ""               # empty: <firmware dir>/keys (trusted minisign public keys, *.pub)
    device: str = "/dev/shm/capbox-fpga0"   # the capture card's device path (fpga-sim's default)
    target: str = "capbox-fpga1"    # this box's hardware target, when no card answers
    max_upload_mb: int = 64         # largest image POST /v1/firmware/verify and /load take
    reload: bool = True             # at start, load the last loaded image again into a card without firmware


@dataclasses.dataclass(frozen=True)
class ConsoleSection:
    """The serial console (docs/CONSOLE.md)."""
    port: str = ""                  # a serial device or a pyserial URL (socket://, rfc2217://); empty: no console
    baud: int = 115200
    password_file: str = ""         # empty: <data_dir>/console.passwd (set with `capbox console passwd`)
    max_failures: int = 5           # wrong passwords in a row before the lockout
    lockout_s: int = 60
    idle_timeout_s: int = 900       # logged out after this long without a key pressed
    max_line: int = 1024            # characters in a line; a longer one is refused whole


@dataclasses.dataclass(frozen=True)
class Config:
    agent: AgentSection = AgentSection()
    capture: CaptureSection = CaptureSection()
    flows: FlowsSection = FlowsSection()
    tunnels: Tunnels = Tunnels()          # decapsulation: hwdrivers declares the section
    analysis: AnalysisSection = AnalysisSection()
    detection: DetectionSection = DetectionSection()
    verify: VerifySection = VerifySection()
    deception: DeceptionSection = DeceptionSection()
    export: ExportSection = ExportSection()
    recording: RecordingSection = RecordingSection()
    logs: LogsSection = LogsSection()
    jobs: JobsSection = JobsSection()
    calls: CallsSection = CallsSection()
    api: ApiSection = ApiSection()
    eve: EveSection = EveSection()
    store: StoreSection = StoreSection()
    firmware: FirmwareSection = FirmwareSection()
    console: ConsoleSection = ConsoleSection()

    @property
    def data_dir(self) -> pathlib.Path:
        return pathlib.Path(self.agent.data_dir).resolve()

    @property
    def db_path(self) -> pathlib.Path:
        return pathlib.Path(self.store.path).resolve() if self.store.path else self.data_dir / "capbox.db"

    @property
    def listen(self) -> tuple:
        host, _, port = self.api.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def firmware_dir(self) -> pathlib.Path:
        return pathlib.Path(self.firmware.dir).resolve() if self.firmware.dir else self.data_dir / "firmware"

    @property
    def keyring_dir(self) -> pathlib.Path:
        return pathlib.Path(self.firmware.keyring).resolve() if self.firmware.keyring else self.firmware_dir / "keys"

    @property
    def recordings_dir(self) -> pathlib.Path:
        return self.data_dir / "recordings"

    @property
    def logs_dir(self) -> pathlib.Path:
        return self.data_dir / "logs"

    @property
    def jobs_dir(self) -> pathlib.Path:
        return pathlib.Path(self.jobs.dir).resolve() if self.jobs.dir else self.data_dir / "jobs"

    @property
    def eve_path(self) -> pathlib.Path:
        return self.data_dir / self.eve.file if self.eve.file else self.data_dir / "eve.json"

    def pcap_dirs(self) -> list:
        """Directories a capture file may be named from (REST, console)."""
        dirs = [self.data_dir / "pcaps", PACKAGE_DATA]
        dirs += [pathlib.Path(d).resolve() for d in self.capture.pcap_dirs]
        return dirs

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}

def _coerce(key: str, default: Any, value: Any) -> Any:
    """The value in the default's type, or ConfigError."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(key, f"must be true or false, not {value!r}")
    if kind in (int, float):
        accepted = (int, str) if kind is int else (int, float, str)
        what = "an integer" if kind is int else "a number"
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise ConfigError(key, f"must be {what}, not {value!r}")
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(key, f"must be {what}, not {value!r}") from None
    if kind is tuple:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.startswith("[") else [v for v in value.split(",") if v]
            except json.JSONDecodeError:
                raise ConfigError(key, "must be a list") from None
        if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
            value = [str(v) for v in value]  # ports
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {value!r}")
    return value


def _check(key: str, value: Any) -> None:
    rule = RULES.get(key)
    if not rule:
        return
    if "choices" in rule and value not in rule["choices"]:
        raise ConfigError(key, f"must be one of {', '.join(repr(c) for c in rule['choices'])}")
    if "min" in rule and not rule["min"] <= value <= rule["max"]:
        raise ConfigError(key, f"must be between {rule['min']} and {rule['max']}")


def _section(name: str, cls, values: dict, env: dict):
    defaults = cls()
    fields = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{name}.{sorted(unknown)[0]}", "unknown key")
    out = {}
    for field, default in fields.items():
        key = f"{name}.{field}"
        env_name = f"CAPBOX_{name.upper()}_{field.upper()}"
        if env_name in env:
            value = _coerce(key, default, env[env_name])
        elif field in values:
            value = _coerce(key, default, values[field])
        else:
            value = default
        _check(key, value)
        out[field] = value
    return cls(**out)


def load(path: Optional[str] = None, env: Optional[dict] = None, overrides: Optional[dict] = None) -> Config:
    """Defaults, then the TOML file, then CAPBOX_* variables, then `overrides`
    ({"capture": {"source": ...}}, from the command line)."""
    env = os.environ if env is None else env
    data: dict = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError("config", f"cannot read {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("config", f"{path} is not valid TOML: {e}") from None
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown section")
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(name, "must be a table")
    cfg = Config(**{name: _section(name, cls, data.get(name, {}), env) for name, cls in SECTIONS.items()})
    try:
        cfg.listen
    except ValueError:
        raise ConfigError("api.listen", f"must be HOST:PORT, not {cfg.api.listen!r}") from None
    _check_tls(cfg.api)
    _check_paths(cfg.verify)
    for url in cfg.export.collectors:
        try:
            parse_collector(url)
        except ValueError as e:
            raise ConfigError("export.collectors", str(e)) from None
    bad = cfg.tunnels.problem()
    if bad:
        raise ConfigError(f"tunnels.{bad[0]}", bad[1])
    _check_eve(cfg.eve, cfg.logs)
    unknown = set(cfg.logs.types) - set(LogsSection.types)
    if unknown:
        raise ConfigError("logs.types", f"unknown log type {sorted(unknown)[0]!r} (types: {', '.join(LogsSection.types)})")
    if cfg.recording.snaplen and cfg.recording.snaplen < 64:
        raise ConfigError("recording.snaplen", "must be 0 (whole packets) or at least 64")
    if not cfg.recording.prefix.replace("_", "").replace("-", "").isalnum():
        raise ConfigError("recording.prefix", "letters, digits, - and _ only")
    return cfg


def _check_tls(api: ApiSection) -> None:
    if bool(api.tls_cert) != bool(api.tls_key):
        raise ConfigError("api.tls_key" if api.tls_cert else "api.tls_cert", "set tls_cert and tls_key together")
    if api.client_ca and not api.tls_cert:
        raise ConfigError("api.client_ca", "needs tls_cert and tls_key (client certificates are a TLS feature)")
    for key in ("tls_cert", "tls_key", "client_ca"):
        path = getattr(api, key)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"api.{key}", f"cannot read {path}")


def _check_eve(e: EveSection, logs: LogsSection) -> None:
    from agent.outputs import eve, syslog
    logged = set(logs.types) if logs.enabled else set()
    for key, types in (("file_types", e.file_types), ("syslog_types", e.syslog_types)):
        unknown = set(types) - set(eve.TYPES)
        if unknown:
            raise ConfigError(f"eve.{key}", f"unknown event type {sorted(unknown)[0]!r} (types: {', '.join(eve.TYPES)})")
        unlogged = sorted(t for t in types if eve.MAKERS[t][0] == eve.LOG_CHANNEL and t not in logged)
        if unlogged:   # EVE http and tls are the protocol logs' records
            raise ConfigError(f"eve.{key}", f"{unlogged[0]!r} events come from the protocol logs: add it to "
                                            "[logs] types (and keep [logs] enabled)")
    for url in e.syslog:
        try:
            syslog.parse_target(url)
        except ValueError as err:
            raise ConfigError("eve.syslog", str(err)) from None


def _check_paths(v: VerifySection) -> None:
    """Verification paths are named as text: each must parse (verify.resolvers: not a resolver …)."""
    import ipaddress
    from agent.verify import paths
    checks = [("resolvers", v.resolvers, paths.parse_resolver),
              ("http_proxies", v.http_proxies, lambda t: paths.parse_proxy(t, ("http",))),
              ("socks_proxies", v.socks_proxies, lambda t: paths.parse_proxy(t, ("socks5", "socks5h", "socks"))),
              ("source_addresses", v.source_addresses, ipaddress.ip_address),
              ("local_resolver", (v.local_resolver,) if v.local_resolver else (), paths.parse_resolver),
              ("local_proxy", (v.local_proxy,) if v.local_proxy else (), lambda t: paths.parse_proxy(t, ("http",)))]
    for key, values, parse in checks:
        for value in values:
            try:
                parse(value)
            except ValueError as e:
                raise ConfigError(f"verify.{key}", str(e)) from None
