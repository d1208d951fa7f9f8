"""Conformance kit for plugin authors.

Call it from a plugin's test suite::

    from selfsup.testing import check_plugin

    def test_conformance():
        check_plugin("graph", dataset_options={"graph.sbm": {"n_nodes": 200}})

It loads the plugin through its entry point in strict mode and checks that every
component it registers honours the contracts of :mod:`selfsup.components`:
namespaced keys, resolvable factories, known modalities; datasets that build,
collate, give deterministic and stochastic views; encoders whose output is
``[B, embed_dim]`` and finite; pretext tasks whose loss is a finite scalar that
sends gradients into the encoder; evaluators that build; benchmarks that name
registered, compatible components. Failures raise :class:`ConformanceError`
naming the component and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfsup.components import (
    ANY_MODALITY,
    MODALITIES,
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    PretextSpec,
    SSLDataset,
)
from selfsup.plugins import Registry


class ConformanceError(AssertionError):
    """A registered component breaks the plugin contract."""


def _fail(key: str, message: str) -> None:
    raise ConformanceError(f"{key}: {message}")


def first_batch(dataset: SSLDataset, n: int = 8) -> Any:
    pre = dataset.pretrain_set()
    size = len(pre)  # type: ignore[arg-type]
    if size == 0:
        _fail(dataset.name, "pretrain_set() is empty")
    return dataset.collate([pre[i] for i in range(min(n, size))])


def check_dataset(spec: DatasetSpec, **options: Any) -> SSLDataset:
    """Build the dataset and check its splits, collate and views."""
    import torch

    ds = spec.build(**options)
    if not isinstance(ds, SSLDataset):
        _fail(spec.name, f"factory returned {type(ds).__name__}, not an SSLDataset")
    if ds.modality != spec.modalities[0]:
        _fail(spec.name, f"dataset modality {ds.modality!r} != registered {spec.modalities[0]!r}")
    batch = first_batch(ds)
    for split in ds.splits:
        if ds.labelled_split(split) is None and ds.task.kind != "none":
            _fail(spec.name, f"lists split {split!r} but labelled_split({split!r}) is None")
    if ds.task.kind in ("classification", "regression") and ds.splits:
        split = ds.splits[0]
        _, y, rows = next(iter(ds.labelled_batches(split, batch_size=4)))
        if rows is None and len(y) == 0:
            _fail(spec.name, f"labelled_batches({split!r}) yielded no labels")
        n = ds.n_labelled(split)
        if len(ds.labels(split)) != n:
            _fail(spec.name, f"labels({split!r}) has {len(ds.labels(split))} entries, "
                             f"n_labelled says {n}")
    if type(ds).augment is not SSLDataset.augment:
        views = [ds.augment(batch, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
        if type(views[0]) is not type(batch):
            _fail(spec.name, f"augment() returns {type(views[0]).__name__}, "
                             f"the batch is {type(batch).__name__}")
        if not _same(views[0], views[1]):
            _fail(spec.name, "augment() with equal generator seeds gave different views")
        if _same(views[0], views[2]):
            _fail(spec.name, "augment() with different seeds gave the same view (not stochastic)")
    return ds


def check_encoder(spec: EncoderSpec, dataset: SSLDataset, **options: Any) -> Any:
    """Build the encoder for ``dataset`` and check a forward pass."""
    import torch

    enc = spec.build(dataset, **options)
    dim = getattr(enc, "embed_dim", None)
    if not isinstance(dim, int) or dim < 1:
        _fail(spec.name, f"encoder has embed_dim={dim!r}; it must be a positive int")
    enc.eval()
    batch = first_batch(dataset)
    with torch.no_grad():
        z = enc(batch)
    if spec.output == "dense":
        rows = dataset.batch_rows(batch)
        if not isinstance(z, torch.Tensor) or z.ndim < 3 or z.shape[0] != rows:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            _fail(spec.name, f"a dense model must return [B={rows}, C, *spatial], got {shape}")
        if not torch.isfinite(z).all():
            _fail(spec.name, "forward returned non-finite outputs")
        return enc
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != dim:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        _fail(spec.name, f"forward returned {shape}, expected [B, {dim}]")
    if not torch.isfinite(z).all():
        _fail(spec.name, "forward returned non-finite embeddings")
    return enc


def check_pretext(spec: PretextSpec, encoder: Any, dataset: SSLDataset, **options: Any) -> None:
    """Build the task, run one forward and backward, check loss and gradients."""
    import torch

    task = spec.build(encoder, dataset, **options)
    if getattr(task, "encoder", None) is not encoder:
        _fail(spec.name, "the task must keep the encoder it was given as 'task.encoder'")
    task.train()
    out = task(first_batch(dataset, n=16), torch.Generator().manual_seed(0))
    if not isinstance(out, Mapping) or "loss" not in out:
        _fail(spec.name, "forward(batch, generator) must return a dict with 'loss'")
    loss = out["loss"]
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not torch.isfinite(loss):
        _fail(spec.name, f"loss must be a finite scalar tensor, got {loss!r}")
    loss.backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    if not any(g is not None and g.abs().sum() > 0 for g in grads):
        _fail(spec.name, "the loss sends no gradient into the encoder")
    if hasattr(task, "on_train_step_end"):
        task.on_train_step_end(0, 10)


def check_benchmark(spec: BenchmarkSpec, registry: Registry) -> None:
    data = registry.get("dataset", spec.dataset)
    modality = data.modalities[0]
    for kind, keys in (("encoder", (spec.encoder,)), ("pretext", spec.pretexts),
                       ("evaluator", spec.evaluators)):
        for key in keys:
            if not registry.get(kind, key).accepts(modality):
                _fail(spec.name, f"{kind} {key!r} does not accept the dataset's {modality!r}")
    for pretext, encoder in spec.pretext_encoders.items():
        if pretext not in spec.pretexts:
            _fail(spec.name, f"pretext_encoders names {pretext!r}, which is not in pretexts")
        if not registry.get("encoder", encoder).accepts(modality):
            _fail(spec.name, f"encoder {encoder!r} does not accept the dataset's {modality!r}")
    for pretext in spec.pretexts:
        needed = registry.get("pretext", pretext).encoders
        used = spec.pretext_encoders.get(pretext, spec.encoder)
        if needed and used not in needed:
            _fail(spec.name, f"pretext {pretext!r} needs encoder {list(needed)}, the benchmark "
                             f"gives it {used!r}; add it to pretext_encoders")
    if not spec.train.get("steps"):
        _fail(spec.name, "train settings must give 'steps' (the CPU setting)")


def check_plugin(
    name: str,
    *,
    plugin: object | None = None,
    dataset_options: Mapping[str, Mapping[str, Any]] | None = None,
    encoder_options: Mapping[str, Mapping[str, Any]] | None = None,
    pretext_options: Mapping[str, Mapping[str, Any]] | None = None,
    skip: tuple[str, ...] = (),
) -> Registry:
    """Check every component the plugin ``name`` registers.

    ``plugin``: a plugin object to add directly instead of loading the entry point.
    ``*_options``: per-key options that keep the check small (e.g. fewer nodes).
    ``skip``: keys not to build (say why in the calling test).
    """
    if plugin is not None:
        reg = Registry(plugins=[], strict=True)
        reg.add_plugin(plugin, name)
    else:  # core is always loaded; any other name is an entry point
        reg = Registry(plugins=[] if name == "core" else [name], strict=True)
    reg.load()
    report = next(r for r in reg.reports if r.name == name)
    if not any(report.registered.values()):
        _fail(name, "the plugin registered nothing")
    dataset_options = dataset_options or {}
    encoder_options = encoder_options or {}
    pretext_options = pretext_options or {}
    datasets: dict[str, SSLDataset] = {}
    for kind, keys in report.registered.items():
        for key in keys:
            if kind == "benchmark":
                continue
            spec = reg.get(kind, key)
            if not spec.summary.strip():
                _fail(key, "summary is empty; say in one line what it is")
            for m in spec.modalities:
                if m != ANY_MODALITY and m not in MODALITIES:
                    _fail(key, f"modality {m!r} is not in selfsup.components.MODALITIES")
            if key not in skip:
                spec.resolve()
    for key in report.registered.get("dataset", []):
        if key not in skip:
            datasets[key] = check_dataset(reg.get("dataset", key), **dataset_options.get(key, {}))
    for key in report.registered.get("encoder", []):
        if key in skip:
            continue
        espec = reg.get("encoder", key)
        for ds in datasets.values():
            if espec.accepts(ds.modality):
                check_encoder(espec, ds, **encoder_options.get(key, {}))
                for pkey in report.registered.get("pretext", []):
                    pspec = reg.get("pretext", pkey)
                    if pkey in skip or not pspec.accepts(ds.modality):
                        continue
                    if pspec.needs_views and type(ds).augment is SSLDataset.augment:
                        continue
                    if pspec.encoders and key not in pspec.encoders:
                        continue  # the task needs another architecture (PretextSpec.encoders)
                    if pspec.encoder_output and espec.output != pspec.encoder_output:
                        continue  # e.g. a restoration pretext and an embedding encoder
                    fresh = espec.build(ds, **encoder_options.get(key, {}))
                    check_pretext(pspec, fresh, ds, **pretext_options.get(pkey, {}))
    for key in report.registered.get("evaluator", []):
        if key not in skip:
            reg.get("evaluator", key).build()
    for key in report.registered.get("benchmark", []):
        check_benchmark(reg.get("benchmark", key), reg)
    return reg


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if callable(getattr(a, "to_dict", None)):  # e.g. torch_geometric.data.Data
        return _same(a.to_dict(), b.to_dict())
    tensors_a = {k: v for k, v in vars(a).items() if isinstance(v, torch.Tensor)} if hasattr(
        a, "__dict__") else {}
    if tensors_a:
        return _same(tensors_a, {k: getattr(b, k, None) for k in tensors_a})
    return bool(a == b)
