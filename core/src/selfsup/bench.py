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
Results go to ``results.json`` (rows, skips, failures, each benchmark's headline
metric and the provenance of the run), ``results.md`` and ``results.png``; each
row's folder holds its run (``metrics.jsonl``) and, where the model has an
embedding, ``embeddings.npz`` (a seeded subset of the test split) for the report's
maps. ``selfsup report`` (:mod:`selfsup.report`) turns the folder into one page.

``quick=True`` runs each benchmark's declared quick share (its headline pretexts
and baselines, fewer steps); ``budget_minutes`` scales those steps by the
benchmarks' measured quick wall times so the whole run fits the budget.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import nan
from pathlib import Path
from typing import Any

from selfsup.components import (
    EMBEDDING,
    BaselineContext,
    BaselineSpec,
    BenchmarkSpec,
    PretextSpec,
)
from selfsup.config import Component, Experiment, parse_value
from selfsup.errors import ConfigError, IncompatibleError, NotApplicable
from selfsup.plugins import KNOWN_PLUGINS, Registry, get_registry
from selfsup.runner import fitting_encoders, summarise_warnings

#: Test samples kept per row for the report's 2-D embedding maps.
MAP_SAMPLES = 1000


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
    folder: str = ""  # the row's folder, relative to the bench folder
    uses_labels: bool = False  # a baseline trained on every train label (an upper reference)
    #: what a baseline chose on the val split (its module's ``chosen``), e.g. a TV weight
    choices: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "benchmark / row: reason"
    failed: list[str] = field(default_factory=list)  # "benchmark / row: ErrorType: message"
    missing_plugins: list[str] = field(default_factory=list)
    #: per benchmark: headline, direction, dataset, encoder, seeds, seconds, fingerprint
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    #: ``selfsup bench --sanity``: one entry per Expect, see :func:`check_sanity`
    sanity: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def sanity_failed(self) -> list[dict[str, Any]]:
        return [c for c in self.sanity if not c["passed"]]

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [row.__dict__ for row in self.rows],
            "skipped": self.skipped,
            "failed": self.failed,
            "missing_plugins": self.missing_plugins,
            "benchmarks": self.benchmarks,
            "provenance": self.provenance,
            "quick": self.quick,
            "sanity": self.sanity,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchResult:
        fields = set(Row.__dataclass_fields__)
        return cls(
            rows=[Row(**{k: v for k, v in r.items() if k in fields}) for r in data["rows"]],
            skipped=list(data.get("skipped", [])),
            failed=list(data.get("failed", [])),
            missing_plugins=list(data.get("missing_plugins", [])),
            benchmarks=dict(data.get("benchmarks", {})),
            provenance=dict(data.get("provenance", {})),
            quick=bool(data.get("quick", False)),
            sanity=list(data.get("sanity", [])),
        )


#: Rows of the supervised baseline use every train label: in a few-label regime
#: they are an upper reference, not a competitor (see :mod:`selfsup.report`).
LABELLED_BASELINES = ("core.supervised",)


