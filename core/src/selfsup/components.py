"""What a registered dataset, encoder, pretext task, evaluator and benchmark is.

These classes are the contract between the core and the plugins. A plugin builds
``*Spec`` objects and hands them to the ``register`` callback of a hook (see
:mod:`selfsup.hookspecs`); the runner calls their factories.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported where it is used, not at plugin registration
    import numpy as np
    import torch
    from torch import nn

#: The common modalities, named by core. Modalities are open: any plugin may introduce
#: its own as a namespaced string (``audio.mel``, ``timeseries.1d``, ``sar.slc``); the
#: runner only checks that a dataset's modality is one its components accept.
VECTOR = "vector"  # flat feature vectors (core's built-in digits)
IMAGE2D = "image2d"  # [C, H, W]
VOLUME3D = "volume3d"  # [C, D, H, W]
KSPACE = "kspace"  # complex MRI k-space
GRAPH_NODE = "graph.node"  # one graph, one embedding per node
GRAPH_GRAPH = "graph.graph"  # many graphs, one embedding per graph
SMILES = "smiles"  # molecules as SMILES strings
COMMON_MODALITIES: tuple[str, ...] = (
    VECTOR, IMAGE2D, VOLUME3D, KSPACE, GRAPH_NODE, GRAPH_GRAPH, SMILES,
)
ANY_MODALITY = "*"
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9][a-z0-9_]*)*$")

#: The faces an encoder can offer, and the method of the module that gives each.
#: ``forward(batch)`` returns the encoder's first declared face.
EMBEDDING = "embedding"  # embed(batch) -> [B, D]
TOKENS = "tokens"  # tokens(batch) -> Tokens(states [B, T, D], mask [B, T])
DENSE = "dense"  # dense(batch) -> one output per input element (see below)
STAGES = "stages"  # stages(batch) -> [Tensor [B, D_1], ..., [B, D_L]], shallow to deep
#: masked_tokens(batch, hide) -> Tokens like tokens(batch), where no state depends on the
#: content of a token whose ``hide`` [B, T] entry is True (masked-prediction pretexts)
MASKED_TOKENS = "masked_tokens"
FACES: dict[str, str] = {EMBEDDING: "embed", TOKENS: "tokens", DENSE: "dense", STAGES: "stages",
                         MASKED_TOKENS: "masked_tokens"}


def check_name(what: str, value: object) -> str:
    """A modality or face name: a core one, or a lowercase namespaced string."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} is not a valid name; use a lowercase, dot-namespaced string "
            f"such as 'audio.mel' (core names: {', '.join(COMMON_MODALITIES)})"
        )
    return value


@dataclass
class Tokens:
    """The ``tokens`` face: per-token states and which tokens are real.

    ``states`` is ``[B, T, D]`` (sequence tokens, spectrogram or point patches, the
    nodes of each graph); ``mask`` is ``[B, T]`` bool, True where a token is real and
    False on padding. :meth:`flat` gives the real tokens as rows ``[N, D]``, in order
    (sample by sample), e.g. the nodes of a PyG batch in its node order.
    """

    states: torch.Tensor
    mask: torch.Tensor

    def flat(self) -> torch.Tensor:
        return self.states[self.mask]


TaskKind = Literal["classification", "multilabel", "regression", "dense", "segmentation", "none"]
TASK_KINDS: tuple[str, ...] = (
    "classification", "multilabel", "regression", "dense", "segmentation", "none",
)


@dataclass(frozen=True)
class TaskSpec:
    """The supervised task that a dataset's labels define."""

    kind: TaskKind
    #: classes (classification, segmentation) or labels per sample (multilabel)
    n_classes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"TaskSpec.kind={self.kind!r} is not one of {list(TASK_KINDS)}")
        if self.kind in ("classification", "segmentation", "multilabel") and (
            not isinstance(self.n_classes, int) or self.n_classes < 2
        ):
            raise ValueError(f"TaskSpec(kind={self.kind!r}) needs n_classes >= 2")


