"""``selfsup bench``: every installed plugin's default benchmark in one table.

For each registered :class:`~selfsup.components.BenchmarkSpec` the dataset is
built once; each pretext task pretrains a fresh encoder through the runner and is
evaluated; the baselines are measured by the same evaluators on the same splits:

- ``input``: the dataset's own input features (where it has flat ones);
- ``random_init``: the encoder, untrained;
- ``supervised``: the encoder trained end to end on the labelled train split
  (:func:`selfsup.evaluators.finetune.train_supervised`), then frozen;
- ``mean``: a constant encoder, so every probe predicts the train-set mean
  (regression) or the majority class (classification);
- ``encoder:<key>``: a registered encoder used as a fixed feature extractor
  (a plugin's fingerprints or hand-made descriptors), untrained.

With no plugin benchmark installed, core's own ``core.digits`` benchmark runs.
Results go to ``results.json``, ``results.md`` and ``results.png``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import nan
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfsup.components import BenchmarkSpec, EvalContext, SSLDataset
from selfsup.config import Component, Experiment
from selfsup.errors import ConfigError
from selfsup.plugins import KNOWN_PLUGINS, Registry, get_registry


def _say(message: str) -> None:
    """One status line per step of the bench, on stderr (the table goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


BASELINES = ("input", "random_init", "supervised", "mean", "encoder:<key>")


@dataclass
class Row:
    benchmark: str
    method: str
    kind: str  # "pretext" or "baseline"
    metrics: dict[str, float]
    seconds: float
    note: str = ""


@dataclass
class BenchResult:
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_plugins: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [row.__dict__ for row in self.rows],
            "skipped": self.skipped,
            "missing_plugins": self.missing_plugins,
        }


def select_benchmarks(registry: Registry, names: Sequence[str] | None) -> list[BenchmarkSpec]:
    """The benchmarks to run: those named, else every plugin's, else core's own."""
    if names:
        return [registry.get("benchmark", n) for n in names]
    plugin_specs = [b for b in registry.benchmarks() if not b.name.startswith("core.")]
    return plugin_specs or [b for b in registry.benchmarks() if b.name.startswith("core.")]


def run_bench(
    out_dir: str | Path,
    *,
    benchmarks: Sequence[str] | None = None,
    registry: Registry | None = None,
    steps: int | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    gpu: bool = False,
    pretexts: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    evaluators: Sequence[str] | None = None,
    supervised_epochs: int = 60,
) -> BenchResult:
    """Run the benchmarks and write ``results.{json,md,png}`` to ``out_dir``."""
    registry = registry or get_registry()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = BenchResult()
    installed = {r.name for r in registry.reports if r.ok}
    result.missing_plugins = [d for n, d in KNOWN_PLUGINS.items() if n not in installed]
    for spec in select_benchmarks(registry, benchmarks):
        _run_one(spec, out, registry, result, steps=steps, seeds=seeds, gpu=gpu,
                 pretexts=pretexts, baselines=baselines, evaluators=evaluators,
                 supervised_epochs=supervised_epochs)
        write_results(result, out)  # after each benchmark, so a later failure loses nothing
    write_results(result, out)
    return result


