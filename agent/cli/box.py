"""The commands about this box: run the agent, attach the console, API keys,
and a short live capture."""
import json
import os
import sys
import time

from agent.cli.common import add_tls_arguments, fail, load_config, seconds_or_never


def cmd_run(args) -> int:
    if args.firstboot and not args.data_dir:
        return fail("--firstboot needs --data-dir (where the box keeps its secrets)")
    tls = start_tls(args.data_dir) if args.firstboot else None
    from agent.config import ConfigError
    if args.firstboot:
        if tls is not None:      # the agent's modules load while the pair is made (build_agent's imports, sooner)
            import agent.api.rest, agent.runtime  # noqa: F401, E401
        rc = cmd_firstboot(args, tls)
        if rc:
            return rc
    over = {}
    if args.source:
        # the operator at the shell is trusted with any file (REST keeps naming only the capture directories)
        over["capture"] = {"source": os.path.abspath(args.source) if os.path.isfile(args.source) else args.source}
    if args.backend:
        over.setdefault("capture", {})["backend"] = args.backend
    if args.listen:
        over["api"] = {"listen": args.listen}
    try:
        cfg = load_config(args, over)
    except ConfigError as e:
        return fail(f"config: {e}")
    console = not args.headless and sys.stdin.isatty() and sys.stdout.isatty()
    try:
        agent = build_agent(cfg, console)
    except ConfigError as e:
        return fail(f"config: {e}")
    except OSError as e:
        return fail(f"cannot start: {e}")
    return run_with_tui(agent) if console else agent.run_forever()


def build_agent(cfg, console: bool):
    """The agent with its faces wired on: the REST face, then the serial console when [console] port
    names one (it calls the agent's services)."""
    from agent.api.rest import RestFace
    from agent.runtime import Agent
    agent = Agent(cfg, console=console)
    agent.attach(RestFace(agent))
    if cfg.console.port:    # else the console's service is not wanted: its face would start nothing (the image's
        from agent.console.port import ConsoleFace      # console is capbox-console.service), so it is not loaded
        agent.attach(ConsoleFace(agent))
    return agent


def run_with_tui(agent) -> int:
    """The agent and the Textual console in this process (a terminal at the box), which
    calls the agent's services (LocalClient), not its REST face."""
    import signal
    from agent.console.local import LocalClient
    from tui.app import CapboxApp
    from tui.source import Source
    agent.start()
    tui = CapboxApp(Source(LocalClient(agent), "this process"))
    signal.signal(signal.SIGTERM, lambda signum, frame: tui.call_from_thread(tui.exit))
    try:
        tui.run()
    finally:
        agent.shutdown()
    return 0


def cmd_tui(args) -> int:
    from tui.app import CapboxApp
    from tui.source import remote
    from agent.client import default_key
    key = args.key or default_key(args.data_dir or "./var")
    if not key:
        key_file = os.path.join(args.data_dir or "./var", "admin.key")
        return fail(f"no API key: give --key, set CAPBOX_KEY, or run where {key_file} is readable")
    try:
        source = remote(args.url, key, cacert=args.cacert, pin=args.pin)
    except (ValueError, OSError) as e:
        return fail(str(e))
    CapboxApp(source).run()
    return 0


def start_tls(data_dir: str):
    """`capbox run --firstboot` on a box without its TLS key pair: the pair made by openssl
    (agent.firstboot.start_tls) while this process loads the agent, on the other CPU.  None when the pair
    is there."""
    import pathlib
    from agent import firstboot
    return None if firstboot.has_tls(data_dir) else firstboot.start_tls(pathlib.Path(data_dir))