class Progress:
    """Bench-level progress on stderr: rows done of total, elapsed time, ETA."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0 = max(total, 1), 0, time.perf_counter()

    def start(self, bench: str, what: str) -> None:
        _say(f"{bench}: {what}  [{self.done + 1}/{self.total}]")

    def finish(self, bench: str, row: str, seconds: float) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        _say(f"{bench}: {row} took {_clock(seconds)}  [{self.done}/{self.total} rows, "
             f"{_clock(elapsed)} elapsed, ~{_clock(eta)} left]")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def quick_plan(specs: Sequence[BenchmarkSpec], budget_minutes: float | None) -> dict[str, int]:
    """Pretraining steps of each benchmark's quick setting, scaled to fit a budget.

    Without a budget, each benchmark's ``quick["train"]["steps"]`` (else its
    ``train`` steps). With one, the steps are multiplied by ``budget / sum of the
    benchmarks' measured quick seconds``: pretraining time scales with the steps,
    evaluation and baselines do not, so the fit is approximate (the report gives
    the wall time the run took).
    """
    steps = {s.name: int({**s.train, **s.quick.get("train", {})}.get("steps", 100))
             for s in specs}
    if budget_minutes is None:
        return steps
    if budget_minutes <= 0:
        raise ConfigError(f"--budget {budget_minutes}: give a positive number of minutes")
    unmeasured = [s.name for s in specs if not s.quick.get("seconds")]
    if unmeasured:
        raise ConfigError(f"--budget needs each benchmark's measured quick time "
                          f"(BenchmarkSpec.quick['seconds']); {', '.join(unmeasured)} "
                          "declare none: run them with --quick alone")
    scale = budget_minutes * 60 / sum(float(s.quick["seconds"]) for s in specs)
    return {name: max(1, round(n * scale)) for name, n in steps.items()}


def apply_settings(spec: BenchmarkSpec, settings: Sequence[str]) -> BenchmarkSpec:
    """``--set`` for a benchmark: ``training.<field>=V`` or ``<component key>.<option>=V``.

    A component key is one of the benchmark's pretexts, evaluators or baselines
    (``core.simclr.temperature=0.5``); a setting naming none of them is an error
    unless another selected benchmark takes it (the caller checks that).
    """
    from dataclasses import replace

    train = dict(spec.train)
    options = {f: {k: dict(v) for k, v in getattr(spec, f).items()}
               for f in ("pretext_options", "evaluator_options", "baseline_options")}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        value = parse_value(raw)
        if key.startswith("training."):
            train[key.removeprefix("training.")] = value
            continue
        for fname, keys in (("pretext_options", spec.pretexts),
                            ("evaluator_options", spec.evaluators),
                            ("baseline_options", spec.baselines)):
            owner = next((k for k in keys if key.startswith(k + ".")), None)
            if owner is not None:
                options[fname].setdefault(owner, {})[key[len(owner) + 1:]] = value
                break
    return replace(spec, train=train, pretext_options=options["pretext_options"],
                   evaluator_options=options["evaluator_options"],
                   baseline_options=options["baseline_options"])


def _unmatched_settings(specs: Sequence[BenchmarkSpec], settings: Sequence[str]) -> list[str]:
    keys = {k for s in specs for k in (*s.pretexts, *s.evaluators, *s.baselines)}
    return [item for item in settings
            if not item.startswith("training.")
            and not any(item.partition("=")[0].startswith(k + ".") for k in keys)]


def provenance(command: Sequence[str] | None, registry: Registry, device: str) -> dict[str, Any]:
    """Versions, device, threads and BLAS, command and date: what a rerun must match.

    Float results depend on the thread count and the BLAS library (a reduction
    summed in another order rounds differently), so both are recorded.
    """
    import platform
    from datetime import datetime, timezone

    import numpy as np
    import torch

    from selfsup import __version__

    blas: list[str] = []
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{i.get('internal_api')} {i.get('version')} "
                       f"({i.get('num_threads')} threads)" for i in threadpool_info()})
    except Exception:  # threadpoolctl comes with scikit-learn; its absence loses only this
        blas = []
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command) if command else "",
        "selfsup": __version__,
        "plugins": {r.name: f"{r.distribution} {r.version}" for r in registry.reports if r.ok},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device if device == "cpu" else f"{device} ({torch.cuda.get_device_name()})"
        if device.startswith("cuda") else device,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "blas": blas,
    }


def select_benchmarks(registry: Registry, names: Sequence[str] | None,
                      sanity: bool = False) -> list[BenchmarkSpec]:
    """The benchmarks to run: those named, else every plugin's, else core's own.

    Unnamed, only sanity benchmarks (``BenchmarkSpec.sanity``) with ``sanity``, and
    none of them without.
    """
    if names:
        return [registry.get("benchmark", n) for n in names]
    pool = [b for b in registry.benchmarks() if bool(b.sanity) == sanity]
    if sanity and not pool:
        raise ConfigError("--sanity: no installed plugin declares a sanity benchmark "
                          "(BenchmarkSpec.sanity)")
    plugin_specs = [b for b in pool if not b.name.startswith("core.")]
    if sanity:  # core's sanity benchmark checks the generic objectives: always run it
        return plugin_specs + [b for b in pool if b.name.startswith("core.")]
    return plugin_specs or [b for b in pool if b.name.startswith("core.")]


def check_sanity(spec: BenchmarkSpec, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Each of a sanity benchmark's :class:`Expect` conditions against its rows.

    Means over seeds are compared; a row that failed or was skipped fails the
    condition (a sanity setting is built so that every row applies).
    """
    by = {r.method: r.metrics for r in rows if r.benchmark == spec.name}
    checks = []
    for expect in spec.sanity:
        metric = expect.metric or spec.headline
        higher = spec.direction == "higher"
        beats_metric = expect.beats_metric or metric
        entry: dict[str, Any] = {"benchmark": spec.name, "method": expect.method,
                                 "beats": expect.beats, "metric": metric,
                                 "beats_metric": beats_metric, "margin": expect.margin,
                                 "condition": expect.describe(metric, spec.direction)}
        wanted = ((expect.method, metric), (expect.beats, beats_metric))
        values = [by.get(row, {}).get(key) for row, key in wanted]
        if None in values:
            absent = [f"{key} of {row}" for (row, key), v in zip(wanted, values, strict=True)
                      if v is None]
            entry.update(passed=False, detail=f"no {' or '.join(absent)} "
                                              "(failed, skipped or not run)")
        else:
            mine, theirs = float(values[0]), float(values[1])  # type: ignore[arg-type]
            ahead = (mine - theirs) if higher else (theirs - mine)
            entry.update(value=mine, reference=theirs, ahead=ahead,
                         passed=bool(ahead > expect.margin),
                         detail=f"{mine:.4g} vs {theirs:.4g} ({ahead:+.4g}, needs "
                                f"> {expect.margin:+g})")
        checks.append(entry)
    return checks


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
    quick: bool = False,
    budget_minutes: float | None = None,
    settings: Sequence[str] = (),
    command: Sequence[str] | None = None,
    sanity: bool = False,
    device: str | None = None,
) -> BenchResult:
    """Run the benchmarks and write ``results.{json,md,png}`` to ``out_dir``.

    ``pretexts``, ``baselines``, ``evaluators``: only these (None: all the
    benchmark's, or its quick share with ``quick``; an empty list of pretexts or
    baselines: none of them). ``steps`` overrides the pretraining steps and caps
    the supervised baseline's. ``budget_minutes`` implies ``quick``.
    ``settings``: ``--set`` items (:func:`apply_settings`). ``sanity``: the sanity
    benchmarks instead of the others (unless ``benchmarks`` names some); each
    benchmark's :class:`Expect` conditions are checked into ``result.sanity``.
    ``device``: where every row trains and evaluates (default: CUDA with ``gpu``,
    else each benchmark's own setting, "auto").
    """
    registry = registry or get_registry()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    quick = quick or budget_minutes is not None
    result = BenchResult(quick=quick)
    installed = {r.name for r in registry.reports if r.ok}
    result.missing_plugins = [d for n, d in KNOWN_PLUGINS.items() if n not in installed]
    specs = select_benchmarks(registry, benchmarks, sanity=sanity)
    if quick and not benchmarks:  # each plugin's default: the benchmarks declaring a quick share
        specs = [s for s in specs if s.quick] or specs
    stray = _unmatched_settings(specs, settings)
    if stray:
        raise ConfigError(f"--set {', '.join(stray)}: no selected benchmark runs a component "
                          "of that key; use training.<field>=V or <key>.<option>=V with a "
                          "pretext, evaluator or baseline key the benchmark runs")
    specs = [apply_settings(s, settings) for s in specs]
    quick_steps = quick_plan(specs, budget_minutes) if quick else {}
    for option, wanted, field_name in (("--pretext", pretexts, "pretexts"),
                                       ("--baseline", baselines, "baselines"),
                                       ("--evaluator", evaluators, "evaluators")):
        offered = sorted({k for s in specs for k in getattr(s, field_name)})
        unknown = [k for k in wanted or () if k not in offered]
        if unknown:  # a filter that matches nothing would silently drop every row
            raise ConfigError(f"{option} {', '.join(unknown)}: not run by the selected "
                              f"benchmark(s); they run {', '.join(offered) or '(none)'}")
    plans = [_plan(s, quick, pretexts, baselines, evaluators) for s in specs]
    progress = Progress(sum(len(p[0]) + len(p[1]) for p in plans))
    from selfsup.runner import resolve_device

    where = resolve_device(device or ("cuda" if gpu else "auto"))
    result.provenance = provenance(command, registry, where)
    for spec, (keys, base_keys, eval_keys) in zip(specs, plans, strict=True):
        t0 = time.perf_counter()
        _run_one(spec, out, registry, result, progress,
                 steps=quick_steps.get(spec.name) if steps is None else steps,
                 steps_given=steps is not None, seeds=seeds, gpu=gpu,
                 pretexts=keys, baselines=base_keys, evaluators=eval_keys, quick=quick,
                 device=device)
        result.benchmarks.setdefault(spec.name, {})["seconds"] = time.perf_counter() - t0
        result.sanity += check_sanity(spec, result.rows)
        write_results(result, out)  # after each benchmark, so a later failure loses nothing
    write_results(result, out)
    return result


