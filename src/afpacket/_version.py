"""The package version, in a module of its own so that inner layers need not import the front door."""

__version__ = "0.1.0"
