"""G-SimCLR: SimCLR whose negatives leave out the anchor's pseudo-class.

Chakraborty, Gosthipaty & Paul, "G-SimCLR: Self-Supervised Contrastive Learning
with Guided Projection via Pseudo Labelling", ICDM Workshops 2020
(arXiv:2009.12007). NT-Xent (SimCLR, :class:`~selfsup.objectives.simclr.NTXentLoss`)
pushes every anchor away from every other sample of the batch, including samples
of its own class (false negatives). G-SimCLR guesses the classes without labels:
a denoising autoencoder (DAE) is trained on the unlabelled pretraining set, its
latent codes are clustered with k-means, and the cluster of each sample is its
pseudo-label; then no two samples of one pseudo-class meet as negatives.

Where this implementation differs from the paper, and why:

- *Masked loss instead of guided batches.* The paper composes each batch so
  that no two of its images share a pseudo-label. Here the trainer owns the
  batching (a resumable, DDP-sharded sampler), so the same effect is had inside
  the loss: for anchor ``i``, every ``k`` with ``i``'s pseudo-label is dropped
  from the denominator (except ``i``'s positive, the other view of its own
  sample). With all-distinct pseudo-labels the loss *is* NT-Xent; the batch size
  does not have to stay below the number of clusters, and no batch is padded or
  reshuffled. :class:`GuidedNTXentLoss` is that masked NT-Xent.
- *The DAE.* The paper's is a convolutional autoencoder on images. Here a small
  MLP DAE (``F -> dae_hidden_dim -> dae_latent_dim -> dae_hidden_dim -> F``,
  Gaussian input noise of ``dae_noise`` times the data's standard deviation)
  is trained at build time on the dataset's flat input features
  (:meth:`SSLDataset.input_features`, one row per embedding row): the vectors of
  ``core.digits``, the expression profiles of the cells of ``graph.pbmc68k``.
  A dataset without such features (images, sequences, graphs pooled to one
  embedding each) raises a ValueError naming the other option:
- ``pseudo_labels="encoder"`` (not in the paper) clusters the current
  encoder's own embeddings of the pretraining set (L2-normalised, as the
  contrastive objective sees them) at build time and again every
  ``recluster_every`` optimiser steps, so it needs no DAE and runs on any
  modality; its first clusters are those of the random-init encoder.
- A batch gets its pseudo-labels from the nearest k-means centroid of its clean
  (un-augmented) samples, so no sample indices are needed; on the pretraining
  set this is k-means' own assignment.

Under DDP every rank gathers the projections with
:func:`~selfsup.distributed.gather_with_grad` and the pseudo-labels with a plain
``all_gather`` (labels carry no gradient) in the same rank order, so the masked
loss on the global batch is the single-process one. The DAE and the centroids
are module state: DDP broadcasts them from rank 0 when it wraps the task, and a
re-clustering is broadcast from rank 0 too, so all ranks label alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from selfsup.batching import move_to
from selfsup.components import PretextTask, SSLDataset
from selfsup.distributed import gather_with_grad, is_distributed, world_size
from selfsup.objectives.projection import check_embeddings, encoder_dim, two_views
from selfsup.objectives.simclr import NTXentLoss, SimCLRConfig, simclr_projector
from selfsup.options import (
    non_negative_int,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)

PSEUDO_LABELS = ("dae", "encoder")


class GuidedNTXentLoss(NTXentLoss):
    """NT-Xent whose denominators leave out the anchor's pseudo-class.

    ``forward(z1, z2, labels)``: the two views' projections ``[N, D]`` and one
    integer pseudo-label per sample ``[N]`` (shared by its two views). For each of
    the ``2N`` anchors ``i`` with positive ``p(i)``, the loss is
    ``-log(exp(s_ip / t) / sum_k exp(s_ik / t))`` where ``k`` runs over ``p(i)``
    and every view whose pseudo-label differs from ``i``'s; the mean over anchors
    is returned. ``labels=None``, or all-distinct labels, give
    :class:`NTXentLoss`. An anchor whose whole batch shares its label keeps only
    its positive and contributes 0.
    """

    def forward(  # type: ignore[override]
        self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        if labels is None:
            return super().forward(z1, z2)
        check_embeddings("GuidedNTXentLoss", z1, z2, min_batch=2)
        n = z1.shape[0]
        if labels.shape != (n,):
            raise ValueError(
                f"GuidedNTXentLoss expects one pseudo-label per sample, shape ({n},), "
                f"got {tuple(labels.shape)}"
            )
        z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
        logits = z @ z.T / self.temperature
        positives = _positives(n, z.device)
        logits = logits.masked_fill(same_class_mask(labels, positives), float("-inf"))
        return F.cross_entropy(logits, positives)


def _positives(n: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(n, device=device)
    return torch.cat([idx + n, idx])


def same_class_mask(labels: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """``[2N, 2N]`` True where ``k`` leaves anchor ``i``'s denominator.

    That is ``k = i`` and every ``k`` of ``i``'s pseudo-class but its positive.
    """
    y = torch.cat([labels, labels])
    drop = y[:, None] == y[None, :]  # includes k = i
    drop[torch.arange(y.shape[0], device=y.device), positives] = False
    return drop


def at_least_two(x: Any) -> str | None:
    return None if isinstance(x, int) and not isinstance(x, bool) and x >= 2 else \
        "be an int >= 2"


@dataclass(frozen=True)
class GSimCLRConfig(SimCLRConfig):
    """G-SimCLR options: SimCLR's (temperature, projector) and the pseudo-labels'.

    ``n_clusters`` 10: the paper clusters CIFAR-10 into its 10 classes. The DAE
    fields are this implementation's (an MLP, see the module docstring).
    """

    pseudo_labels: str = option(
        "dae", one_of(*PSEUDO_LABELS),
        "'dae': k-means on a denoising autoencoder of the input features (the paper); "
        "'encoder': k-means on the encoder's own embeddings, any modality")
    n_clusters: int = option(10, at_least_two, "k-means clusters (pseudo-classes)")
    recluster_every: int = option(
        100, non_negative_int,
        "pseudo_labels='encoder': re-cluster every this many steps (0: only at build)")
    cluster_samples: int = option(
        20000, positive_int, "pretraining items embedded for k-means (a seeded subset)")
    dae_hidden_dim: int = option(256, positive_int, "hidden width of the DAE")
    dae_latent_dim: int = option(32, positive_int, "latent width of the DAE (clustered)")
    dae_noise: float = option(
        0.5, positive, "std of the DAE's input noise, in units of the data's std")
    dae_steps: int = option(500, positive_int, "Adam steps of DAE training")
    dae_batch_size: int = option(256, positive_int, "rows per DAE training step")
    dae_lr: float = option(1e-3, positive, "learning rate of DAE training")
    seed: int = option(0, non_negative_int, "seed of the DAE, its noise and k-means")


class DenoisingAutoencoder(nn.Module):
    """An MLP DAE ``[R, F] -> [R, latent] -> [R, F]`` on standardised rows.

    ``mean`` and ``scale`` (buffers) centre each feature and divide by the data's
    overall standard deviation, so the noise level is relative to the data.
    """

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, in_dim: int, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.encode_net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim))
        self.decode_net = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, in_dim))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(()))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.scale

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent code of raw rows ``[R, F]``."""
        return self.encode_net(self.standardise(x))  # type: ignore[no-any-return]

    def fit(self, rows: torch.Tensor, config: GSimCLRConfig) -> list[float]:
        """Train on ``rows`` ``[R, F]`` to remove Gaussian noise; the losses per step."""
        self.mean.copy_(rows.float().mean(0))
        self.scale.copy_((rows.float() - self.mean).std().clamp_min(1e-8))
        x = self.standardise(rows)
        g = torch.Generator(device=x.device).manual_seed(config.seed)
        opt = torch.optim.Adam(self.parameters(), lr=config.dae_lr)
        losses = []
        for _ in range(config.dae_steps):
            idx = torch.randint(0, x.shape[0], (min(config.dae_batch_size, x.shape[0]),),
                                generator=g, device=x.device)
            clean = x[idx]
            noisy = clean + config.dae_noise * torch.randn(
                clean.shape, generator=g, device=x.device)
            loss = F.mse_loss(self.decode_net(self.encode_net(noisy)), clean)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses


