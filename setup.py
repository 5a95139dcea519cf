"""Only here to hand the C core to setuptools (cffi_modules); metadata is in pyproject.toml.
CAPBOX_NO_EXT=1 skips it: `make build` compiles the core in place instead."""
import os

from setuptools import setup

setup(**({} if os.environ.get("CAPBOX_NO_EXT") else {"cffi_modules": ["hwdrivers/build_ffi.py:ffibuilder"]}))
