"""Flow exporters: IPFIX, NetFlow v9 and v5 encoded by the C core as flows
expire (hwdrivers/src/ipfix.c).  Python only describes an exporter and
reads its counters; no flow record passes through here."""
import dataclasses
import ipaddress

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode

VERSIONS = {"ipfix": lib.HW_EXP_IPFIX, "v9": lib.HW_EXP_V9, "v5": lib.HW_EXP_V5}
TRANSPORTS = {"udp": lib.HW_EXP_UDP, "tcp": lib.HW_EXP_TCP}
_VERSION_NAMES = {v: k for k, v in VERSIONS.items()}
_TRANSPORT_NAMES = {v: k for k, v in TRANSPORTS.items()}
MAX_EXPORTERS = lib.HW_EXPORT_MAX


def _defaults():
    c = ffi.new("struct hw_export_config *")
    lib.hw_export_config_init(c)
    return c


_D = _defaults()


@dataclasses.dataclass(frozen=True)
class ExporterConfig:
    """One collector.  `host` is a numeric address (resolve names first)."""

    host: str
    port: int = _D.port
    version: str = "ipfix"                 # ipfix, v9, v5
    transport: str = "udp"                 # udp; tcp for IPFIX only
    biflow: bool = False                   # IPFIX: RFC 5103 biflow records
    observation_domain: int = 0            # IPFIX domain id, v9 source id, v5 engine id (low 8 bits)
    export_interval_ms: int = _D.export_interval_ms
    template_refresh_s: int = _D.template_refresh_s
    template_refresh_packets: int = _D.template_refresh_packets
    mtu: int = _D.mtu
    lossless: bool = False                 # wait for the socket instead of dropping (offline)

    def check(self) -> None:
        """The errors the C core would give, with the field's name."""
        if self.version not in VERSIONS:
            raise CaptureError(ErrorCode.ARG, f"unknown export version {self.version!r}; use one of "
                               + ", ".join(VERSIONS))
        if self.transport not in TRANSPORTS:
            raise CaptureError(ErrorCode.ARG, f"unknown transport {self.transport!r}; use udp or tcp")
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise CaptureError(ErrorCode.ARG, f"collector {self.host!r} is not an IP address") from None
        if not 1 <= self.port <= 65535:
            raise CaptureError(ErrorCode.ARG, f"collector port {self.port} out of range 1..65535")
        if not 0 <= self.observation_domain <= 0xFFFFFFFF:
            raise CaptureError(ErrorCode.ARG, "observation_domain is a 32-bit number")


@dataclasses.dataclass(frozen=True)
class ExporterStats:
    id: int
    host: str
    port: int
    version: str
    transport: str
    biflow: bool
    connected: bool
    observation_domain: int
    sample_rate: int
    flows: int
    records: int
    messages: int
    bytes: int
    template_sends: int
    records_dropped: int
    records_skipped: int
    send_errors: int
    reconnects: int
    sequence: int
    last_error: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def to_cdata(cfg: ExporterConfig):
    """struct hw_export_config for cfg, and what must stay alive with it."""
    cfg.check()
    c = ffi.new("struct hw_export_config *")
    lib.hw_export_config_init(c)
    host = ffi.new("char[]", cfg.host.encode())
    c.host = host
    c.port = cfg.port
    c.version = VERSIONS[cfg.version]
    c.transport = TRANSPORTS[cfg.transport]
    c.biflow = int(cfg.biflow)
    c.lossless = int(cfg.lossless)
    c.observation_domain = cfg.observation_domain
    c.export_interval_ms = cfg.export_interval_ms
    c.template_refresh_s = cfg.template_refresh_s
    c.template_refresh_packets = cfg.template_refresh_packets
    c.mtu = cfg.mtu
    return c, host


def stats_from_cdata(s) -> ExporterStats:
    return ExporterStats(
        id=s.id, host=ffi.string(s.host).decode(), port=s.port, version=_VERSION_NAMES[s.version],
        transport=_TRANSPORT_NAMES[s.transport], biflow=bool(s.biflow), connected=bool(s.connected),
        observation_domain=s.observation_domain, sample_rate=s.sample_rate, flows=s.flows, records=s.records,
        messages=s.messages, bytes=s.bytes, template_sends=s.template_sends, records_dropped=s.records_dropped,
        records_skipped=s.records_skipped, send_errors=s.send_errors, reconnects=s.reconnects,
        sequence=s.sequence, last_error=ffi.string(s.last_error).decode(errors="replace"))
