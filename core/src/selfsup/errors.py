"""Errors that selfsup raises on purpose. Each message names the thing, the value and the fix."""

from __future__ import annotations


class SelfsupError(Exception):
    """Base class; the CLI prints these as one line (no traceback unless --debug)."""


class ConfigError(SelfsupError, ValueError):
    """An experiment configuration that cannot run (bad key, bad value, bad combination)."""


class PluginLoadError(SelfsupError):
    """A plugin failed to load (raised in strict mode; otherwise only reported)."""


class DuplicateKeyError(SelfsupError):
    """Two plugins registered the same key."""


class UnknownKeyError(SelfsupError, KeyError):
    """A key that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IncompatibleError(ConfigError):
    """Components whose modalities or task kinds do not meet."""
