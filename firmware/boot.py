"""What the running box offers the updater: the boot facts the initramfs
wrote (which slot, which devices), the running release, the ESP (mounted
only while it is written), the boot loader's variables, and reboot.

On the image:  /run/capbox/boot.env  (initramfs: image/initramfs/.../capbox/slot)
               /usr/lib/capbox/release.json
               /sys/firmware/efi/efivars
Every path is a constructor argument.  `Platform.under(root)` (or
CAPBOX_SYSTEM_ROOT=root for the CLI and the agent) takes them all below a
directory standing in for `/`: the tests give files for partitions, a
directory for the ESP and one for efivarfs, and there nothing touches the host
(no systemctl; a reboot is a file, root/run/capbox/reboot-requested).

The boot loader (systemd-boot) starts `default` of loader/loader.conf, unless
the EFI variable LoaderEntryOneShot names an entry: that one it starts once,
deleting the variable as it reads it.  So a trial is the one-shot variable,
and a commit is the default in loader.conf (on the ESP, so it survives a reset
of the firmware's variables)."""
import contextlib
import fcntl
import json
import logging
import os
import pathlib
import struct
import subprocess
import tempfile
from typing import Optional

from firmware.rootslots import SLOTS, entry

log = logging.getLogger(__name__)
LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
EFI_ATTRS = 0x7                       # non-volatile, boot service, runtime access
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10
SQUASHFS_MAGIC = b"hsqs"


class PlatformError(Exception):
    pass


def read_env(path) -> Optional[dict]:
    """KEY=value lines (the initramfs's boot.env); None when there is no file."""
    try:
        text = pathlib.Path(path).read_text()
    except FileNotFoundError:
        return None
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip():
            out[k.strip()] = v.strip()
    return out


SYSTEM_ROOT_ENV = "CAPBOX_SYSTEM_ROOT"


