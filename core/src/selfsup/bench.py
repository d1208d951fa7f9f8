"""``selfsup bench``: every installed plugin's default benchmark in one table.

For each registered :class:`~selfsup.components.BenchmarkSpec` the dataset is
built once; each pretext task pretrains a fresh encoder through the runner and is
evaluated; each of the benchmark's baselines (registered :class:`BaselineSpec`
keys such as ``core.input``, ``core.random_init``, ``core.supervised``,
``molecular.morgan_forest``; ``selfsup list baseline``) is built and measured by
the same evaluators on the same splits.

A row that does not apply (:class:`~selfsup.errors.NotApplicable`, or components
whose modalities, faces or task kinds do not meet) is *skipped* with its reason;
any other exception is a *failure*: the row is reported with its error, the other
rows still run, and ``selfsup bench`` exits with status 1.

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

from selfsup.components import BaselineContext, BaselineSpec, BenchmarkSpec, PretextSpec
from selfsup.config import Component, Experiment
from selfsup.errors import ConfigError, IncompatibleError, NotApplicable
from selfsup.plugins import KNOWN_PLUGINS, Registry, get_registry
from selfsup.runner import fitting_encoders


def _say(message: str) -> None:
    """One status line per step of the bench, on stderr (the table goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


#: What a row that does not apply raises; everything else is a failure.
DOES_NOT_APPLY = (NotApplicable, IncompatibleError)


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
    skipped: list[str] = field(default_factory=list)  # "benchmark / row: reason"
    failed: list[str] = field(default_factory=list)  # "benchmark / row: ErrorType: message"
    missing_plugins: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [row.__dict__ for row in self.rows],
            "skipped": self.skipped,
            "failed": self.failed,
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
) -> BenchResult:
    """Run the benchmarks and write ``results.{json,md,png}`` to ``out_dir``.

    ``pretexts``, ``baselines``, ``evaluators``: only these (None: all the
    benchmark's; an empty list of pretexts or baselines: none of them).
    """
    registry = registry or get_registry()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = BenchResult()
    installed = {r.name for r in registry.reports if r.ok}
    result.missing_plugins = [d for n, d in KNOWN_PLUGINS.items() if n not in installed]
    specs = select_benchmarks(registry, benchmarks)
    for option, wanted, field_name in (("--pretext", pretexts, "pretexts"),
                                       ("--baseline", baselines, "baselines"),
                                       ("--evaluator", evaluators, "evaluators")):
        offered = sorted({k for s in specs for k in getattr(s, field_name)})
        unknown = [k for k in wanted or () if k not in offered]
        if unknown:  # a filter that matches nothing would silently drop every row
            raise ConfigError(f"{option} {', '.join(unknown)}: not run by the selected "
                              f"benchmark(s); they run {', '.join(offered) or '(none)'}")
    for spec in specs:
        _run_one(spec, out, registry, result, steps=steps, seeds=seeds, gpu=gpu,
                 pretexts=pretexts, baselines=baselines, evaluators=evaluators)
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
    baselines: Sequence[str] | None, evaluators: Sequence[str] | None,
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

    def attempt(row: str, work: Any) -> Any:
        """Run one row; record a skip (does not apply) or a failure (anything else)."""
        try:
            return work()
        except DOES_NOT_APPLY as exc:
            result.skipped.append(f"{spec.name} / {row}: {exc}")
            _say(f"{spec.name}: skipped {row}: {exc}")
        except Exception as exc:  # one crashing row must not cost the rest of the table
            result.failed.append(f"{spec.name} / {row}: {type(exc).__name__}: {exc}")
            _say(f"{spec.name}: FAILED {row}: {type(exc).__name__}: {exc}")
        return None

    for key in spec.pretexts if pretexts is None else pretexts:
        if key not in spec.pretexts:
            continue
        encoder = attempt(key, lambda k=key: pretext_encoder(spec, registry.get("pretext", k),
                                                             registry))
        if encoder is None:
            continue
        enc_comp = (base.encoder if encoder == spec.encoder else Component(encoder))
        exp = Experiment(**{**base.__dict__, "name": f"{spec.name}/{key}", "encoder": enc_comp,
                            "pretext": Component(key, dict(spec.pretext_options.get(key, {})))})
        t0 = time.perf_counter()
        _say(f"{spec.name}: pretraining {key} for {training.get('steps')} steps, then evaluating")
        run = attempt(key, lambda e=exp, k=key: run_experiment(e, out / spec.name / k, registry,
                                                                 dataset=dataset))
        if run is None:
            continue
        result.rows.append(Row(spec.name, key, "pretext", run["metrics"],
                               time.perf_counter() - t0,
                               note=f"final loss {run['train'].get('final_loss', nan):.4f}"
                               + (f"; encoder {encoder}" if encoder != spec.encoder else "")))

    context = BaselineContext(encoder_factory=ctx.encoder_factory, eval=ctx,  # type: ignore[arg-type]
                              seed=ctx.seeds[0])
    for key in spec.baselines if baselines is None else baselines:
        if key not in spec.baselines:
            continue
        t0 = time.perf_counter()
        _say(f"{spec.name}: baseline {key}")

        def measure(k: str = key) -> dict[str, float]:
            bspec: BaselineSpec = registry.get("baseline", k)
            check_baseline(bspec, built, registry)
            model = bspec.build(dataset, context, **dict(spec.baseline_options.get(k, {})))
            return evaluate(model.to(device), built, ctx)

        metrics = attempt(f"baseline {key}", measure)
        if metrics is not None:
            result.rows.append(Row(spec.name, f"baseline:{key}", "baseline", metrics,
                                   time.perf_counter() - t0))