class SSLDataset:
    """A source of samples of one modality, as the runner and evaluators see it.

    Subclasses provide ``pretrain_set`` (unlabelled samples) and, where labels
    exist, ``labelled_split``. Everything else has a default that suits datasets
    of independent samples; datasets whose samples are not independent (the nodes
    of one graph) override :meth:`labelled_batches`.

    Stochastic views are applied to a collated batch in the training process by
    :meth:`augment`, with the generator the trainer passes in, so a resumed run
    draws the same views as an uninterrupted one whatever the worker count.

    ``name``, ``modality`` and ``offline`` are declared on the :class:`DatasetSpec`
    and set on the dataset when the registry builds it; a dataset class does not
    repeat them. Labelled splits are named ``train``, ``val`` and ``test``: core's
    evaluators fit on ``train``, choose hyper-parameters on ``val`` (carving one out
    of ``train`` when it is missing) and report ``test``.
    """

    name: str = "unnamed"
    modality: str = VECTOR
    task: TaskSpec = TaskSpec("none")
    offline: bool = True
    #: labelled splits this dataset provides, in order
    splits: tuple[str, ...] = ("train", "val", "test")

    # -- data ---------------------------------------------------------------------------
    def pretrain_set(self) -> torch.utils.data.Dataset[Any]:
        """Unlabelled samples for pretraining; each item is one sample."""
        raise NotImplementedError(f"{type(self).__name__} must implement pretrain_set()")

    def labelled_split(self, split: str) -> torch.utils.data.Dataset[Any] | None:
        """Items ``(sample, label)`` of one labelled split, or None without labels."""
        return None

    def collate(self, samples: Sequence[Any]) -> Any:
        """Collate samples into a batch (default: torch's default collate)."""
        from torch.utils.data import default_collate

        return default_collate(list(samples))

    def augment(self, batch: Any, generator: torch.Generator) -> Any:
        """Return one stochastic view of a collated batch (the modality's default views)."""
        raise NotImplementedError(
            f"dataset {self.name!r} registers no views; joint-embedding objectives need them"
        )

    def sample_lengths(self) -> Sequence[int] | None:
        """Lengths of the pretraining samples (tokens, nodes, frames) for length
        bucketing in the trainer's batch sampler, or None (the default) for none."""
        return None

    def batch_rows(self, batch: Any) -> int:
        """How many embedding rows the encoder returns for ``batch`` (the samples in it).

        The default counts the leading dimension of a tensor, the first value of a
        dict, or the items of a list/tuple; datasets whose batch is a library object
        (the nodes of a graph, the graphs of a batch) override it.
        """
        if hasattr(batch, "shape"):
            return int(batch.shape[0])
        if isinstance(batch, Mapping):
            return self.batch_rows(next(iter(batch.values())))
        if isinstance(batch, (list, tuple)):
            return len(batch)
        raise TypeError(
            f"dataset {self.name!r}: cannot tell how many samples a {type(batch).__name__} "
            "batch holds; override SSLDataset.batch_rows(batch)"
        )

    def input_features(self, batch: Any) -> torch.Tensor:
        """Flat input features ``[B, F]`` of a batch, for the 'input features' baseline."""
        raise NotImplementedError(f"dataset {self.name!r} has no flat input features")

    # -- labelled access used by the evaluators ------------------------------------------
    def n_labelled(self, split: str) -> int:
        ds = self._require_split(split)
        return len(ds)  # type: ignore[arg-type]

    def labels(self, split: str) -> np.ndarray:
        """All labels of a split, in order (numpy)."""
        import numpy as np

        ds = self._require_split(split)
        return np.asarray([_to_numpy(ds[i][1]) for i in range(len(ds))])  # type: ignore[arg-type]

    def labelled_batches(
        self,
        split: str,
        batch_size: int,
        *,
        indices: Sequence[int] | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(batch, y, rows)`` over a labelled split.

        ``indices`` restricts the split (positions within it, e.g. a 10% label
        fraction). ``rows`` selects the rows of the encoder output that ``y``
        labels; None means every row. Datasets of independent samples always
        yield None; a node-level graph dataset yields the whole graph and the rows
        of its labelled nodes.
        """
        import torch

        ds = self._require_split(split)
        idx = torch.as_tensor(
            list(range(len(ds))) if indices is None else list(indices),  # type: ignore[arg-type]
            dtype=torch.long,
        )
        if shuffle:
            idx = idx[torch.randperm(len(idx), generator=generator)]
        for start in range(0, len(idx), batch_size):
            items = [ds[int(i)] for i in idx[start : start + batch_size]]
            x = self.collate([it[0] for it in items])
            y = torch.as_tensor(_stack([it[1] for it in items]))
            yield x, y, None

    def fingerprint(self) -> str:
        """A short content hash of the data, recorded in the exported encoder card."""
        import hashlib

        h = hashlib.sha256(f"{self.name}:{self.modality}".encode())
        pre = self.pretrain_set()
        n = len(pre)  # type: ignore[arg-type]
        h.update(str(n).encode())
        for i in range(0, n, max(1, n // 64)):
            _hash_sample(h, pre[i])
        return h.hexdigest()[:16]

    def _require_split(self, split: str) -> torch.utils.data.Dataset[Any]:
        ds = self.labelled_split(split)
        if ds is None:
            raise ValueError(
                f"dataset {self.name!r} has no labelled split {split!r}; "
                f"its labelled splits are {list(self.splits)}"
            )
        return ds


def _hash_sample(h: Any, x: Any) -> None:
    """Feed one sample into hash ``h``: arrays and tensors by dtype, shape and
    content (evenly strided past 1 MiB), dicts by key, sequences item by item,
    anything else by ``repr`` (override :meth:`SSLDataset.fingerprint` for samples
    whose repr hides their content)."""
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype != object:  # an object array's bytes are pointers
        h.update(f"{x.dtype}{x.shape}".encode())
        flat = x.reshape(-1)  # all of it up to 1 MiB, evenly strided beyond
        h.update(np.ascontiguousarray(flat[:: -(-flat.nbytes // 2**20) or 1]).tobytes())
    elif isinstance(x, dict):
        for key in sorted(x, key=str):
            h.update(repr(key).encode())
            _hash_sample(h, x[key])
    elif isinstance(x, (tuple, list, np.ndarray)):
        h.update(f"{type(x).__name__}{len(x)}".encode())
        for item in x:
            _hash_sample(h, item)
    else:
        h.update(repr(x).encode())


def _to_numpy(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if isinstance(x, tuple):
        x = x[0]
    return np.asarray(x)


def _stack(ys: Sequence[Any]) -> Any:
    import numpy as np

    return np.stack([_to_numpy(y) for y in ys])


class PretextTask:  # mixed into nn.Module by pretext implementations
    """Protocol of a pretext task; implementations subclass ``nn.Module`` too.

    ``forward(batch, generator)`` returns a dict with a scalar ``"loss"`` and, optionally,
    ``"embedding"`` (the encoder's ``[B, D]`` output of the first view, used for
    the collapse diagnostics) and any other scalar tensors to log. ``generator``
    is the trainer's per-step ``torch.Generator`` (on the batch's device); pass
    it to ``dataset.augment`` so views are reproducible. The attribute
    ``encoder`` is the module exported after pretraining.
    """

    #: the nn.Module being trained; typed Any because its face methods (``embed``,
    #: ``tokens``, ``dense``) are declared on its EncoderSpec, not on nn.Module
    encoder: Any

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (EMA teachers, queues). Default: nothing."""


