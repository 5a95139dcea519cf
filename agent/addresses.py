"""Host and port as operators write them (HOST:PORT, [V6]:PORT, SCHEME://HOST:PORT), shared by
the config checks and the modules that connect (syslog, verification paths, flow export)."""


def split_host_port(text: str) -> tuple:
    """"HOST", "HOST:PORT", "[V6]" or "[V6]:PORT" (a bare IPv6 address is all host) as (host, port text or "")."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return host, port.lstrip(":")
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""


COLLECTOR_SCHEMES = {"ipfix": ("ipfix", "udp"), "ipfix+udp": ("ipfix", "udp"), "ipfix+tcp": ("ipfix", "tcp"),
                     "v9": ("v9", "udp"), "v5": ("v5", "udp")}


def parse_collector(url: str) -> tuple:
    """"ipfix://192.0.2.1:4739" as (version, transport, host, port)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in COLLECTOR_SCHEMES:
        raise ValueError(f"{url!r} is not SCHEME://HOST:PORT with a scheme of {', '.join(COLLECTOR_SCHEMES)}")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{url!r}: give HOST:PORT with a port in 1..65535")
    return (*COLLECTOR_SCHEMES[scheme], host, int(port))