class GSimCLR(nn.Module, PretextTask):
    """The G-SimCLR pretext task: SimCLR's encoder, projector and views, masked NT-Xent.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "dropped"}``:
    ``embedding`` is ``f(view 1)`` ``[B, embed_dim]``, detached; ``dropped`` the
    share of negatives the pseudo-labels removed (about ``1 / n_clusters`` for
    balanced clusters). The views are drawn exactly as SimCLR draws them, so with
    the same seed the two differ only in the mask.
    """

    centroids: torch.Tensor

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: GSimCLRConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = simclr_projector(encoder_dim(encoder, "g_simclr"), config)
        self.criterion = GuidedNTXentLoss(config.temperature)
        self.dae: DenoisingAutoencoder | None = None
        device = next(encoder.parameters(), torch.empty(0)).device
        if config.pseudo_labels == "dae":
            rows = pretrain_rows(dataset, self._input_rows, device, config)
            # fork the RNG: the DAE's initialisation leaves the global stream (and so
            # everything built after this task) as it would be without it
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                dae = DenoisingAutoencoder(rows.shape[1], config.dae_hidden_dim,
                                           config.dae_latent_dim).to(device)
            self.dae_losses = dae.fit(rows, config)
            dae.requires_grad_(False).eval()
            self.dae = dae
            with torch.no_grad():
                codes = dae.encode(rows)
            centroids = kmeans_centroids(codes, config.n_clusters, config.seed, "g_simclr")
        else:
            centroids = kmeans_centroids(self._encoder_codes(device), config.n_clusters,
                                         config.seed, "g_simclr")
        self.register_buffer("centroids", centroids.to(device))

    # -- pseudo-labels ---------------------------------------------------------------
    def _input_rows(self, batch: Any) -> torch.Tensor:
        name = f"{self.dataset.name!r} ({self.dataset.modality})"
        try:
            x = self.dataset.input_features(batch)
        except NotImplementedError:
            reason = "it has no flat input features"
        else:
            rows = self.dataset.batch_rows(batch)
            if isinstance(x, torch.Tensor) and x.ndim == 2 and x.shape[0] == rows \
                    and x.is_floating_point():
                return x
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            reason = (f"its input features are {shape}, not one float row per embedding "
                      f"row [{rows}, F]")
        raise ValueError(
            f"core.g_simclr: pseudo_labels='dae' trains a denoising autoencoder on the "
            f"dataset's flat input features, and dataset {name} cannot give them: "
            f"{reason}; use pseudo_labels='encoder' (k-means on the encoder's own "
            "embeddings, any modality)"
        )

    def _clean_embeddings(self, batch: Any) -> torch.Tensor:
        """The encoder's eval-mode embeddings of un-augmented samples, L2-normalised."""
        was_training = self.encoder.training
        self.encoder.eval()  # no BatchNorm statistics move for a labelling pass
        try:
            with torch.no_grad():
                return F.normalize(self.encoder.embed(batch).float(), dim=1)
        finally:
            self.encoder.train(was_training)

    def _encoder_codes(self, device: torch.device) -> torch.Tensor:
        return pretrain_rows(self.dataset, self._clean_embeddings, device, self.config)

    @torch.no_grad()
    def pseudo_labels(self, batch: Any) -> torch.Tensor:
        """The pseudo-label ``[B]`` of each sample: its nearest k-means centroid."""
        if self.dae is not None:
            codes = self.dae.encode(self._input_rows(batch))
        else:
            codes = self._clean_embeddings(batch)
        return torch.cdist(codes.float(), self.centroids.float()).argmin(dim=1)

    def recluster(self) -> None:
        """k-means on the current encoder's embeddings of the pretraining set."""
        centroids = kmeans_centroids(self._encoder_codes(self.centroids.device),
                                     self.config.n_clusters, self.config.seed, "g_simclr")
        self.centroids.copy_(centroids)
        if is_distributed() and world_size() > 1:
            dist.broadcast(self.centroids, src=0)  # every rank labels with rank 0's

    # -- training ------------------------------------------------------------------------
    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        labels = gather_labels(self.pseudo_labels(batch))
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        z1 = gather_with_grad(self.projector(h1))
        z2 = gather_with_grad(self.projector(self.encoder.embed(v2)))
        loss = self.criterion(z1, z2, labels)
        n = labels.shape[0]
        with torch.no_grad():  # negatives dropped per anchor, over the 2N - 2 it has
            dropped = (same_class_mask(labels, _positives(n, labels.device)).sum()
                       - 2 * n) / (2 * n * max(2 * n - 2, 1))
        return {"loss": loss, "embedding": h1.detach(), "dropped": dropped.float()}

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        """``pseudo_labels='encoder'``: re-cluster after every ``recluster_every`` steps."""
        every = self.config.recluster_every
        if self.config.pseudo_labels == "encoder" and every and step % every == 0 \
                and step < total_steps:
            self.recluster()


