"""Conformance kit for plugin authors.

Call it from a plugin's test suite::

    from selfsup.testing import check_plugin

    def test_conformance():
        check_plugin("graph", dataset_options={"graph.sbm": {"n_nodes": 200}})

It loads the plugin through its entry point in strict mode and checks that every
component it registers honours the contracts of :mod:`selfsup.api`: namespaced
keys, resolvable factories, valid modality and face names; datasets that build,
collate, and give deterministic, stochastic views of the batch's own structure and
shapes; encoders whose every declared face (``embed``, ``tokens``, ``dense``,
``stages``, ``masked_tokens``) has the documented shape, is finite, and whose
``forward`` is the first face, and whose ``masked_tokens`` hides what it is told to
(:func:`check_masked_tokens`); pretext
tasks (the plugin's own, and core's SimCLR and Barlow Twins on every dataset with
views) whose loss is a finite scalar that sends gradients into the encoder;
evaluators and baselines that resolve; benchmarks that name registered components
whose modalities and faces meet. Failures raise :class:`ConformanceError` naming
the component and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfsup.components import (
    EMBEDDING,
    FACES,
    MASKED_TOKENS,
    STAGES,
    TOKENS,
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
        problem = _structure_mismatch(batch, views[0])
        if problem:
            _fail(spec.name, f"augment() changes the batch: {problem}; a view must keep the "
                             "batch's structure, dtypes and shapes (the encoder reads both)")
        if not _same(views[0], views[1]):
            _fail(spec.name, "augment() with equal generator seeds gave different views")
        if _same(views[0], views[2]):
            _fail(spec.name, "augment() with different seeds gave the same view (not stochastic)")
    return ds


def check_encoder(spec: EncoderSpec, dataset: SSLDataset, **options: Any) -> Any:
    """Build the encoder for ``dataset`` and check every face it declares."""
    import torch

    enc = spec.build(dataset, **options)
    dim = getattr(enc, "embed_dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise ConformanceError(f"{spec.name}: encoder has embed_dim={dim!r}; it must be a "
                               "positive int")
    enc.eval()
    batch = first_batch(dataset)
    outputs = {}
    with torch.no_grad():
        for face in spec.faces:
            if face not in FACES:
                continue  # a plugin's own face: its pretexts' tests check it
            method = getattr(enc, FACES[face], None)
            if method is None or not callable(method):
                raise ConformanceError(f"{spec.name}: declares the {face!r} face but has no "
                                       f"method {FACES[face]}(batch)")
            if face == MASKED_TOKENS:
                continue  # checked against tokens(batch) below
            outputs[face] = out = method(batch)
            _check_face(spec.name, face, out, dim, dataset.batch_rows(batch))
        if MASKED_TOKENS in spec.faces:
            check_masked_tokens(spec, enc, batch, dim, dataset.batch_rows(batch))
        first = spec.faces[0]
        if first in outputs:
            z = enc(batch)
            want = outputs[first]
            got, ref = (z.states, want.states) if first == TOKENS else (z, want)
            if not isinstance(got, torch.Tensor) or got.shape != ref.shape or not torch.allclose(
                    got, ref, atol=1e-5, rtol=1e-4):
                _fail(spec.name, f"forward(batch) must return the first face, {first!r}")
    return enc


def _check_face(key: str, face: str, out: Any, dim: int, rows: int) -> None:
    import torch

    from selfsup.components import Tokens

    def shape(x: Any) -> Any:
        return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__

    if face == EMBEDDING:
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape != (rows, dim):
            _fail(key, f"embed(batch) returned {shape(out)}, expected [B={rows}, {dim}]")
        values = out
    elif face in (TOKENS, MASKED_TOKENS):
        call = "tokens(batch)" if face == TOKENS else "masked_tokens(batch, hide)"
        if not isinstance(out, Tokens):
            _fail(key, f"{call} must return selfsup.api.Tokens, got {type(out).__name__}")
        st, mask = out.states, out.mask
        if st.ndim != 3 or st.shape[2] != dim:
            _fail(key, f"{call}.states is {shape(st)}, expected [B, T, {dim}]")
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(st.shape[:2]):
            _fail(key, f"{call}.mask must be bool [B, T] = {tuple(st.shape[:2])}, got "
                       f"{mask.dtype} {shape(mask)}")
        values = out.flat()
    elif face == STAGES:
        if not isinstance(out, (list, tuple)) or not out or not all(
                isinstance(t, torch.Tensor) and t.ndim == 2 and t.shape[0] == rows for t in out):
            got = [shape(t) for t in out] if isinstance(out, (list, tuple)) else shape(out)
            _fail(key, f"stages(batch) must return a non-empty list of [B={rows}, D_l] "
                       f"tensors, got {got}")
        if out[-1].shape[1] != dim:
            _fail(key, f"the last of stages(batch) is {shape(out[-1])}; it must be the "
                       f"embedding, [B={rows}, {dim}]")
        values = torch.cat([t.flatten(1) for t in out], dim=1)
    else:  # dense
        if not isinstance(out, torch.Tensor) or out.ndim < 3 or out.shape[0] != rows:
            _fail(key, f"dense(batch) must return [B={rows}, C, *spatial] or [B, N, C], "
                       f"got {shape(out)}")
        values = out
    if not torch.isfinite(values).all():
        _fail(key, f"the {face!r} face returned non-finite values")


def check_masked_tokens(spec: EncoderSpec, enc: Any, batch: Any, dim: int, rows: int) -> None:
    """The ``masked_tokens`` face of an encoder in eval mode, against ``tokens(batch)``.

    Shapes and mask equal those of ``tokens(batch)``; ``hide`` all False gives
    ``tokens(batch)``; and, with a seeded ``hide`` of about half the real tokens, no
    state depends on hidden content. That last check needs to know which input is
    whose content, which only some batch formats say (a tensor batch or a dict of
    tensors; other batches get the first two checks only):

    * an integer tensor of the tokens' shape ``[B, T]`` (token ids) is per-token
      content: shuffling its values among the hidden positions changes no state;
    * a float tensor's elements are each some token's content (patches, node
      features), so an element whose gradient reaches the states under ``hide`` must
      not also reach them under the complementary ``hide`` (the other half of the
      real tokens hidden); an encoder that mixes tokens before it masks fails this.
    """
    import torch

    if TOKENS not in spec.faces:
        _fail(spec.name, "offers 'masked_tokens' without 'tokens'; masked_tokens(batch, hide) "
                         "is defined against tokens(batch), declare both")
    if spec.faces[0] == MASKED_TOKENS:
        _fail(spec.name, "'masked_tokens' cannot be the first face: forward(batch) takes no "
                         "hide; put 'embedding' or 'tokens' first")
    ref = enc.tokens(batch)
    real = ref.mask
    none = enc.masked_tokens(batch, torch.zeros_like(real))
    _check_face(spec.name, MASKED_TOKENS, none, dim, rows)
    if none.states.shape != ref.states.shape or not torch.equal(none.mask, real):
        _fail(spec.name, f"masked_tokens(batch, hide) gives states {tuple(none.states.shape)}; "
                         f"it must keep the tokens and mask of tokens(batch), "
                         f"{tuple(ref.states.shape)}")
    if not torch.allclose(none.states[real], ref.states[real], atol=1e-5, rtol=1e-4):
        _fail(spec.name, "masked_tokens(batch, hide) with hide all False must equal "
                         "tokens(batch)")
    hide = _half_of_the_real_tokens(real)
    out = enc.masked_tokens(batch, hide)
    _check_face(spec.name, MASKED_TOKENS, out, dim, rows)
    if not torch.equal(out.mask, real):
        _fail(spec.name, "masked_tokens(batch, hide) changed the padding mask; it hides "
                         "content, not tokens")
    leaves = _tensor_leaves(batch)
    for name, ids in leaves.items():  # token ids: shuffle them among the hidden positions
        if ids.is_floating_point() or ids.dtype == torch.bool or ids.shape != hide.shape:
            continue
        values = ids[hide]
        shuffled = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))]
        if torch.equal(shuffled, values):
            continue
        changed = ids.clone()
        changed[hide] = shuffled
        again = enc.masked_tokens(_replace_leaf(batch, name, changed), hide)
        if not torch.allclose(again.states[real], out.states[real], atol=1e-5, rtol=1e-4):
            _fail(spec.name, f"masked_tokens(batch, hide): changing {name} at hidden positions "
                             "changed the states; a hidden token's content must reach no state")
    visible = real & ~hide
    for name, x in leaves.items():  # features: no element reaches the states both ways
        if not x.is_floating_point():
            continue
        reach = []
        for h in (hide, visible):
            with torch.enable_grad():
                leaf = x.detach().clone().requires_grad_(True)
                states = enc.masked_tokens(_replace_leaf(batch, name, leaf), h).states
                probe = torch.randn(states.shape, generator=torch.Generator().manual_seed(1))
                (grad,) = torch.autograd.grad((states * probe.to(states)).sum(), leaf,
                                              allow_unused=True)
            g = torch.zeros_like(x) if grad is None else grad.abs()
            reach.append(g > 1e-6 * float(g.max().clamp_min(1e-30)))
        both = reach[0] & reach[1]
        if both.any():
            _fail(spec.name, f"masked_tokens(batch, hide): {int(both.sum())} element(s) of "
                             f"{name} reach the states both with a hide and with its complement, "
                             "so a hidden token's content leaks; replace a hidden token's input "
                             "embedding before anything mixes tokens")


def _half_of_the_real_tokens(real: Any) -> Any:
    """A seeded ``hide``: about half the real tokens of each sample, at least one hidden
    and one visible where a sample has two real tokens."""
    import torch

    draw = torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    hide = draw.to(real.device) & real
    for b in range(real.shape[0]):
        idx = real[b].nonzero().flatten()
        if len(idx) < 2:
            hide[b] = False
        elif not hide[b].any():
            hide[b, idx[0]] = True
        elif hide[b, idx].all():
            hide[b, idx[0]] = False
    return hide


def _tensor_leaves(batch: Any) -> dict[str, Any]:
    """The tensors of a tensor batch (``"the batch"``) or of a dict batch (``"batch[k]"``)."""
    import torch

    if isinstance(batch, torch.Tensor):
        return {"the batch": batch}
    if isinstance(batch, Mapping):
        return {f"batch[{k!r}]": v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    return {}


def _replace_leaf(batch: Any, name: str, value: Any) -> Any:
    if name == "the batch":
        return value
    return {**batch, **{k: value for k in batch if f"batch[{k!r}]" == name}}


def check_pretext(spec: PretextSpec, encoder: Any, dataset: SSLDataset, **options: Any) -> None:
    """Build the task, run one forward and backward, check loss and gradients."""
    import torch

    task = spec.build(encoder, dataset, **options)
    if getattr(task, "encoder", None) is not encoder:
        _fail(spec.name, "the task must keep the encoder it was given as 'task.encoder'")
    task.train()
    try:
        out = task(first_batch(dataset, n=16), torch.Generator().manual_seed(0))
    except Exception as exc:  # name the pair: the traceback alone names neither
        raise ConformanceError(
            f"{spec.name}: one training step with encoder {type(encoder).__name__} on dataset "
            f"{dataset.name!r} raised {type(exc).__name__}: {exc}") from exc
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
    """The benchmark names registered components whose modalities and faces meet."""
    from selfsup.bench import pretext_encoder
    from selfsup.errors import IncompatibleError

    data = registry.get("dataset", spec.dataset)
    modality = data.modality
    encoder = registry.get("encoder", spec.encoder)
    for kind, keys in (("encoder", (spec.encoder,)), ("pretext", spec.pretexts),
                       ("evaluator", spec.evaluators), ("baseline", spec.baselines)):
        for key in keys:
            if not registry.get(kind, key).accepts(modality):
                _fail(spec.name, f"{kind} {key!r} does not accept the dataset's {modality!r}")
    for pretext in spec.pretexts:
        try:
            used = registry.get("encoder", pretext_encoder(spec, registry.get("pretext", pretext),
                                                           registry))
        except IncompatibleError as exc:
            _fail(spec.name, str(exc))
        for key in spec.evaluators:
            face = registry.get("evaluator", key).face
            if not used.offers(face):
                _fail(spec.name, f"evaluator {key!r} reads the {face!r} face, which encoder "
                                 f"{used.name!r} (trained by {pretext!r}) does not offer")
    for key in spec.evaluators:
        face = registry.get("evaluator", key).face
        if not encoder.offers(face):
            _fail(spec.name, f"evaluator {key!r} reads {face!r}; encoder {spec.encoder!r} "
                             f"offers {list(encoder.faces)}")
        for baseline in spec.baselines:
            if not registry.get("baseline", baseline).offers(face):
                _fail(spec.name, f"baseline {baseline!r} does not offer the {face!r} face that "
                                 f"evaluator {key!r} reads")
    if spec.pretexts and not spec.train.get("steps"):
        _fail(spec.name, "train settings must give 'steps' (the CPU setting of its pretexts)")


#: core's objectives that the kit runs on every dataset with views (small heads)
CORE_OBJECTIVES: dict[str, dict[str, Any]] = {
    "core.simclr": {"proj_hidden_dim": 32, "proj_out_dim": 16},
    "core.barlow_twins": {"proj_hidden_dim": 32, "proj_out_dim": 32},
}


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
            if key not in skip:
                spec.resolve()
    for key in report.registered.get("dataset", []):
        if key not in skip:
            datasets[key] = check_dataset(reg.get("dataset", key), **dataset_options.get(key, {}))
    own_pretexts = [reg.get("pretext", k) for k in report.registered.get("pretext", [])
                    if k not in skip]
    core_objectives = [reg.get("pretext", k) for k in CORE_OBJECTIVES
                       if k not in report.registered.get("pretext", [])]
    for key in report.registered.get("encoder", []):
        if key in skip:
            continue
        espec = reg.get("encoder", key)
        for ds in datasets.values():
            if not espec.accepts(ds.modality):
                continue
            check_encoder(espec, ds, **encoder_options.get(key, {}))
            for pspec in own_pretexts + core_objectives:
                if not pspec.accepts(ds.modality) or not espec.offers(pspec.face):
                    continue
                if pspec.needs_views and type(ds).augment is SSLDataset.augment:
                    continue
                options = pretext_options.get(pspec.name, CORE_OBJECTIVES.get(pspec.name, {}))
                fresh = espec.build(ds, **encoder_options.get(key, {}))
                check_pretext(pspec, fresh, ds, **options)
    for kind in ("evaluator",):
        for key in report.registered.get(kind, []):
            if key not in skip:
                reg.get(kind, key).build()
    for key in report.registered.get("benchmark", []):
        check_benchmark(reg.get("benchmark", key), reg)
    return reg


def _structure_mismatch(a: Any, b: Any, where: str = "batch") -> str | None:
    """How ``b`` differs from ``a`` in structure, tensor dtypes, dimensions or batch size.

    Lengths other than the batch may differ (a randomized SMILES pads to its own
    length); whether the encoder copes with the view is what running core's
    objectives through it then shows.
    """
    import torch

    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor):
            return f"{where} is a tensor, the view's is {type(b).__name__}"
        if a.dtype != b.dtype or a.ndim != b.ndim or (a.ndim and a.shape[0] != b.shape[0]):
            return (f"{where} is {a.dtype} {tuple(a.shape)}, the view's is "
                    f"{b.dtype} {tuple(b.shape)}")
        return None
    if isinstance(a, Mapping):
        if not isinstance(b, Mapping) or set(a) != set(b):
            other = sorted(b) if isinstance(b, Mapping) else type(b).__name__
            return f"{where} has keys {sorted(a)}, the view's {other}"
        for k in a:
            problem = _structure_mismatch(a[k], b[k], f"{where}[{k!r}]")
            if problem:
                return problem
    return None


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
