"""The runner: validate an experiment, pretrain, evaluate, export, summarise.

What a run folder holds, and how its files are written, is :mod:`selfsup.rundir`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsup import rundir
from selfsup.components import (
    ANY_MODALITY,
    EvalContext,
    EvaluatorSpec,
    PretextSpec,
    SSLDataset,
)
from selfsup.config import Component, Experiment, dump_toml
from selfsup.errors import ConfigError, IncompatibleError, RunFolderError
from selfsup.plugins import Registry, get_registry

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")
CARD_FORMAT = "selfsup-encoder/1"


@dataclass
class Built:
    """The components of an experiment, built and checked against each other."""

    dataset: SSLDataset
    encoder: nn.Module
    task: nn.Module | None
    evaluators: dict[str, Any]
    registry: Registry


def fitting_encoders(registry: Registry, face: str, modality: str) -> list[str]:
    """Keys of the registered encoders that offer ``face`` for ``modality``."""
    return [e.name for e in registry.specs("encoder") if e.offers(face) and e.accepts(modality)]


def check_compatible(exp: Experiment, registry: Registry) -> None:
    """Refuse, before anything is built, components whose modalities or faces do not meet."""
    modality = registry.get("dataset", exp.dataset.name).modality
    encoder = registry.get("encoder", exp.encoder.name)
    checks = [("encoder", exp.encoder.name)]
    if exp.pretext is not None:
        checks.append(("pretext", exp.pretext.name))
    checks += [("evaluator", e.name) for e in exp.evaluators]
    for kind, key in checks:
        spec = registry.get(kind, key)
        if not spec.accepts(modality):
            choices = [s.name for s in registry.specs(kind) if s.accepts(modality)]
            raise IncompatibleError(
                f"{kind} {key!r} accepts {list(spec.modalities)}, but dataset "
                f"{exp.dataset.name!r} is {modality!r}. Compatible {kind}s: "
                f"{', '.join(choices) if choices else '(none installed)'}"
            )
        if kind in ("pretext", "evaluator") and not encoder.offers(spec.face):
            fitting = fitting_encoders(registry, spec.face, modality)
            verb = "trains" if kind == "pretext" else "reads"
            raise IncompatibleError(
                f"{kind} {key!r} {verb} the {spec.face!r} face, and encoder "
                f"{encoder.name!r} offers {list(encoder.faces)}; {modality} encoders that "
                f"offer {spec.face!r}: {', '.join(fitting) if fitting else '(none installed)'}"
            )


def build(
    exp: Experiment, registry: Registry | None = None, dataset: SSLDataset | None = None
) -> Built:
    """Build dataset (unless given), encoder, pretext task and evaluators; raise on mismatch."""
    import torch

    registry = registry or get_registry()
    check_compatible(exp, registry)
    if dataset is None:
        dataset = _build("dataset", exp.dataset, registry)
    torch.manual_seed(exp.seed)
    encoder = _build("encoder", exp.encoder, registry, dataset)
    if not isinstance(getattr(encoder, "embed_dim", None), int):
        raise ConfigError(f"encoder {exp.encoder.name!r} has no integer attribute 'embed_dim'")
    task = None
    if exp.pretext is not None:
        spec: PretextSpec = registry.get("pretext", exp.pretext.name)
        if spec.needs_views and type(dataset).augment is SSLDataset.augment:
            raise IncompatibleError(
                f"pretext {spec.name!r} needs the dataset's views, and dataset "
                f"{exp.dataset.name!r} registers none; pick a domain pretext task instead"
            )
        task = _build("pretext", exp.pretext, registry, encoder, dataset)
        if getattr(task, "encoder", None) is not encoder:
            raise ConfigError(f"pretext {spec.name!r} must keep the encoder as 'task.encoder'")
    evaluators = {}
    for comp in exp.evaluators:
        espec: EvaluatorSpec = registry.get("evaluator", comp.name)
        if ANY_MODALITY not in espec.task_kinds and dataset.task.kind not in espec.task_kinds:
            raise IncompatibleError(
                f"evaluator {comp.name!r} needs labels of kind {list(espec.task_kinds)}, "
                f"and dataset {exp.dataset.name!r} has {dataset.task.kind!r} labels"
            )
        evaluators[comp.name] = _build("evaluator", comp, registry)
    return Built(dataset, encoder, task, evaluators, registry)


def _build(kind: str, comp: Component, registry: Registry, *args: Any) -> Any:
    spec = registry.get(kind, comp.name)
    try:
        return spec.build(*args, **comp.options)
    except TypeError as exc:
        raise ConfigError(f"{kind} {comp.name!r}: {exc}") from exc


def eval_context(exp: Experiment, built: Built, device: str) -> EvalContext:
    def fresh_encoder() -> nn.Module:
        import torch

        torch.manual_seed(exp.seed + 1)
        return built.registry.get("encoder", exp.encoder.name).build(
            built.dataset, **exp.encoder.options
        )

    seeds = tuple(exp.evaluation.get("seeds", (0, 1, 2)))
    return EvalContext(
        device=device,
        seeds=seeds,
        batch_size=int(exp.evaluation.get("batch_size", 256)),
        encoder_factory=fresh_encoder,
    )


def evaluate(encoder: nn.Module, built: Built, ctx: EvalContext,
             notes: list[str] | None = None) -> dict[str, float]:
    """Every evaluator's metrics on ``encoder``.

    Warnings raised inside an evaluator (scikit-learn's ConvergenceWarning, SciPy's
    LinAlgWarning on a near-singular system, ...) do not reach stderr: they are
    counted per kind and appended to ``notes`` (e.g. a bench row's note), or
    logged when no list is given.
    """
    metrics: dict[str, float] = {}
    for name, evaluator in built.evaluators.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluator(encoder, built.dataset, ctx)
        found = summarise_warnings(name, caught)
        if notes is not None:
            notes.extend(found)
        else:
            for line in found:
                log.warning("%s", line)
        metrics.update({k: float(v) for k, v in result.items()})
        log.info("%s done in %.1f s", name, time.perf_counter() - t0)
    return metrics


def summarise_warnings(owner: str, caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """One note per kind of warning a step raised (counted), instead of a flood on stderr."""
    counts: dict[tuple[str, str], int] = {}
    for w in caught:
        text = str(w.message).strip()
        # numbers (rcond = 1.6e-08, slice 0) vary per call: one note per kind of warning
        first = _NUMBER.sub("N", text.splitlines()[0])[:120] if text else ""
        key = (w.category.__name__, first)
        counts[key] = counts.get(key, 0) + 1
    return [f"{owner}: {n}x {cat}: {msg}" for (cat, msg), n in counts.items()]


def online_knn(built: Built, device: str) -> Any:
    """A kNN accuracy monitor (train -> val) for the trainer's online evaluation."""
    if built.dataset.task.kind != "classification":
        return None
    split = "val" if "val" in built.dataset.splits else "test"

    def monitor(encoder: nn.Module) -> dict[str, float]:
        from selfsup.evaluators.embeddings import extract_embeddings
        from selfsup.evaluators.knn import knn_accuracy

        ctx = EvalContext(device=device)
        z_tr, y_tr = extract_embeddings(encoder, built.dataset, "train", ctx)
        z_te, y_te = extract_embeddings(encoder, built.dataset, split, ctx)
        return {"knn_accuracy": float(knn_accuracy(z_tr, y_tr, z_te, y_te, k=20))}

    return monitor


def resolve_device(device: str) -> str:
    """The device name for ``device`` in this process (see :func:`distributed.resolve_device`)."""
    from selfsup.distributed import resolve_device as resolve

    return str(resolve(device))


def run_experiment(
    exp: Experiment,
    run_dir: str | Path,
    registry: Registry | None = None,
    dataset: SSLDataset | None = None,
) -> dict[str, Any]:
    """Pretrain (if the experiment has a pretext task), evaluate and export to ``run_dir``.

    ``dataset``: an already built dataset to reuse (``selfsup bench`` builds it once).
    """
    from selfsup.distributed import is_main_process
    from selfsup.trainer import Trainer, init_distributed

    run_dir = Path(run_dir)
    init_distributed()  # under torchrun: join the group first, so only rank 0 writes
    built = build(exp, registry, dataset)
    train_cfg = exp.train_config()
    device = resolve_device(train_cfg.device)
    resolved = exp.to_dict()
    resolved["training"] = asdict(train_cfg)
    main = is_main_process()
    if main:
        check_resumable(run_dir, resolved)
        run_dir.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_text(run_dir / rundir.CONFIG, dump_toml(resolved))
    t0 = time.perf_counter()
    train_info: dict[str, Any] = {}
    if built.task is not None:
        monitor = online_knn(built, device) if train_cfg.online_eval_every else None
        if train_cfg.online_eval_every and monitor is None:
            raise ConfigError(
                f"training.online_eval_every needs class labels for its kNN monitor; dataset "
                f"{exp.dataset.name!r} has {built.dataset.task.kind!r}: set it to 0"
            )
        result = Trainer(built.task, built.dataset, train_cfg, run_dir, online_eval=monitor).fit()
        train_info = {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "train_seconds": result.seconds,
            "resumed_from": result.resumed_from,
        }
    encoder = built.encoder.to(device)
    notes: list[str] = []
    metrics = evaluate(encoder, built, eval_context(exp, built, device), notes) if main else {}
    out = {"name": exp.name, "metrics": metrics, "train": train_info, "notes": notes,
           "seconds": time.perf_counter() - t0, "encoder": encoder}
    if main:
        rundir.append_eval(run_dir, metrics, evaluators=[e.name for e in exp.evaluators])
        export_encoder(encoder, run_dir, resolved, built, metrics)
        rundir.atomic_write_text(run_dir / rundir.SUMMARY,
                                 summary_markdown(exp, train_info, metrics))
    return out


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def check_resumable(run_dir: Path, resolved: Mapping[str, Any]) -> None:
    """Refuse to resume checkpoints that another experiment wrote.

    A run folder with checkpoints resumes from them. When its ``config.toml``
    differs from ``resolved`` in what shapes training (seed, dataset, encoder,
    pretext task, or a training setting other than the trainer's resumable ones),
    the checkpoints belong to another experiment: ConfigError names the changed
    keys and the way out (a new run folder, or deleting the old checkpoints).
    """
    from selfsup import config
    from selfsup.checkpoint import list_checkpoints
    from selfsup.trainer import RESUMABLE_CHANGES

    saved_file = run_dir / rundir.CONFIG
    if not saved_file.is_file() or not list_checkpoints(run_dir / rundir.CHECKPOINTS):
        return
    sections = ("seed", "dataset", "encoder", "pretext", "training")
    new = _flatten({k: v for k, v in config.tomllib.loads(dump_toml(resolved)).items()
                    if k in sections}, "")
    old = _flatten({k: v for k, v in config.load_toml(saved_file).items() if k in sections}, "")
    changed = sorted(
        k for k in set(new) | set(old)
        if new.get(k) != old.get(k)
        and not (k.startswith("training.") and k.split(".", 1)[1] in RESUMABLE_CHANGES)
    )  # fmt: skip
    if changed:
        raise ConfigError(
            f"run folder {str(run_dir)!r} holds checkpoints of another experiment (changed: "
            f"{', '.join(changed)}); resuming would continue that run. Use a new run folder, "
            f"or delete {str(run_dir / rundir.CHECKPOINTS)!r} to start this one from scratch"
        )


def export_encoder(
    encoder: nn.Module, run_dir: Path, config: Mapping[str, Any], built: Built,
    metrics: Mapping[str, float],
) -> Path:
    """Write ``encoder.safetensors`` and its JSON card; returns the weights path."""
    from safetensors.torch import save_model

    weights = run_dir / rundir.ENCODER_WEIGHTS
    with rundir.atomic_path(weights) as tmp:
        save_model(encoder.cpu(), str(tmp))
    card = {
        "format": CARD_FORMAT,
        "encoder": config["encoder"],
        "dataset": config["dataset"],
        "pretext": config.get("pretext"),
        "embed_dim": int(encoder.embed_dim),  # type: ignore[arg-type]
        "config": config,
        "plugin_versions": built.registry.versions(),
        "data_fingerprint": built.dataset.fingerprint(),
        "metrics": dict(metrics),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rundir.atomic_write_text(run_dir / rundir.ENCODER_CARD,
                             json.dumps(card, indent=2, sort_keys=True))
    return weights


def load_exported(
    run_dir: str | Path,
    registry: Registry | None = None,
    evaluators: list[Component] | None = None,
) -> tuple[Experiment, Built]:
    """Rebuild an exported encoder from its card and weights (no code is unpickled).

    ``evaluators`` replace those of the original experiment (None keeps its own).
    """
    from safetensors.torch import load_model

    from selfsup.config import parse_experiment

    run_dir = Path(run_dir)
    card_path = run_dir / rundir.ENCODER_CARD
    weights = run_dir / rundir.ENCODER_WEIGHTS
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist")
    if not card_path.is_file():
        raise ConfigError(f"{run_dir} holds no exported encoder (encoder.json); run pretrain first")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{card_path} is not a JSON encoder card ({exc}); re-export it "
                             "with 'selfsup pretrain --run-dir' on the run folder") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ConfigError(f"{card_path}: format {found!r}, expected {CARD_FORMAT!r}")
    raw = dict(card["config"])
    raw.pop("pretext", None)
    exp = parse_experiment(raw, require_pretext=False)
    if evaluators is not None:
        exp.evaluators = evaluators
    if not weights.is_file():
        raise RunFolderError(f"{weights} is missing; the card {card_path} has no weights beside "
                             "it. Re-export with 'selfsup pretrain --run-dir' on the run folder")
    header_error = _safetensors_problem(weights)
    if header_error:
        raise RunFolderError(
            f"{weights} is not a safetensors file ({header_error}); nothing was loaded or "
            "executed. Re-export the encoder with 'selfsup pretrain --run-dir' on the run folder"
        )
    built = build(exp, registry)
    try:
        load_model(built.encoder, str(weights))
    except RuntimeError as exc:  # shapes or names that do not match the rebuilt encoder
        first = str(exc).strip().splitlines()[0]
        raise RunFolderError(f"{weights} does not fit encoder {exp.encoder.name!r}: {first}; "
                             "was the card edited, or a plugin upgraded since?") from None
    return exp, built


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a safetensors file (read from its header alone), or None.

    The format is an 8-byte little-endian header length, then that many bytes of JSON.
    Checking this first turns a pickle or a truncated file into one clear sentence
    instead of a parser error, and reads no tensor data.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            kind = "a pickle" if head[:1] == b"\x80" or head[:2] == b"PK" else "not one"
            return f"its header length {n} does not fit the file's {size} bytes; it is {kind}"
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            return "its header is not JSON"
    return None if isinstance(header, dict) else "its header is not a JSON object"


def summary_markdown(
    exp: Experiment, train: Mapping[str, Any], metrics: Mapping[str, float]
) -> str:
    lines = [
        f"# {exp.name}",
        "",
        f"- dataset: `{exp.dataset.name}`",
        f"- encoder: `{exp.encoder.name}`",
        f"- pretext: `{exp.pretext.name if exp.pretext else '(none)'}`",
    ]
    if train:
        lines.append(
            f"- trained {train['steps']} steps in {train['train_seconds']:.1f} s, "
            f"final loss {train['final_loss']:.4f}"
            + (f" (resumed from step {train['resumed_from']})" if train.get("resumed_from") else "")
        )
    lines += ["", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())]
    return "\n".join(lines) + "\n"
