"""hwdrivers: the capture core (C through cffi) and its Python face.

Only the modules of this package import the compiled hwdrivers._hw; what
they hand out are plain Python objects, never cdata.

The names below are loaded from their module when first asked for (PEP 562):
`from hwdrivers import dnsgate` in the agent's child processes must not pull
the whole capture face (each module costs tens of ms booting under TCG).

Importing the package has dataclasses take their methods' code from what the
build compiled (hwdrivers.dataclasscode): first, before any class is made.
"""
import importlib

from hwdrivers import dataclasscode

dataclasscode.install()

_FROM = {"hwdrivers.capture": ("BackendInfo", "Counters", "RunResult", "Session", "backend_names", "backends",
                               "check_filter", "zero_counters"),
         "hwdrivers.capconfig": ("CaptureConfig", "Tunnels"),
         "hwdrivers.errors": ("CaptureError", "ErrorCode"),
         "hwdrivers.events": ("PacketEvent",),
         "hwdrivers.export": ("ExporterConfig", "ExporterStats"),
         "hwdrivers.flows": ("FlowRecord", "Host"),
         "hwdrivers.record": ("RecordConfig", "RecordStats")}
_WHERE = {name: module for module, names in _FROM.items() for name in names}
_RENAMED = {"CAPTURE_DEFAULTS": ("hwdrivers.capconfig", "DEFAULTS")}

__all__ = [*_WHERE, *_RENAMED]


def __getattr__(name: str):
    module, attr = _RENAMED.get(name) or (_WHERE.get(name), name)
    if module is None:
        raise AttributeError(f"module 'hwdrivers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