@dataclass
class EvalContext:
    """What an evaluator gets beside the encoder and the dataset."""

    device: str = "cpu"
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 256
    #: builds a fresh, untrained encoder of the same architecture (CKA, supervised baselines)
    encoder_factory: Callable[[], nn.Module] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


Evaluator = Callable[["nn.Module", SSLDataset, EvalContext], dict[str, float]]


@dataclass
class BaselineContext:
    """What a baseline's factory gets beside the dataset (see :class:`BaselineSpec`)."""

    #: builds a fresh, untrained encoder of the benchmark's architecture
    encoder_factory: Callable[[], nn.Module]
    eval: EvalContext
    seed: int = 0
    #: ``selfsup bench --steps N`` (or ``--quick``, with the benchmark's quick steps):
    #: a trained baseline takes at most N optimiser steps; it trains on ``eval.device``
    steps: int | None = None


@dataclass(frozen=True)
class _Spec:
    name: str  # namespaced key, e.g. "core.simclr"
    #: a callable, or a ``"package.module:function"`` string imported on first use,
    #: so that registering a component imports neither torch nor a domain library
    factory: Callable[..., Any] | str
    modalities: tuple[str, ...]
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)  # documented defaults

    def __post_init__(self) -> None:
        if isinstance(self.modalities, str):
            raise TypeError(
                f"{self.name}: modalities must be a tuple of names, e.g. ({self.modalities!r},)"
            )
        for m in self.modalities:
            if m != ANY_MODALITY:
                check_name(f"{self.name}: modality", m)

    def accepts(self, modality: str) -> bool:
        return ANY_MODALITY in self.modalities or modality in self.modalities

    def resolve(self) -> Callable[..., Any]:
        """The factory callable, importing it if it was given as a string."""
        if callable(self.factory):
            return self.factory
        module_name, sep, attr = self.factory.partition(":")
        if not sep or not attr:
            raise ValueError(
                f"{self.name}: factory {self.factory!r} must be 'package.module:function'"
            )
        import importlib

        module = importlib.import_module(module_name)
        try:
            fn = getattr(module, attr)
        except AttributeError:
            raise ValueError(
                f"{self.name}: module {module_name!r} has no factory {attr!r}"
            ) from None
        if not callable(fn):
            raise TypeError(f"{self.name}: factory {self.factory!r} is not callable")
        return fn  # type: ignore[no-any-return]

    def build(self, *args: Any, **options: Any) -> Any:
        """Call the factory with the spec's default options updated by ``options``."""
        return self.resolve()(*args, **{**self.options, **options})


