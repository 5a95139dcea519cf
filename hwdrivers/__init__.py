"""hwdrivers: the capture core (C through cffi) and its Python face.

Only the modules of this package import the compiled hwdrivers._hw; what
they hand out are plain Python objects, never cdata.
"""
from hwdrivers.capture import (BackendInfo, Counters, RunResult, Session, backend_names, backends, check_filter,
                               zero_counters)
from hwdrivers.capconfig import DEFAULTS as CAPTURE_DEFAULTS, CaptureConfig, Tunnels
from hwdrivers.errors import CaptureError, ErrorCode
from hwdrivers.events import PacketEvent
from hwdrivers.export import ExporterConfig, ExporterStats
from hwdrivers.flows import FlowRecord, Host
from hwdrivers.record import RecordConfig, RecordStats

__all__ = ["BackendInfo", "CaptureConfig", "CaptureError", "Counters", "ErrorCode", "ExporterConfig", "zero_counters",
           "ExporterStats", "FlowRecord", "Host", "PacketEvent", "RecordConfig", "RecordStats", "RunResult", "Session",
           "Tunnels", "backends", "check_filter", "CAPTURE_DEFAULTS", "backend_names"]
