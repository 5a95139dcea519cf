"""systemd notifications (READY, WATCHDOG, STATUS, STOPPING) when NOTIFY_SOCKET is set."""
import os
import socket


class Notifier:
    def __init__(self, env=os.environ):
        addr = env.get("NOTIFY_SOCKET", "")
        self.addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.addr)

    def send(self, **fields) -> bool:
        if not self.addr:
            return False
        msg = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(msg, self.addr)
            return True
        except OSError:
            return False
