"""LSSKD: layered self-supervised knowledge distillation between an encoder's stages.

Dahri, Memon, Yu, Idris, Khan, Ahmad, Shoman, Aziz & Qureshi, "A Layered
Self-Supervised Knowledge Distillation Framework for Efficient Multimodal Learning
on the Edge", arXiv:2506.07055, 2025 (LSSKD), which drops the pre-trained teacher
of Yang, An, Cai & Xu, "Hierarchical Self-supervised Augmented Knowledge
Distillation", IJCAI 2021 (arXiv:2107.13715; HSAKD, code github.com/winycg/HSAKD).
Both append an auxiliary classifier to every intermediate stage of a compact
network; each classifier learns a self-supervised task (which of K transformations,
rotations by 0/90/180/270 degrees, was applied to the input), and the classifiers'
softened predictions are transferred one to one between stages by a KL divergence
at temperature ``T``, scaled by ``T^2`` (Hinton et al. 2015).

For a batch, every sample is presented under all K transformations (HSAKD's
four-fold batch) and the encoder's ``stages`` face gives ``L`` stage outputs
``s_1 .. s_L`` (shallow to deep, ``s_L`` the embedding). Head ``c_l`` predicts the
transformation ``k`` from ``s_l``; with ``q_l = softmax(c_l(s_l) / T)``, the loss is

    sum_l CE(c_l(s_l), k)  +  distill_weight * sum_{l < L} T^2 KL(q_t(l) || q_l),

where the teacher ``t(l)`` is the next deeper stage ``l + 1`` (``teacher="next"``,
a chain of one-to-one transfers) or the deepest, ``L`` (``teacher="final"``), and
``q_t(l)`` is detached, so knowledge flows from deep to shallow only. KL is averaged
over the rows (HSAKD's ``batchmean``); sums over stages, as in HSAKD. The heads are
dropped after training: the encoder is what gets exported.

The transformations (``transforms``) act on any float-tensor modality:

- ``rotation`` (``auto`` on ``image2d`` and ``volume3d``): ``torch.rot90`` by
  ``k * 90`` degrees in the last two axes (height and width), as in both papers;
  square inputs, ``n_transforms <= 4``;
- ``blocks`` (``auto`` elsewhere: ``vector``, node features of ``graph.node`` and
  ``graph.graph`` batches, and any other float tensor ``[B, ..., F]``): the last
  axis is cut into ``n_blocks`` contiguous blocks, and transformation ``k`` puts
  them in the ``k``-th of ``n_transforms`` fixed block orders (order 0 the
  identity, the others distinct, drawn once from ``transform_seed``). A jigsaw of
  feature blocks: telling the orders apart needs what each block of features
  normally looks like (on core.digits a block is two pixel rows of the 8x8 image,
  so the task is "which strips were swapped"), a K-way task with chance ``1/K``.
  Graph batches keep their structure; only the node features ``x`` (the
  torch-geometric convention of the graph modalities' batches) are permuted, and
  the encoder runs once per transformation.

Where this differs from the papers, and why:

- no class labels: HSAKD's auxiliary heads predict the joint (class, rotation)
  label of a supervised task (LSSKD keeps it); a pretext here sees the unlabelled
  pretraining split only, so each head predicts the transformation alone, the
  purely self-supervised half of that label. Drawing labels inside a pretext would
  bypass the resumable sampler and leak the labels the evaluators then probe with
  (a 10%-label probe of an encoder trained on 100% of them);
- heads: HSAKD's auxiliary classifiers are convolutional stages plus a linear
  layer on a feature map; ``stages`` gives pooled ``[B, D_l]`` vectors, so each head
  is a small MLP (``head_layers``, ``head_hidden_dim``). The deepest stage gets a
  head too: it is the distillation's deepest teacher (HSAKD's final classifier);
- which stage teaches which: HSAKD transfers teacher stage ``l`` to student stage
  ``l``; without a teacher network we read "one-to-one transfer across stages" as
  deep to shallow between the encoder's own stages (``teacher``, default ``next``;
  the LSSKD text we could read does not fix this choice beyond that);
- transformations beyond rotations: the ``blocks`` jigsaw is ours, so that the
  method runs on modalities without a spatial grid;
- ``augment``: one of the dataset's stochastic views is drawn before the
  transformations, as HSAKD trains on randomly cropped and flipped images.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import (
    GRAPH_GRAPH,
    GRAPH_NODE,
    IMAGE2D,
    VOLUME3D,
    PretextTask,
    SSLDataset,
)
from selfsup.objectives.projection import NORMS, Norm, mlp_head
from selfsup.options import (
    boolean,
    check_value,
    non_negative,
    non_negative_int,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)

TransformKind = Literal["auto", "rotation", "blocks"]
Teacher = Literal["next", "final"]
_GRAPHS = (GRAPH_NODE, GRAPH_GRAPH)
_GRIDS = (IMAGE2D, VOLUME3D)


def _at_least_two(x: Any) -> str | None:
    ok = isinstance(x, int) and not isinstance(x, bool) and x >= 2
    return None if ok else "be an int >= 2"


# -- the transformations ----------------------------------------------------------------


def block_orders(n_transforms: int, n_blocks: int, seed: int) -> list[tuple[int, ...]]:
    """``n_transforms`` distinct orders of ``n_blocks`` blocks: the identity, then seeded draws.

    Order ``k`` says which input block lands where: output block ``i`` is input
    block ``order[i]``. The same ``(n_transforms, n_blocks, seed)`` always gives the
    same orders, so an encoder's self-supervised labels mean the same in every run.
    """
    check_value("block_orders", "n_transforms", n_transforms, _at_least_two)
    check_value("block_orders", "n_blocks", n_blocks, _at_least_two)
    available = 1
    for i in range(2, n_blocks + 1):
        available *= i
    if n_transforms > available:
        raise ValueError(
            f"core.lsskd: {n_blocks} blocks have only {available} orders, fewer than "
            f"n_transforms={n_transforms}; raise n_blocks or lower n_transforms"
        )
    identity = tuple(range(n_blocks))
    orders = [identity]
    generator = torch.Generator().manual_seed(int(seed))
    while len(orders) < n_transforms:
        order = tuple(int(i) for i in torch.randperm(n_blocks, generator=generator))
        if order not in orders:
            orders.append(order)
    return orders


def permute_blocks(x: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """``x`` with its last axis cut into ``len(order)`` contiguous blocks, put in ``order``.

    Blocks are ``torch.tensor_split``'s near-equal parts, so the width need not divide.
    """
    if x.shape[-1] < len(order):
        raise ValueError(
            f"core.lsskd: cannot cut a last axis of {x.shape[-1]} into {len(order)} blocks; "
            f"set n_blocks <= {x.shape[-1]}"
        )
    blocks = torch.tensor_split(x, len(order), dim=-1)
    return torch.cat([blocks[j] for j in order], dim=-1)


class Transformations:
    """The K fixed transformations of a float tensor whose indices are the labels.

    ``kind`` is ``"rotation"`` (``rot90`` in the last two axes by ``k`` quarter
    turns) or ``"blocks"`` (:func:`block_orders` / :func:`permute_blocks` on the last
    axis). ``apply(x, k)`` transforms every sample of ``x`` ``[B, ...]`` alike.
    """

    def __init__(self, kind: str, n_transforms: int, n_blocks: int = 4, seed: int = 0) -> None:
        check_value("core.lsskd", "transforms", kind, one_of("rotation", "blocks"))
        if kind == "rotation" and not 2 <= n_transforms <= 4:
            raise ValueError(f"core.lsskd: rotations give at most 4 transformations (0, 90, "
                             f"180, 270 degrees), got n_transforms={n_transforms}")
        self.kind, self.n = kind, int(n_transforms)
        self.orders = block_orders(n_transforms, n_blocks, seed) if kind == "blocks" else []

    def apply(self, x: torch.Tensor, k: int) -> torch.Tensor:
        if not 0 <= k < self.n:
            raise IndexError(f"transformation {k} of {self.n}")
        if not torch.is_floating_point(x):
            raise TypeError(f"core.lsskd transforms float tensors, got {x.dtype}")
        if self.kind == "blocks":
            return permute_blocks(x, self.orders[k])
        if x.ndim < 3 or x.shape[-1] != x.shape[-2]:
            raise ValueError(
                f"core.lsskd: rotations need square inputs [..., H, W] with H == W, got "
                f"{tuple(x.shape)}; use transforms='blocks'"
            )
        return torch.rot90(x, k, dims=(-2, -1))

    def expand(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every sample under every transformation: ``[K*B, ...]`` and the labels ``[K*B]``.

        Rows ``k*B .. (k+1)*B - 1`` are transformation ``k`` of the batch, in order.
        """
        out = torch.cat([self.apply(x, k) for k in range(self.n)])
        labels = torch.arange(self.n, device=x.device).repeat_interleave(x.shape[0])
        return out, labels


