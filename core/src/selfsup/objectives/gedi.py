"""GEDI: cluster-based self-supervised learning joined with an energy-based model.

Sansone & Manhaeve, "GEDI: GEnerative and DIscriminative Training for
Self-Supervised Learning", arXiv:2212.13425 (2022), and its revised form with the
lower bound used here, Sansone & Manhaeve, "Unifying Self-Supervised Clustering
and Energy-Based Models", Transactions on Machine Learning Research 2025
(arXiv:2401.00873). Authors' code: https://github.com/emsansone/GEDI.

One network gives both models. The encoder ``f`` and a projector ``g`` whose
last linear layer is the cluster head map an input to logits
``l(x) = g(f(x)) / temperature`` over ``K`` clusters, so that

- the discriminative model is ``p(y|x) = softmax(l(x))``, and
- the generative model is the energy-based model ``p(x) ∝ exp(-E(x))`` with
  ``E(x) = -logsumexp_y l_y(x)`` (the joint ``p(x, y) ∝ exp(l_y(x))`` summed over
  ``y``, as in JEM: Grathwohl et al., "Your Classifier is Secretly an Energy Based
  Model and You Should Treat it Like One", ICLR 2020, arXiv:1912.03263).

The objective is the paper's lower bound on the data log-likelihood, a sum of
three terms, each aimed at one failure mode of cluster-based SSL. Written as
losses to minimise (the negated terms of the bound), on two views ``x1, x2`` of a
batch of ``N`` samples:

``generative``  (``-L_GEN``, against *representation collapse*)
    contrastive divergence ``mean_i E(x_i) - mean_j E(x~_j)`` on the (clean)
    batch ``x``: the energy of the data goes down, that of samples ``x~`` drawn
    from the model goes up; its gradient is the maximum-likelihood gradient of
    ``log p(x)``. The samples come from short-run stochastic gradient Langevin
    dynamics (SGLD) ``x <- x - a dE/dx + s eps`` started from a replay buffer of
    past samples (a chain restarts from uniform noise with probability
    ``reinit_prob``), as in JEM. A collapsed encoder gives every input the same
    energy and cannot tell data from samples, which this term penalises.
``invariance``  (``-L_INV``, against *permutation collapse*)
    the cross-entropy between the two views' cluster assignments, symmetrised:
    ``1/2 mean_i [H(p(y|x2_i), p(y|x1_i)) + H(p(y|x1_i), p(y|x2_i))]``, gradients
    through both sides (the paper's point: no stop-gradient, momentum encoder or
    Sinkhorn step). Its minimum needs confident assignments that agree across
    views, which rules out the views' clusters being permuted against each other.
``prior``  (``-L_PRIOR``, against *cluster collapse*)
    ``K * KL(U || p_bar) = -sum_y log(K p_bar_y)`` between the uniform prior over
    clusters and the batch's mean assignment ``p_bar`` (over both views); zero
    when the batch fills the clusters equally, growing without bound as clusters
    empty.

``loss = invariance_weight * invariance + prior_weight * prior
+ ebm_weight * generative``. Every term is returned as a scalar in the output
dict (the trainer logs them), with diagnostics that make each collapse visible:
``energy_data`` and ``energy_samples`` (mean energies), ``assignment_entropy``
(entropy of ``p_bar`` over ``log K``: 1 = uniform marginal, 0 = one cluster),
``clusters_used`` (clusters that are the arg-max of at least one sample of the
batch), ``confidence`` (mean largest probability) and ``agreement`` (share of
samples whose two views get the same arg-max cluster). The trainer adds the
embedding's effective rank and per-dimension std (``emb_rank``, ``emb_std``).

Where this differs from the paper, and why:

- SGLD step size 0.01, where JEM (whose sampler GEDI uses) takes 1 for images
  in ``[-1, 1]``. On ``core.digits`` (64 pixels in ``[0, 1]``, an MLP, the
  benchmark's 300 steps) step size 1 overshoots: the samples' energy rose to
  +3,700 while the data's fell to -1,700, the embedding's effective rank fell to
  2.4 and every test digit went to one cluster (k-means NMI 0.10); at 0.01 the
  two mean energies stay within a nat of each other. The step
  that suits depends on the input's scale and the network's gradient: the
  option is there to change it.
- Chains are clamped, feature by feature, to the range of the data seen so far
  (a running per-feature minimum and maximum of the batches), and restart from
  uniform noise in that range. JEM draws from ``U(-1, 1)``, its images' range,
  and does not clamp; clamping keeps a chain from leaving the data's support
  where the energy has never been trained.
- The energy and the Langevin chains run the network in eval mode (batch-norm
  with its running statistics, no batch coupling): with batch statistics the
  data batch and the sample batch would each be normalised by their own moments,
  hiding what the energy must tell apart, and the running statistics would
  absorb the samples. The exported encoder is used in eval mode, so the energy
  trained is the exported network's. The discriminative terms train in the
  trainer's mode, as every other objective.
- The paper's invariance term pairs an input with one augmentation of it; with
  the two augmented views every core objective uses, it is symmetrised. The
  prior term is scaled as in the authors' code (a sum over the ``K`` clusters,
  ``K`` times the mean) and shifted by a constant so that 0 means a uniform
  marginal. At the mean's scale (``prior_weight=1/K``) the invariance term won
  on digits: 64% of the test digits went to one cluster (head NMI 0.48, against
  0.77 at the default weight; both without the generative term).
- ``energy_l2`` (default 0, off) adds Du & Mordatch's regulariser
  ``mean(E(x)^2) + mean(E(x~)^2)`` ("Implicit Generation and Generalization in
  Energy-Based Models", NeurIPS 2019), which is not part of GEDI: a brake for a
  step size that lets the energies run away.
- The generative term needs a continuous input: Langevin dynamics moves the
  input along the energy's gradient. For a dataset whose samples are not
  floating-point tensors (graphs, token ids of SMILES) building the task raises
  a ``TypeError`` naming the way out, ``ebm_weight=0``, which trains the
  discriminative terms alone (what the authors' later code calls GEDI
  "nogen"). Raising rather than skipping with a warning keeps a benchmark row
  from silently reporting that ablation under the method's name.
- Under DDP the cluster marginal is taken over the gathered global batch; the
  replay buffer is a module buffer, so DDP broadcasts rank 0's at each forward
  (every rank draws its chains from rank 0's buffer, and only rank 0's updates
  persist). Being a module buffer, it is saved with the checkpoint, so a
  resumed run continues its chains.

Defaults: ``temperature`` 0.1 (the authors' code); SGLD otherwise as in JEM: 20
steps, noise 0.01, a buffer of 10,000 chains, 5% restarts. ``n_clusters`` 10:
the paper clusters with as many clusters as classes. The projector (one hidden
layer of 512, BatchNorm) is narrower than for the paper's ResNets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.distributed import gather_with_grad
from selfsup.objectives.projection import (
    NORMS,
    Norm,
    check_embeddings,
    encoder_dim,
    mlp_head,
    two_views,
)
from selfsup.options import (
    non_negative,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
    unit_interval,
)

Energy = Callable[[torch.Tensor], torch.Tensor]


# -- the terms of the bound ------------------------------------------------------------


def energy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``E(x) = -logsumexp_y l_y(x)`` for cluster logits ``[N, K]``; returns ``[N]``."""
    return -torch.logsumexp(logits, dim=1)


