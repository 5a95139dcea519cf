"""Configuration: defaults, the TOML file, CAPBOX_* variables, and errors that name the key."""
import pytest

from agent import config
from agent.config import ConfigError


def write(tmp_path, text: str) -> str:
    p = tmp_path / "capbox.toml"
    p.write_text(text)
    return str(p)


def test_every_key_has_a_default():
    cfg = config.load(None, env={})
    assert cfg.capture.source == "demo" and cfg.api.listen == "127.0.0.1:8080"
    assert cfg.listen == ("127.0.0.1", 8080) and cfg.db_path.name == "capbox.db"


def test_file_then_environment_then_overrides(tmp_path):
    path = write(tmp_path, '[capture]\nsnaplen = 1500\nbpf = "tcp"\n[api]\ncors_origins = ["https://a"]\n')
    cfg = config.load(path, env={"CAPBOX_CAPTURE_SNAPLEN": "9000", "CAPBOX_FLOWS_ENABLED": "false"},
                      overrides={"capture": {"source": "eth0"}})
    assert cfg.capture.snaplen == 9000 and cfg.capture.bpf == "tcp" and cfg.capture.source == "eth0"
    assert cfg.flows.enabled is False and cfg.api.cors_origins == ("https://a",)


@pytest.mark.parametrize("text,key", [
    ("[capture]\nsnaplen = 10\n", "capture.snaplen"),
    ("[capture]\nsnaplen = \"big\"\n", "capture.snaplen"),
    ("[capture]\nbakend = \"pcap\"\n", "capture.bakend"),
    ("[capture]\nbackend = \"dpdk\"\n", "capture.backend"),
    ("[flows]\nenabled = 3\n", "flows.enabled"),
    ("[nosuch]\na = 1\n", "nosuch"),
    ("[api]\nlisten = \"nowhere\"\n", "api.listen"),
    ("capture = 3\n", "capture"),
    ("[capture\n", "config"),
])
def test_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text), env={})
    assert e.value.key == key and str(e.value).startswith(key)


def test_bad_environment_value_names_the_key():
    with pytest.raises(ConfigError) as e:
        config.load(None, env={"CAPBOX_API_THREADS": "lots"})
    assert e.value.key == "api.threads"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load(str(tmp_path / "none.toml"), env={})
    assert e.value.key == "config"


def test_tunnels_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[tunnels]\nvxlan_ports = [4789, 8472]\noff = ["gtp"]\nmeter_outer = true\n')
    t = config.load(str(path), env={}).tunnels
    assert (t.vxlan_ports, t.off, t.meter_outer, t.depth) == (("4789", "8472"), ("gtp",), True, 4)
    for bad, key in (({"off": ["mpls"]}, "tunnels.off"), ({"gtp_ports": [70000]}, "tunnels.gtp_ports"),
                     ({"depth": 9}, "tunnels.depth")):
        with pytest.raises(ConfigError) as e:
            config.load(None, env={}, overrides={"tunnels": bad})
        assert e.value.key == key
