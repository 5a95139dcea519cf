"""`capbox update ...`: build and sign bundles (the vendor's side), verify,
install and show them (the box's side), and the trial boot's guard.

`update verify` ends with the verdict's exit status (as `fw verify`: 0 ok,
10 truncated ... 19 rollback); the other commands exit 0 or 1."""
import getpass
import json
import pathlib
import time

from agent.cli.common import fail, guard, load_config, refused
from firmware.errors import FirmwareError


def _service(args):
    """The system's part of the agent's software service, on this box's configuration."""
    from agent.software import Software
    return Software(load_config(args)).system


def _signature(args) -> bytes:
    path = args.sig or f"{args.bundle}.minisig"
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as e:
        raise FirmwareError(f"{path}: {e.strerror}") from None


def cmd_build(args) -> int:
    from firmware import bundle
    m = bundle.build(args.output, args.rootfs, args.uki, args.target, args.version, args.rollback, args.build_id)
    line = (f"{args.output}: {m['target']} {m['version']}, rollback index {m['rollback_index']}, "
            f"rootfs {m['rootfs']['size']} bytes, UKI {m['uki']['size']} bytes")
    if args.key:
        sig = bundle.sign_file(args.output, args.key)
        line += f"; signed: {sig}"
    print(line)
    return 0


def _print_verdict(d: dict) -> None:
    print(f"{'OK' if d['valid'] else 'REFUSED'} ({d['reason']}): {d['message']}")
    m = d.get("manifest")
    if m:
        print(f"bundle     {m['target']} {m['version']}, rollback index {m['rollback_index']}, build {m.get('build_id')}")
        print(f"rootfs     {m['rootfs']['size']} bytes, sha256 {m['rootfs']['sha256']}")
        print(f"uki        {m['uki']['size']} bytes, sha256 {m['uki']['sha256']}")
    if d.get("key_id"):
        print(f"key id     {d['key_id']}")


def cmd_verify(args) -> int:
    from agent.errors import AgentError
    from firmware import bundle
    from firmware.keyring import Keyring
    svc = _service(args)
    sig = _signature(args)
    try:
        if args.pubkey or args.target:
            keys = Keyring.from_file(args.pubkey) if args.pubkey else svc.keyring()
            with open(args.bundle, "rb") as f:
                verdict, contents = bundle.verify(f, sig, keys, args.target, 0, False)
        else:
            verdict, contents = svc.verify(args.bundle, sig)
    except AgentError as e:
        return fail(e.message)
    except OSError as e:
        return fail(f"{args.bundle}: {e.strerror}")
    d = bundle.describe(verdict, contents)
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        _print_verdict(d)
    return verdict.reason.value


def cmd_install(args) -> int:
    from agent import log as agentlog
    from agent.errors import AgentError
    svc = _service(args)
    agentlog.setup("info")
    sig = _signature(args)
    try:
        r = svc.install(args.bundle, sig, args.allow_rollback, args.reason or "", who=f"{getpass.getuser()} (CLI)")
    except AgentError as e:
        return refused(e, "written")
    except OSError as e:
        return fail(f"{args.bundle}: {e.strerror}")
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"slot {r['slot']} now holds {r['version']}; it is tried once on the next boot, and committed "
              "when the agent is healthy")
    if not args.no_reboot:
        print("rebooting", flush=True)
        svc.platform.reboot()
    return 0


def _when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC" if t else "-"


def cmd_status(args) -> int:
    from agent.errors import AgentError
    try:
        st = _service(args).status()
    except AgentError as e:
        return fail(e.message)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    if not st["image"]:
        print(st["note"])
        return 0
    rel = st["release"] or {}
    print(f"running    {rel.get('name', 'capbox')} {rel.get('version', '?')} (build {rel.get('build_id', '?')}) "
          f"from slot {st['booted_slot']}; committed slot {st['committed_slot']}")
    for name, s in st["slots"].items():
        marks = ", ".join(m for m, on in (("booted", s["booted"]), ("committed", s["committed"])) if on)
        print(f"slot {name}     {s['status']:<9} {s['version'] or '-':<10} {s['partition'] or '-':<12} "
              f"written {_when(s['written_at'])}" + (f"  [{marks}]" if marks else "")
              + (f"  ({s['reason']})" if s["reason"] else ""))
    t = st["trial"]
    print(f"trial      {'slot ' + t['slot'] + ' ' + str(t['version']) if t else 'none'}")
    if st.get("data_persistent") is False:
        print("data       NOT persistent: the data partition did not mount (state is lost at reboot)")
    for h in st["history"][-5:]:
        extra = h.get("reason") or h.get("version") or ""
        print(f"  {_when(h['at'])}  {h['event']:<16} slot {h['slot']}  {extra}")
    return 0


