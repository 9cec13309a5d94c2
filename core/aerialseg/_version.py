"""The version of the engine (a leaf: importing it loads nothing else)."""

__version__ = "0.4.1"
