"""Request fields: types, ranges, choices, defaults; a bad one is a 400
VALIDATION_ERROR naming the field.  Nothing here can raise anything else:
integers stay within SQLite's 64 bits, floats are finite, strings are valid
UTF-8 without NUL, list items have their declared type, and the same
constraints are written into the OpenAPI document (schema())."""
import dataclasses
import json
import math
from typing import Any, Optional

from agent.errors import validation

_MISSING = object()
INT_MAX = (1 << 63) - 1          # SQLite's integers; larger ones overflow there
MAX_DEPTH = 32                   # JSON nesting accepted in a body
MAX_ITEMS = 1000                 # items in a list field
# libpcap's optimizer is superlinear: 1 kB of filter compiles in under a second,
# 4 kB took 15-35 s (the request and the capture thread waited for it)
BPF_MAX = 1024


@dataclasses.dataclass(frozen=True)
class Field:
    kind: type
    default: Any = _MISSING          # _MISSING: required
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[tuple] = None
    doc: str = ""
    aliases: tuple = ()              # other names accepted for it (the seeds' names)
    max_len: int = 4096              # strings: the longest accepted
    items: Optional[type] = str      # lists: the type of every item (dict: objects)

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def bpf(default, doc: str) -> Field:
    """A BPF filter expression: short enough that compiling it is quick, no NUL (C would cut it there)."""
    return Field(str, default, doc=doc, aliases=("filter",), max_len=BPF_MAX)


def _bounds(f: Field) -> tuple:
    """(min, max) as enforced: integers default to 0..2^63-1."""
    if f.kind is int:
        return (0 if f.min is None else f.min), (INT_MAX if f.max is None else f.max)
    return f.min, f.max


def _text(name: str, value: str, max_len: int) -> None:
    if len(value) > max_len:
        raise validation(f"{name} is too long (at most {max_len} characters)", field=name, max_length=max_len)
    if "\0" in value:
        raise validation(f"{name} must not contain NUL", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise validation(f"{name} is not valid UTF-8", field=name) from None


def _from_text(name: str, kind: type, value: str):
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if kind is int and len(value) > 20 or kind is float and len(value) > 64:
            raise ValueError
        return kind(value) if kind in (int, float) else value
    except ValueError:
        raise validation(f"{name} must be {kind.__name__}", field=name) from None


def _convert(name: str, f: Field, value: Any, from_text: bool) -> Any:
    kind = f.kind
    if from_text and isinstance(value, str):
        value = _from_text(name, kind, value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value) if abs(value) <= INT_MAX else math.inf
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise validation(f"{name} must be {'a number' if kind in (int, float) else kind.__name__}", field=name)
    if kind is float and not math.isfinite(value):
        raise validation(f"{name} must be a finite number", field=name)
    lo, hi = _bounds(f)
    if lo is not None and value < lo or hi is not None and value > hi:
        raise validation(f"{name} must be between {lo} and {hi}", field=name, min=lo, max=hi)
    if f.choices is not None and value not in f.choices:
        raise validation(f"{name} must be one of {', '.join(map(str, f.choices))}", field=name,
                         choices=list(f.choices))
    if kind is str:
        _text(name, value, f.max_len)
    elif kind is list:
        if len(value) > MAX_ITEMS:
            raise validation(f"{name} has more than {MAX_ITEMS} items", field=name, max_items=MAX_ITEMS)
        for item in value:
            if not isinstance(item, f.items) or isinstance(item, bool) and f.items is not bool:
                raise validation(f"{name} must be a list of {TYPES[f.items]}s", field=name)
            if isinstance(item, str):
                _text(name, item, f.max_len)
    elif kind is dict:
        _strings(name, value)
    return value


def _strings(name: str, value) -> None:
    """Every string inside a JSON value, keys too, is valid UTF-8 (a lone surrogate is not)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        raise validation(f"{name} is not valid UTF-8", field=name) from None


def depth(value, limit: int = MAX_DEPTH) -> bool:
    """True when value nests no deeper than limit (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return False
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return True


def parse(data: dict, spec: dict, from_text: bool = False, strict: bool = True) -> dict:
    """The spec's fields from data (a JSON body, or query strings when from_text)."""
    known = {alias: name for name, f in spec.items() for alias in (name, *f.aliases)}
    if strict:
        unknown = [k for k in data if k not in known]
        if unknown:
            raise validation(f"unknown field {unknown[0]!r}", field=unknown[0], allowed=sorted(spec))
    out = {}
    for alias, value in data.items():
        if alias in known:
            out[known[alias]] = _convert(alias, spec[known[alias]], value, from_text)
    for name, f in spec.items():
        if name not in out:
            if f.required:
                raise validation(f"{name} is required", field=name)
            out[name] = f.default
    return out


TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def field_schema(f: Field) -> dict:
    """JSON Schema of one field: what _convert enforces."""
    p = {"type": TYPES[f.kind]}
    if f.doc:
        p["description"] = f.doc
    lo, hi = _bounds(f)
    if lo is not None:
        p["minimum"] = lo
    if hi is not None:
        p["maximum"] = hi
    if f.choices is not None:
        p["enum"] = list(f.choices)
    if f.kind is str:
        p["maxLength"] = f.max_len
        if f.choices is None:
            p["pattern"] = "^[^\\u0000]*$"
    if f.kind is list:
        p["maxItems"] = MAX_ITEMS
        p["items"] = {"type": TYPES[f.items]}
        if f.items is str:
            p["items"].update(maxLength=f.max_len, pattern="^[^\\u0000]*$")
    if not f.required and f.default is not None:
        p["default"] = f.default
    return p


def schema(spec: dict) -> dict:
    """JSON Schema of a spec, for the OpenAPI document."""
    props = {}
    for name, f in spec.items():
        p = props[name] = field_schema(f)
        for alias in f.aliases:
            props[alias] = {**p, "description": f"same as {name}"}
    out = {"type": "object", "properties": props, "additionalProperties": False}
    req = [n for n, f in spec.items() if f.required]
    if req:
        out["required"] = req
    return out