# -- the loss ---------------------------------------------------------------------------


class LSSKDLoss(nn.Module):
    """Transformation cross-entropy at every stage plus deep-to-shallow distillation.

    ``forward(logits, labels)`` takes one ``[N, K]`` logit tensor per stage, shallow to
    deep (at least two), and the transformation labels ``[N]``; it returns
    ``{"loss", "ce", "kd"}``: ``ce = sum_l CE(logits_l, labels)``, ``kd = sum_{l<L}
    T^2 KL(softmax(logits_t(l) / T) || softmax(logits_l / T))`` averaged over rows,
    with the teacher's logits detached, and ``loss = ce + distill_weight * kd``.
    """

    def __init__(self, temperature: float = 3.0, distill_weight: float = 1.0,
                 teacher: Teacher = "next") -> None:
        super().__init__()
        check_value("LSSKDLoss", "temperature", temperature, positive)
        check_value("LSSKDLoss", "distill_weight", distill_weight, non_negative)
        check_value("LSSKDLoss", "teacher", teacher, one_of("next", "final"))
        self.temperature, self.distill_weight = float(temperature), float(distill_weight)
        self.teacher = teacher

    def teacher_of(self, stage: int, n_stages: int) -> int:
        return stage + 1 if self.teacher == "next" else n_stages - 1

    def forward(self, logits: Sequence[torch.Tensor], labels: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        if len(logits) < 2:
            raise ValueError(f"LSSKDLoss distils between stages and needs at least 2, got "
                             f"{len(logits)}")
        shapes = {tuple(z.shape) for z in logits}
        if len(shapes) != 1 or logits[0].ndim != 2 or logits[0].shape[0] != labels.shape[0]:
            raise ValueError(f"LSSKDLoss expects one [N, K] logit tensor per stage and [N] "
                             f"labels, got {sorted(shapes)} and {tuple(labels.shape)}")
        t, n_stages = self.temperature, len(logits)
        ce = torch.stack([F.cross_entropy(z, labels) for z in logits]).sum()
        kd = logits[0].new_zeros(())
        for stage in range(n_stages - 1):
            target = F.softmax(logits[self.teacher_of(stage, n_stages)].detach() / t, dim=1)
            log_q = F.log_softmax(logits[stage] / t, dim=1)
            kd = kd + F.kl_div(log_q, target, reduction="batchmean") * t * t
        return {"loss": ce + self.distill_weight * kd, "ce": ce.detach(), "kd": kd.detach()}


# -- the pretext ------------------------------------------------------------------------


@dataclass(frozen=True)
class LSSKDConfig:
    """LSSKD options; ``build(..., **options)`` accepts these field names.

    ``temperature`` 3 and ``distill_weight`` 1 are HSAKD's (its ``kd_T`` and an
    unweighted sum of the KL terms). Four transformations are the papers' four
    rotations.
    """

    n_transforms: int = option(4, _at_least_two, "K: the identity and K-1 fixed "
                               "transformations to tell apart (rotations: at most 4)")
    transforms: TransformKind = option(
        "auto", one_of("auto", "rotation", "blocks"),
        "rotation (image2d, volume3d), blocks (feature-block jigsaw of the last axis), or "
        "auto: rotation on image grids, blocks elsewhere")
    n_blocks: int = option(4, _at_least_two, "blocks of the last axis the jigsaw reorders")
    transform_seed: int = option(0, non_negative_int, "seed of the fixed block orders")
    temperature: float = option(3.0, positive, "softmax temperature of the distillation")
    distill_weight: float = option(1.0, non_negative, "weight of the stage distillation")
    teacher: Teacher = option("next", one_of("next", "final"),
                              "which stage teaches stage l: the next deeper one or the deepest")
    augment: bool = option(True, boolean, "draw one of the dataset's views before transforming")
    head_hidden_dim: int = option(128, positive_int, "hidden width of each stage's head")
    head_layers: int = option(2, positive_int, "linear layers of each stage's head")
    head_norm: Norm = option("batch", one_of(*NORMS), "normalisation in the heads")


class LSSKD(nn.Module, PretextTask):
    """The LSSKD pretext: a transformation head per stage, distilled deep to shallow.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "ce", "kd",
    "accuracy"}``: ``embedding`` is the last stage of the untransformed rows
    (detached), ``accuracy`` the shallowest head's transformation accuracy in the
    batch, and ``accuracy_stage<l>`` each head's.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: LSSKDConfig) -> None:
        super().__init__()
        self.encoder, self.dataset, self.config = encoder, dataset, config
        self.graph = dataset.modality in _GRAPHS
        kind = config.transforms
        if kind == "auto":
            kind = "rotation" if dataset.modality in _GRIDS else "blocks"
        self.transforms = Transformations(kind, config.n_transforms, config.n_blocks,
                                          config.transform_seed)
        dims = self._stage_dims()
        if len(dims) < 2:
            raise ValueError(
                f"core.lsskd distils between an encoder's stages and needs at least 2; "
                f"{type(encoder).__name__} gives {len(dims)} (widths {dims}). Use an encoder "
                "with more layers (e.g. core.mlp hidden_dims=[256], a GNN with n_layers >= 2)"
            )
        self.heads = nn.ModuleList(
            mlp_head(d, config.head_hidden_dim, config.n_transforms, config.head_layers,
                     config.head_norm) for d in dims
        )
        self.criterion = LSSKDLoss(config.temperature, config.distill_weight, config.teacher)

    def _stage_dims(self) -> list[int]:
        """The widths ``D_l`` of the stages, read from one forward of a pretraining sample.

        It also checks, before any training, that the batch can be transformed.
        """
        pre = self.dataset.pretrain_set()
        n = min(2, len(pre))  # type: ignore[arg-type]
        if n == 0:
            raise ValueError(f"core.lsskd: dataset {self.dataset.name!r} has no pretraining "
                             "samples")
        batch = self.dataset.collate([pre[i] for i in range(n)])
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                stages = self.encoder.stages(self._transformed(batch, self.transforms.n - 1))
        finally:
            self.encoder.train(was_training)
        return [int(s.shape[-1]) for s in stages]

    def _transformed(self, batch: Any, k: int) -> Any:
        """Transformation ``k`` of a single (non-expanded) batch."""
        if self.graph:
            out = copy.copy(batch)  # a shallow copy: the edges are shared, not copied
            out.x = self.transforms.apply(batch.x, k)
            return out
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"core.lsskd transforms float-tensor batches (and the node features of graph "
                f"batches); dataset {self.dataset.name!r} ({self.dataset.modality}) gives "
                f"{type(batch).__name__}"
            )
        return self.transforms.apply(batch, k)

    def _stages_and_labels(self, batch: Any) -> tuple[list[torch.Tensor], torch.Tensor, int]:
        """The stages of every transformation of ``batch``, their labels, and the rows of k=0."""
        if not self.graph:
            x, labels = self.transforms.expand(self._transformed(batch, 0))
            return list(self.encoder.stages(x)), labels, batch.shape[0]
        # graphs do not stack along one axis: one forward per transformation
        per_k = [self.encoder.stages(self._transformed(batch, k))
                 for k in range(self.transforms.n)]
        rows = per_k[0][-1].shape[0]
        stages = [torch.cat([out[i] for out in per_k]) for i in range(len(per_k[0]))]
        labels = torch.arange(self.transforms.n, device=stages[0].device).repeat_interleave(rows)
        return stages, labels, rows

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if self.config.augment:
            batch = self.dataset.augment(batch, generator)
        stages, labels, rows = self._stages_and_labels(batch)
        if len(stages) != len(self.heads):
            raise ValueError(f"core.lsskd: the encoder gave {len(stages)} stages, its heads "
                             f"were built for {len(self.heads)}")
        logits = [head(s) for head, s in zip(self.heads, stages, strict=True)]
        out = self.criterion(logits, labels)
        out["embedding"] = stages[-1][:rows].detach()
        with torch.no_grad():
            for i, z in enumerate(logits):
                out[f"accuracy_stage{i + 1}"] = (z.argmax(1) == labels).float().mean()
        out["accuracy"] = out["accuracy_stage1"]
        return out


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> LSSKD:
    """``core.lsskd`` factory; ``options`` are :class:`LSSKDConfig` fields."""
    return LSSKD(encoder, dataset, parse_options(LSSKDConfig, options, "core.lsskd"))

