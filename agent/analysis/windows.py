"""Windows of a capture file: the C core run over it with windows on."""
from typing import Callable, Optional

from hwdrivers import CaptureConfig, Session


def compute(path: str, window_s: int, bpf: str = "", long_flow_s: int = 3600,
            progress: Optional[Callable[[float], None]] = None) -> tuple:
    """(windows, error or None) for a capture file.  CaptureError when it cannot be read at all."""
    cfg = CaptureConfig(source=path, backend="pcapfile", bpf=bpf, window_s=window_s, window_ring=256,
                        long_flow_s=long_flow_s, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 22,
                        lossless=True)
    windows: list = []
    with Session(cfg) as s:
        error = s.run_to_eof(lambda: windows.extend(s.read_windows()), progress)
        while s.flush():
            windows.extend(s.read_windows())
        windows.extend(s.read_windows())
    return windows, error
