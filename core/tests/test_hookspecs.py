"""Meta-tests that keep the hook contract honest (the Datasette habit).

Every hook has tests named after it, and every hook's signature is documented in
the plugin guide.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from selfsup import hookspecs
from selfsup.plugins import HOOKS

CORE = Path(__file__).resolve().parents[1]
HOOK_NAMES = [n for n, f in vars(hookspecs).items()
              if n.startswith("register_") and inspect.isfunction(f)]


def test_every_hook_is_known_to_the_loader() -> None:
    assert sorted(HOOK_NAMES) == sorted(HOOKS)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_has_tests_named_after_it(hook: str) -> None:
    tests = "\n".join(p.read_text() for p in (CORE / "tests").glob("test_*.py"))
    assert re.search(rf"def test_{hook}\w*\(", tests), f"no test named test_{hook}*"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    signature = f"{hook}({', '.join(inspect.signature(fn).parameters)})"
    guide = (CORE / "README.md").read_text()
    assert f"#### `{signature}`" in guide, f"plugin guide lacks a heading for {signature}"
    assert fn.__doc__ and "versionadded" in fn.__doc__
