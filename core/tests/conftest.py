"""Shared fixtures: fake installed distributions with `selfsup` entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selfsup.plugins import set_registry


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("SELFSUP_PLUGINS", "SELFSUP_DISABLE_PLUGIN_AUTOLOAD", "SELFSUP_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    set_registry(None)
    yield
    set_registry(None)


MakeDist = Callable[..., Path]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeDist:
    """Install a real (if tiny) distribution on sys.path: a module and its dist-info.

    ``importlib.metadata`` finds its entry points exactly as it finds those of a
    pip-installed plugin, so the loader is exercised without mocks.
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, module: str, source: str, ep_name: str, version: str = "1.0") -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[selfsup]\n{ep_name} = {module}\n", encoding="utf-8"
        )
        sys.modules.pop(module, None)
        return site

    return make
