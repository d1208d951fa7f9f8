"""Multiple-gradient descent: one update that serves several losses at once.

Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization", C. R. Math. 2012; Sener and Koltun, "Multi-Task Learning as
Multi-Objective Optimization", NeurIPS 2018. Given the gradients ``g_1..g_T`` of
``T`` losses with respect to the shared parameters, the weights ``w`` on the
simplex that minimise ``|sum_t w_t g_t|^2`` give the min-norm element of the
gradients' convex hull. Its negative is a descent direction for every loss at
once (or zero at a Pareto-stationary point). Sener and Koltun find it by
Frank-Wolfe on the Gram matrix of the gradients, with an exact line search
between the current point and the vertex of the smallest inner product. Frank-Wolfe
converges slowly near a face of the simplex (weights off by a few hundredths after
250 steps with 3-4 tasks), so :func:`min_norm_weights` solves the problem exactly
for up to :data:`EXACT_MAX_TASKS` tasks instead (the min-norm point of each face of
the simplex from its KKT system, the best non-negative one kept; 2^T - 1 tiny
solves) and keeps Frank-Wolfe, started from the best vertex or pair as in Sener and
Koltun's code, for more tasks or as a cross-check.

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


#: up to this many tasks, :func:`min_norm_weights` is exact (2^T - 1 face solves)
EXACT_MAX_TASKS = 8


def min_norm_weights(
    grads: torch.Tensor, *, max_iter: int = 250, tol: float = 1e-6
) -> torch.Tensor:
    """Simplex weights ``[T]`` of the min-norm point in the convex hull of ``grads`` ``[T, P]``.

    Exact for ``T <= EXACT_MAX_TASKS`` (see the module docstring); else Frank-Wolfe
    from the best vertex or pair: each step moves towards the vertex ``t`` with the
    smallest ``(G G^T w)_t`` by the exactly minimising step size, and stops when the
    weights change by less than ``tol`` or after ``max_iter`` steps.
    """
    if grads.ndim != 2 or grads.shape[0] < 1:
        raise ValueError(
            f"min_norm_weights needs gradients [T, P] with T >= 1, got {tuple(grads.shape)}"
        )
    if not torch.isfinite(grads).all():
        raise ValueError("min_norm_weights: a task gradient is not finite; check the losses")
    gram = (grads.double() @ grads.double().T).cpu()  # [T, T]: tiny, solved on the host
    w = _frank_wolfe(gram, _best_pair(gram), max_iter, tol)
    if gram.shape[0] <= EXACT_MAX_TASKS:
        exact = _exact(gram)
        if exact is not None and float(exact @ gram @ exact) <= float(w @ gram @ w):
            w = exact
    return w.to(device=grads.device, dtype=grads.dtype)


def _best_pair(gram: torch.Tensor) -> torch.Tensor:
    """The best vertex or two-task min-norm point (closed form), a Frank-Wolfe start."""
    t_count = gram.shape[0]
    best = torch.zeros(t_count, dtype=torch.float64)
    best[int(torch.argmin(gram.diagonal()))] = 1.0
    value = float(gram.diagonal().min())
    for i in range(t_count):
        for j in range(i + 1, t_count):
            # min over gamma of |gamma g_i + (1 - gamma) g_j|^2
            denom = gram[i, i] + gram[j, j] - 2 * gram[i, j]
            if denom <= 1e-18:
                continue
            gamma = float(((gram[j, j] - gram[i, j]) / denom).clamp(0.0, 1.0))
            pair = gamma**2 * gram[i, i] + (1 - gamma) ** 2 * gram[j, j] + (
                2 * gamma * (1 - gamma) * gram[i, j])
            if float(pair) < value:
                value, best = float(pair), torch.zeros(t_count, dtype=torch.float64)
                best[i], best[j] = gamma, 1 - gamma
    return best


def _frank_wolfe(gram: torch.Tensor, w: torch.Tensor, max_iter: int, tol: float) -> torch.Tensor:
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
            return new
        w = new
    return w


def _exact(gram: torch.Tensor) -> torch.Tensor | None:
    """The min-norm point over every face ``S`` of the simplex: ``G_SS w = mu 1``,
    ``sum w = 1`` (least squares where ``G_SS`` is singular), kept if ``w >= 0``."""
    t_count = gram.shape[0]
    best, value = None, float("inf")
    for mask in range(1, 2**t_count):
        face = [t for t in range(t_count) if mask >> t & 1]
        k = len(face)
        kkt = torch.zeros(k + 1, k + 1, dtype=torch.float64)
        kkt[:k, :k] = gram[face][:, face]
        kkt[:k, k] = -1.0
        kkt[k, :k] = 1.0
        rhs = torch.zeros(k + 1, 1, dtype=torch.float64)
        rhs[k] = 1.0
        sol = torch.linalg.lstsq(kkt, rhs, driver="gelsd").solution[:k, 0]
        if not bool(torch.isfinite(sol).all()) or float(sol.min()) < -1e-9:
            continue
        w = torch.zeros(t_count, dtype=torch.float64)
        w[face] = sol.clamp_min(0.0)
        if float(w.sum()) <= 0:
            continue
        w = w / w.sum()
        norm = float(w @ gram @ w)
        if norm < value - 1e-15:
            best, value = w, norm
    return best


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
