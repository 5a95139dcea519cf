"""Recording key files: 32 raw bytes (AES-256), owned by the agent's user and
readable by nobody else, kept in <data_dir>/keys.  A key is named by its id,
the first 8 bytes of its SHA-256 (what an encrypted file's header holds)."""
import os
import pathlib
import stat
from typing import Optional

from agent.recordings.crypt import key_id

KEY_SIZE = 32
KEY_DIR = "keys"
CIPHER_SUITES = ("AES-256-GCM",)   # what the recording format implements

# error codes
PERMISSIONS = "PERMISSIONS"   # group or others may read or write it, or another user owns it
SIZE = "SIZE"                 # not 32 bytes
MISSING = "MISSING"           # no such file
NOT_A_FILE = "NOT_A_FILE"     # a directory, a device, a symbolic link
OUTSIDE = "OUTSIDE"           # not in the key directory


class KeyFileError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def key_dir(data_dir) -> pathlib.Path:
    return pathlib.Path(data_dir) / KEY_DIR


def ensure_key_dir(data_dir) -> pathlib.Path:
    d = key_dir(data_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def load(path) -> bytes:
    """The key in a key file, after the checks: a regular file (not a link),
    owned by this user (or root), no permission for group or others, 32 bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeyFileError(MISSING, f"no key file {path}") from None
    except OSError as e:
        if e.errno == 40:  # ELOOP: a symbolic link
            raise KeyFileError(NOT_A_FILE, f"key file {path} is a symbolic link") from None
        raise KeyFileError(MISSING, f"cannot open key file {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(NOT_A_FILE, f"key file {path} is not a regular file")
        if st.st_uid not in (os.geteuid(), 0):
            raise KeyFileError(PERMISSIONS, f"key file {path} belongs to another user (uid {st.st_uid})")
        if st.st_mode & 0o077:
            raise KeyFileError(PERMISSIONS, f"key file {path} is open to group or others (mode "
                               f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
        if st.st_size != KEY_SIZE:
            raise KeyFileError(SIZE, f"key file {path} holds {st.st_size} bytes; an AES-256 key file holds "
                               f"exactly {KEY_SIZE} raw bytes (head -c 32 /dev/urandom > FILE)")
        key = os.read(fd, KEY_SIZE + 1)
        if len(key) != KEY_SIZE:
            raise KeyFileError(SIZE, f"key file {path} changed while it was read")
        return key
    finally:
        os.close(fd)


def resolve(data_dir, name: str) -> pathlib.Path:
    """A key file named by the API: a name in the key directory, or a path
    inside it; anything that leads out of it is OUTSIDE."""
    d = key_dir(data_dir).resolve()
    p = pathlib.Path(name)
    cand = p if p.is_absolute() else d / p
    # the file itself must not be a link (load refuses it); its directory must be the key directory
    parent = cand.parent.resolve()
    if not parent.is_relative_to(d) or ".." in p.parts:
        raise KeyFileError(OUTSIDE, f"{name!r} is outside the key directory {d}")
    return parent / cand.name


def find(data_dir, wanted_id: str) -> Optional[bytes]:
    """The key in the key directory whose id is wanted_id (files that fail the checks are skipped)."""
    d = key_dir(data_dir)
    if not d.is_dir():
        return None
    for p in sorted(d.iterdir()):
        try:
            key = load(p)
        except KeyFileError:
            continue
        if key_id(key) == wanted_id:
            return key
    return None
