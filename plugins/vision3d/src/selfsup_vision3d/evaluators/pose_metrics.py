"""Category-level pose metrics (``vision3d.pose_metrics``), NOCS's protocol.

For a model offering the ``vision3d.pose`` face (``pose(batch) -> {"rotation":
[B, 3, 3], "translation": [B, 3], "size": [B, 3]}``, camera frame, metres) and a
dataset whose labels are 15 numbers (rotation row-major, translation, size; see
``vision3d.pose_objects``), per scene:

- rotation error in degrees, ``arccos((tr(R_hat^T R) - 1) / 2)``; for categories
  symmetric about their z axis (``dataset.symmetric``: bottle, bowl) only the axis
  counts: ``arccos(z_hat . z)`` (Wang et al., CVPR 2019, for bottle/bowl/can);
- translation error, ``|t_hat - t|`` in centimetres;
- 3D IoU of the two sized, posed boxes (for symmetric categories the predicted box
  is first turned about its own axis to the angle nearest the truth, as NOCS rotates
  it to the best IoU); volumes by a ``grid^3`` lattice of points in each box, the
  intersection averaged over both boxes' estimates (exact for nested or disjoint
  boxes, about 1% otherwise at grid 16);
- ``acc_5deg5cm`` / ``acc_10deg10cm``: the share of scenes with rotation error
  and translation error both under the bounds; ``iou25`` / ``iou50``: the share with
  3D IoU above 0.25 / 0.5.

Where it differs from NOCS: NOCS reports average precision over detections ranked by
score (with a detector in the loop); here every scene has one ground-truth object
given with its category and mask, so the shares are accuracies. Mugs are scored as
asymmetric even when the handle is hidden (NOCS does the same).

Metrics are ``pose.<name>`` on the ``test`` split (real-like) and
``pose_synthetic.<name>`` on ``val`` (held-out synthetic) when ``synthetic=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    EvalContext,
    Evaluator,
    SSLDataset,
    boolean,
    option,
    parse_options,
    positive_int,
)

NAME = "vision3d.pose_metrics"
POSE = "vision3d.pose"


def split_label(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels ``[B, 15]`` to rotations ``[B, 3, 3]``, translations and sizes ``[B, 3]``."""
    return y[:, :9].reshape(-1, 3, 3), y[:, 9:12], y[:, 12:15]


def align_about_axis(r_pred: np.ndarray, r_true: np.ndarray) -> np.ndarray:
    """``r_pred`` turned about its own z axis to the angle nearest ``r_true``."""
    z = r_pred[:, :, 2]
    x = r_true[:, :, 0] - (r_true[:, :, 0] * z).sum(1, keepdims=True) * z
    bad = np.linalg.norm(x, axis=1) < 1e-6  # the truth's x is the predicted axis
    x[bad] = r_pred[bad, :, 0]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.stack([x, np.cross(z, x), z], 2)


def rotation_error_deg(r_pred: np.ndarray, r_true: np.ndarray,
                       symmetric: np.ndarray) -> np.ndarray:
    """Degrees ``[B]``; about the z axis only where ``symmetric`` is True."""
    cos = (np.einsum("bij,bij->b", r_pred, r_true) - 1) / 2
    axis = np.einsum("bi,bi->b", r_pred[:, :, 2], r_true[:, :, 2])
    cos = np.where(symmetric, axis, cos)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _lattice(grid: int) -> np.ndarray:
    c = (np.arange(grid) + 0.5) / grid - 0.5
    return np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


def box_iou(r1: np.ndarray, t1: np.ndarray, s1: np.ndarray, r2: np.ndarray, t2: np.ndarray,
            s2: np.ndarray, grid: int = 16) -> np.ndarray:
    """3D IoU ``[B]`` of boxes (rotation, centre, extents), by lattice points."""
    lat = _lattice(grid)
    v1, v2 = s1.prod(1), s2.prod(1)

    def inside(r_a: np.ndarray, t_a: np.ndarray, s_a: np.ndarray, r_b: np.ndarray,
               t_b: np.ndarray, s_b: np.ndarray) -> np.ndarray:
        pts = np.einsum("bij,bnj->bni", r_a, lat[None] * s_a[:, None]) + t_a[:, None]
        local = np.einsum("bji,bnj->bni", r_b, pts - t_b[:, None])
        return (np.abs(local) <= s_b[:, None] / 2 + 1e-9).all(-1).mean(1)  # type: ignore[no-any-return]

    inter = (v1 * inside(r1, t1, s1, r2, t2, s2) + v2 * inside(r2, t2, s2, r1, t1, s1)) / 2
    return inter / np.maximum(v1 + v2 - inter, 1e-12)  # type: ignore[no-any-return]


