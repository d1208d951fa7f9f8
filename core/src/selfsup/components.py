"""What a registered dataset, encoder, pretext task, evaluator and benchmark is.

These classes are the contract between the core and the plugins. A plugin builds
``*Spec`` objects and hands them to the ``register`` callback of a hook (see
:mod:`selfsup.hookspecs`); the runner calls their factories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported where it is used, not at plugin registration
    import numpy as np
    import torch
    from torch import nn

#: The modality vocabulary. A component declares the modalities it accepts; the
#: runner refuses a combination whose modalities do not meet.
MODALITIES: tuple[str, ...] = (
    "vector",  # flat feature vectors (core's built-in digits)
    "image2d",
    "volume3d",
    "kspace",  # complex MRI k-space
    "graph.node",  # one graph, one embedding per node
    "graph.graph",  # many graphs, one embedding per graph
    "spectrogram",
    "waveform",
    "pointcloud",
    "smiles",
    "sar_slc",  # complex single-look SAR
)

ANY_MODALITY = "*"

TaskKind = Literal["classification", "regression", "dense", "segmentation", "none"]


@dataclass(frozen=True)
class TaskSpec:
    """The supervised task that a dataset's labels define."""

    kind: TaskKind
    n_classes: int | None = None  # classification and segmentation

    def __post_init__(self) -> None:
        if self.kind in ("classification", "segmentation") and not self.n_classes:
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
    """

    name: str = "unnamed"
    modality: str = "vector"
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
            arr = _to_numpy(pre[i])
            # an object array's bytes are pointers: hash its repr instead (override
            # fingerprint() for samples whose repr does not show their content)
            h.update(arr.tobytes()[:4096] if arr.dtype != object else repr(pre[i]).encode())
        return h.hexdigest()[:16]

    def _require_split(self, split: str) -> torch.utils.data.Dataset[Any]:
        ds = self.labelled_split(split)
        if ds is None:
            raise ValueError(
                f"dataset {self.name!r} has no labelled split {split!r}; "
                f"its labelled splits are {list(self.splits)}"
            )
        return ds


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

    encoder: nn.Module

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


@dataclass(frozen=True)
class _Spec:
    name: str  # namespaced key, e.g. "core.simclr"
    #: a callable, or a ``"package.module:function"`` string imported on first use,
    #: so that registering a component imports neither torch nor a domain library
    factory: Callable[..., Any] | str
    modalities: tuple[str, ...]
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)  # documented defaults

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
class DatasetSpec(_Spec):
    """``factory(**options) -> SSLDataset``. ``modalities`` has one entry."""

    offline: bool = True


@dataclass(frozen=True)
class EncoderSpec(_Spec):
    """``factory(dataset, **options) -> nn.Module`` with ``embed_dim``.

    ``output``: ``"embedding"`` (forward gives ``[B, embed_dim]``) or ``"dense"``
    (forward gives one output per input element, ``[B, C, *spatial]``: restoration
    and segmentation models, whose evaluators compare outputs with targets).
    """

    output: str = "embedding"

    def __post_init__(self) -> None:
        if self.output not in ("embedding", "dense"):
            raise ValueError(f"{self.name}: EncoderSpec.output must be 'embedding' or 'dense', "
                             f"got {self.output!r}")


@dataclass(frozen=True)
class PretextSpec(_Spec):
    """``factory(encoder, dataset, **options) -> PretextTask``.

    ``needs_views``: the task calls ``dataset.augment`` (joint-embedding objectives).
    ``encoders``: the encoder keys the task works with, when it needs a particular
    architecture (empty: any encoder of a compatible modality).
    ``encoder_output``: the :attr:`EncoderSpec.output` the task needs (``"embedding"``
    for joint-embedding objectives, ``"dense"`` for restoration pretexts), or None
    for either.
    """

    needs_views: bool = False
    encoders: tuple[str, ...] = ()
    encoder_output: str | None = None


@dataclass(frozen=True)
class EvaluatorSpec(_Spec):
    """``factory(**options) -> Evaluator``. ``task_kinds``: label kinds it needs."""

    task_kinds: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class BenchmarkSpec:
    """A plugin's default benchmark for ``selfsup bench``.

    ``train`` is the CPU setting that finishes in minutes; ``gpu_train`` the larger
    documented setting. Baselines: ``"input"`` (the dataset's input features),
    ``"random_init"`` (an untrained encoder) and ``"supervised"`` (the encoder
    trained on the labelled train split), measured by the same evaluators.
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
    baselines: tuple[str, ...] = ("input", "random_init", "supervised")
    #: pretexts that need another encoder than ``encoder`` (``PretextSpec.encoders``):
    #: pretext key -> encoder key used for that row (with the encoder's own defaults)
    pretext_encoders: Mapping[str, str] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    gpu_train: Mapping[str, Any] = field(default_factory=dict)


SPEC_KINDS: dict[str, type[Any]] = {
    "dataset": DatasetSpec,
    "encoder": EncoderSpec,
    "pretext": PretextSpec,
    "evaluator": EvaluatorSpec,
    "benchmark": BenchmarkSpec,
}
