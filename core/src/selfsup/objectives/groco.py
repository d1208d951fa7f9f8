"""GroCo: contrastive learning by sorting, with group ordering constraints.

Shvetsova, Petersen, Kukleva, Schiele & Kuehne, "Learning by Sorting:
Self-supervised Learning with Group Ordering Constraints", ICCV 2023
(arXiv:2301.02009). For each anchor view, the cosine similarities to its
positives (the other views of its sample) and to its ``topk_negatives`` most
similar negatives are put in one sequence: negatives first, then positives,
each group in ascending order (the *group-wise pre-ordering*; within a group the
order is free). A differentiable sorting network sorts that sequence into a
relaxed permutation matrix ``P`` (``P[i, j]``: how much of input ``i`` lands at
rank ``j``); the loss is the binary cross-entropy between, for each input, the
mass ``P`` puts on the positive ranks (the top ``n_views - 1``) and whether the
input is a positive. It is ~0 when every positive is more similar to the anchor
than every negative, by a margin the steepness makes small, and it grows with
the number of negatives ranked above positives and with how far above they are.

The sorting network is that of Petersen, Borgelt, Kuehne & Deussen,
"Differentiable Sorting Networks for Scalable Sorting and Ranking Supervision",
ICML 2021 (arXiv:2105.04019): an odd-even transposition or bitonic network whose
conditional swaps are relaxed, ``min(a, b) ~ alpha a + (1 - alpha) b`` with
``alpha = f(steepness (b - a))`` and ``f`` the logistic sigmoid or the Cauchy
CDF ``atan(x) / pi + 1/2`` (:func:`diff_sort`).

Where this follows the authors' code and where it differs, and why:

- As in their code: the Cauchy relaxation by default; negatives taken from the
  other samples of the anchor's own view; positives and negatives detached
  (``stop_gradient``), so each view is trained when it is the anchor; every view
  is an anchor in turn and the losses are averaged. Their loss averages the BCE
  on the positive ranks and on the negative ranks; the rows of ``P`` sum to 1,
  so the two are equal and one is computed. Only ``P``'s mass on the lowest
  ranks is needed, so :func:`lowest_rank_mass` pushes that indicator back
  through the network (``O(layers n)``) instead of forming ``P``.
- ``topk_negatives`` 61 and the bitonic network (61 negatives + 3 positives =
  64 wires, 21 layers), where their code sorts the 10 hardest negatives with
  an odd-even network. On ``core.digits`` (batch 256, views with 20% masking)
  the 10 hardest negatives of nearly every anchor are other images of its digit
  and beat its own augmented views; the loss then shrank every similarity gap
  instead of reordering: the projections collapsed (all cosine similarities
  ~0.998, loss flat at 0.251, every anchor misordered) and the probes fell
  below SimCLR's. Sorting 29 or 61 negatives trained; 253 was worse again
  (BENCHMARKS.md, "G-SimCLR and GroCo", lists the variants tried).
- Positives: the paper's groups of several positives come from several
  augmentations per image. Here ``n_views`` views are drawn from the dataset's
  own stochastic views (default 4, so each anchor has a group of 3 positives);
  ``n_views=2`` is the one-positive case and draws its views exactly as SimCLR.
- ``steepness`` 10 (their constructor's default is 1, their experiment settings
  are not reproduced here): with cosine similarities in ``[-1, 1]``, 10 leaves a
  boundary comparison of margin 0.1 about 75/25 (Cauchy). The projector is
  SimCLR's (one hidden layer with BatchNorm).
- The bitonic network needs a power-of-two length: shorter sequences are padded
  with values far above every similarity, which sort to the top ranks and are cut
  from ``P``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.distributed import gather_with_grad
from selfsup.objectives.projection import NORMS, Norm, encoder_dim, mlp_head
from selfsup.options import (
    boolean,
    check_value,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)

NETWORKS = ("odd_even", "bitonic")
RELAXATIONS = ("cauchy", "logistic")


@functools.lru_cache(maxsize=64)
def sorting_network(network: str, n: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The layers of a sorting network on ``n`` wires, ascending.

    Each layer is ``(lo, hi)``: its comparators put the smaller value on wire
    ``lo[c]`` and the larger on ``hi[c]``; the wires of one layer are disjoint.
    ``odd_even``: ``n`` layers of neighbour swaps (any ``n``); ``bitonic``:
    ``log2(n) (log2(n) + 1) / 2`` layers (``n`` a power of two).
    """
    check_value("sorting_network", "network", network, one_of(*NETWORKS))
    layers: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    if network == "odd_even":
        for t in range(n):
            lo = tuple(range(t % 2, n - 1, 2))
            if lo:
                layers.append((lo, tuple(i + 1 for i in lo)))
        return tuple(layers)
    if n & (n - 1):
        raise ValueError(f"a bitonic sorting network needs a power-of-two length, got {n}")
    k = 2
    while k <= n:
        j = k // 2
        while j >= 1:
            lo_, hi_ = [], []
            for i in range(n):
                partner = i ^ j
                if partner > i:  # ascending in blocks where bit k of i is 0
                    a, b = (i, partner) if i & k == 0 else (partner, i)
                    lo_.append(a)
                    hi_.append(b)
            layers.append((tuple(lo_), tuple(hi_)))
            j //= 2
        k *= 2
    return tuple(layers)


