"""A box without the box: partitions are files, the ESP a directory, efivarfs
a directory, and a reboot is what systemd-boot and the initramfs do (spend the
one-shot entry or take loader.conf's default, then name the slot and a new
boot id).  What boots is read back from the slot's partition, so a test sees
the system it wrote, not the one it meant to write."""
import dataclasses
import json
import os
import pathlib
import struct
import uuid

import pytest

from agent import config
from firmware import bundle
from firmware.boot import Platform
from agent.software.system import UpdateService
from firmware import sign
from firmware.keyring import Keyring
from tests.firmware import conftest as firmware_fixtures

TARGET = "capbox-x86_64"
PART_SIZE = 1 << 20
minisign_bin = firmware_fixtures.minisign_bin      # the real minisign, as the oracle


def rootfs_image(version: str, rollback: int = 1, size: int = 200_000, broken: bool = False) -> bytes:
    """A stand-in for a squashfs slot: the superblock's magic and fields, the
    release it boots as, padding."""
    release = json.dumps({"name": "capbox", "version": version, "rollback_index": rollback, "target": TARGET,
                          "build_id": f"test-{version}", "broken": broken}).encode()
    sb = b"hsqs" + struct.pack("<II", 1000, 1_790_000_000 + rollback) + bytes(32) + struct.pack("<Q", size)
    sb = sb.ljust(96, b"\0")
    body = sb + struct.pack("<I", len(release)) + release
    return body + bytes(size - len(body))


class Box:
    def __init__(self, root: pathlib.Path, key):
        self.root = root
        self.esp = root / "esp"
        (self.esp / "loader").mkdir(parents=True)
        (self.esp / "EFI" / "Linux").mkdir(parents=True)
        (self.esp / "loader" / "loader.conf").write_text("default capbox-a.efi\ntimeout 0\neditor no\n")
        # the box's / is `root` (Platform.under): the CLI and the agent find it with CAPBOX_SYSTEM_ROOT
        self.platform = Platform.under(root)
        self.efivars = self.platform.efivars
        self.efivars.mkdir(parents=True)
        self.data = self.platform.data_root
        (self.data / "var").mkdir(parents=True)
        self.parts = {s: root / f"part-{s}" for s in "ab"}
        first = rootfs_image("1.0.0", 1)
        for s, p in self.parts.items():
            p.write_bytes(first.ljust(PART_SIZE, b"\0"))
            (self.esp / "EFI" / "Linux" / f"capbox-{s}.efi").write_bytes(b"MZ uki 1.0.0")
        self.boot_env = self.platform.boot_env_path
        self.release = self.platform.release_path
        self.boot_id = self.platform.boot_id_path
        for f in (self.boot_env, self.release, self.boot_id):
            f.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = root / "var"
        self.cfg = config.load(None, env={}, overrides={"agent": {"data_dir": str(self.data_dir)}})
        Keyring().add(key.public_key(), self.cfg.keyring_dir)
        self.reboots = 0
        self.boot()

    # what the boot loader and the initramfs do
    def boot(self, loader_fails: bool = False) -> str:
        var = self.efivars / "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
        chosen = None
        if var.exists():
            chosen = var.read_bytes()[4:].decode("utf-16-le").rstrip("\0")
            var.unlink()            # systemd-boot deletes it as it reads it
        if chosen is None:
            conf = (self.esp / "loader" / "loader.conf").read_text()
            chosen = next(l.split()[1] for l in conf.splitlines() if l.startswith("default "))
        slot = chosen.removeprefix("capbox-").removesuffix(".efi")
        self.boot_env.write_text(f"CAPBOX_SLOT={slot}\nCAPBOX_ENTRY={chosen}\nCAPBOX_ESP={self.esp}\n"
                                 f"CAPBOX_ROOT_A={self.parts['a']}\nCAPBOX_ROOT_B={self.parts['b']}\n"
                                 "CAPBOX_DATA_PERSISTENT=1\n")
        raw = self.parts[slot].read_bytes()
        n = struct.unpack_from("<I", raw, 96)[0]
        self.release.write_text(raw[100:100 + n].decode())
        self.boot_id.write_text(str(uuid.uuid4()))
        self.reboots += 1
        self.slot = slot
        return slot

    @property
    def running(self) -> dict:
        return json.loads(self.release.read_text())

    def service(self) -> UpdateService:
        return UpdateService(self.cfg, self.platform)

    def oneshot(self):
        return self.platform.oneshot()

    def snapshot(self) -> dict:
        """Every byte an update could write: partitions, ESP, EFI variables, slot state."""
        out = {f"part-{s}": p.read_bytes() for s, p in self.parts.items()}
        for base in (self.esp, self.efivars):
            for f in sorted(base.rglob("*")):
                if f.is_file():
                    out[str(f)] = f.read_bytes()
        state = self.cfg.data_dir / "update" / "state.json"
        out["state"] = state.read_bytes() if state.exists() else None
        return out


@dataclasses.dataclass
class Made:
    path: pathlib.Path
    signature: str
    rootfs: bytes


@pytest.fixture(scope="session")
def key():
    return sign.generate()


@pytest.fixture(scope="session")
def stranger():
    return sign.generate()


@pytest.fixture
def box(tmp_path, key):
    return Box(tmp_path / "box", key)


@pytest.fixture
def make_bundle(tmp_path, key):
    """make_bundle(version, rollback, ...): a signed bundle file."""
    n = iter(range(1000))

    def make(version: str, rollback: int, signer=None, target: str = TARGET, broken: bool = False,
             legacy: bool = False) -> Made:
        i = next(n)
        d = tmp_path / f"bundle-{i}"
        d.mkdir()
        rootfs = rootfs_image(version, rollback, broken=broken)
        (d / "rootfs.img").write_bytes(rootfs)
        (d / "capbox.efi").write_bytes(b"MZ uki " + version.encode() + os.urandom(64))
        out = d / f"capbox-{version}.bundle"
        bundle.build(out, d / "rootfs.img", d / "capbox.efi", target, version, rollback, f"test-{version}")
        data = out.read_bytes()
        sig = (signer or key).sign(data, f"capbox {version}", prehashed=not legacy).to_text()
        (d / f"{out.name}.minisig").write_text(sig)
        return Made(out, sig, rootfs)
    return make
