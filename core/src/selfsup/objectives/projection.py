"""The MLP heads and the option handling shared by the joint-embedding objectives.

Every method here puts an MLP (a *projector*, and for BYOL and SimSiam a
*predictor*) on top of the encoder and computes its loss on the head's output;
the encoder output before the head is what gets exported, being the better
representation for downstream tasks (Chen et al. 2020, §4.2). :func:`mlp_head` builds those
heads. Options are read by :mod:`selfsup.options`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from selfsup.options import check_value, one_of, positive_int

if TYPE_CHECKING:
    import torch

    from selfsup.components import SSLDataset

Norm = Literal["batch", "layer", "none"]
NORMS: tuple[str, ...] = ("batch", "layer", "none")


def mlp_head(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    n_layers: int = 2,
    norm: Norm = "batch",
    last_norm: bool = False,
) -> nn.Sequential:
    """An MLP ``[B, in_dim] -> [B, out_dim]`` of ``n_layers`` linear layers.

    Hidden layers are ``Linear -> norm -> ReLU``. With ``last_norm`` the output
    layer is followed by a norm without affine parameters, as in SimSiam's
    projector (Chen & He 2021, "Baseline settings"), so its output is
    standardised but not rescaled. ``n_layers=1`` is a single linear map
    (``hidden_dim`` unused).

    ``norm="batch"`` is what the papers use; it couples the samples of a batch,
    so under DDP a layer computes per-rank statistics unless the caller converts
    it with ``nn.SyncBatchNorm.convert_sync_batchnorm``. ``"layer"`` and
    ``"none"`` do not couple samples.
    """
    for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim),
                        ("n_layers", n_layers)):
        check_value("mlp_head", name, value, positive_int)
    check_value("mlp_head", "norm", norm, one_of(*NORMS))

    dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i in range(n_layers):
        last = i == n_layers - 1
        normed = norm != "none" and (not last or last_norm)
        # BatchNorm subtracts the per-feature mean, which cancels a bias before it.
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=not (normed and norm == "batch")))
        if normed:
            # The last norm has no affine part: a learned scale would undo it.
            affine = not last
            if norm == "batch":
                layers.append(nn.BatchNorm1d(dims[i + 1], affine=affine))
            else:
                layers.append(nn.LayerNorm(dims[i + 1], elementwise_affine=affine))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def encoder_dim(encoder: nn.Module, method: str) -> int:
    """The encoder's output width ``embed_dim``, the input width of the projector."""
    dim = getattr(encoder, "embed_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError(
            f"{method}: the encoder {type(encoder).__name__} needs a positive int attribute "
            f"'embed_dim' (the width of its [B, D] output), got {dim!r}; set it in the "
            "encoder's __init__"
        )
    return dim


def two_views(dataset: SSLDataset, batch: Any, generator: torch.Generator) -> tuple[Any, Any]:
    """Two independent stochastic views of ``batch``, drawn with the trainer's generator."""
    return dataset.augment(batch, generator), dataset.augment(batch, generator)


def check_embeddings(owner: str, z1: torch.Tensor, z2: torch.Tensor, min_batch: int) -> None:
    """Two embedding batches ``[N, D]`` of the same shape, ``N >= min_batch``."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"{owner} expects two embedding batches of the same shape [N, D], got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] < min_batch:
        raise ValueError(
            f"{owner} needs a batch of at least {min_batch} samples, got {z1.shape[0]}; "
            "increase the batch size"
        )