def pretext_encoder(spec: BenchmarkSpec, pretext: PretextSpec, registry: Registry) -> str:
    """The encoder a benchmark trains ``pretext`` with.

    The benchmark's own encoder when it offers the pretext's face; otherwise the one
    encoder registered by the pretext's plugin that offers the face for the dataset's
    modality (a pretext that needs its own architecture, such as C-BSN's network).
    """
    if registry.get("encoder", spec.encoder).offers(pretext.face):
        return spec.encoder
    modality = registry.get("dataset", spec.dataset).modality
    owner = registry.owner("pretext", pretext.name).name
    own = [key for key in fitting_encoders(registry, pretext.face, modality)
           if registry.owner("encoder", key).name == owner]
    if len(own) == 1:
        return own[0]
    raise IncompatibleError(
        f"pretext {pretext.name!r} trains the {pretext.face!r} face, which the benchmark's "
        f"encoder {spec.encoder!r} does not offer, and its plugin registers "
        + (f"several encoders that do ({', '.join(own)})" if own else "no encoder that does")
    )


def check_baseline(spec: BaselineSpec, built: Any, registry: Registry) -> None:
    """Refuse a baseline whose modality, faces or task kinds do not meet the benchmark's."""
    dataset = built.dataset
    if not spec.accepts(dataset.modality):
        raise IncompatibleError(f"baseline {spec.name!r} accepts {list(spec.modalities)}, not "
                                f"{dataset.modality!r}")
    if "*" not in spec.task_kinds and dataset.task.kind not in spec.task_kinds:
        raise IncompatibleError(f"baseline {spec.name!r} needs labels of kind "
                                f"{list(spec.task_kinds)}; dataset {dataset.name!r} has "
                                f"{dataset.task.kind!r}")
    for name in built.evaluators:
        face = registry.get("evaluator", name).face
        if not spec.offers(face):
            raise IncompatibleError(f"baseline {spec.name!r} offers {list(spec.faces)}, and "
                                    f"evaluator {name!r} reads {face!r}")


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
    if result.failed:
        lines += ["Failed (a bug to fix, not a result):", ""]
        lines += [f"- {s}" for s in result.failed] + [""]
    if result.skipped:
        lines += ["Skipped (does not apply):", ""] + [f"- {s}" for s in result.skipped] + [""]
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