@dataclass(frozen=True)
class _OffersFaces(_Spec):
    """A spec whose module offers ``faces`` (encoders and baselines)."""

    faces: tuple[str, ...] = (EMBEDDING,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.faces, str) or not self.faces:
            raise TypeError(f"{self.name}: faces must be a non-empty tuple, e.g. ('embedding',)")
        for face in self.faces:
            check_name(f"{self.name}: face", face)

    def offers(self, face: str) -> bool:
        return face in self.faces


@dataclass(frozen=True)
class DatasetSpec(_Spec):
    """``factory(**options) -> SSLDataset``; ``modalities`` has exactly one entry.

    The spec is where a dataset's modality and offline status are declared: the
    built dataset gets ``name``, ``modality`` and ``offline`` from it.

    ``views``: the default options of the dataset's stochastic views, declared once
    here. The factory receives them as ``views={...}`` (updated by a user's
    ``[dataset.views]`` table); datasets without views leave it empty.
    """

    offline: bool = True
    views: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.modalities) != 1 or self.modalities[0] == ANY_MODALITY:
            raise ValueError(f"{self.name}: a dataset has exactly one modality, "
                             f"got {self.modalities!r}")

    @property
    def modality(self) -> str:
        return self.modalities[0]

    def build(self, *args: Any, **options: Any) -> Any:
        opts = {**self.options, **options}
        if self.views or "views" in opts:
            given = {**self.options.get("views", {}), **options.get("views", {})}
            if not isinstance(given, Mapping):
                raise TypeError(f"{self.name}: views must be a table of view options, "
                                f"got {given!r}")
            unknown = sorted(set(given) - set(self.views))
            if unknown:
                raise TypeError(
                    f"{self.name}: unknown view option(s) {unknown}; its views take "
                    f"{', '.join(self.views) or '(none)'}"
                )
            opts["views"] = {**self.views, **given}
        dataset = self.resolve()(*args, **opts)
        if isinstance(dataset, SSLDataset):  # the conformance kit reports anything else
            dataset.name, dataset.modality, dataset.offline = (
                self.name, self.modality, self.offline)
        return dataset