def _wiring(network: str, n: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: each wire's partner (itself when idle), and +1 on a comparator's lo
    wire, -1 on its hi wire, so ``sign * (x[partner] - x)`` is ``hi - lo`` on both."""
    out = []
    for lo, hi in sorting_network(network, n):
        partner, sign = list(range(n)), [1.0] * n
        for a, b in zip(lo, hi, strict=True):
            partner[a], partner[b], sign[b] = b, a, -1.0
        out.append((torch.tensor(partner, device=device), torch.tensor(sign, device=device)))
    return out


def swap_weight(diff: torch.Tensor, steepness: float, relaxation: str) -> torch.Tensor:
    """``alpha``, the weight the smaller of ``(a, b)`` gives ``a``; ``diff = b - a``."""
    if relaxation == "logistic":
        return torch.sigmoid(steepness * diff)
    return torch.atan(steepness * diff) / math.pi + 0.5


def _relaxed_network(
    x: torch.Tensor, steepness: float, network: str, relaxation: str
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Run the relaxed network on ``x`` ``[..., n]``: the (padded) relaxed sort and,
    per layer, each wire's partner and swap weight ``w`` ``[..., size]``."""
    check_value("diff_sort", "steepness", steepness, positive)
    check_value("diff_sort", "relaxation", relaxation, one_of(*RELAXATIONS))
    n = x.shape[-1]
    size = n if network == "odd_even" else 1 << max(n - 1, 0).bit_length()
    if size > n:  # pads sort above everything and (nearly) never mix: cut after sorting
        top = x.detach().amax(dim=-1, keepdim=True)
        span = top - x.detach().amin(dim=-1, keepdim=True)
        pad = (top + span + 1e6 / steepness).expand(*x.shape[:-1], size - n)
        x = torch.cat([x, pad], dim=-1)
    layers = []
    for partner, sign in _wiring(network, size, x.device):
        # wire p meets partner[p] and both keep the same weight w of themselves: lo gets
        # alpha lo + (1 - alpha) hi, hi gets alpha hi + (1 - alpha) lo; an idle wire is
        # its own partner and keeps its value whatever w
        other = x[..., partner]
        w = swap_weight(sign * (other - x), steepness, relaxation)
        x = other + w * (x - other)
        layers.append((partner, w))
    return x, layers


def diff_sort(
    x: torch.Tensor, steepness: float, network: str = "odd_even", relaxation: str = "cauchy"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed ascending sort of the last dimension of ``x`` ``[..., n]``.

    Returns ``(sorted, P)``: ``sorted`` ``[..., n]`` and the relaxed permutation
    matrix ``P`` ``[..., n, n]`` with ``sorted = x @ P`` (``P[i, j]``: the share of
    input ``i`` at rank ``j``). Every row and column of ``P`` sums to 1. As
    ``steepness`` grows, ``sorted`` tends to ``torch.sort(x).values`` and ``P`` to
    the hard permutation.
    """
    n = x.shape[-1]
    out, layers = _relaxed_network(x, steepness, network, relaxation)
    size = out.shape[-1]
    perm = torch.eye(size, dtype=out.dtype, device=x.device).expand(*x.shape[:-1], size, size)
    for partner, w in layers:  # each layer mixes P's columns as it mixes the values
        other = perm[..., :, partner]
        perm = other + w.unsqueeze(-2) * (perm - other)
    return out[..., :n], perm[..., :n, :n]


def lowest_rank_mass(
    x: torch.Tensor, k: int, steepness: float, network: str = "odd_even",
    relaxation: str = "cauchy",
) -> torch.Tensor:
    """``P[..., :, :k].sum(-1)`` of :func:`diff_sort`, each input's mass on the ``k``
    lowest ranks, without forming ``P``.

    ``P = M_1 M_2 ... M_L`` (each layer mixes columns), so ``P e`` for the indicator
    ``e`` of the first ``k`` ranks is ``e`` pushed back through the layers, each
    mixing a vector the way it mixes values: ``O(L n)`` instead of ``O(L n^2)``.
    """
    n = x.shape[-1]
    out, layers = _relaxed_network(x, steepness, network, relaxation)
    size = out.shape[-1]
    mass = (torch.arange(size, device=x.device) < k).to(out.dtype).expand(*x.shape[:-1], size)
    for partner, w in reversed(layers):
        other = mass[..., partner]
        mass = other + w * (mass - other)
    return mass[..., :n]


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def group_ordering_loss(
    neg: torch.Tensor,
    pos: torch.Tensor,
    steepness: float,
    network: str = "odd_even",
    relaxation: str = "cauchy",
) -> torch.Tensor:
    """The GroCo loss of each anchor ``[B]``.

    ``neg`` ``[B, k]`` and ``pos`` ``[B, m]`` are an anchor's similarities to its
    negatives and positives, in any order. Each group is sorted ascending, the
    sequence ``negatives, positives`` goes through :func:`diff_sort`, and the BCE
    between each input's mass on the top ``m`` ranks and whether it is a positive
    is averaged over the ``k + m`` inputs.
    Run in float32 (BCE is refused under half-precision autocast).
    """
    k, m = neg.shape[-1], pos.shape[-1]
    with torch.autocast(neg.device.type, enabled=False):
        scores = _at_least_float32(
            torch.cat([neg.sort(dim=-1).values, pos.sort(dim=-1).values], dim=-1))
        # 1 - mass on the negative ranks: exact even where bitonic padding took a little
        on_positive_ranks = (1 - lowest_rank_mass(scores, k, steepness, network,
                                                  relaxation)).clamp(0, 1)
        label = torch.cat([scores.new_zeros(k), scores.new_ones(m)]).expand_as(on_positive_ranks)
        bce = F.binary_cross_entropy(on_positive_ranks, label, reduction="none")
    return bce.mean(-1)


class GroCoLoss(nn.Module):
    """The group ordering loss over ``V >= 2`` views.

    ``forward(*views)`` takes the views' projections, each ``[N, D]`` (row ``i``
    of each is sample ``i``), and returns a scalar: the mean over the ``V``
    anchor views and the ``N`` anchors of the BCE described in the module
    docstring. :meth:`terms` also gives ``misordered``, the share of anchors whose
    least similar positive is below their most similar negative.
    """

    def __init__(
        self,
        topk_negatives: int = 61,
        steepness: float = 10.0,
        network: str = "bitonic",
        relaxation: str = "cauchy",
        stop_gradient: bool = True,
    ) -> None:
        super().__init__()
        check_value("GroCoLoss", "topk_negatives", topk_negatives, positive_int)
        check_value("GroCoLoss", "steepness", steepness, positive)
        check_value("GroCoLoss", "network", network, one_of(*NETWORKS))
        check_value("GroCoLoss", "relaxation", relaxation, one_of(*RELAXATIONS))
        self.topk_negatives = topk_negatives
        self.steepness = float(steepness)
        self.network = network
        self.relaxation = relaxation
        self.stop_gradient = stop_gradient

    def forward(self, *views: torch.Tensor) -> torch.Tensor:
        return self.terms(*views)["loss"]

    def terms(self, *views: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(views) < 2:
            raise ValueError(f"GroCoLoss needs at least 2 views, got {len(views)}")
        shape = views[0].shape
        if len(shape) != 2 or any(v.shape != shape for v in views):
            raise ValueError("GroCoLoss expects views of one shape [N, D], got "
                             f"{[tuple(v.shape) for v in views]}")
        n = shape[0]
        if n < 2:
            raise ValueError(f"GroCoLoss needs a batch of at least 2 samples, got {n}; "
                             "increase the batch size")
        # the sort and the BCE run in float32 whatever the autocast (BCE refuses half)
        with torch.autocast(views[0].device.type, enabled=False):
            z = [F.normalize(_at_least_float32(v), dim=1) for v in views]
            targets = [t.detach() for t in z] if self.stop_gradient else z
            k = min(self.topk_negatives, n - 1)
            self_mask = torch.eye(n, dtype=torch.bool, device=z[0].device)
            negs, poss = [], []
            for a, anchor in enumerate(z):
                poss.append(torch.stack([(anchor * targets[p]).sum(1)
                                         for p in range(len(z)) if p != a], dim=1))
                neg = (anchor @ targets[a].T).masked_fill(self_mask, float("-inf"))
                negs.append(neg.topk(k, dim=1).values)
            neg, pos = torch.cat(negs), torch.cat(poss)  # [V N, k], [V N, V - 1]
            loss = group_ordering_loss(neg, pos, self.steepness, self.network, self.relaxation)
            misordered = (pos.amin(1) < neg.amax(1)).float().mean()
            return {"loss": loss.mean(), "misordered": misordered.detach()}


def at_least_two(x: Any) -> str | None:
    return None if isinstance(x, int) and not isinstance(x, bool) and x >= 2 else \
        "be an int >= 2"


@dataclass(frozen=True)
class GroCoConfig:
    """GroCo options; ``build(..., **options)`` accepts these field names."""

    n_views: int = option(4, at_least_two,
                          "views per sample; each anchor has n_views - 1 positives")
    topk_negatives: int = option(
        61, positive_int, "hardest negatives sorted per anchor (the authors' code: 10)")
    steepness: float = option(10.0, positive, "steepness of the relaxed swaps")
    network: str = option("bitonic", one_of(*NETWORKS),
                          "sorting network: bitonic or odd_even (the authors' code)")
    relaxation: str = option("cauchy", one_of(*RELAXATIONS),
                             "relaxed swap: cauchy (the authors' code) or logistic")
    stop_gradient: bool = option(True, boolean,
                                 "detach positives and negatives; only anchors get gradient")
    proj_hidden_dim: int = option(2048, positive_int, "hidden width of the projector")
    proj_out_dim: int = option(128, positive_int, "output width of the projector")
    proj_layers: int = option(2, positive_int, "linear layers of the projector")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the heads: batch, layer or none")


class GroCo(nn.Module, PretextTask):
    """The GroCo pretext task: encoder, SimCLR-style projector, group ordering loss.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "misordered"}``;
    ``embedding`` is ``f(view 1)`` ``[B, embed_dim]``, detached. Under DDP each
    view's projections are gathered, so positives and negatives come from the
    global batch.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: GroCoConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = mlp_head(encoder_dim(encoder, "groco"), config.proj_hidden_dim,
                                  config.proj_out_dim, config.proj_layers, config.proj_norm)
        self.criterion = GroCoLoss(config.topk_negatives, config.steepness, config.network,
                                   config.relaxation, config.stop_gradient)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        views = [self.dataset.augment(batch, generator) for _ in range(self.config.n_views)]
        h = [self.encoder.embed(v) for v in views]
        z = [gather_with_grad(self.projector(hv)) for hv in h]
        terms = self.criterion.terms(*z)
        return {"loss": terms["loss"], "embedding": h[0].detach(),
                "misordered": terms["misordered"]}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> GroCo:
    """``core.groco`` factory; ``options`` are :class:`GroCoConfig` fields."""
    return GroCo(encoder, dataset, parse_options(GroCoConfig, options, "core.groco"))
