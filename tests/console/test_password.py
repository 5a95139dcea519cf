"""The console password: scrypt-hashed in a 0600 file; `capbox console passwd` sets it from standard input."""
import stat
import subprocess
import sys

import pytest

from agent import password
from tests.conftest import ROOT


def test_store_and_verify(tmp_path):
    path = tmp_path / "console.passwd"
    assert not password.is_set(path)
    with pytest.raises(password.PasswordError):
        password.verify(path, "anything at all")
    password.store(path, "correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("scrypt$14$8$1$") and "correct" not in text
    assert password.verify(path, "correct horse")
    assert not password.verify(path, "correct hors")
    assert not password.verify(path, "x" * 100_000)
    password.store(path, "another one")        # replaced whole, with a new salt
    assert password.verify(path, "another one") and not password.verify(path, "correct horse")
    assert path.read_text().split("$")[4] != text.split("$")[4]


@pytest.mark.parametrize("bad", ["short", "", "tab\there!", "x" * 300])
def test_passwords_a_terminal_cannot_type_or_too_short_are_refused(tmp_path, bad):
    with pytest.raises(password.PasswordError):
        password.store(tmp_path / "p", bad)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("content", ["", "garbage", "scrypt$99$8$1$00$00", "scrypt$14$8$1$zz$" + "00" * 32,
                                     "scrypt$20$32$1$00$" + "00" * 32])
def test_a_damaged_file_is_an_error_not_a_crash(tmp_path, content):
    path = tmp_path / "console.passwd"
    path.write_text(content)
    with pytest.raises(password.PasswordError):
        password.verify(path, "correct horse")


def capbox(*args, stdin: str = ""):
    return subprocess.run([sys.executable, "-m", "agent", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_capbox_console_passwd_reads_standard_input(tmp_path):
    r = capbox("console", "passwd", "--data-dir", str(tmp_path), stdin="provisioned pw\n")
    assert r.returncode == 0, r.stderr
    assert password.verify(tmp_path / "console.passwd", "provisioned pw")
    r = capbox("console", "passwd", "--data-dir", str(tmp_path), stdin="short\n")
    assert r.returncode == 1 and "at least 8" in r.stderr
    assert password.verify(tmp_path / "console.passwd", "provisioned pw")   # unchanged


def test_the_password_file_can_live_elsewhere(tmp_path):
    conf = tmp_path / "capbox.toml"
    conf.write_text(f'[console]\npassword_file = "{tmp_path}/etc/console.passwd"\n')
    r = capbox("console", "passwd", "--config", str(conf), "--data-dir", str(tmp_path / "var"),
               stdin="elsewhere pw\n")
    assert r.returncode == 0, r.stderr
    assert password.verify(tmp_path / "etc" / "console.passwd", "elsewhere pw")
    assert not (tmp_path / "var" / "console.passwd").exists()
