"""Host figures through psutil: CPU, memory, disk, network interfaces, the agent process."""
import os
import time

import psutil

_proc = psutil.Process(os.getpid())
_proc.cpu_percent(None)
psutil.cpu_percent(None)

FIELDS = {
    "cpu_percent": "whole machine CPU use since the previous sample, %",
    "memory_percent": "machine memory in use, %",
    "disk_percent": "data partition in use, %",
    "process_rss_mb": "the agent's resident memory, MB",
}


def system(data_dir: str = "/") -> dict:
    vm = psutil.virtual_memory()
    try:
        du = psutil.disk_usage(data_dir)
        disk = {"path": data_dir, "total_bytes": du.total, "used_bytes": du.used, "percent": du.percent}
    except OSError:
        disk = {"path": data_dir, "error": "unavailable"}
    with _proc.oneshot():
        mem = _proc.memory_info()
        proc = {"pid": _proc.pid, "cpu_percent": _proc.cpu_percent(None), "rss_bytes": mem.rss,
                "threads": _proc.num_threads(), "uptime_seconds": round(time.time() - _proc.create_time(), 1)}
    return {
        "cpu_percent": psutil.cpu_percent(None),
        "cpu_count": psutil.cpu_count(),
        "load_average": list(os.getloadavg()),
        "memory": {"total_bytes": vm.total, "available_bytes": vm.available, "percent": vm.percent},
        "disk": disk,
        "process": proc,
    }


def interfaces() -> list:
    """Interfaces with addresses, state and counters (net show, /v1/health)."""
    addrs = psutil.net_if_addrs()
    stats = psutil.net_if_stats()
    io = psutil.net_io_counters(pernic=True)
    out = []
    for name in sorted(set(addrs) | set(stats)):
        st = stats.get(name)
        c = io.get(name)
        out.append({
            "name": name,
            "up": bool(st and st.isup),
            "speed_mbps": st.speed if st else 0,
            "mtu": st.mtu if st else 0,
            "addresses": [a.address for a in addrs.get(name, []) if a.family.name in ("AF_INET", "AF_INET6")],
            "mac": next((a.address for a in addrs.get(name, []) if a.family.name == "AF_PACKET"), None),
            "counters": {"bytes_recv": c.bytes_recv, "bytes_sent": c.bytes_sent, "packets_recv": c.packets_recv,
                         "packets_sent": c.packets_sent, "dropin": c.dropin, "dropout": c.dropout,
                         "errin": c.errin, "errout": c.errout} if c else {},
        })
    return out
