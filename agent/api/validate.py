"""Request fields: types, ranges, choices, defaults; a bad one is a 400
VALIDATION_ERROR naming the field."""
import dataclasses
from typing import Any, Optional

from agent.errors import validation

_MISSING = object()


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

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def _convert(name: str, f: Field, value: Any, from_text: bool) -> Any:
    kind = f.kind
    if from_text and isinstance(value, str):
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes")
            elif kind in (int, float):
                value = kind(value)
        except ValueError:
            raise validation(f"{name} must be {kind.__name__}", field=name) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise validation(f"{name} must be {'a number' if kind in (int, float) else kind.__name__}", field=name)
    if f.min is not None and value < f.min or f.max is not None and value > f.max:
        raise validation(f"{name} must be between {f.min} and {f.max}", field=name, min=f.min, max=f.max)
    if f.choices is not None and value not in f.choices:
        raise validation(f"{name} must be one of {', '.join(map(str, f.choices))}", field=name,
                         choices=list(f.choices))
    if kind is str and len(value) > f.max_len:
        raise validation(f"{name} is too long", field=name)
    return value


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


def schema(spec: dict) -> dict:
    """JSON Schema of a spec, for the OpenAPI document."""
    types = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
    props = {}
    for name, f in spec.items():
        p = {"type": types[f.kind]}
        if f.doc:
            p["description"] = f.doc
        if f.min is not None:
            p["minimum"] = f.min
        if f.max is not None:
            p["maximum"] = f.max
        if f.choices is not None:
            p["enum"] = list(f.choices)
        if not f.required and f.default is not None:
            p["default"] = f.default
        props[name] = p
        for alias in f.aliases:
            props[alias] = {**p, "description": f"same as {name}"}
    out = {"type": "object", "properties": props, "additionalProperties": False}
    req = [n for n, f in spec.items() if f.required]
    if req:
        out["required"] = req
    return out
