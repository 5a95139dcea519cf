"""Builds hwdrivers._hw, the C core, with cffi in API mode.

The declarations Python sees are the cdef/*.h files, which the C sources
include too (through include/hw.h): one copy of every type and constant.
"""
import os
import pathlib
import sys

import cffi

HERE = pathlib.Path(__file__).resolve().parent
CDEF_FILES = ["session.h", "flows.h", "records.h", "dnsgate.h", "events.h",
              "windows.h", "tokens.h", "fpga.h", "export.h", "record.h", "extract.h", "rtp.h", "shring.h", "logs.h"]
SOURCES = ["hw.c", "parse.c", "flowtable.c", "windows.c", "ring.c", "hosts.c", "topn.c", "app.c", "frag.c", "tokens.c",
           "rtp.c", "tunnel.c", "hw-pcapfile.c", "hw-pcap.c", "hw-afpacket.c", "hw-fpga.c", "fpgasim.c", "ipfix.c",
           "record.c", "recread.c", "extract.c", "records.c", "srcsum.c", "dnsgate.c", "dnsrepeat.c", "rec-dns.c",
           "rec-tls.c", "rec-l2.c", "rec-http.c", "communityid.c", "shring.c", "logs.c", "logconn.c", "loghttp.c",
           "logtls.c", "logjson.c", "logindex.c"]
CFLAGS = ["-std=gnu11", "-O2", "-flto", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"]


def cdef_text() -> str:
    return "\n".join((HERE / "cdef" / name).read_text() for name in CDEF_FILES)


def make_builder(extra_cflags=(), root: str = "") -> cffi.FFI:
    """root "": paths relative to the project root, as setuptools wants them (a
    wheel build); compile() changes directory, so `make build` gives the root."""
    builder = cffi.FFI()
    builder.cdef(cdef_text())
    builder.set_source(
        "hwdrivers._hw",
        '#include "hw.h"',
        sources=[os.path.join(root, "hwdrivers", "src", s) for s in SOURCES],
        include_dirs=[os.path.join(root, "hwdrivers", "include")],
        libraries=["pcap", "m", "crypto"],
        extra_compile_args=CFLAGS + list(extra_cflags),
        extra_link_args=["-flto", "-O2"],
    )
    return builder


ffibuilder = make_builder(os.environ.get("CAPBOX_CFLAGS", "").split())

if __name__ == "__main__":
    os.chdir(HERE.parent)
    build_dir = HERE.parent / "build" / "cffi"
    build_dir.mkdir(parents=True, exist_ok=True)
    ffibuilder = make_builder(os.environ.get("CAPBOX_CFLAGS", "").split(), str(HERE.parent))
    ffibuilder.compile(tmpdir=str(build_dir), target=None, verbose="-v" in sys.argv)
    # compile() leaves the extension under build_dir/hwdrivers/: move it beside the package
    for so in (build_dir / "hwdrivers").glob("_hw*.so"):
        os.replace(so, HERE / so.name)
        print(f"built {HERE / so.name}")
