"""Experiment configuration: the TOML schema, CLI overrides and validation.

An experiment file::

    name = "digits-barlow"
    seed = 0

    [dataset]
    name = "core.digits"      # every other key is an option of the dataset
    noise_std = 0.1

    [encoder]
    name = "core.mlp"
    embed_dim = 128

    [pretext]
    name = "core.barlow_twins"

    [training]                # fields of selfsup.trainer.TrainConfig
    steps = 300
    batch_size = 256

    [[evaluators]]
    name = "core.linear_probe"
    label_fractions = [1.0, 0.1]

    [evaluation]              # shared evaluator settings
    seeds = [0, 1, 2]

Every key can be set from the command line as ``--set training.steps=100`` (the
value is read as a TOML value; a bare word is a string); evaluator options as
``--set evaluators.core.linear_probe.label_fractions=[0.1]`` (the evaluator is
added when the experiment does not have it yet).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfsup.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_LEVEL = ("name", "seed", "dataset", "encoder", "pretext", "training", "evaluators",
             "evaluation")
EVALUATION_KEYS = ("seeds", "batch_size")


@dataclass
class Component:
    """A registry key and the options its factory receives."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass
class Experiment:
    name: str
    dataset: Component
    encoder: Component
    pretext: Component | None
    training: dict[str, Any]
    evaluators: list[Component]
    seed: int = 0
    evaluation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "seed": self.seed,
            "dataset": self.dataset.to_dict(),
            "encoder": self.encoder.to_dict(),
            "training": dict(self.training),
            "evaluators": [e.to_dict() for e in self.evaluators],
            "evaluation": dict(self.evaluation),
        }
        if self.pretext is not None:
            out["pretext"] = self.pretext.to_dict()
        return out

    def train_config(self) -> Any:
        """The validated :class:`selfsup.trainer.TrainConfig` (seed from the experiment)."""
        from selfsup.trainer import TrainConfig

        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.training) - fields)
        if unknown:
            raise ConfigError(_unknown_key_message("training", unknown[0], sorted(fields)))
        values = {"seed": self.seed, **self.training}
        try:
            return TrainConfig(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[training]: {exc}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"experiment file {str(p)!r} does not exist")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides; values are parsed as TOML values."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value_text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.steps=100")
        value = parse_value(value_text.strip())
        parts = key.split(".")
        if parts[0] == "evaluators":
            _set_evaluator_option(out, parts, value, item)
            continue
        node: Any = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a table")
            node = child
        node[parts[-1]] = value
    return out


def _set_evaluator_option(out: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    """``evaluators.<registry key>.<option>=value``: the key itself contains dots."""
    if len(parts) < 4:
        raise ConfigError(
            f"--set {item!r}: evaluator options read evaluators.<key>.<option>=VALUE, "
            "e.g. evaluators.core.linear_probe.label_fractions=[0.1]"
        )
    name, option = ".".join(parts[1:-1]), parts[-1]
    entries = out.get("evaluators", [])
    entries = [entries] if isinstance(entries, (str, Mapping)) else list(entries)
    entries = [{"name": e} if isinstance(e, str) else dict(e) for e in entries]
    target = next((e for e in entries if e.get("name") == name), None)
    if target is None:
        target = {"name": name}
        entries.append(target)
    target[option] = value
    out["evaluators"] = entries


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string: --set dataset.name=core.digits


def _component(section: str, raw: Any) -> Component:
    if isinstance(raw, str):
        return Component(raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{section}] must be a table with a 'name' key or a string key")
    if "name" not in raw or not isinstance(raw["name"], str):
        raise ConfigError(
            f"[{section}] needs name = \"<registry key>\", e.g. name = \"core.digits\""
        )
    options = {k: v for k, v in raw.items() if k != "name"}
    if isinstance(options.get("options"), Mapping):  # also accept [x.options] sub-tables
        options = {**{k: v for k, v in options.items() if k != "options"}, **options["options"]}
    return Component(raw["name"], options)


def parse_experiment(raw: Mapping[str, Any], *, require_pretext: bool = True) -> Experiment:
    """Check the structure of a raw config dict and turn it into an :class:`Experiment`."""
    for key in raw:
        if key not in TOP_LEVEL:
            raise ConfigError(_unknown_key_message("experiment", key, list(TOP_LEVEL)))
    for key in ("dataset", "encoder"):
        if key not in raw:
            raise ConfigError(f"the experiment has no [{key}] section; add one with name = \"...\"")
    if require_pretext and "pretext" not in raw:
        raise ConfigError("the experiment has no [pretext] section; add name = \"core.simclr\" "
                          "or another key from 'selfsup list pretext'")
    training = raw.get("training", {})
    if not isinstance(training, Mapping):
        raise ConfigError("[training] must be a table of TrainConfig fields")
    evaluators_raw = raw.get("evaluators", [])
    if isinstance(evaluators_raw, (str, Mapping)):
        evaluators_raw = [evaluators_raw]
    evaluation = dict(raw.get("evaluation", {}))
    for key in evaluation:
        if key not in EVALUATION_KEYS:
            raise ConfigError(_unknown_key_message("evaluation", key, list(EVALUATION_KEYS)))
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed = {seed!r} must be an integer")
    return Experiment(
        name=str(raw.get("name", "experiment")),
        seed=seed,
        dataset=_component("dataset", raw["dataset"]),
        encoder=_component("encoder", raw["encoder"]),
        pretext=_component("pretext", raw["pretext"]) if "pretext" in raw else None,
        training=dict(training),
        evaluators=[_component("evaluators", e) for e in evaluators_raw],
        evaluation=evaluation,
    )


def _unknown_key_message(section: str, key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown key {key!r} in [{section}].{hint} Valid keys: {', '.join(valid)}"


def dump_toml(data: Mapping[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(_toml_safe(data))


def _toml_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