@dataclass(frozen=True)
class EncoderSpec(_OffersFaces):
    """``factory(dataset, **options) -> nn.Module`` offering ``faces``.

    Each face is a method of the module (:data:`FACES`): ``embed(batch)`` gives
    ``[B, embed_dim]``; ``tokens(batch)`` a :class:`Tokens` of ``[B, T, embed_dim]``
    states and a ``[B, T]`` mask; ``dense(batch)`` one output per input element:
    ``[B, C, H, W]`` for images, ``[B, C, D, H, W]`` for volumes, ``[B, N, C]`` per
    point, k-space models their image. ``stages(batch)`` the encoder's intermediate
    representations, one ``[B, D_l]`` tensor per stage from shallow to deep, the last
    being ``embed(batch)`` (what layer-wise comparison and stage-wise distillation
    read; a convolutional stage pools its feature map). ``masked_tokens(batch, hide)``
    (``hide``: ``[B, T]`` bool, ``T`` and the padding mask those of ``tokens(batch)``)
    gives a :class:`Tokens` like ``tokens(batch)`` in which no state depends on the
    content of a token where ``hide`` is True: the encoder replaces that token's input
    embedding by a learned mask embedding before anything mixes tokens, keeping its
    position; with ``hide`` all False it equals ``tokens(batch)``. An encoder offering
    it offers ``tokens`` too, and never as its first face (``forward`` takes no
    ``hide``); masked-prediction pretexts (``core.jepa``) train it. ``forward(batch)``
    returns the first face.
    The module has an int ``embed_dim`` (the width D of its embeddings or tokens,
    or the channels C of a dense-only model). A plugin may add a namespaced face
    (``graph.learned_edges``) that its own pretexts need; it documents the methods.
    """


@dataclass(frozen=True)
class PretextSpec(_Spec):
    """``factory(encoder, dataset, **options) -> PretextTask``.

    ``face``: the encoder face the task trains (:data:`FACES` or a plugin's own);
    the runner refuses an encoder that does not offer it, naming those that do.
    ``needs_views``: the task calls ``dataset.augment`` (joint-embedding objectives).
    """

    face: str = EMBEDDING
    needs_views: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name(f"{self.name}: face", self.face)


@dataclass(frozen=True)
class EvaluatorSpec(_Spec):
    """``factory(**options) -> Evaluator``.

    ``task_kinds``: label kinds it needs (``"*"``: any). ``face``: the face of the
    model it evaluates (``"embedding"`` for probes on frozen embeddings, ``"dense"``
    for restoration and segmentation metrics).
    """

    task_kinds: tuple[str, ...] = ("classification", "regression")
    face: str = EMBEDDING

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name(f"{self.name}: face", self.face)


@dataclass(frozen=True)
class BaselineSpec(_OffersFaces):
    """Something to beat, measured by the same evaluators as the pretrained encoders.

    ``factory(dataset, context, **options) -> nn.Module`` offering ``faces`` like an
    encoder (``embed``/``dense``): input features, a random-init or supervised
    encoder, or a field's classical method (fingerprints + forest, TV compressed
    sensing). ``context`` is a :class:`BaselineContext`. ``task_kinds``: the label
    kinds it needs (``"*"``: any). A baseline that does not apply to a dataset
    raises :class:`selfsup.errors.NotApplicable` with the reason. A baseline that
    chooses a setting on the val split (a filter's strength) stores it on the module
    as ``chosen = {"weight": 0.05, "selected_on": "val", ...}``; ``selfsup bench``
    records it in the row (``choices`` in ``results.json``, and the note).
    """

    task_kinds: tuple[str, ...] = ("*",)


