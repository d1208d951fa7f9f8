"""Plugins use core's public API only: ``selfsup.api`` (the one documented module)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from selfsup import api

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FILES = sorted(p for p in (ROOT / "plugins").glob("*/*/**/*.py"))


def core_imports(path: Path) -> list[str]:
    """``module.name`` of every import of a core module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "selfsup" or node.module.startswith("selfsup."):
                found += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "selfsup"]
    return found


def test_there_are_plugins_to_check() -> None:
    assert len(PLUGIN_FILES) > 50


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_plugin_imports_only_selfsup_api(path: Path) -> None:
    private = [name for name in core_imports(path) if not name.startswith("selfsup.api.")]
    assert not private, (f"{path.relative_to(ROOT)} imports {private} from core; import "
                         "them from selfsup.api (or ask for them to be made public there)")


def test_every_name_a_plugin_imports_exists_in_the_api() -> None:
    names = {n.rsplit(".", 1)[1] for p in PLUGIN_FILES for n in core_imports(p)
             if n.startswith("selfsup.api.")}
    missing = sorted(n for n in names if not hasattr(api, n))
    assert not missing
    assert set(api.__all__) >= names
