"""selfsup: cross-domain self-supervised learning.

Importing this package imports neither torch's heavy parts nor any domain library;
plugins are loaded lazily, on first use of the registry. Plugins import from
:mod:`selfsup.api`, the one public module.
"""

from __future__ import annotations

from selfsup.hookspecs import hookimpl

__version__ = "0.2.0"
__all__ = ["__version__", "hookimpl"]
