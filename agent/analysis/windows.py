"""Windows of a capture file: the C core run over it with windows on."""
from typing import Callable, Optional

from hwdrivers import CaptureConfig, Session


def compute(path: str, window_s: int, bpf: str = "", long_flow_s: int = 3600,
            progress: Optional[Callable[[float], None]] = None,
            sink: Optional[Callable[[list], None]] = None) -> tuple:
    """(windows, error or None) for a capture file.  CaptureError when it cannot be read at all.
    With sink, the windows go to sink(batch) as they close, in order, and none is kept: a day-long
    capture's windows are 200 MB of dicts at once."""
    cfg = CaptureConfig(source=path, backend="pcapfile", bpf=bpf, window_s=window_s, window_ring=256,
                        long_flow_s=long_flow_s, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 22,
                        lossless=True)
    windows: list = []
    take = windows.extend if sink is None else (lambda batch: batch and sink(batch))
    with Session(cfg) as s:
        error = s.run_to_eof(lambda: take(s.read_windows()), progress)
        while s.flush():
            take(s.read_windows())
        take(s.read_windows())
    return windows, error