def write_results(result: BenchResult, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    (out / "results.md").write_text(markdown_table(result), encoding="utf-8")
    plot(result, out / "results.png")


def _run_one(
    spec: BenchmarkSpec, out: Path, registry: Registry, result: BenchResult, *,
    steps: int | None, seeds: Sequence[int], gpu: bool, pretexts: Sequence[str] | None,
    baselines: Sequence[str] | None, evaluators: Sequence[str] | None, supervised_epochs: int,
) -> None:
    from selfsup.runner import build, eval_context, evaluate, resolve_device, run_experiment

    training = dict(spec.gpu_train if gpu and spec.gpu_train else spec.train)
    training.setdefault("progress", False)
    if steps is not None:
        training["steps"] = steps
        training["warmup_steps"] = min(int(training.get("warmup_steps", 0)), max(0, steps // 10))
    training["checkpoint_every"] = 0
    base = Experiment(
        name=spec.name,
        dataset=Component(spec.dataset, dict(spec.dataset_options)),
        encoder=Component(spec.encoder, dict(spec.encoder_options)),
        pretext=None,
        training=training,
        evaluators=[Component(e, dict(spec.evaluator_options.get(e, {})))
                    for e in spec.evaluators if not evaluators or e in evaluators],
        evaluation={"seeds": list(seeds)},
    )
    _say(f"{spec.name}: building dataset {spec.dataset}")
    built = build(base, registry)
    dataset = built.dataset
    device = resolve_device(str(training.get("device", "auto")))
    ctx = eval_context(base, built, device)

    for key in pretexts or spec.pretexts:
        if key not in spec.pretexts:
            continue
        pretext_encoder = (Component(spec.pretext_encoders[key])
                           if key in spec.pretext_encoders else base.encoder)
        exp = Experiment(**{**base.__dict__, "name": f"{spec.name}/{key}",
                            "encoder": pretext_encoder,
                            "pretext": Component(key, dict(spec.pretext_options.get(key, {})))})
        t0 = time.perf_counter()
        _say(f"{spec.name}: pretraining {key} for {training.get('steps')} steps, then evaluating")
        try:
            run = run_experiment(exp, out / spec.name / key, registry, dataset=dataset)
        except (ConfigError, ValueError, RuntimeError) as exc:
            result.skipped.append(f"{spec.name} / {key}: {exc}")
            _say(f"{spec.name}: skipped {key}: {exc}")
            continue
        result.rows.append(Row(spec.name, key, "pretext", run["metrics"],
                               time.perf_counter() - t0,
                               note=f"final loss {run['train'].get('final_loss', nan):.4f}"
                               + (f"; encoder {pretext_encoder.name}"
                                  if pretext_encoder is not base.encoder else "")))

    for name in baselines or spec.baselines:
        if name not in spec.baselines:
            continue
        t0 = time.perf_counter()
        _say(f"{spec.name}: baseline {name}")
        try:
            encoder = _baseline_encoder(name, spec, built, ctx, supervised_epochs)
            if isinstance(encoder, str):
                raise ValueError(encoder)
            metrics = evaluate(encoder.to(device), built, ctx)
        except (ConfigError, ValueError, RuntimeError, TypeError) as exc:
            # one baseline that does not apply must not cost the rest of the table
            result.skipped.append(f"{spec.name} / baseline {name}: {exc}")
            _say(f"{spec.name}: skipped baseline {name}: {exc}")
            continue
        result.rows.append(Row(spec.name, f"baseline:{name}", "baseline", metrics,
                               time.perf_counter() - t0))


def _baseline_encoder(
    name: str, spec: BenchmarkSpec, built: Any, ctx: EvalContext, epochs: int
) -> nn.Module | str:
    """The baseline's encoder, or a string saying why it does not apply."""
    if name == "input":
        return InputFeatures.for_dataset(built.dataset)
    if name == "mean":
        return Constant(built.dataset)
    if name.startswith("encoder:"):
        return built.registry.get("encoder", name.split(":", 1)[1]).build(built.dataset)
    assert ctx.encoder_factory is not None  # eval_context always sets it
    if name == "random_init":
        return ctx.encoder_factory()
    if name == "supervised":
        if built.dataset.task.kind not in ("classification", "regression"):
            return f"dataset task is {built.dataset.task.kind!r}; no supervised encoder"
        from selfsup.evaluators.finetune import train_supervised

        return train_supervised(ctx.encoder_factory(), built.dataset, ctx, epochs=epochs,
                                lr=1e-3, weight_decay=1e-4, batch_size=128, seed=ctx.seeds[0])
    return f"unknown baseline {name!r}; baselines are {list(BASELINES)}"


class Constant(nn.Module):
    """A one-dimensional constant 'encoder': the train-set mean / majority-class baseline."""

    embed_dim = 1

    def __init__(self, dataset: SSLDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def forward(self, batch: Any) -> torch.Tensor:
        return torch.zeros(self.dataset.batch_rows(batch), 1)


class InputFeatures(nn.Module):
    """The dataset's flat input features as an 'encoder': the input-features baseline."""

    def __init__(self, dataset: SSLDataset) -> None:
        super().__init__()
        self.dataset = dataset
        batch, _, _ = next(dataset.labelled_batches(dataset.splits[0], batch_size=2))
        self.embed_dim = int(self(batch).shape[1])

    def forward(self, batch: Any) -> torch.Tensor:
        z = self.dataset.input_features(batch).float()
        return z.reshape(z.shape[0], -1)

    @staticmethod
    def for_dataset(dataset: SSLDataset) -> nn.Module | str:
        if type(dataset).input_features is SSLDataset.input_features:
            return f"dataset {dataset.name!r} has no flat input features"
        return InputFeatures(dataset)


def _fmt(metrics: dict[str, float], key: str) -> str:
    if key not in metrics:
        return "–"
    value, std = metrics[key], metrics.get(key + "_std")
    if std is None and float(value).is_integer():
        return str(int(value))  # counts, such as the number of training labels
    return f"{value:.3f} ± {std:.3f}" if std is not None else f"{value:.3f}"


def _metric_keys(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r.metrics if not k.endswith("_std")))


def _quality_keys(rows: Sequence[Row], most: int = 4) -> list[str]:
    """The metrics worth plotting: scores, not counts such as ``n_train``; macro-F1
    only where there is no accuracy beside it (it then repeats the accuracy's story)."""
    keys = [k for k in _metric_keys(rows) if ".n_train" not in k]
    keys = [k for k in keys if "f1_macro" not in k or k.replace("f1_macro", "accuracy") not in keys]
    return keys[:most]


def markdown_table(result: BenchResult) -> str:
    lines: list[str] = []
    for bench in dict.fromkeys(r.benchmark for r in result.rows):
        rows = [r for r in result.rows if r.benchmark == bench]
        keys = _metric_keys(rows)
        lines += [f"### {bench}", ""]
        lines.append("| method | " + " | ".join(keys) + " | time (s) |")
        lines.append("| --- " * (len(keys) + 2) + "|")
        for r in rows:
            cells = [_fmt(r.metrics, k) for k in keys]
            lines.append(f"| {r.method} | " + " | ".join(cells) + f" | {r.seconds:.1f} |")
        lines.append("")
    if result.skipped:
        lines += ["Skipped:", ""] + [f"- {s}" for s in result.skipped] + [""]
    if result.missing_plugins:
        lines.append("Plugins not installed: " + ", ".join(result.missing_plugins))
    return "\n".join(lines) + "\n"


def plot(result: BenchResult, path: Path) -> None:
    """A row of panels per benchmark, one panel per quality metric, with seed spreads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = list(dict.fromkeys(r.benchmark for r in result.rows))
    if not benches:
        return
    panels = {b: _quality_keys([r for r in result.rows if r.benchmark == b]) for b in benches}
    ncols = max(1, max(len(k) for k in panels.values()))
    fig, axes = plt.subplots(len(benches), ncols, figsize=(3.6 * ncols + 1.5, 0.35 * 12 + 1),
                             squeeze=False)
    for i, bench in enumerate(benches):
        rows = [r for r in result.rows if r.benchmark == bench]
        names = [r.method for r in rows]
        colors = ["tab:blue" if r.kind == "pretext" else "tab:gray" for r in rows]
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(panels[bench]):
                ax.axis("off")
                continue
            key = panels[bench][j]
            values = [r.metrics.get(key, float("nan")) for r in rows]
            errs = [r.metrics.get(key + "_std", 0.0) for r in rows]
            ax.barh(names, values, xerr=errs, color=colors)
            finite = [v for v in values if v == v]
            if finite:  # zoom in: the differences are often a few points
                lo, hi = min(finite), max(finite)
                pad = max(0.02, 0.15 * (hi - lo))
                ax.set_xlim(lo - pad, hi + pad)
            ax.set_title(f"{bench}\n{key}" if j == 0 else key, fontsize=9)
            ax.invert_yaxis()
            if j:
                ax.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