def invariance_term(l1: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy between the two views' cluster assignments.

    ``l1, l2``: logits ``[N, K]`` of views 1 and 2 (row ``i`` of each is the same
    sample). Returns ``1/2 mean_i [-sum_y p2_iy log p1_iy - sum_y p1_iy log p2_iy]``,
    with gradients through both the targets and the predictions.
    """
    check_embeddings("GEDI invariance term", l1, l2, min_batch=1)
    logp1, logp2 = F.log_softmax(l1, dim=1), F.log_softmax(l2, dim=1)
    ce_21 = -(logp2.exp() * logp1).sum(dim=1)
    ce_12 = -(logp1.exp() * logp2).sum(dim=1)
    return 0.5 * (ce_21 + ce_12).mean()


def prior_term(logits: torch.Tensor) -> torch.Tensor:
    """``K * KL(U || p_bar)``: the uniform prior against the mean assignment of ``logits``.

    ``logits`` ``[N, K]``; ``p_bar = mean_i softmax(l_i)``; the result is
    ``-sum_y log(K p_bar_y)``, 0 when ``p_bar`` is uniform and growing without
    bound as a cluster empties.
    """
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(
            f"GEDI prior term expects logits [N >= 1, K >= 2], got {tuple(logits.shape)}")
    k = logits.shape[1]
    # log p_bar_y = logsumexp_i log p_iy - log N, computed in log space for small p
    log_p_bar = torch.logsumexp(F.log_softmax(logits, dim=1), dim=0) - math.log(logits.shape[0])
    return -(log_p_bar + math.log(k)).sum()


def contrastive_divergence(e_data: torch.Tensor, e_samples: torch.Tensor) -> torch.Tensor:
    """``mean E(data) - mean E(samples)``: minimising it is maximum likelihood of the EBM.

    The samples must be detached (no gradient through the sampler), as in JEM.
    """
    return e_data.mean() - e_samples.mean()


def sgld(
    energy: Energy,
    x0: torch.Tensor,
    steps: int,
    step_size: float,
    noise: float,
    generator: torch.Generator,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Short-run Langevin dynamics ``x <- project(x - step_size * dE/dx + noise * eps)``.

    ``energy`` maps a batch to ``[N]`` energies; ``x0`` is the starting batch;
    ``project`` (optional) maps each step back into the input domain.
    Gradients are taken with respect to ``x`` only (parameters get none), and the
    result is detached. With ``noise=0`` this is gradient descent on the energy.
    """
    x = x0.detach().clone()
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(energy(x).sum(), x)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = (x.detach() - step_size * grad + noise * eps).detach()
        if project is not None:
            x = project(x)
    return x


class ReplayBuffer(nn.Module):
    """Persistent Langevin chains: ``size`` past samples of shape ``sample_shape``.

    The buffer starts empty (``ready`` False); the first :meth:`start` records
    the per-feature range of a data batch and fills the buffer with uniform noise
    in it. :meth:`draw` returns ``n`` chain states and their slots, each
    reinitialised with probability ``reinit_prob``; :meth:`store` writes the
    advanced states back. All of it lives in module buffers, so it is saved with
    the task's ``state_dict`` and moves with ``.to(device)``.
    """

    samples: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    ready: torch.Tensor

    def __init__(self, size: int, sample_shape: tuple[int, ...], reinit_prob: float) -> None:
        super().__init__()
        self.reinit_prob = float(reinit_prob)
        self.register_buffer("samples", torch.zeros(size, *sample_shape))
        self.register_buffer("low", torch.zeros(sample_shape))
        self.register_buffer("high", torch.zeros(sample_shape))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws from the uniform distribution between ``low`` and ``high``."""
        u = torch.rand((n, *self.low.shape), generator=generator, device=self.low.device,
                       dtype=self.low.dtype)
        return self.low + u * (self.high - self.low)

    @torch.no_grad()
    def observe(self, data: torch.Tensor, generator: torch.Generator) -> None:
        """Widen the per-feature range to ``data``'s; the first call fills the buffer."""
        if bool(self.ready):
            torch.minimum(self.low, data.amin(dim=0), out=self.low)
            torch.maximum(self.high, data.amax(dim=0), out=self.high)
            return
        self.low.copy_(data.amin(dim=0))
        self.high.copy_(data.amax(dim=0))
        self.samples.copy_(self.noise(self.samples.shape[0], generator))
        self.ready.fill_(True)

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` clamped, feature by feature, to the range of the data seen."""
        return torch.clamp(x, self.low, self.high)

    @torch.no_grad()
    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` chain states ``[n, *sample_shape]`` and their slots ``[n]``."""
        dev = self.samples.device
        slots = torch.randint(0, self.samples.shape[0], (n,), generator=generator, device=dev)
        x = self.samples[slots]
        fresh = torch.rand(n, generator=generator, device=dev) < self.reinit_prob
        fresh = fresh.view(n, *([1] * (x.ndim - 1)))
        return torch.where(fresh, self.noise(n, generator), x), slots

    @torch.no_grad()
    def store(self, x: torch.Tensor, slots: torch.Tensor) -> None:
        self.samples[slots] = x.detach().to(self.samples.dtype)


# -- the pretext task ------------------------------------------------------------------


def _at_least_two(x: Any) -> str | None:
    ok = isinstance(x, int) and not isinstance(x, bool) and x >= 2
    return None if ok else "be an int >= 2"


@dataclass(frozen=True)
class GEDIConfig:
    """GEDI options; ``build(..., **options)`` accepts these field names (defaults: module doc)."""

    n_clusters: int = option(10, _at_least_two, "clusters K of the cluster head")
    temperature: float = option(0.1, positive, "cluster logits are the projector output / this")
    ebm_weight: float = option(
        1.0, non_negative,
        "weight of the generative (energy) term; 0 for inputs that are not float tensors")
    invariance_weight: float = option(1.0, non_negative, "weight of the invariance term")
    prior_weight: float = option(1.0, non_negative, "weight of the uniform-prior term")
    energy_l2: float = option(
        0.0, non_negative, "weight of mean(E(data)^2 + E(samples)^2) (Du & Mordatch 2019)")
    sgld_steps: int = option(20, positive_int, "Langevin steps per training step")
    sgld_step_size: float = option(0.01, positive, "Langevin step size on -dE/dx")
    sgld_noise: float = option(0.01, non_negative, "std of the Langevin noise")
    buffer_size: int = option(10000, positive_int, "replay buffer of Langevin chains")
    reinit_prob: float = option(0.05, unit_interval,
                                "probability of restarting a chain from noise")
    proj_hidden_dim: int = option(512, positive_int, "hidden width of the projector")
    proj_layers: int = option(2, positive_int,
                              "linear layers of the projector; the last is the cluster head")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the projector: batch, layer or none")


class GEDI(nn.Module, PretextTask):
    """The GEDI pretext task: encoder, projector ending in the cluster head, one EBM.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "invariance",
    "prior", "generative", ...}`` (diagnostics in the module doc); ``embedding``
    is the encoder output of view 1 ``[B, embed_dim]``, detached.
    :meth:`cluster_logits` gives the head's logits for any batch.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: GEDIConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = mlp_head(encoder_dim(encoder, "gedi"), config.proj_hidden_dim,
                                  config.n_clusters, config.proj_layers, config.proj_norm)
        self.buffer: ReplayBuffer | None = None
        if config.ebm_weight > 0:
            self.buffer = ReplayBuffer(config.buffer_size, _sample_shape(dataset),
                                       config.reinit_prob)

    def cluster_logits(self, batch: Any) -> torch.Tensor:
        """Cluster logits ``[B, K]``: the projector's output over the temperature."""
        return self.projector(self.encoder.embed(batch)) / self.config.temperature  # type: ignore[no-any-return]

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)`` ``[B]`` of the network in eval mode (see the module doc)."""
        modules = (self.encoder, self.projector)
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        try:
            return energy_from_logits(self.cluster_logits(x))
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.config
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        l1 = gather_with_grad(self.projector(h1) / cfg.temperature)
        l2 = gather_with_grad(self.projector(self.encoder.embed(v2)) / cfg.temperature)
        inv = invariance_term(l1, l2)
        prior = prior_term(torch.cat([l1, l2]))
        loss = cfg.invariance_weight * inv + cfg.prior_weight * prior
        out = {"invariance": inv, "prior": prior}
        if self.buffer is not None:
            gen, e_data, e_samples = self._generative(batch, generator)
            loss = loss + cfg.ebm_weight * gen
            out.update(generative=gen, energy_data=e_data.mean().detach(),
                       energy_samples=e_samples.mean().detach())
        out.update(_assignment_stats(l1.detach(), l2.detach()))
        return {"loss": loss, "embedding": h1.detach(), **out}

    def _generative(
        self, batch: Any, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.buffer is not None
        _check_continuous(batch, tuple(self.buffer.low.shape))
        self.buffer.observe(batch, generator)
        x0, slots = self.buffer.draw(batch.shape[0], generator)
        cfg = self.config
        samples = sgld(self.energy, x0.to(batch.dtype), cfg.sgld_steps, cfg.sgld_step_size,
                       cfg.sgld_noise, generator, project=self.buffer.clamp)
        self.buffer.store(samples, slots)
        e_data, e_samples = self.energy(batch), self.energy(samples)
        gen = contrastive_divergence(e_data, e_samples)
        if cfg.energy_l2 > 0:
            gen = gen + cfg.energy_l2 * (e_data.pow(2).mean() + e_samples.pow(2).mean())
        return gen, e_data, e_samples


class ClusterHead(nn.Module):
    """A GEDI task's cluster head seen as an encoder: ``embed(batch)`` is ``[B, K]`` logits.

    Core's :func:`~selfsup.evaluators.embeddings.extract_embeddings` runs it over
    a labelled split like any encoder, so the head's own assignments
    (``argmax``) can be scored against the labels.
    """

    def __init__(self, task: GEDI) -> None:
        super().__init__()
        self.task = task
        self.embed_dim = task.config.n_clusters

    def embed(self, batch: Any) -> torch.Tensor:
        return self.task.cluster_logits(batch)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


@torch.no_grad()
def _assignment_stats(l1: torch.Tensor, l2: torch.Tensor) -> dict[str, torch.Tensor]:
    """Collapse diagnostics of the cluster assignments of two views (module doc)."""
    p1, p2 = F.softmax(l1, dim=1), F.softmax(l2, dim=1)
    k = l1.shape[1]
    p_bar = torch.cat([p1, p2]).mean(dim=0)
    entropy = -(p_bar * p_bar.clamp_min(1e-12).log()).sum() / math.log(k)
    a1, a2 = p1.argmax(dim=1), p2.argmax(dim=1)
    used = torch.bincount(torch.cat([a1, a2]), minlength=k).gt(0).sum()
    return {
        "assignment_entropy": entropy,
        "clusters_used": used.to(l1.dtype),
        "confidence": torch.cat([p1, p2]).amax(dim=1).mean(),
        "agreement": (a1 == a2).to(l1.dtype).mean(),
    }


_WAY_OUT = ("the generative term samples inputs by Langevin dynamics, which needs a "
            "floating-point tensor batch; pass ebm_weight=0 to train the discriminative "
            "terms only")


def _sample_shape(dataset: SSLDataset) -> tuple[int, ...]:
    """The shape of one pretraining sample, which must be a floating-point tensor."""
    data = dataset.pretrain_set()
    try:
        sample = data[0]  # type: ignore[index]
    except (TypeError, IndexError, KeyError) as exc:
        raise TypeError(f"core.gedi: cannot read a sample of dataset "
                        f"{getattr(dataset, 'name', type(dataset).__name__)!r} to size the "
                        f"replay buffer ({exc}); {_WAY_OUT}") from exc
    if not isinstance(sample, torch.Tensor) or not sample.is_floating_point():
        kind = (f"a {sample.dtype} tensor" if isinstance(sample, torch.Tensor)
                else type(sample).__name__)
        raise TypeError(f"core.gedi: dataset {getattr(dataset, 'name', '?')!r} gives {kind} "
                        f"samples; {_WAY_OUT}")
    return tuple(sample.shape)


def _check_continuous(batch: Any, sample_shape: tuple[int, ...]) -> None:
    if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
        kind = (f"a {batch.dtype} tensor" if isinstance(batch, torch.Tensor)
                else type(batch).__name__)
        raise TypeError(f"core.gedi: the batch is {kind}; {_WAY_OUT}")
    if tuple(batch.shape[1:]) != sample_shape:
        raise ValueError(
            f"core.gedi: batch samples have shape {tuple(batch.shape[1:])}, the replay buffer "
            f"was sized for {sample_shape} from the dataset's first sample; {_WAY_OUT} if the "
            "samples vary in shape")


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> GEDI:
    """``core.gedi`` factory; ``options`` are :class:`GEDIConfig` fields."""
    return GEDI(encoder, dataset, parse_options(GEDIConfig, options, "core.gedi"))