class Platform:
    def __init__(self, boot_env="/run/capbox/boot.env", release="/usr/lib/capbox/release.json",
                 efivars="/sys/firmware/efi/efivars", esp_mount="/run/capbox/esp", data_root="/data",
                 boot_id="/proc/sys/kernel/random/boot_id", machine_id="/etc/machine-id",
                 root: Optional[pathlib.Path] = None):
        self.root = root
        self.boot_env_path = pathlib.Path(boot_env)
        self.release_path = pathlib.Path(release)
        self.efivars = pathlib.Path(efivars)
        self.esp_mount = pathlib.Path(esp_mount)
        self.data_root = pathlib.Path(data_root)
        self.boot_id_path = pathlib.Path(boot_id)
        self.machine_id_path = pathlib.Path(machine_id)

    @classmethod
    def under(cls, root) -> "Platform":
        """The system whose `/` is the directory `root`; nothing runs on the host."""
        root = pathlib.Path(root)
        defaults = cls.__init__.__defaults__[:-1]
        names = cls.__init__.__code__.co_varnames[1:1 + len(defaults)]
        return cls(**{n: root / d.lstrip("/") for n, d in zip(names, defaults)}, root=root)

    @classmethod
    def from_env(cls, env=None) -> "Platform":
        root = (os.environ if env is None else env).get(SYSTEM_ROOT_ENV)
        return cls.under(root) if root else cls()

    # ---- boot facts ----------------------------------------------------------------

    @property
    def env(self) -> Optional[dict]:
        return read_env(self.boot_env_path)

    @property
    def is_image(self) -> bool:
        env = self.env
        return bool(env) and env.get("CAPBOX_SLOT") in SLOTS

    def booted_slot(self) -> str:
        env = self.env
        if not env or env.get("CAPBOX_SLOT") not in SLOTS:
            raise PlatformError("not running from a capbox image (no slot in "
                                f"{self.boot_env_path}): updates are written on the box")
        return env["CAPBOX_SLOT"]

    def partition(self, slot: str) -> str:
        env = self.env or {}
        dev = env.get(f"CAPBOX_ROOT_{slot.upper()}")
        if not dev:
            raise PlatformError(f"the boot facts name no partition for slot {slot}")
        return dev

    def partition_size(self, slot: str) -> int:
        with open(self.partition(slot), "rb") as f:
            return f.seek(0, os.SEEK_END)

    def data_persistent(self) -> Optional[bool]:
        env = self.env
        if not env or "CAPBOX_DATA_PERSISTENT" not in env:
            return None
        return env["CAPBOX_DATA_PERSISTENT"] == "1"

    def release(self) -> Optional[dict]:
        try:
            return json.loads(self.release_path.read_text())
        except (OSError, ValueError):
            return None

    def boot_id(self) -> str:
        try:
            return self.boot_id_path.read_text().strip()
        except OSError:
            return "unknown"

    def machine_id(self) -> Optional[str]:
        try:
            return self.machine_id_path.read_text().strip() or None
        except OSError:
            return None

    def rootfs_fingerprint(self, slot: str) -> Optional[dict]:
        """What the slot's partition holds, from its squashfs superblock (cheap:
        96 bytes): changes whenever anything is written there."""
        try:
            with open(self.partition(slot), "rb") as f:
                sb = f.read(96)
        except (OSError, PlatformError):
            return None
        if len(sb) < 96 or sb[:4] != SQUASHFS_MAGIC:
            return {"filesystem": None}
        inodes, mkfs_time = struct.unpack_from("<II", sb, 4)
        bytes_used = struct.unpack_from("<Q", sb, 40)[0]
        return {"filesystem": "squashfs", "bytes_used": bytes_used, "mkfs_time": mkfs_time, "inodes": inodes}

    def var_upper(self, slot: str) -> pathlib.Path:
        """The slot's writable /var layer on the data partition (initramfs: capbox/data)."""
        return self.data_root / "var" / slot

    # ---- the ESP -------------------------------------------------------------------

    @contextlib.contextmanager
    def esp(self):
        """The ESP, mounted read-write for the duration (a directory in tests)."""
        env = self.env or {}
        dev = env.get("CAPBOX_ESP")
        if not dev:
            raise PlatformError("the boot facts name no ESP")
        if os.path.isdir(dev):
            yield pathlib.Path(dev)
            return
        self.esp_mount.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "vfat", "-o", "rw,noatime,nodev,nosuid,noexec,umask=0077", dev, str(self.esp_mount)])
        try:
            yield self.esp_mount
        finally:
            os.sync()
            _run(["umount", str(self.esp_mount)])

    def loader_default(self, esp: Optional[pathlib.Path] = None) -> Optional[str]:
        """The slot loader.conf starts by default."""
        def read(root):
            try:
                text = (root / "loader" / "loader.conf").read_text()
            except OSError:
                return None
            for line in text.splitlines():
                k, _, v = line.strip().partition(" ")
                if k == "default":
                    for s in SLOTS:
                        if v.strip().lower() == entry(s):
                            return s
            return None
        if esp is not None:
            return read(esp)
        with self.esp() as root:
            return read(root)

    @staticmethod
    def set_loader_default(esp: pathlib.Path, slot: str) -> None:
        """loader.conf's default: the slot the boot loader starts from now on."""
        path = esp / "loader" / "loader.conf"
        try:
            lines = [l for l in path.read_text().splitlines() if not l.strip().startswith("default ")]
        except FileNotFoundError:
            lines = ["timeout 0", "editor no"]
        _write_replace(path, "\n".join([f"default {entry(slot)}"] + lines) + "\n")

    @staticmethod
    def uki_path(esp: pathlib.Path, slot: str) -> pathlib.Path:
        return esp / "EFI" / "Linux" / entry(slot)

    # ---- EFI variables ---------------------------------------------------------------

    def _var(self, name: str) -> pathlib.Path:
        return self.efivars / f"{name}-{LOADER_GUID}"

    def get_efivar(self, name: str) -> Optional[str]:
        try:
            raw = self._var(name).read_bytes()
        except OSError:
            return None
        return raw[4:].decode("utf-16-le", "replace").rstrip("\0")

    def set_efivar(self, name: str, value: str) -> None:
        """A loader variable (UTF-16 string), written as efivarfs wants: attributes
        and data in one write, the immutable flag lifted from an existing one."""
        path = self._var(name)
        _mutable(path)
        data = struct.pack("<I", EFI_ATTRS) + (value + "\0").encode("utf-16-le")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if os.write(fd, data) != len(data):
                raise PlatformError(f"{path}: short write")
        finally:
            os.close(fd)

    def delete_efivar(self, name: str) -> None:
        path = self._var(name)
        _mutable(path)
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def arm_trial(self, slot: str) -> None:
        """Start `slot` on the next boot only."""
        self.set_efivar("LoaderEntryOneShot", entry(slot))

    def disarm_trial(self) -> None:
        self.delete_efivar("LoaderEntryOneShot")

    def oneshot(self) -> Optional[str]:
        return self.get_efivar("LoaderEntryOneShot")

    # ---- the rest ------------------------------------------------------------------

    def units(self, names: list) -> dict:
        """systemctl is-active of each unit (on the image)."""
        if self.root is not None:
            return {}
        try:
            r = subprocess.run(["systemctl", "is-active", *names], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        states = r.stdout.split()
        return dict(zip(names, states)) if len(states) == len(names) else {}

    def reboot(self) -> None:
        log.warning("rebooting")
        if self.root is not None:
            self.reboot_request.parent.mkdir(parents=True, exist_ok=True)
            self.reboot_request.touch()
            return
        _run(["systemctl", "reboot"])

    @property
    def reboot_request(self) -> pathlib.Path:
        return (self.root or pathlib.Path("/")) / "run" / "capbox" / "reboot-requested"


def _run(cmd: list) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise PlatformError(f"{' '.join(cmd)}: {r.stderr.strip() or f'exit status {r.returncode}'}")


def _mutable(path: pathlib.Path) -> None:
    """efivarfs marks existing variables immutable; lift it before a write or unlink."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        buf = bytearray(struct.pack("i", 0))
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        flags = struct.unpack("i", buf)[0]
        if flags & FS_IMMUTABLE_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags & ~FS_IMMUTABLE_FL))
    except OSError:
        pass    # not a file system with flags (tests): nothing to lift
    finally:
        os.close(fd)


def _write_replace(path: pathlib.Path, text: str) -> None:
    """Write a file next to itself, fsync, rename over (vfat renames in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