def pose_metrics(pred: dict[str, np.ndarray], labels: np.ndarray,
                 symmetric: np.ndarray, grid: int = 16) -> dict[str, float]:
    """The metrics (see the module) of predictions against labels ``[B, 15]``."""
    r, t, s = split_label(labels)
    rp, tp, sp = pred["rotation"], pred["translation"], pred["size"]
    sym = np.asarray(symmetric, dtype=bool)
    rot = rotation_error_deg(rp, r, sym)
    trans = np.linalg.norm(tp - t, axis=1) * 100
    rp_box = np.where(sym[:, None, None], align_about_axis(rp, r), rp)
    iou = box_iou(rp_box, tp, np.abs(sp), r, t, s, grid)
    return {
        "rot_err_deg": float(rot.mean()), "rot_err_median": float(np.median(rot)),
        "trans_err_cm": float(trans.mean()), "iou3d": float(iou.mean()),
        "iou25": float((iou > 0.25).mean()), "iou50": float((iou > 0.5).mean()),
        "acc_5deg5cm": float(((rot < 5) & (trans < 5)).mean()),
        "acc_10deg10cm": float(((rot < 10) & (trans < 10)).mean()),
    }


@torch.no_grad()
def predict(model: nn.Module, dataset: SSLDataset, split: str, ctx: EvalContext
            ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The model's poses on a split, its labels and its categories."""
    was_training = model.training
    model.eval()
    items = dataset.labelled_split(split)
    if items is None:
        raise ValueError(f"{NAME}: dataset {dataset.name!r} has no split {split!r}")
    loader = torch.utils.data.DataLoader(items, batch_size=ctx.batch_size, shuffle=False)
    out: dict[str, list[np.ndarray]] = {"rotation": [], "translation": [], "size": []}
    ys, cats = [], []
    for sample, y in loader:
        batch = {k: v.to(ctx.device) for k, v in sample.items()}
        pose = model.pose(batch)  # type: ignore[operator]
        for k in out:
            out[k].append(pose[k].detach().float().cpu().numpy())
        ys.append(y.numpy())
        cats.append(sample["category"].numpy())
    model.train(was_training)
    return ({k: np.concatenate(v) for k, v in out.items()}, np.concatenate(ys),
            np.concatenate(cats))


@dataclass(frozen=True)
class PoseMetricsConfig:
    """Options of ``vision3d.pose_metrics``."""

    synthetic: bool = option(True, boolean, "also report pose_synthetic.* on the val split")
    grid: int = option(16, positive_int, "lattice points per box side for the 3D IoU")


def build(**options: Any) -> Evaluator:
    config = parse_options(PoseMetricsConfig, options, NAME)

    def evaluate(model: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        symmetric = getattr(dataset, "symmetric", None)
        if symmetric is None or not callable(getattr(model, "pose", None)):
            raise TypeError(f"{NAME} needs a model with pose(batch) and a pose dataset "
                            f"(vision3d.pose_objects); got {type(model).__name__} on "
                            f"{dataset.name!r}")
        model.to(ctx.device)
        metrics: dict[str, float] = {}
        splits = {"pose": "test", **({"pose_synthetic": "val"} if config.synthetic else {})}
        for prefix, split in splits.items():
            pred, y, cats = predict(model, dataset, split, ctx)
            sym = np.asarray(symmetric)[cats]
            metrics.update({f"{prefix}.{k}": v
                            for k, v in pose_metrics(pred, y, sym, config.grid).items()})
        return metrics

    return evaluate
