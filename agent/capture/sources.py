"""What a capture source names: a file or an interface, and an interface that is not there yet."""
import socket
import time


def names_file(source: str) -> bool:
    """A capture source that is a file (a path, or a capture file's name), not an interface
    (as CaptureService._resolve reads it)."""
    return "/" in source or source.endswith((".pcap", ".pcapng", ".cap"))


def await_interface(source: str, timeout_s: float) -> bool:
    """Until an interface `source` exists, at most timeout_s (the image starts the agent while udev
    is still bringing its NIC up, not after); True at once for a file or the demo."""
    if source == "demo" or names_file(source):
        return True
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.if_nametoindex(source)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
