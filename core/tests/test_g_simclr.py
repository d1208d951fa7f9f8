"""G-SimCLR (core.g_simclr): the masked NT-Xent against a loop reference, its pseudo-labels.

The reference loops over anchors and candidates in plain Python floats and shares
no code with :mod:`selfsup.objectives`. The DDP test at the end also runs GroCo
(core.groco), whose projections are gathered the same way: one pair of spawned
processes for both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing.spawn import spawn

from selfsup.components import PretextTask, SSLDataset
from selfsup.objectives import g_simclr, groco, simclr
from selfsup.objectives.g_simclr import GuidedNTXentLoss
from selfsup.objectives.simclr import NTXentLoss

# small DAE and k-means settings so that a build takes milliseconds
FAST = {"proj_hidden_dim": 16, "proj_out_dim": 8, "n_clusters": 3, "dae_hidden_dim": 16,
        "dae_latent_dim": 4, "dae_steps": 30}


class Vectors(SSLDataset):
    """Three well-separated blobs whose views add Gaussian noise; flat input features."""

    name = "test.vectors"
    modality = "vector"

    def __init__(self, n: int = 30, dim: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
        centres = 4 * torch.eye(3, dim)
        self.y = torch.arange(n) % 3
        self.x = centres[self.y] + 0.3 * torch.randn(n, dim, generator=g)

    def pretrain_set(self) -> Any:
        return list(self.x)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + 0.1 * torch.randn(batch.shape, generator=generator, dtype=batch.dtype)

    def input_features(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


class NoFeatures(Vectors):
    """The same samples, but a dataset that offers no flat input features."""

    input_features = SSLDataset.input_features  # type: ignore[assignment]


class LinearEncoder(nn.Module):
    def __init__(self, in_dim: int = 6, embed_dim: int = 5) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.fc = nn.Linear(in_dim, embed_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- the masked loss ---------------------------------------------------------------------


def ref_guided_nt_xent(z1: torch.Tensor, z2: torch.Tensor, labels: list[int], t: float) -> float:
    """For anchor i with positive p: the denominator keeps p and the other-label views."""
    n = z1.shape[0]
    views = [z1[k] for k in range(n)] + [z2[k] for k in range(n)]
    label = labels + labels

    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        dot = sum(float(a[d]) * float(b[d]) for d in range(len(a)))
        return dot / math.sqrt(sum(float(v) ** 2 for v in a) * sum(float(v) ** 2 for v in b))

    total = 0.0
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        den = sum(math.exp(cos(views[i], views[k]) / t) for k in range(2 * n)
                  if k == p or (k != i and label[k] != label[i]))
        total += -math.log(math.exp(cos(views[i], views[p]) / t) / den)
    return total / (2 * n)


@pytest.mark.parametrize("labels", [[0, 1, 0, 2, 1, 0, 2], [0, 0, 0, 1, 1, 1, 1],
                                    [3, 1, 4, 1, 5, 9, 2]])
def test_guided_nt_xent_matches_the_loop_reference(labels: list[int]) -> None:
    z1, z2 = randn(7, 4, seed=1), randn(7, 4, seed=2)
    for t in (0.1, 0.5):
        got = GuidedNTXentLoss(t)(z1, z2, torch.tensor(labels))
        assert got.item() == pytest.approx(ref_guided_nt_xent(z1, z2, labels, t), rel=1e-9)


def test_all_distinct_pseudo_labels_give_plain_nt_xent() -> None:
    z1, z2 = randn(6, 4, seed=3), randn(6, 4, seed=4)
    plain = NTXentLoss(0.2)(z1, z2).item()
    guided = GuidedNTXentLoss(0.2)
    assert guided(z1, z2, torch.tensor([5, 0, 3, 1, 4, 2])).item() == pytest.approx(plain,
                                                                                    rel=1e-12)
    assert guided(z1, z2).item() == pytest.approx(plain, rel=1e-12)


def test_same_cluster_negatives_are_ignored() -> None:
    z1, z2 = randn(6, 4, seed=5), randn(6, 4, seed=6)
    # one cluster: every anchor keeps only its positive, whatever the embeddings
    assert GuidedNTXentLoss(0.1)(z1, z2, torch.zeros(6, dtype=torch.long)).item() == 0.0
    # a false negative: sample 1 duplicates sample 0. NT-Xent pays for it (anchor 0's
    # duplicate is as close as its positive); with one pseudo-label for both, G-SimCLR
    # scores the pair as the batch without the duplicate scores sample 0
    pair1, pair2 = torch.cat([z1[:1], z1[:1], z1[2:3]]), torch.cat([z2[:1], z2[:1], z2[2:3]])
    guided = GuidedNTXentLoss(0.1)(pair1, pair2, torch.tensor([0, 0, 1]))
    plain = NTXentLoss(0.1)(pair1, pair2)
    assert plain.item() > guided.item() + 0.5
    # anchors of samples 0 and 1 see exactly the two-sample batch {0, 2}; those of sample 2
    # see a duplicated negative. Rebuild the mean from those parts:
    two = torch.cat([z1[:1], z1[2:3]]), torch.cat([z2[:1], z2[2:3]])
    per_anchor = torch.nn.functional.normalize(torch.cat(two), dim=1)
    logits = per_anchor @ per_anchor.T / 0.1
    sample0 = [float(torch.logsumexp(logits[i, [j for j in range(4) if j != i]], 0)
                     - logits[i, (i + 2) % 4]) for i in (0, 2)]
    sample2 = []
    for i in (1, 3):  # anchor of sample 2: positive, and both copies of sample 0's views
        others = [j for j in range(4) if j != i]
        extra = [j for j in others if j in (0, 2)]
        den = torch.logsumexp(torch.cat([logits[i, others], logits[i, extra]]), 0)
        sample2.append(float(den - logits[i, (i + 2) % 4]))
    want = (2 * sum(sample0) + sum(sample2)) / 6
    assert guided.item() == pytest.approx(want, rel=1e-9)


def test_guided_loss_rejects_a_label_per_view() -> None:
    with pytest.raises(ValueError, match="one pseudo-label per sample"):
        GuidedNTXentLoss()(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(8))


# -- pseudo-labels ---------------------------------------------------------------------------


def test_dae_pseudo_labels_find_the_blobs() -> None:
    dataset = Vectors()
    task = g_simclr.build(LinearEncoder(), dataset, **FAST)
    assert task.dae is not None and task.dae_losses[-1] < task.dae_losses[0]
    assert not any(p.requires_grad for p in task.dae.parameters())
    labels = task.pseudo_labels(dataset.x).numpy()
    # the pseudo-classes are the blobs, up to renaming
    pairs = {(int(a), int(b)) for a, b in zip(labels, dataset.y.numpy(), strict=True)}
    assert len(pairs) == 3 and len({a for a, _ in pairs}) == 3


def test_encoder_pseudo_labels_recluster_every_n_steps() -> None:
    dataset = NoFeatures()
    task = g_simclr.build(LinearEncoder(), dataset, pseudo_labels="encoder", recluster_every=2,
                          **FAST)
    assert task.dae is None
    before = task.centroids.clone()
    with torch.no_grad():
        task.encoder.fc.weight.mul_(-1)  # a different encoder clusters elsewhere
    task.on_train_step_end(1, 10)
    torch.testing.assert_close(task.centroids, before, rtol=0, atol=0)
    task.on_train_step_end(2, 10)
    assert not torch.allclose(task.centroids, before)
    labels = task.pseudo_labels(dataset.x)
    assert labels.shape == (30,) and set(labels.tolist()) <= {0, 1, 2}


def test_dae_pseudo_labels_need_flat_features_and_name_the_alternative() -> None:
    with pytest.raises(ValueError, match="pseudo_labels='encoder'") as info:
        g_simclr.build(LinearEncoder(), NoFeatures(), **FAST)
    assert "test.vectors" in str(info.value) and "no flat input features" in str(info.value)


def test_pseudo_label_state_survives_a_checkpoint() -> None:
    dataset = Vectors()
    task = g_simclr.build(LinearEncoder(), dataset, **FAST)
    other = g_simclr.build(LinearEncoder(), dataset, **{**FAST, "seed": 3})
    other.load_state_dict(task.state_dict())
    torch.testing.assert_close(other.pseudo_labels(dataset.x), task.pseudo_labels(dataset.x))


def test_too_many_clusters_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lower n_clusters"):
        g_simclr.build(LinearEncoder(), Vectors(n=4), **{**FAST, "n_clusters": 5})


# -- the pretext task ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dae", "encoder"])
def test_build_forward_backward_and_step(mode: str) -> None:
    torch.manual_seed(0)
    dataset, encoder = Vectors(), LinearEncoder()
    task = g_simclr.build(encoder, dataset, pseudo_labels=mode, recluster_every=1, **FAST)
    assert isinstance(task, PretextTask) and task.encoder is encoder
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-2)
    batch = dataset.collate(dataset.pretrain_set()[:12])
    for step in range(1, 3):
        opt.zero_grad()
        out = task(batch, torch.Generator().manual_seed(step))
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        assert out["embedding"].shape == (12, 5)
        assert 0 < out["dropped"].item() < 1  # three blobs: about a third of the negatives
        out["loss"].backward()
        grad = encoder.fc.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
        opt.step()
        task.on_train_step_end(step, 2)
    assert task.encoder.training  # the labelling pass left the train mode alone


def test_with_distinct_pseudo_labels_the_task_is_simclr(monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, encoder = Vectors(), LinearEncoder()
    batch = dataset.x[:10]
    torch.manual_seed(0)
    guided = g_simclr.build(encoder, dataset, **FAST)
    monkeypatch.setattr(guided, "pseudo_labels", lambda b: torch.arange(b.shape[0]))
    torch.manual_seed(0)  # the DAE's initialisation does not shift the projector's
    plain = simclr.build(encoder, dataset, proj_hidden_dim=16, proj_out_dim=8)
    got = guided(batch, torch.Generator().manual_seed(4))
    want = plain(batch, torch.Generator().manual_seed(4))
    assert got["loss"].item() == pytest.approx(want["loss"].item(), rel=1e-6)
    assert got["dropped"].item() == 0


@pytest.mark.parametrize(("options", "field"), [({"n_clusters": 1}, "n_clusters"),
                                                ({"pseudo_labels": "kmeans"}, "pseudo_labels"),
                                                ({"temperature": 0.0}, "temperature"),
                                                ({"dae_noise": -1.0}, "dae_noise")])
def test_build_rejects_bad_values_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        g_simclr.build(LinearEncoder(), Vectors(), **options)


# -- DDP: two gloo processes equal one process on the global batch -----------------------


class SharedViews(Vectors):
    """Views whose randomness does not depend on the batch's rows, so each rank
    draws for its half what one process draws for the whole batch."""

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch * (1 + 0.5 * torch.rand((), generator=generator)) \
            + 0.3 * torch.randn(batch.shape[1], generator=generator)


def _case(name: str, rank: int | None) -> tuple[float, torch.Tensor, list[int]]:
    """Loss, encoder gradient and the pseudo-labels the loss saw, on one rank or all."""
    dataset = SharedViews(n=12)
    batch = dataset.x
    if rank is not None:
        batch = batch[rank * 6:(rank + 1) * 6]
    torch.manual_seed(1)  # the same initial weights in every process
    encoder = LinearEncoder()
    # LayerNorm heads: BatchNorm's statistics would be per rank, for a reason not the loss's
    if name == "g_simclr":
        task: Any = g_simclr.build(encoder, dataset, **{**FAST, "proj_norm": "layer"})
    else:
        task = groco.build(encoder, dataset, n_views=3, topk_negatives=3, steepness=3.0,
                           proj_hidden_dim=12, proj_out_dim=6, proj_norm="layer")
    seen: list[int] = []
    if name == "g_simclr":
        criterion = task.criterion.forward

        def spy(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            seen.extend(labels.tolist())
            return criterion(z1, z2, labels)  # type: ignore[no-any-return]

        task.criterion.forward = spy
    model: nn.Module = nn.parallel.DistributedDataParallel(task) if rank is not None else task
    out = model(batch, torch.Generator().manual_seed(2))
    out["loss"].backward()
    assert encoder.fc.weight.grad is not None
    return out["loss"].item(), encoder.fc.weight.grad.clone(), seen


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        results = {name: _case(name, rank) for name in ("g_simclr", "groco")}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_ddp_gathers_pseudo_labels_with_the_embeddings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # spawned children import _worker by this module's name (see test_objectives_ddp)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[__name__.count(".")]))
    spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for name in ("g_simclr", "groco"):
        want_loss, want_grad, want_labels = _case(name, None)
        for rank in range(2):
            loss, grad, labels = torch.load(tmp_path / f"rank{rank}.pt",
                                            weights_only=True)[name]
            assert labels == want_labels, (name, rank)  # the global batch's, in order
            assert loss == pytest.approx(want_loss, rel=1e-5), (name, rank)
            torch.testing.assert_close(grad, want_grad, rtol=1e-4, atol=1e-6, msg=name)
        if name == "g_simclr":  # the mask had something to drop, across the two halves
            assert len(set(want_labels)) > 1 and np.bincount(want_labels).max() > 2