def cmd_firstboot(args, tls=None) -> int:
    """`capbox firstboot`, and `capbox run --firstboot` before the agent starts (the image's capbox.service):
    what start_tls() began is waited for, the rest made here.  Without the configuration: it names the
    certificate, and does not load before it exists."""
    import argparse
    import pathlib
    from agent import firstboot
    from agent.config import ConfigError
    started = time.monotonic()
    made = []
    if tls is not None:
        try:
            firstboot.end_tls(pathlib.Path(args.data_dir), tls)
            made.append("tls")
        except OSError:
            pass                                    # made again below (firstboot.run), or said why not
    try:
        cfg = load_config(argparse.Namespace(config=None, data_dir=args.data_dir))
        made += firstboot.run(cfg)
    except ConfigError as e:
        return fail(f"config: {e}")
    except OSError as e:
        return fail(f"firstboot: {e.filename}: {e.strerror}")
    print(f"firstboot: {', '.join(made) or 'nothing to do'} in {cfg.data_dir} "
          f"({time.monotonic() - started:.1f} s)", flush=True)
    for line in firstboot.notice(cfg.data_dir):
        print(line, flush=True)
    return 0


def cmd_keys(args) -> int:
    from agent.auth import KeyStore
    from agent.config import ConfigError
    from agent.errors import AgentError
    from agent.store import Store
    try:
        cfg = load_config(args)
    except ConfigError as e:
        return fail(f"config: {e}")
    if args.keys_command != "create" and not cfg.db_path.exists():
        # nothing to list or revoke, and a read must not leave a store behind
        if args.keys_command == "list":
            print("[]" if args.json else f"no keys (no store at {cfg.db_path})")
            return 0
        return fail(f"no active key with id {args.key_id} (no store at {cfg.db_path})")
    cfg.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store(cfg.db_path)
    keys = KeyStore(store)
    try:
        if args.keys_command == "create":
            token, key = keys.create(args.kind, args.name, tuple(s for s in args.scopes.split(",") if s),
                                     args.ttl or None)
            if args.json:
                print(json.dumps({"key": token, **key.public()}))
            else:
                print(token)
                print(f"id {key.id}, {key.kind} ({key.public()['access']}); store it now: it is not shown again",
                      file=sys.stderr)
        elif args.keys_command == "list":
            items = [k.public() for k in keys.list()]
            if args.json:
                print(json.dumps(items, indent=2))
            else:
                print(f"{'id':<10} {'kind':<4} {'state':<8} {'expires':<20} name")
                now = time.time()
                for k in items:
                    state = "revoked" if k["revoked"] else "expired" if k["expires"] and k["expires"] < now else "active"
                    exp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k["expires"])) if k["expires"] else "never"
                    print(f"{k['id']:<10} {k['kind']:<4} {state:<8} {exp:<20} {k['name']}")
        elif not keys.revoke(args.key_id):
            return fail(f"no active key with id {args.key_id}")
        elif args.json:
            print(json.dumps({"revoked": True, "id": args.key_id}))
        else:
            print(f"revoked {args.key_id}")
    except AgentError as e:
        return fail(e.message)
    finally:
        store.close()
    return 0


def cmd_capture(args) -> int:
    from agent import report
    from agent.cli.files import emit_report
    from hwdrivers import CaptureError
    words = list(args.words)
    iface = args.interface or (words.pop(0) if words else None)
    if not iface:
        return fail("give an interface: -i IFACE (or the card's device path with --backend fpga)", 2)
    if words and args.bpf:
        return fail("give the filter once: --bpf EXPR or an expression at the end", 2)
    args.iface, args.bpf = iface, " ".join(words) or args.bpf or ""
    opts = report.Options(bpf=args.bpf, top=args.top, idle_timeout_s=args.idle_timeout)
    live = report.LiveOptions(backend=args.backend, snaplen=args.snaplen, buffer_size_mb=args.buffer_mb,
                              promisc=not args.no_promisc, fanout_group=args.fanout_group,
                              duration_s=args.duration, count=args.count)
    try:
        r = report.capture(args.iface, opts, live)
    except CaptureError as e:
        return fail(e.message)
    return emit_report(r, args.json)