def gather_labels(labels: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``[B]`` labels in rank order (as ``gather_with_grad``)."""
    if not is_distributed() or world_size() == 1:
        return labels
    parts = [torch.empty_like(labels) for _ in range(world_size())]
    dist.all_gather(parts, labels.contiguous())
    return torch.cat(parts)


def pretrain_rows(
    dataset: SSLDataset,
    rows_of: Callable[[Any], torch.Tensor],
    device: torch.device,
    config: GSimCLRConfig,
    chunk: int = 256,
) -> torch.Tensor:
    """``rows_of(batch)`` over (a seeded subset of) the pretraining set, concatenated."""
    pre = dataset.pretrain_set()
    n = len(pre)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError(f"core.g_simclr: dataset {dataset.name!r} has an empty pretraining set")
    idx = np.arange(n)
    if n > config.cluster_samples:
        idx = np.sort(np.random.default_rng(config.seed).choice(n, config.cluster_samples,
                                                                replace=False))
    out = []
    for start in range(0, len(idx), chunk):
        batch = dataset.collate([pre[int(i)] for i in idx[start:start + chunk]])
        out.append(rows_of(move_to(batch, device)).detach().float())
    return torch.cat(out)


def kmeans_centroids(codes: torch.Tensor, n_clusters: int, seed: int, owner: str) -> torch.Tensor:
    """scikit-learn k-means of ``codes`` ``[R, D]``; the ``[n_clusters, D]`` centroids."""
    from sklearn.cluster import KMeans

    if codes.shape[0] < n_clusters:
        raise ValueError(
            f"{owner}: {codes.shape[0]} pretraining rows cannot form n_clusters={n_clusters} "
            "clusters; lower n_clusters"
        )
    x = codes.detach().cpu().double().numpy()
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit(x)
    return torch.as_tensor(km.cluster_centers_, dtype=torch.float32)


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> GSimCLR:
    """``core.g_simclr`` factory; ``options`` are :class:`GSimCLRConfig` fields."""
    return GSimCLR(encoder, dataset, parse_options(GSimCLRConfig, options, "core.g_simclr"))
