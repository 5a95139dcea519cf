"""Windows of a capture file: the C core run over it with windows on."""
import os
from typing import Callable, Optional

from hwdrivers import CaptureConfig, CaptureError, RunResult, Session

PROGRESS_EVERY_MS = 200


def compute(path: str, window_s: int, bpf: str = "", long_flow_s: int = 3600,
            progress: Optional[Callable[[float], None]] = None) -> tuple:
    """(windows, error or None) for a capture file.  CaptureError when it cannot be read at all."""
    cfg = CaptureConfig(source=path, backend="pcapfile", bpf=bpf, window_s=window_s, window_ring=256,
                        long_flow_s=long_flow_s, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 22,
                        lossless=True)
    size = os.path.getsize(path) if progress and os.path.isfile(path) else 0
    windows, error = [], None
    with Session(cfg) as s:
        while True:
            try:
                result = s.run(timeout_ms=PROGRESS_EVERY_MS)
            except CaptureError as e:
                error = e
                break
            windows.extend(s.read_windows())
            if size:
                c = s.counters()
                progress(min(1.0, (24 + c.captured_bytes + 16 * c.packets) / size))
            if result == RunResult.EOF:
                break
        while s.flush():
            windows.extend(s.read_windows())
        windows.extend(s.read_windows())
    return windows, error
