"""fpga-sim: the capture card's software model, run in a thread of this
process.  It creates the card's device file (shared memory) and serves it
until closed; any process can then open the card at that path, as the
driver would open the real card's BAR."""
import threading
from typing import Optional

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, check
from hwdrivers.fpga import DEFAULT_DEVICE


class Simulator:
    def __init__(self, source: str, device: str = DEFAULT_DEVICE, target: str = "capbox-fpga1",
                 live: bool = False, pace: float = 0.0, loop: bool = False, desc_count: int = 16384,
                 data_mb: int = 64, flow_entries: int = 1 << 19):
        cfg = ffi.new("struct hw_fpgasim_config *")
        lib.hw_fpgasim_config_init(cfg)
        keep = [ffi.new("char[]", s.encode()) for s in (device, source, target)]
        cfg.device, cfg.source, cfg.target = keep
        cfg.live = int(live)
        cfg.pace = pace
        cfg.loop = int(loop)
        cfg.desc_count = desc_count
        cfg.data_mb = data_mb
        cfg.flow_entries = flow_entries
        out = ffi.new("struct hw_fpgasim **")
        errbuf = ffi.new("char[]", lib.HW_ERRBUF_SIZE)
        check(lib.hw_fpgasim_create(cfg, out, errbuf), errbuf)
        self._sim = out[0]
        self.device = device
        self.source = source
        self.error: Optional[CaptureError] = None
        self._thread: Optional[threading.Thread] = None

    def _serve(self) -> None:
        errbuf = ffi.new("char[]", lib.HW_ERRBUF_SIZE)
        try:
            check(lib.hw_fpgasim_run(self._sim, -1, errbuf), errbuf)
        except CaptureError as e:
            self.error = e

    def start(self) -> "Simulator":
        """Serve the card in a named thread (the GIL is released while it runs)."""
        self._thread = threading.Thread(target=self._serve, name="fpga-sim", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, should_stop=lambda: False) -> None:
        """Serve in this thread until should_stop() (checked every 200 ms)."""
        errbuf = ffi.new("char[]", lib.HW_ERRBUF_SIZE)
        while not should_stop():
            check(lib.hw_fpgasim_run(self._sim, 200, errbuf), errbuf)

    def close(self) -> None:
        if self._sim is None:
            return
        lib.hw_fpgasim_stop(self._sim)
        if self._thread is not None:
            self._thread.join(5)
        lib.hw_fpgasim_destroy(self._sim)
        self._sim = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
