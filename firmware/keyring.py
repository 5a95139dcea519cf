"""Trusted public keys: a directory of minisign public key files (*.pub),
or one key file given on its own.  Keys are found by their key id."""
import logging
import os
import pathlib
from typing import Iterable, Optional

from firmware.errors import FirmwareError
from firmware.minisign import PublicKey, key_id_hex, parse_public_key

log = logging.getLogger(__name__)
KEY_FILE_MAX = 4096


def read_public_key(path) -> PublicKey:
    path = pathlib.Path(path)
    try:
        if path.stat().st_size > KEY_FILE_MAX:
            raise FirmwareError(f"{path}: too large for a public key file")
        text = path.read_bytes()
    except OSError as e:
        raise FirmwareError(f"{path}: {e.strerror}") from None
    try:
        return parse_public_key(text)
    except FirmwareError as e:
        raise FirmwareError(f"{path}: {e.message}") from None


class Keyring:
    def __init__(self, keys: Iterable[PublicKey] = (), source: str = ""):
        self.source = source
        self._keys: dict = {}
        for k in keys:
            self._keys[k.key_id] = k

    @classmethod
    def from_dir(cls, directory) -> "Keyring":
        """Every *.pub file in a directory; a key file that cannot be read is an
        error naming it (a trust store is not read half-way)."""
        directory = pathlib.Path(directory)
        if not directory.is_dir():
            return cls([], str(directory))
        keys, seen = [], {}
        for path in sorted(directory.glob("*.pub")):
            k = read_public_key(path)
            if k.key_id in seen and seen[k.key_id].key != k.key:
                raise FirmwareError(f"{path}: key id {k.id_hex} is also {seen[k.key_id]} with another key")
            seen.setdefault(k.key_id, path)
            keys.append(k)
        return cls(keys, str(directory))

    @classmethod
    def from_file(cls, path) -> "Keyring":
        return cls([read_public_key(path)], str(path))

    def find(self, key_id: bytes) -> Optional[PublicKey]:
        return self._keys.get(key_id)

    def __len__(self) -> int:
        return len(self._keys)

    def ids(self) -> list:
        return sorted(key_id_hex(k) for k in self._keys)

    def add(self, key: PublicKey, directory) -> pathlib.Path:
        """Trust a key: write it as <directory>/<key id>.pub."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{key.id_hex}.pub"
        tmp = path.with_suffix(".pub.tmp")
        tmp.write_text(key.to_text())
        os.replace(tmp, path)
        self._keys[key.key_id] = key
        log.info("firmware key %s trusted (%s)", key.id_hex, path)
        return path