#: Which way a benchmark's headline metric is better.
DIRECTIONS: tuple[str, ...] = ("higher", "lower")
#: The keys of ``BenchmarkSpec.quick``.
QUICK_FIELDS: tuple[str, ...] = (
    "pretexts", "baselines", "evaluators", "evaluator_options", "train", "seconds",
)


@dataclass(frozen=True)
class Expect:
    """A sanity benchmark's pass condition: row ``method`` beats row ``beats``.

    Rows are named as in the bench table: a pretext key (``"medical.noise2self"``)
    or ``"baseline:<key>"`` (``"baseline:core.input"``). ``metric``: the metric key
    (default: the benchmark's headline); ``margin``: how far, in that metric's
    units, ``method`` must be ahead in the benchmark's ``direction``.
    ``beats_metric``: the metric read from row ``beats`` (default: ``metric``), for
    an evaluator that scores its own reference in the same row, e.g. a pretrained
    network against the same network trained from scratch:
    ``Expect("medical.mae3d", beats="medical.mae3d", metric="dice_finetune.dice@1",
    beats_metric="dice_finetune.scratch_dice@1")``.
    """

    method: str
    beats: str
    margin: float = 0.0
    metric: str = ""
    beats_metric: str = ""

    def describe(self, metric: str, direction: str) -> str:
        sign = ">" if direction == "higher" else "<"
        plus = f" {'+' if direction == 'higher' else '-'} {self.margin:g}" if self.margin else ""
        theirs = self.beats_metric or metric
        if theirs == metric:
            return f"{self.method} {sign} {self.beats}{plus} ({metric})"
        return f"{self.method} {metric} {sign} {self.beats} {theirs}{plus}"


