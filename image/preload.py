"""image/preload.py: the files the agent's start reads off the root slot, in the order it reads them
(run in the image's tree at build time by customize.sh; one path a line to /usr/lib/capbox/preload.list).

Why: under emulation, reading the slot (a page-cache miss: the block read, dm-verity's hash,
squashfs's decompression) is about half of the agent's Python start.  The initramfs reads these
files in the background as soon as it has mounted the slot (image/initramfs/.../capbox/data), on a CPU
that is otherwise idle while the kernel switches to systemd and systemd starts; the agent then
finds them in the page cache.  The reads go through dm-verity like any other: nothing is trusted
that was not checked.  A list that is stale (a module renamed) only reads less ahead."""
import importlib
import os
import shutil
import sys

# what `capbox run --firstboot` imports on a box's first boot (the parser, the secrets, the agent and
# its REST face: the serial console is capbox-console.service's, after READY), then its consumer worker
# and log indexer (`python -m ...`: their own interpreters)
MODULES = ("agent.cli", "agent.cli.box", "agent.firstboot", "agent.password", "agent.runtime", "agent.api.rest",
           "agent.consumers", "hwdrivers.shring", "agent.logs.indexer")
PROGRAMS = ("openssl",)   # the first boot's TLS key pair, beside the agent's start (agent.firstboot.tls_command)


BIG = 8 << 20        # larger files are mapped and paged in as touched: not read whole


def files() -> list:
    for name in MODULES:
        importlib.import_module(name)
    out = [os.path.realpath(sys.executable), *(os.path.realpath(w) for w in map(shutil.which, PROGRAMS) if w)]
    try:                                          # the shared libraries: libc, libssl, libffi, sqlite ...
        with open("/proc/self/maps") as maps:
            out += [line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6]
    except OSError:
        pass
    for mod in list(sys.modules.values()):        # import order (a dict keeps insertion order)
        spec = getattr(mod, "__spec__", None)
        path = getattr(spec, "cached", None) or getattr(spec, "origin", None)
        out.append(path or "")
    seen: set = set()
    return [p for p in out if p.startswith("/") and os.path.isfile(p) and os.path.getsize(p) <= BIG
            and not (p in seen or seen.add(p))]


if __name__ == "__main__":
    print("\n".join(files()))
