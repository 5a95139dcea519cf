"""Struct layouts of C records for batch reads: one `struct.unpack_from` per
record instead of one cffi attribute access per field.  The formats are
built at import from cffi's view of the C types (offsets, sizes), so they
cannot drift from the headers."""
import struct

from hwdrivers._hw import ffi

_CODES = {"uint8_t": "B", "char": "c", "uint16_t": "H", "uint32_t": "I", "uint64_t": "Q", "int64_t": "q",
          "int32_t": "i", "int16_t": "h", "int": "i", "double": "d"}


class Layout:
    """The fields of a C struct (primitives and arrays of them) as one struct.Struct;
    `names` in order, byte arrays as bytes, other arrays as tuples (flattened in place)."""

    def __init__(self, ctype: str, skip: tuple = ()):
        t = ffi.typeof(ctype)
        self.size = ffi.sizeof(t)
        fmt, at, self.names, self.arrays = "=", 0, [], {}
        for name, f in t.fields:
            kind = f.type.kind
            if name in skip or kind not in ("primitive", "array"):
                continue
            if kind == "array" and f.type.item.kind != "primitive":
                continue
            fmt += "x" * (f.offset - at)
            if kind == "primitive":
                fmt += _CODES[f.type.cname]
            elif f.type.item.cname in ("uint8_t", "char"):
                fmt += f"{f.type.length}s"
            else:
                fmt += f"{f.type.length}{_CODES[f.type.item.cname]}"
                self.arrays[name] = f.type.length
            self.names.append(name)
            at = f.offset + ffi.sizeof(f.type)
        self.struct = struct.Struct(fmt)
        self.offsets = {name: f.offset for name, f in t.fields}

    def unpack(self, buf, offset: int = 0) -> dict:
        """The fields as a dict (tests, rare records); hot paths use struct.unpack_from directly."""
        vals = iter(self.struct.unpack_from(buf, offset))
        return {n: tuple(next(vals) for _ in range(self.arrays[n])) if n in self.arrays else next(vals)
                for n in self.names}
