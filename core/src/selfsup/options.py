"""Declarative options: one way for every component to read and check ``build(**options)``.

A component's options are a dataclass whose fields say their default, their check
and a one-line description::

    from dataclasses import dataclass
    from selfsup.api import option, one_of, positive, positive_int, parse_options

    @dataclass(frozen=True)
    class SimCLRConfig:
        temperature: float = option(0.5, positive, "softmax temperature of NT-Xent")
        proj_norm: str = option("batch", one_of("batch", "layer", "none"))

    def build(encoder, dataset, **options):
        config = parse_options(SimCLRConfig, options, "core.simclr")

:func:`parse_options` refuses unknown options (naming the closest valid one and
listing all), builds the dataclass and runs every field's check, so a bad value
raises ``ValueError("core.simclr: option temperature must be a number > 0, got
-1")``. :func:`describe_options` lists the fields for ``selfsup show KEY``.

A check is any ``check(value) -> str | None`` that returns what is wrong (the
text after "must"), or None when the value is fine. The ones here cover the
common cases; a component may pass its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

#: ``check(value)`` returns what the value must be (e.g. "be a positive int") or None.
Check = Callable[[Any], "str | None"]
T = TypeVar("T")

_MUTABLE = (list, dict, set)


def option(default: Any, check: Check | None = None, doc: str = "") -> Any:
    """A dataclass field with a default, a value check and a one-line description.

    A list or dict default is copied for each instance (``default_factory``).
    """
    metadata = {"check": check, "doc": doc}
    if isinstance(default, _MUTABLE):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_options(config_cls: type[T], options: Mapping[str, Any], owner: str) -> T:
    """``config_cls(**options)`` with every field's check applied.

    An unknown option is a TypeError naming the closest valid one and listing all;
    a value that fails its check is a ValueError naming owner, option, value and
    what it must be.
    """
    valid = [f.name for f in dataclasses.fields(config_cls)]  # type: ignore[arg-type]
    unknown = [key for key in options if key not in valid]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(
            f"{owner}: unknown option {', '.join(hints)}; valid options are {', '.join(valid)}"
        )
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    # TOML gives lists where a field's default is a tuple: keep the declared type
    given = {k: tuple(v) if isinstance(v, list) and isinstance(defaults[k], tuple) else v
             for k, v in options.items()}
    config = config_cls(**given)
    validate(config, owner)
    return config


def validate(config: Any, owner: str) -> None:
    """Run the check of every field of the dataclass instance ``config``."""
    for f in dataclasses.fields(config):
        check = f.metadata.get("check")
        if check is None:
            continue
        value = getattr(config, f.name)
        problem = check(value)
        if problem:
            raise ValueError(f"{owner}: option {f.name} must {problem}, got {value!r}")


def check_value(owner: str, name: str, value: Any, check: Check) -> None:
    """Apply one check outside a dataclass (a loss module's constructor argument)."""
    problem = check(value)
    if problem:
        raise ValueError(f"{owner}: {name} must {problem}, got {value!r}")


def describe_options(config_cls: type[Any]) -> list[tuple[str, Any, str]]:
    """``(name, default, description)`` of each field, for ``selfsup show``."""
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append((f.name, default, str(f.metadata.get("doc", ""))))
    return out


# -- checks -----------------------------------------------------------------------------


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def positive_int(x: Any) -> str | None:
    return None if _int(x) and x >= 1 else "be a positive int"


def non_negative_int(x: Any) -> str | None:
    return None if _int(x) and x >= 0 else "be an int >= 0"


def positive(x: Any) -> str | None:
    return None if _number(x) and x > 0 else "be a number > 0"


def non_negative(x: Any) -> str | None:
    return None if _number(x) and x >= 0 else "be a number >= 0"


def fraction(x: Any) -> str | None:
    """``0 <= x < 1``: a decay rate, a dropout or masking probability."""
    return None if _number(x) and 0 <= x < 1 else "be in [0, 1)"


def unit_interval(x: Any) -> str | None:
    """``0 <= x <= 1``: a probability or a mixing weight."""
    return None if _number(x) and 0 <= x <= 1 else "be in [0, 1]"


def open_unit(x: Any) -> str | None:
    """``0 < x < 1``: a share of a split."""
    return None if _number(x) and 0 < x < 1 else "be in (0, 1), e.g. 0.2"


def split_name(x: Any) -> str | None:
    return None if isinstance(x, str) and x else "be a split name such as 'test'"


def boolean(x: Any) -> str | None:
    return None if isinstance(x, bool) else "be true or false"


def one_of(*choices: Any) -> Check:
    def check(x: Any) -> str | None:
        return None if x in choices else f"be one of {', '.join(map(repr, choices))}"

    return check


def optional(inner: Check) -> Check:
    """None, or a value that passes ``inner``."""

    def check(x: Any) -> str | None:
        if x is None:
            return None
        problem = inner(x)
        return f"be None or {problem.removeprefix('be ')}" if problem else None

    return check


def label_fractions(x: Any) -> str | None:
    """A non-empty sequence of distinct label fractions in (0, 1]."""
    items = (x,) if _number(x) else x
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        return "be a non-empty list of fractions in (0, 1], e.g. [0.01, 0.1, 1.0]"
    if not all(_number(f) and 0 < f <= 1 for f in items):
        return "hold fractions in (0, 1], e.g. [0.01, 0.1, 1.0]"
    if len(set(items)) != len(items):
        return "not repeat a fraction"
    return None


def positive_grid(x: Any) -> str | None:
    """A non-empty sequence of positive numbers (a regularisation grid)."""
    ok = isinstance(x, Sequence) and not isinstance(x, str) and len(x) > 0
    if ok and all(_number(v) and v > 0 for v in x):
        return None
    return "be a non-empty list of positive numbers, e.g. [0.01, 0.1, 1.0, 10.0]"


def positive_ints(x: Any) -> str | None:
    """A sequence of positive ints (layer widths)."""
    ok = isinstance(x, Sequence) and not isinstance(x, str)
    return None if ok and all(_int(v) and v >= 1 for v in x) else "be a list of positive ints"
