"""`capbox fw ...` (firmware images: build, keys, sign, verify, inspect, load,
status) and `capbox fpga-sim` (the capture card's software model).

`fw verify` ends with the reason's exit status (firmware/errors.py: 0 ok,
10 truncated ... 19 rollback); every other command exits 0 or 1."""
import getpass
import json
import os
import pathlib
import signal
import sys
import threading
import time

from agent.cli.common import fail, guard, load_config, refused
from firmware import image, minisign, sign
from firmware.errors import FirmwareError, Reason

DEFAULT_SECRET = "capbox-fw.key"
DEFAULT_PUBLIC = "capbox-fw.pub"
PASSWORD_ENV = "CAPBOX_FW_PASSWORD"


def _read(path: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as e:
        raise FirmwareError(f"{path}: {e.strerror}") from None


def _service(args):
    """The card's part of the agent's software service, on this box's configuration."""
    from agent.software import Software
    cfg = load_config(args)
    if getattr(args, "device", None):
        import dataclasses
        cfg = dataclasses.replace(cfg, firmware=dataclasses.replace(cfg.firmware, device=args.device))
    return Software(cfg).card


def _print_verdict(v, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"valid": v.ok, **v.as_dict()}, indent=2))
        return
    print(f"{'OK' if v.ok else 'REFUSED'} ({v.reason.code}): {v.message}")
    if v.header:
        h = v.header
        print(f"image      target {h.target}, version {h.version_str}, rollback index {h.rollback}, "
              f"{h.payload_len} payload bytes")
    if v.key_id:
        print(f"key id     {v.key_id} ({'prehashed' if v.prehashed else 'legacy'} signature)")
    if v.trusted_comment is not None:
        print(f"trusted comment: {v.trusted_comment}")
    if v.rollback_override:
        print("rollback   below the floor: allowed by --allow-rollback")


def _say(args, record: dict, text: str) -> None:
    """One object with --json, the sentence without."""
    print(json.dumps(record) if getattr(args, "json", False) else text)


# ---- commands ----------------------------------------------------------------------

def cmd_build(args) -> int:
    data = image.build(_read(args.payload), args.target, args.version, args.rollback, args.build_time)
    out = pathlib.Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    h = image.parse_header(data)
    _say(args, {"image": str(out), "target": h.target, "version": h.version_str, "rollback": h.rollback,
                "payload_len": h.payload_len, "sha256": h.sha256.hex()},
         f"{out}: {h.target} {h.version_str}, rollback index {h.rollback}, {h.payload_len} payload bytes, "
         f"sha256 {h.sha256.hex()}")
    return 0