def add_parsers(sub) -> None:
    r = sub.add_parser("run", help="run the agent (default: the bundled demo capture, REST on 127.0.0.1:8080)")
    r.add_argument("--config", metavar="FILE", help="TOML configuration file")
    r.add_argument("--source", metavar="demo|FILE|IFACE", help="what to capture at start (any file you name)")
    r.add_argument("--backend", choices=["pcapfile", "pcap", "afpacket", "fpga"])
    r.add_argument("--data-dir", metavar="DIR", help="SQLite store, keys and recordings (default ./var)")
    r.add_argument("--listen", metavar="HOST:PORT", help="REST address (default 127.0.0.1:8080)")
    r.add_argument("--headless", action="store_true", help="no console even on a terminal")
    r.add_argument("--firstboot", action="store_true",
                   help="first make the box's own secrets in --data-dir when missing (as `capbox firstboot`)")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("tui", help="the console, attached to a running agent")
    t.add_argument("--url", default="http://127.0.0.1:8080")
    t.add_argument("--key", help="API key (default: CAPBOX_KEY, or DATA_DIR/admin.key)")
    t.add_argument("--data-dir", metavar="DIR", help="where admin.key is (default ./var)")
    add_tls_arguments(t)
    t.set_defaults(func=cmd_tui)

    k = sub.add_parser("keys", help="API keys: create, list, revoke")
    k.add_argument("--config", metavar="FILE")
    k.add_argument("--data-dir", metavar="DIR")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    kc = ks.add_parser("create", help="create a key and print it (shown once)")
    kc.add_argument("--kind", choices=["sk", "pk", "tk"], default="pk",
                    help="sk full, pk read-only, tk scoped and expiring (default pk)")
    kc.add_argument("--name", default="api key")
    kc.add_argument("--scopes", default="", help="tk: comma-separated route groups it may write to")
    kc.add_argument("--ttl", type=int, default=0, metavar="SECONDS", help="expire after (tk default: a day)")
    kc.add_argument("--json", action="store_true")
    kl = ks.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--json", action="store_true")
    kr = ks.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id")
    kr.add_argument("--json", action="store_true")
    k.set_defaults(func=cmd_keys)

    fb = sub.add_parser("firstboot", help="a box's own secrets, made once: TLS key and certificate, "
                                           "console setup code (the image runs it before the agent)")
    # no --config: a configuration naming the certificate does not load before it exists
    fb.add_argument("--data-dir", metavar="DIR", help="where the agent keeps its state (default ./var)")
    fb.set_defaults(func=cmd_firstboot, config=None)

    c = sub.add_parser("capture", help="capture from an interface (or the card) for a while and summarise it")
    c.add_argument("words", nargs="*", metavar="IFACE [EXPRESSION]",
                   help="the interface (unless -i gave it), then a BPF expression as tcpdump takes it")
    c.add_argument("-i", "--interface", metavar="IFACE", help="interface name (fpga: the card's device path)")
    c.add_argument("--backend", default="afpacket", choices=["afpacket", "pcap", "fpga"])
    c.add_argument("--duration", type=float, default=0, metavar="S", help="stop after S seconds")
    c.add_argument("-c", "--count", type=int, default=0, metavar="N", help="stop after N packets")
    c.add_argument("--bpf", metavar="EXPR", help="kernel BPF filter (or give it last)")
    c.add_argument("-s", "--snaplen", type=int, default=65535)
    c.add_argument("--buffer-mb", type=int, default=64, help="capture ring size (default 64)")
    c.add_argument("--no-promisc", action="store_true")
    c.add_argument("--fanout-group", type=int, metavar="ID", help="afpacket fanout group")
    c.add_argument("--json", action="store_true")
    c.add_argument("--top", type=int, default=10, metavar="N")
    c.add_argument("--idle-timeout", type=seconds_or_never, default=0, metavar="S")
    c.set_defaults(func=cmd_capture)