def health_probe(cfg, timeout: float = 5.0):
    """GET /v1/health of the agent this configuration describes: its status word.  Over
    HTTPS when the API has a certificate, checked against that certificate."""
    from agent.client import Client
    host, port = cfg.listen
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    scheme = "https" if cfg.api.tls_cert else "http"
    client = Client(f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}", timeout=timeout,
                    cacert=cfg.api.tls_cert or None)

    def probe():
        try:
            r = client.raw("GET", "/v1/health")
        except OSError as e:
            return f"no answer ({e})"
        try:
            return (r.json() or {}).get("status") or f"http {r.status}"
        except ValueError:
            return f"http {r.status}"
    return probe


def cmd_guard(args) -> int:
    from agent import config, log as agentlog
    from agent.errors import AgentError
    from agent.software import Software
    agentlog.setup("info")
    try:
        try:
            svc = _service(args)
        except config.ConfigError as e:
            # the slot on trial carries a configuration the agent cannot start with: that
            # is its verdict, recorded in the state on --data-dir (which needs no configuration)
            if not args.data_dir:
                return fail(f"config: {e}")
            svc = Software(config.load(None, env={}, overrides={"agent": {"data_dir": args.data_dir}})).system
            svc.reconcile()
            svc.fail(f"the agent's configuration does not load: {e}")
            return 1
        ok = svc.guard(health_probe(svc.cfg), args.timeout, args.stable, args.poll)
    except AgentError as e:
        return fail(e.message)
    return 0 if ok else 1


def add_parsers(sub) -> None:
    up = sub.add_parser("update", help="system updates: build, verify, install, status (A/B slots)")
    ups = up.add_subparsers(dest="update_command", metavar="ACTION")
    ups.required = True

    def common(p):
        p.add_argument("--config", metavar="FILE")
        p.add_argument("--data-dir", metavar="DIR")
        return p

    b = ups.add_parser("build", help="make an update bundle (rootfs image + UKI + manifest), optionally signed")
    b.add_argument("--rootfs", required=True, metavar="IMAGE", help="root filesystem image (squashfs)")
    b.add_argument("--uki", required=True, metavar="EFI", help="unified kernel image")
    b.add_argument("--target", default="capbox-x86_64", help="system target (default capbox-x86_64)")
    b.add_argument("--image-version", "--version", dest="version", required=True, metavar="X.Y.Z")
    b.add_argument("--rollback", required=True, type=int, metavar="N")
    b.add_argument("--build-id", default="")
    b.add_argument("--key", metavar="SECRET", help="sign with this minisign secret key (writes BUNDLE.minisig)")
    b.add_argument("-o", "--output", required=True, metavar="BUNDLE")
    b.set_defaults(func=guard(cmd_build))

    v = common(ups.add_parser("verify", help="verify a bundle: exit status 0, or the reason's (10-19)"))
    v.add_argument("bundle")
    v.add_argument("--sig", metavar="FILE", help="signature (default BUNDLE.minisig)")
    v.add_argument("--pubkey", metavar="FILE", help="trust this public key only (no rollback check)")
    v.add_argument("--target", help="system target (default: the running image's)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=guard(cmd_verify))

    i = common(ups.add_parser("install", help="verify, write the inactive slot, try it once on reboot"))
    i.add_argument("bundle")
    i.add_argument("--sig", metavar="FILE")
    i.add_argument("--no-reboot", action="store_true", help="leave the reboot to later")
    i.add_argument("--allow-rollback", action="store_true", help="install below the rollback floor (logged)")
    i.add_argument("--reason", help="why (required with --allow-rollback)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=guard(cmd_install))

    s = common(ups.add_parser("status", help="slots, versions, which is booted and committed"))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=guard(cmd_status))

    g = common(ups.add_parser("guard", help="(boot) commit the slot on trial once healthy; exit 1 when it fails"))
    g.add_argument("--timeout", type=float, default=90, metavar="S", help="health must come within (default 90)")
    g.add_argument("--stable", type=float, default=10, metavar="S", help="and last this long (default 10)")
    g.add_argument("--poll", type=float, default=2, metavar="S")
    g.set_defaults(func=guard(cmd_guard))