def _plan(spec: BenchmarkSpec, quick: bool, pretexts: Sequence[str] | None,
          baselines: Sequence[str] | None, evaluators: Sequence[str] | None,
          ) -> tuple[list[str], list[str], list[str]]:
    """The pretexts, baselines and evaluators a benchmark runs, after filters."""
    def pick(fname: str, wanted: Sequence[str] | None) -> list[str]:
        own = tuple(getattr(spec, fname))
        default = tuple(spec.quick.get(fname, own)) if quick else own
        return [k for k in (default if wanted is None else wanted) if k in own]

    return pick("pretexts", pretexts), pick("baselines", baselines), pick("evaluators",
                                                                          evaluators)


def write_results(result: BenchResult, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    (out / "results.md").write_text(markdown_table(result), encoding="utf-8")
    plot(result, out / "results.png")


def _run_one(
    spec: BenchmarkSpec, out: Path, registry: Registry, result: BenchResult,
    progress: Progress, *, steps: int | None, steps_given: bool, seeds: Sequence[int],
    gpu: bool, pretexts: Sequence[str], baselines: Sequence[str], evaluators: Sequence[str],
    quick: bool, device: str | None = None,
) -> None:
    from selfsup.runner import build, eval_context, evaluate, resolve_device, run_experiment

    training = dict(spec.gpu_train if gpu and spec.gpu_train else spec.train)
    if quick and not gpu:
        training.update(spec.quick.get("train", {}))
    training.setdefault("progress", sys.stderr.isatty())  # the trainer's bar, nested
    if steps is not None:
        training["steps"] = steps
        training["warmup_steps"] = min(int(training.get("warmup_steps", 0)), max(0, steps // 10))
    training["checkpoint_every"] = 0
    if device:
        training["device"] = device
    evaluator_options = {**spec.evaluator_options,
                         **(spec.quick.get("evaluator_options", {}) if quick else {})}
    base = Experiment(
        name=spec.name,
        dataset=Component(spec.dataset, dict(spec.dataset_options)),
        encoder=Component(spec.encoder, dict(spec.encoder_options)),
        pretext=None,
        training=training,
        evaluators=[Component(e, dict(evaluator_options.get(e, {}))) for e in evaluators],
        evaluation={"seeds": list(seeds)},
    )
    _say(f"{spec.name}: building dataset {spec.dataset}")
    built = build(base, registry)
    dataset = built.dataset
    device = resolve_device(str(training.get("device", "auto")))
    ctx = eval_context(base, built, device)
    result.benchmarks[spec.name] = {
        "headline": spec.headline, "direction": spec.direction, "dataset": spec.dataset,
        "encoder": spec.encoder, "seeds": list(seeds), "steps": training.get("steps"),
        "summary": spec.summary, "task": dataset.task.kind,
        "fingerprint": dataset.fingerprint(), "figures": spec.figures,
        "columns": list(spec.columns),
    }

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

    for key in pretexts:
        t0 = time.perf_counter()
        progress.start(spec.name, f"pretraining {key} for {training.get('steps')} steps, "
                                  "then evaluating")
        encoder = attempt(key, lambda k=key: pretext_encoder(spec, registry.get("pretext", k),
                                                             registry))
        run = None
        if encoder is not None:
            enc_comp = (base.encoder if encoder == spec.encoder else Component(encoder))
            exp = Experiment(**{**base.__dict__, "name": f"{spec.name}/{key}",
                                "encoder": enc_comp,
                                "pretext": Component(key, dict(spec.pretext_options.get(key, {})))})
            folder = out / spec.name / key
            run = attempt(key, lambda e=exp, f=folder: run_experiment(e, f, registry,
                                                                      dataset=dataset))
        if run is not None:
            run_notes = [f"final loss {run['train'].get('final_loss', nan):.4f}"]
            if encoder != spec.encoder:
                run_notes.append(f"encoder {encoder}")
            run_notes += run.get("notes", [])
            _save_map(run.get("encoder"), built, ctx, folder)
            result.rows.append(Row(spec.name, key, "pretext", run["metrics"],
                                   time.perf_counter() - t0, note="; ".join(run_notes),
                                   folder=f"{spec.name}/{key}"))
        progress.finish(spec.name, key, time.perf_counter() - t0)

    context = BaselineContext(encoder_factory=ctx.encoder_factory, eval=ctx,  # type: ignore[arg-type]
                              seed=ctx.seeds[0],
                              steps=steps if steps_given or quick else None)
    for key in baselines:
        t0 = time.perf_counter()
        progress.start(spec.name, f"baseline {key}")
        folder = out / spec.name / f"baseline-{key}"
        notes: list[str] = []
        choices: dict[str, Any] = {}

        def measure(k: str = key, f: Path = folder, notes: list[str] = notes,
                    choices: dict[str, Any] = choices) -> dict[str, float]:
            bspec: BaselineSpec = registry.get("baseline", k)
            check_baseline(bspec, built, registry)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = bspec.build(dataset, context,
                                    **dict(spec.baseline_options.get(k, {}))).to(device)
            notes.extend(summarise_warnings(k, caught))
            choices.update(_choices(model))
            if choices.get("selected_on") == "val":
                notes.append("chosen on val: " + ", ".join(
                    f"{name}={value}" for name, value in choices.items()
                    if name != "selected_on" and not isinstance(value, dict)))
            metrics = evaluate(model, built, ctx, notes=notes)
            _save_map(model if bspec.offers(EMBEDDING) else None, built, ctx, f)
            return metrics

        metrics = attempt(f"baseline {key}", measure)
        if metrics is not None:
            result.rows.append(Row(spec.name, f"baseline:{key}", "baseline", metrics,
                                   time.perf_counter() - t0, note="; ".join(notes),
                                   folder=f"{spec.name}/baseline-{key}",
                                   uses_labels=key in LABELLED_BASELINES, choices=choices))
        progress.finish(spec.name, f"baseline {key}", time.perf_counter() - t0)


def _choices(model: Any) -> dict[str, Any]:
    """A baseline module's ``chosen`` (what it selected on the val split), JSON-safe."""
    chosen = getattr(model, "chosen", None)
    if not isinstance(chosen, Mapping):
        return {}
    return json.loads(json.dumps(dict(chosen), default=str))


def _save_map(model: Any, built: Any, ctx: Any, folder: Path) -> None:
    """The test embeddings (a seeded subset) and labels, for the report's 2-D map."""
    if model is None or built.dataset.task.kind not in ("classification", "regression"):
        return
    import numpy as np

    from selfsup.evaluators.embeddings import extract_embeddings

    split = "test" if "test" in built.dataset.splits else built.dataset.splits[-1]
    try:
        z, y = extract_embeddings(model, built.dataset, split, ctx)
    except Exception as exc:  # the map is a picture; its absence loses no result
        _say(f"no embedding map for {folder.name}: {type(exc).__name__}: {exc}")
        return
    rows = np.sort(np.random.default_rng(0).permutation(len(z))[:MAP_SAMPLES])
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "embeddings.npz", z=np.asarray(z)[rows].astype(np.float32),
                        y=np.asarray(y)[rows], split=split)


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


def _fmt(metrics: Mapping[str, float], key: str) -> str:
    """A metric's cell: ``mean ± std`` where a spread was measured, counts as integers.

    No ``±`` for one seed or a deterministic metric (std 0): there is no spread to show.
    """
    if key not in metrics:
        return "–"
    value, std = metrics[key], metrics.get(key + "_std")
    if is_count(key) and float(value).is_integer():
        return str(int(value))  # counts, such as the number of training labels
    return mean_std(value, std)


def mean_std(value: float, std: float | None) -> str:
    """``0.972 ± 0.007``, or ``0.972`` where no spread was measured (None or 0)."""
    return f"{value:.3f} ± {std:.3f}" if std else f"{value:.3f}"


def is_count(key: str) -> bool:
    """A bookkeeping count (``linear_probe.n_train@10%``), not a score."""
    return key.rsplit(".", 1)[-1].split("@")[0].startswith("n_")


def _metric_keys(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r.metrics if not k.endswith("_std")))


def headline_keys(keys: Sequence[str], headline: str) -> list[str]:
    """``headline`` and its label regimes (``headline@10%``) among ``keys``, in order."""
    return [k for k in keys if headline and k.split("@")[0] == headline]


def ordered_keys(rows: Sequence[Row], headline: str) -> tuple[list[str], list[str]]:
    """(score columns with the headline's first, count columns)."""
    keys = _metric_keys(rows)
    scores = [k for k in keys if not is_count(k)]
    first = headline_keys(scores, headline)
    return first + [k for k in scores if k not in first], [k for k in keys if is_count(k)]


def table_keys(rows: Sequence[Row], info: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(the bench table's columns, the folded details' columns) of one benchmark.

    The table shows the headline and, where the benchmark names ``columns``
    (:class:`~selfsup.components.BenchmarkSpec`), those metrics, each with its label
    regimes; else every score. The details hold the other scores and the counts.
    """
    scores, counts = ordered_keys(rows, info.get("headline", ""))
    wanted = set(info.get("columns") or ())
    if not wanted:
        return scores, counts
    first = headline_keys(scores, info.get("headline", ""))
    shown = first + [k for k in scores if k not in first and k.split("@")[0] in wanted]
    return shown, [k for k in scores if k not in shown] + counts


def _quality_keys(rows: Sequence[Row], headline: str = "", most: int = 4) -> list[str]:
    """The metrics worth plotting: scores, not counts such as ``n_train``; macro-F1
    only where there is no accuracy beside it (it then repeats the accuracy's story)."""
    keys, _ = ordered_keys(rows, headline)
    keys = [k for k in keys if "f1_macro" not in k or k.replace("f1_macro", "accuracy") not in keys]
    return keys[:most]


def markdown_table(result: BenchResult) -> str:
    lines: list[str] = []
    if result.quick:
        lines += ["Quick run (`selfsup bench --quick`): headline methods, fewer steps, one "
                  "seed; a first look, not the benchmark's numbers.", ""]
    for bench in dict.fromkeys(r.benchmark for r in result.rows):
        rows = [r for r in result.rows if r.benchmark == bench]
        keys, counts = table_keys(rows, result.benchmarks.get(bench, {}))
        lines += [f"### {bench}", ""]
        lines.append("| method | " + " | ".join(keys) + " | time (s) |")
        lines.append("| --- " * (len(keys) + 2) + "|")
        for r in rows:
            cells = [_fmt(r.metrics, k) for k in keys]
            lines.append(f"| {r.method} | " + " | ".join(cells) + f" | {r.seconds:.1f} |")
        lines.append("")
        if counts:
            lines += ["<details><summary>other metrics and counts</summary>", ""]
            lines.append("| method | " + " | ".join(counts) + " |")
            lines.append("| --- " * (len(counts) + 1) + "|")
            for r in rows:
                lines.append(f"| {r.method} | "
                             + " | ".join(_fmt(r.metrics, k) for k in counts) + " |")
            lines += ["", "</details>", ""]
    if result.sanity:
        lines += ["### Sanity checks", "", "| benchmark | condition | result | |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {c['benchmark']} | {c['condition']} | {c['detail']} | "
                  f"{'PASS' if c['passed'] else '**FAIL**'} |" for c in result.sanity]
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
    panels = {b: _quality_keys([r for r in result.rows if r.benchmark == b],
                               result.benchmarks.get(b, {}).get("headline", ""))
              for b in benches}
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
            title = f"{key}\n(axis zoomed, not from 0)"
            ax.set_title(f"{bench}\n{title}" if j == 0 else title, fontsize=9)
            ax.invert_yaxis()
            if j:
                ax.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