def _new_password() -> str:
    """CAPBOX_FW_PASSWORD, or asked twice on a terminal; empty: the key is not encrypted."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None or not sys.stdin.isatty():
        return password or ""
    password = getpass.getpass("password for the new secret key (empty: not encrypted): ")
    if password and getpass.getpass("again: ") != password:
        raise FirmwareError("the passwords differ")
    return password


def cmd_keygen(args) -> int:
    key = sign.generate()
    password = _new_password()
    sign.write_key_pair(key, args.secret, args.public, force=args.force, password=password)
    pub = key.public_key()
    how = "encrypted with the password (scrypt, as minisign)" if password else "unencrypted"
    _say(args, {"secret": args.secret, "public": args.public, "key_id": pub.id_hex, "encrypted": bool(password)},
         f"secret key {args.secret} ({how}, mode 0600: keep it off the box)\n"
         f"public key {args.public}, key id {pub.id_hex}")
    if args.trust:
        return cmd_trust(args, pub)
    return 0


def cmd_trust(args, pub=None) -> int:
    from firmware.keyring import Keyring, read_public_key
    svc = _service(args)
    pub = pub or read_public_key(args.pubkey)
    path = Keyring().add(pub, svc.cfg.keyring_dir)
    _say(args, {"trusted": pub.id_hex, "path": str(path)}, f"key {pub.id_hex} trusted: {path}")
    return 0


def cmd_sign(args) -> int:
    text = _read(args.secret)
    password = None
    if minisign.parse_secret_key(text).encrypted:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if not sys.stdin.isatty():
                return fail(f"{args.secret} is encrypted: set {PASSWORD_ENV} or run on a terminal")
            password = getpass.getpass(f"password for {args.secret}: ")
    key = sign.load_secret_key(text, password)
    data = _read(args.image)
    try:
        header = image.parse_header(data)
    except FirmwareError as e:
        return fail(f"{args.image}: {e.message}: not signing it")
    comment = args.trusted_comment or sign.default_trusted_comment(args.image, header)
    sig = key.sign(data, comment, prehashed=not args.legacy)
    out = args.sig or f"{args.image}.minisig"
    pathlib.Path(out).write_text(sig.to_text())
    _say(args, {"signature": out, "key_id": key.public_key().id_hex}, f"{out}: signed by key {key.public_key().id_hex}")
    return 0


def cmd_verify(args) -> int:
    from agent.errors import AgentError
    svc = _service(args)
    data = _read(args.image)
    signature = _read(args.sig or f"{args.image}.minisig")
    try:
        keys = svc.keyring(args.pubkey, args.keyring)
        v = svc.verify(data, signature, args.allow_rollback, keys=keys, target=args.target)
    except AgentError as e:
        return fail(e.message)
    _print_verdict(v, args.json)
    return v.reason.value


def cmd_inspect(args) -> int:
    data = _read(args.image)
    try:
        header, _ = image.split(data)
        info = {"file": args.image, "size": len(data), **header.as_dict(),
                "payload_matches_header": image.payload_matches(header, data[image.HEADER_LEN:])}
    except FirmwareError as e:
        info = {"file": args.image, "size": len(data), "error": e.message,
                "reason": (e.reason or Reason.MALFORMED).code}
    sig_path = args.sig or f"{args.image}.minisig"
    if os.path.exists(sig_path):
        try:
            s = minisign.parse_signature(_read(sig_path))
            info["signature"] = {"file": sig_path, "key_id": minisign.key_id_hex(s.key_id),
                                 "algorithm": "ED (prehashed)" if s.prehashed else "Ed (legacy)",
                                 "trusted_comment (not verified)": s.trusted_comment,
                                 "untrusted_comment": s.untrusted_comment}
        except FirmwareError as e:
            info["signature"] = {"file": sig_path, "error": e.message}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            if isinstance(v, dict):
                print(f"{k}:")
                for k2, v2 in v.items():
                    print(f"  {k2:<30} {v2}")
            else:
                print(f"{k:<24} {v}")
    return 0 if "error" not in info else 1


def cmd_load(args) -> int:
    from agent import log as agentlog
    from agent.errors import AgentError
    svc = _service(args)
    agentlog.setup("warning")   # refusals and rollback overrides go to the log (stderr)
    data = _read(args.image)
    signature = _read(args.sig or f"{args.image}.minisig")
    try:
        r = svc.load(data, signature, args.allow_rollback, args.reason or "", who=f"{getpass.getuser()} (CLI)")
    except AgentError as e:
        return refused(e, "loaded")
    run = r["running"]
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"loaded {run['target']} {run['version']} (rollback index {run['rollback_index']}, key "
              f"{run['key_id']}) into {run['device']}")
    return 0


def cmd_status(args) -> int:
    st = _service(args).status()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    card = st["card"]
    if not card["present"]:
        print(f"card       none at {card['device']}")
    else:
        print(f"card       {card['device']}: target {card['target']}, board {card['hw_version']}"
              f"{' (fpga-sim)' if card['model'] else ''}, link {'up' if card['link_up'] else 'down'}")
        fw = card["firmware_version"] or "-"
        err = f", last load refused: {card['last_load_error']}" if card["last_load_error"] else ""
        print(f"firmware   {card['firmware_state']} {fw} (rollback index {card['firmware_rollback']}, "
              f"{card['firmware_loads']} loads{err})")
        print(f"capture    {'on' if card['dma_running'] else 'off'}, {card['rx_packets']:,} frames received, "
              f"{card['rx_dropped']:,} dropped, flow cache {card['flowcache_used']:,}/{card['flowcache_entries']:,}")
    for name, slot in st["slots"].items():
        print(f"slot {name:<5} {slot['target']} {slot['version']}, rollback index {slot['rollback_index']}, key "
              f"{slot['key_id']}, verified {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(slot['verified_at']))} UTC")
    floors = ", ".join(f"{t} {n}" for t, n in st["rollback_floor"].items()) or "none yet"
    print(f"rollback   floor: {floors}")
    keys = st["keyring"]["key_ids"]
    print(f"keyring    {st['keyring']['dir']}: " + (", ".join(keys) if isinstance(keys, list) and keys
                                                     else str(keys) if keys else "no trusted keys"))
    return 0


def _fault(text: str) -> tuple:
    """KIND[@FRAME][:ARG], e.g. stall@1000, link@500:300, fw_crc."""
    from hwdrivers.fpga import FAULTS
    head, _, arg = text.partition(":")
    kind, _, at = head.partition("@")
    if kind not in FAULTS:
        raise ValueError(f"unknown fault {kind!r} (one of {', '.join(FAULTS)})")
    return kind, int(at or 0), int(arg or 0)


def cmd_fpga_sim(args) -> int:
    from hwdrivers import CaptureError, fpga
    from hwdrivers.fpgasim import Simulator
    try:
        faults = [_fault(f) for f in args.fault]
    except ValueError as e:
        return fail(str(e))
    live = not os.path.exists(args.source)
    try:
        sim = Simulator(args.source, device=args.device, target=args.target, live=live, pace=args.pace,
                        loop=args.loop, desc_count=args.ring, data_mb=args.data_mb, flow_entries=args.flow_entries)
    except CaptureError as e:
        return fail(e.message)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sim.start()
        for kind, at, arg in faults:
            fpga.inject_fault(args.device, kind, at, arg)
        print(f"fpga-sim: card {args.target} at {args.device}, fed from {'interface' if live else 'file'} "
              f"{args.source}; no firmware yet (capbox fw load IMAGE)", flush=True)
        while not stop.wait(0.5):
            if sim.error:
                return fail(sim.error.message)
    except CaptureError as e:
        return fail(e.message)
    finally:
        sim.close()
    return 0


def add_parsers(sub) -> None:
    fw = sub.add_parser("fw", help="firmware images: build, keygen, sign, verify, inspect, load, status, trust")
    fws = fw.add_subparsers(dest="fw_command", metavar="ACTION")
    fws.required = True

    def common(p, device=False):
        p.add_argument("--config", metavar="FILE")
        p.add_argument("--data-dir", metavar="DIR")
        if device:
            p.add_argument("--device", metavar="PATH", help="the card's device path (default firmware.device)")
        return p

    b = fws.add_parser("build", help="make an image from a payload")
    b.add_argument("payload")
    b.add_argument("--target", required=True, help="hardware target name")
    b.add_argument("--image-version", "--version", dest="version", required=True, metavar="X.Y.Z")
    b.add_argument("--rollback", required=True, type=int, metavar="N", help="anti-rollback index")
    b.add_argument("--build-time", type=int, metavar="UNIX", help="default: now")
    b.add_argument("-o", "--output", required=True, metavar="IMAGE")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=guard(cmd_build))

    k = common(fws.add_parser("keygen", help="a new signing key pair (minisign format)"))
    k.add_argument("-s", "--secret", default=DEFAULT_SECRET, metavar="FILE")
    k.add_argument("-p", "--public", default=DEFAULT_PUBLIC, metavar="FILE")
    k.add_argument("-f", "--force", action="store_true", help="overwrite existing key files")
    k.add_argument("--trust", action="store_true", help="also add the public key to this box's keyring")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=guard(cmd_keygen))

    t = common(fws.add_parser("trust", help="add a minisign public key file to this box's keyring"))
    t.add_argument("pubkey")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=guard(cmd_trust))

    s = fws.add_parser("sign", help="sign an image (writes IMAGE.minisig)")
    s.add_argument("image")
    s.add_argument("-s", "--secret", default=DEFAULT_SECRET, metavar="FILE",
                   help=f"minisign secret key (encrypted: password from ${PASSWORD_ENV} or the terminal)")
    s.add_argument("-x", "--sig", metavar="FILE", help="signature file (default IMAGE.minisig)")
    s.add_argument("-t", "--trusted-comment", metavar="TEXT")
    s.add_argument("--legacy", action="store_true", help="sign the file itself, not its BLAKE2b-512 hash")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=guard(cmd_sign))

    v = common(fws.add_parser("verify", help="verify an image: exit status 0, or the reason's (10-19)"), device=True)
    v.add_argument("image")
    v.add_argument("--sig", metavar="FILE", help="signature (default IMAGE.minisig)")
    keys = v.add_mutually_exclusive_group()
    keys.add_argument("--pubkey", metavar="FILE", help="trust this minisign public key file only")
    keys.add_argument("--keyring", metavar="DIR", help="trust the *.pub files here (default: the box's keyring)")
    v.add_argument("--target", help="hardware target (default: the card's, else firmware.target)")
    v.add_argument("--allow-rollback", action="store_true", help="accept an index below the floor")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=guard(cmd_verify))

    i = fws.add_parser("inspect", help="show an image's header (and its signature, unverified)")
    i.add_argument("image")
    i.add_argument("--sig", metavar="FILE")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=guard(cmd_inspect))

    ld = common(fws.add_parser("load", help="verify an image, then load it into the card"), device=True)
    ld.add_argument("image")
    ld.add_argument("--sig", metavar="FILE")
    ld.add_argument("--allow-rollback", action="store_true", help="load below the rollback floor (logged)")
    ld.add_argument("--reason", help="why (required with --allow-rollback)")
    ld.add_argument("--json", action="store_true")
    ld.set_defaults(func=guard(cmd_load))

    st = common(fws.add_parser("status", help="the card, its slot and the rollback floor"), device=True)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=guard(cmd_status))
    _add_fpga_sim(sub)


def _add_fpga_sim(sub) -> None:
    from hwdrivers.fpga import DEFAULT_DEVICE
    sim = sub.add_parser("fpga-sim", help="run the capture card's software model until interrupted")
    sim.add_argument("--source", required=True, metavar="FILE|IFACE", help="capture file, or interface")
    sim.add_argument("--device", default=DEFAULT_DEVICE, metavar="PATH")
    sim.add_argument("--target", default="capbox-fpga1", help="the hardware target the card reports")
    sim.add_argument("--pace", type=float, default=0.0, help="files: 1.0 = recorded pace, 0 = as fast as drained")
    sim.add_argument("--loop", action="store_true", help="files: start over at the end")
    sim.add_argument("--ring", type=int, default=16384, help="DMA descriptors (power of two)")
    sim.add_argument("--data-mb", type=int, default=64, help="packet data ring, MiB (power of two)")
    sim.add_argument("--flow-entries", type=int, default=1 << 19, help="flow-cache entries (power of two)")
    sim.add_argument("--fault", action="append", default=[], metavar="KIND[@FRAME][:ARG]",
                     help="misbehave: stall@N, corrupt@N, link@N:MS, fw_crc (repeatable)")
    sim.set_defaults(func=cmd_fpga_sim)