@dataclass(frozen=True)
class BenchmarkSpec:
    """A plugin's default benchmark for ``selfsup bench``.

    ``dataset``/``encoder``: registry keys, with ``*_options``. ``pretexts``: the
    pretext keys to pretrain (each with ``pretext_options[key]``); a pretext whose
    face the benchmark's encoder does not offer trains the one encoder of the
    pretext's own plugin that offers it (an error if none or several do).
    ``evaluators``: evaluator keys, with ``evaluator_options[key]``. ``baselines``:
    baseline keys (``selfsup list baseline``), with ``baseline_options[key]``, e.g. a
    smaller ``{"core.supervised": {"epochs": 20}}`` budget. ``train``: fields of
    :class:`selfsup.trainer.TrainConfig` for the CPU setting (minutes on 2 cores);
    ``gpu_train``: the larger documented setting (``selfsup bench --gpu``).

    ``headline``: the metric a reader judges the benchmark by, as its key without a
    label regime (``"linear_probe.accuracy"``; the report also reads its label
    regimes ``linear_probe.accuracy@10%``), and ``direction``: ``"higher"`` or
    ``"lower"`` is better. ``quick``: the benchmark's share of ``selfsup bench
    --quick``: ``pretexts``, ``baselines``, ``evaluators`` (subsets of the above),
    ``evaluator_options``, ``train`` (overrides of ``train``, typically fewer steps)
    and ``seconds`` (its measured wall time on 2 CPU cores, which ``--budget`` scales
    the steps by).

    ``figures``: optional ``"module:function"`` that draws the benchmark's own
    figures for ``selfsup report`` (restoration panels, depth views, spectrograms):
    ``function(bench_dir: Path, rows: list[dict]) -> list[tuple[str, Figure]]``
    gets the bench folder and this benchmark's result rows and returns titled
    matplotlib figures; it imports what it needs when called.

    ``columns``: the metric keys, without label regime, that the bench table shows
    after the headline (``("pose_metrics.rot_err", "pose_metrics.acc_10deg_10cm")``);
    the other scores go to the table's folded details with the counts. Empty: every
    score is shown.

    ``sanity``: :class:`Expect` conditions. A benchmark with any is a *sanity
    benchmark*: a setting where each method's paper assumption holds by
    construction, so its effect must show (a blind-spot denoiser on i.i.d. noise
    beats the noisy input). ``selfsup bench`` leaves sanity benchmarks out;
    ``selfsup bench --sanity`` runs them (minutes on 2 cores) and fails when a
    condition does not hold.
    """

    name: str
    dataset: str
    encoder: str
    pretexts: tuple[str, ...]
    evaluators: tuple[str, ...]
    summary: str
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    encoder_options: Mapping[str, Any] = field(default_factory=dict)
    pretext_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    evaluator_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    baselines: tuple[str, ...] = ("core.input", "core.random_init", "core.supervised")
    baseline_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    gpu_train: Mapping[str, Any] = field(default_factory=dict)
    headline: str = ""
    direction: str = "higher"
    quick: Mapping[str, Any] = field(default_factory=dict)
    figures: str = ""
    sanity: tuple[Expect, ...] = ()
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for fname in ("pretexts", "evaluators", "baselines"):
            if isinstance(getattr(self, fname), str):
                raise TypeError(f"{self.name}: BenchmarkSpec.{fname} must be a tuple of keys")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: BenchmarkSpec.direction must be one of "
                             f"{DIRECTIONS}, got {self.direction!r}")
        unknown = sorted(set(self.quick) - set(QUICK_FIELDS))
        if unknown:
            raise ValueError(f"{self.name}: BenchmarkSpec.quick takes {list(QUICK_FIELDS)}, "
                             f"not {unknown}")
        for fname in ("pretexts", "evaluators", "baselines"):
            if isinstance(self.quick.get(fname, ()), str):
                raise TypeError(f"{self.name}: BenchmarkSpec.quick[{fname!r}] must be a tuple")
            stray = sorted(set(self.quick.get(fname, ())) - set(getattr(self, fname)))
            if stray:
                raise ValueError(f"{self.name}: BenchmarkSpec.quick[{fname!r}] names {stray}, "
                                 f"which the benchmark does not run")
        for fname, keys in (("pretext_options", self.pretexts),
                            ("evaluator_options", self.evaluators),
                            ("baseline_options", self.baselines)):
            stray = sorted(set(getattr(self, fname)) - set(keys))
            if stray:
                raise ValueError(f"{self.name}: BenchmarkSpec.{fname} names {stray}, which "
                                 f"the benchmark does not run; it runs {list(keys)}")
        if isinstance(self.columns, str) or not all(isinstance(c, str) for c in self.columns):
            raise TypeError(f"{self.name}: BenchmarkSpec.columns is a tuple of metric keys, "
                            f"got {self.columns!r}")
        rows = {*self.pretexts, *(f"baseline:{b}" for b in self.baselines)}
        for expect in self.sanity:
            if not isinstance(expect, Expect):
                raise TypeError(f"{self.name}: BenchmarkSpec.sanity holds Expect(...) items, "
                                f"got {expect!r}")
            stray = sorted({expect.method, expect.beats} - rows)
            if stray:
                raise ValueError(f"{self.name}: Expect names row(s) {stray}, which the "
                                 f"benchmark does not run; rows: {sorted(rows)} (a baseline "
                                 "row is 'baseline:<key>')")
            metric = expect.metric or self.headline
            if not metric:
                raise ValueError(f"{self.name}: Expect({expect.method!r}, ...) needs a metric "
                                 "or the benchmark's headline")
            if expect.method == expect.beats and (expect.beats_metric or metric) == metric:
                raise ValueError(f"{self.name}: Expect({expect.method!r}, beats="
                                 f"{expect.beats!r}) compares a row with itself; name "
                                 "another row or a beats_metric of the same row")


SPEC_KINDS: dict[str, type[Any]] = {
    "dataset": DatasetSpec,
    "encoder": EncoderSpec,
    "pretext": PretextSpec,
    "evaluator": EvaluatorSpec,
    "baseline": BaselineSpec,
    "benchmark": BenchmarkSpec,
}
