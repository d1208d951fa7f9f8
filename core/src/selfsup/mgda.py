"""Multiple-gradient descent: one update that serves several losses at once.

Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization", C. R. Math. 2012; Sener and Koltun, "Multi-Task Learning as
Multi-Objective Optimization", NeurIPS 2018. Given the gradients ``g_1..g_T`` of
``T`` losses with respect to the shared parameters, the weights ``w`` on the
simplex that minimise ``|sum_t w_t g_t|^2`` give the min-norm element of the
gradients' convex hull. Its negative is a descent direction for every loss at
once (or zero at a Pareto-stationary point). Sener and Koltun find it by
Frank-Wolfe on the Gram matrix of the gradients, with an exact line search
between the current point and the vertex of the smallest inner product; that is
:func:`min_norm_weights`.

:func:`mgda_combine` is what a multi-task pretext calls each step: it takes the
task losses and the shared parameters, computes the per-task gradients, solves
for the weights, and returns ``sum_t w_t L_t`` with ``w`` detached, so the
ordinary ``loss.backward()`` of the trainer applies the MGDA direction.
Domain-agnostic: graph ParetoGNN uses it, any plugin may.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_weights(
    grads: torch.Tensor, *, max_iter: int = 250, tol: float = 1e-6
) -> torch.Tensor:
    """Simplex weights ``[T]`` of the min-norm point in the convex hull of ``grads`` ``[T, P]``.

    Frank-Wolfe from the uniform weights; each step moves towards the vertex ``t``
    with the smallest ``(G G^T w)_t`` by the exactly minimising step size, and
    stops when the weights change by less than ``tol``.
    """
    if grads.ndim != 2 or grads.shape[0] < 1:
        raise ValueError(
            f"min_norm_weights needs gradients [T, P] with T >= 1, got {tuple(grads.shape)}"
        )
    if not torch.isfinite(grads).all():
        raise ValueError("min_norm_weights: a task gradient is not finite; check the losses")
    gram = grads.double() @ grads.double().T
    t_count = gram.shape[0]
    w = torch.full((t_count,), 1.0 / t_count, dtype=torch.float64, device=grads.device)
    for _ in range(max_iter):
        gw = gram @ w
        t = int(torch.argmin(gw))
        # line search on |gamma * u + (1 - gamma) * g_t|^2, u = G^T w the current point
        uu, ut, tt = w @ gw, gw[t], gram[t, t]
        denom = uu + tt - 2 * ut
        gamma = 1.0 if denom <= 1e-18 else float(((tt - ut) / denom).clamp(0.0, 1.0))
        new = gamma * w
        new[t] += 1.0 - gamma
        if (new - w).abs().sum() < tol:
            w = new
            break
        w = new
    return w.to(grads.dtype)


def mgda_combine(
    losses: Sequence[torch.Tensor],
    shared: Sequence[nn.Parameter],
    *,
    normalization: str = "loss+",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_t w_t * losses[t], w)`` with MGDA weights ``w`` (detached) over ``shared``.

    ``normalization`` scales each task gradient before solving, as in Sener and
    Koltun's code: ``"l2"`` by its norm, ``"loss"`` by the loss value, ``"loss+"``
    by both loss and norm (their default), ``"none"`` not at all. Parameters that
    a task does not reach count as zero gradient for that task.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"mgda_combine: normalization={normalization!r} is not one of {list(NORMALIZATIONS)}"
        )
    if not losses:
        raise ValueError("mgda_combine needs at least one loss")
    params = [p for p in shared if p.requires_grad]
    if not params:
        raise ValueError("mgda_combine: no shared parameter requires a gradient")
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        flat = torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, params)
            ]
        )
        scale = torch.ones((), device=flat.device)
        if normalization in ("loss", "loss+"):
            scale = scale * loss.detach().abs().clamp_min(1e-12)
        if normalization in ("l2", "loss+"):
            scale = scale * flat.norm().clamp_min(1e-12)
        rows.append(flat / scale)
    weights = min_norm_weights(torch.stack(rows)).detach()
    total = sum(w * loss for w, loss in zip(weights, losses))
    return total, weights  # type: ignore[return-value]
