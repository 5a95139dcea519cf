"""Host and port as operators write them, shared by the config checks and the modules that
connect (syslog targets, verification paths), below both so neither imports the other."""


def split_host_port(text: str) -> tuple:
    """"HOST", "HOST:PORT", "[V6]" or "[V6]:PORT" (a bare IPv6 address is all host) as (host, port text or "")."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return host, port.lstrip(":")
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""
