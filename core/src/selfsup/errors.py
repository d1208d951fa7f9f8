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
    """Components whose modalities, faces or task kinds do not meet."""


class NotApplicable(SelfsupError):
    """A documented "does not apply": a baseline or pretext that has nothing to do for
    this dataset (no flat input features, no labels for a supervised encoder).
    ``selfsup bench`` reports it as a skipped row; any other exception is a failure."""


class RunFolderError(SelfsupError, RuntimeError):
    """A file of a run folder (a checkpoint, the exported encoder) cannot be used."""


class CheckpointError(RunFolderError):
    """A checkpoint exists but none can be loaded."""
