"""capbox agent: the one process of the appliance, and its command line."""
import importlib

# first, before any class of ours is made: the dataclasses' methods from the build's code
# (hwdrivers.dataclasscode, installed by the package's import)
importlib.import_module("hwdrivers")

__version__ = "0.1.0"
