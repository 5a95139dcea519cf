"""One source for each capture parameter: C's hw_config_init gives the
defaults, and CaptureConfig, CaptureRequest, the request schema of
POST /v1/capture/start and the [capture] section take theirs from it; the
backend choices are the C registry's."""
import dataclasses

import pytest

import hwdrivers
from agent.api.capture import START
from agent.capture.run import CaptureRequest
from agent.config import CaptureSection
from agent.configrules import RULES
from hwdrivers._hw import ffi, lib

SHARED = ("snaplen", "buffer_size_mb", "promisc", "fanout_group")
FILE_REPLAY = ("pace", "loop")       # the [capture] section replays its autostart file on purpose (config.py)


def c_defaults():
    c = ffi.new("struct hw_config *")
    lib.hw_config_init(c)
    return c


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(hwdrivers.CaptureConfig)
                                   if f.name not in ("source", "bpf", "events", "tunnels", "fanout_mode", "backend")])
def test_capture_config_defaults_are_c_s(field):
    assert getattr(hwdrivers.CAPTURE_DEFAULTS, field) == getattr(c_defaults(), field)
    assert hwdrivers.CAPTURE_DEFAULTS.backend == ffi.string(c_defaults().backend).decode()


@pytest.mark.parametrize("field", SHARED + FILE_REPLAY)
def test_the_request_and_its_schema_take_the_same_default(field):
    want = getattr(hwdrivers.CAPTURE_DEFAULTS, field)
    assert getattr(CaptureRequest(source="x"), field) == want
    assert START[field].default == want


@pytest.mark.parametrize("field", SHARED + ("event_ring",))
def test_the_config_section_takes_c_s_default(field):
    assert getattr(CaptureSection(), field) == getattr(hwdrivers.CAPTURE_DEFAULTS, field)


def test_ranges_come_from_the_config_rules():
    for field in ("snaplen", "buffer_size_mb", "fanout_group", "pace"):
        rule = RULES[f"capture.{field}"]
        assert (START[field].min, START[field].max) == (rule["min"], rule["max"])


def test_backend_choices_are_the_c_registry():
    names = tuple(b.name for b in hwdrivers.backends())
    assert hwdrivers.backend_names() == names and "pcapfile" in names
    assert START["backend"].choices == RULES["capture.backend"]["choices"] == ("", *names)
