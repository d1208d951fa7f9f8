"""Occlusion-aware self-supervised pose: noisy-student refinement with visibility.

Wang, Manhardt, Tan, Navab & Tombari, "Occlusion-Aware Self-Supervised Monocular 6D
Object Pose Estimation", IEEE TPAMI 2021 (Self6D++; authors' code
github.com/THU-DA-6D-Pose-Group/self6dpp, read for understanding; written anew).

Self6D++ trains a pose network on synthetic labels, then refines it on unlabelled
real images: a teacher predicts pseudo poses for the real images, a student sees
them with noisy-student augmentation and is trained to agree with the teacher and to
explain the observation under its own pose, through a differentiable renderer, with
occlusion-aware terms: the rendered (amodal) mask against the predicted visible and
amodal masks, and a geometric term on depth compared only where the object is
visible.

Here, on ``vision3d.pose_objects`` with the :class:`~.self_dpdn.DPDN` network
(``vision3d.dpdn``), each step's loss is

``supervised(synthetic batch) + w(step) * (pseudo + align_weight * align)``

- ``supervised``: Self-DPDN's supervised loss on a synthetic batch (pose, deformed
  prior and NOCS; the teacher's labels come from this).
- *teacher*: an exponential moving average of the student (``ema`` per step), run
  in eval mode, without gradient, on the clean real-like observation.
- *noisy student*: the student sees the observation with (a) point jitter
  (``jitter`` metres, clipped at 3 sigma), (b) point dropout (up to ``dropout``
  of the points) and (c) the dataset's occlusion: the points on one side of a random
  line in the image (up to ``occlusion`` of them) removed, the rest resampled back to
  ``N`` points; then a random rigid transform (Self-DPDN's :class:`Transform`) and
  its prediction mapped back. ``pseudo`` is Self-DPDN's pose distance to the
  teacher's pose plus ``beta`` Chamfer between the two deformed priors.
- *visibility* (:func:`visibility`): the student's deformed prior ``Q_v``, posed
  and sized by its own back-mapped prediction (``p = |s| R q + t``), is split into
  amodal and visible points with a point test along the camera rays: a posed
  prior point is *amodal* (on the object's own visible surface) when no other
  prior point lies on its ray (within ``ray_radius`` radians) nearer the camera by
  more than ``depth_tol``; it is *visible* when, besides, no observed point lies on
  its ray nearer the camera by more than ``depth_tol`` (the observation's depth
  along the view ray is in front of it: an occluder, or the object's own front).
- *geometric alignment* (``align``): the one-sided Chamfer distance from the
  observed points to the visible posed prior points (network units, decimetres,
  each distance capped at ``align_clip`` metres so that leaked mask points do not
  pull), differentiable in the rotation, translation, size and deformation; prior
  points hidden by occluders or by the object's front do not pull the pose.
  ``occlusion_aware=False`` aligns to every posed prior point instead (the ablation).
- ``w(step)`` is 0 for the first ``start`` of the training (the teacher, an EMA of
  a random network, has learnt nothing yet) and then ``self_weight``.

Where this differs from Self6D++: depth points only, no RGB: no differentiable
renderer, no rendered or predicted masks and no perceptual (LAB/MS-SSIM) terms;
the masks are replaced by the point visibility test above, computed on points
(without gradient) instead of rendered silhouettes, and the geometric term is a
Chamfer distance on points instead of a depth-map comparison; category level
(a deformed mean-shape prior) instead of the instance CAD model; the teacher is the
student's EMA inside one training run (the paper trains the teacher on synthetic
data first and fixes it per refinement round), and the student also keeps the
synthetic supervised loss each step; no pseudo-label filtering by the teacher's
confidence. The visibility test sees only what the observation holds: the
dataset's scans are masked to the object (plus a leaky one-pixel ring), so an
occluder is detected only where its points are in the scan; a prior point whose ray
holds no observed point (occluded by an unseen occluder, a hole, or outside the
silhouette) counts as visible, which the one-sided Chamfer (observed to prior)
tolerates: such points are simply not the nearest to any observed point.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from selfsup.api import (
    ConfigError,
    PretextTask,
    SSLDataset,
    boolean,
    non_negative,
    option,
    parse_options,
    positive,
    positive_int,
    unit_interval,
)

from .self_dpdn import (
    DPDN,
    ENCODER,
    UNIT,
    SelfDPDN,
    SelfDPDNConfig,
    _pose_dataset,
    chamfer,
    pose_distance,
)

NAME = "vision3d.occlusion_pose"


def posed_prior(shape: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                size: torch.Tensor) -> torch.Tensor:
    """Canonical points ``[B, M, 3]`` (unit box diagonal) in the camera frame:
    ``|s| R q + t`` (the dataset's label convention)."""
    diag = size.norm(dim=1)[:, None, None]
    return diag * shape @ rotation.transpose(1, 2) + translation[:, None]


def _hidden_behind(points: torch.Tensor, others: torch.Tensor, ray_radius: float,
                   depth_tol: float, exclude_self: bool) -> torch.Tensor:
    """``[B, M]``: whether some point of ``others`` lies on the camera ray of each
    point (angle below ``ray_radius``) nearer the camera by more than ``depth_tol``."""
    rng_p, rng_o = points.norm(dim=-1), others.norm(dim=-1)
    cos = F.normalize(points, dim=-1) @ F.normalize(others, dim=-1).transpose(1, 2)
    on_ray = cos > math.cos(ray_radius)
    if exclude_self:
        on_ray &= ~torch.eye(points.shape[1], dtype=torch.bool, device=points.device)
    nearer = rng_o[:, None, :] < rng_p[:, :, None] - depth_tol
    return (on_ray & nearer).any(-1)


@torch.no_grad()
def visibility(prior: torch.Tensor, observed: torch.Tensor, ray_radius: float = 0.025,
               depth_tol: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Amodal and visible masks ``[B, M]`` of posed prior points (camera frame, the
    camera at the origin) given the observed points ``[B, N, 3]`` (see the module).

    amodal: not behind another prior point along its ray (the object's own front);
    visible: amodal and not behind an observed point along its ray (occluded)."""
    amodal = ~_hidden_behind(prior, prior, ray_radius, depth_tol, exclude_self=True)
    occluded = _hidden_behind(prior, observed, ray_radius, depth_tol, exclude_self=False)
    return amodal, amodal & ~occluded


def visible_chamfer(observed: torch.Tensor, prior: torch.Tensor, visible: torch.Tensor,
                    clip: float) -> torch.Tensor:
    """Mean over observed points of the distance (network units) to the nearest
    *visible* prior point, each distance capped at ``clip`` metres (no gradient
    beyond). Rows with no visible point fall back to every prior point."""
    mask = torch.where(visible.any(1, keepdim=True), visible, torch.ones_like(visible))
    d = torch.cdist(observed, prior)
    d = d.masked_fill(~mask[:, None, :], float("inf")).min(2).values
    return (d.clamp(max=clip) / UNIT).mean()


@dataclass(frozen=True)
class OcclusionPoseConfig:
    """Options of ``vision3d.occlusion_pose``."""

    self_weight: float = option(1.0, non_negative, "weight of the real-like terms "
                                "(pseudo-labels + alignment); 0: synthetic-only")
    align_weight: float = option(1.0, non_negative, "weight of the visible Chamfer term")
    beta: float = option(1.0, non_negative, "Chamfer(student Q_v, teacher Q_v) in pseudo")
    ema: float = option(0.99, unit_interval, "teacher EMA momentum per step")
    start: float = option(0.3, unit_interval, "fraction of training before the real-like "
                          "terms switch on")
    jitter: float = option(0.003, non_negative, "student point jitter sigma (metres)")
    dropout: float = option(0.2, unit_interval, "largest share of points dropped")
    occlusion: float = option(0.3, unit_interval, "largest share of points cut away by a "
                              "random line in the image")
    ray_radius: float = option(0.025, positive, "angle (radians) within which two points "
                               "share a camera ray")
    depth_tol: float = option(0.01, non_negative, "depth margin (metres) of the tests")
    align_clip: float = option(0.03, positive, "cap on each alignment distance (metres)")
    occlusion_aware: bool = option(True, boolean, "Chamfer to the visible prior points "
                                   "only (False: to every posed prior point, the ablation)")
    max_angle: float = option(45.0, positive, "largest rotation of the student's "
                              "transform (degrees)")
    shift: float = option(0.02, non_negative, "largest shift of the transform (metres)")
    scale: float = option(0.2, non_negative, "transform scale in [1 - scale, 1 + scale]")
    synthetic_batch: int = option(32, positive_int, "synthetic scenes per step")


def noisy(points: torch.Tensor, generator: torch.Generator, jitter: float, dropout: float,
          occlusion: float) -> torch.Tensor:
    """The noisy student's view: jitter, dropout and a one-sided image cut, resampled
    to the same number of points (see the module)."""
    b, n, _ = points.shape
    gdev, dev = generator.device, points.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).to(dev)

    keep = rand(b, n) >= dropout * rand(b, 1)
    uv = points[..., :2] / points[..., 2:].clamp_min(1e-6)
    angle = 2 * math.pi * rand(b, 1)
    proj = uv[..., 0] * torch.cos(angle) + uv[..., 1] * torch.sin(angle)
    rank = proj.argsort(1).argsort(1).float() / n  # 0 .. 1 along the random direction
    keep &= rank >= occlusion * rand(b, 1)
    keep[:, 0] |= ~keep.any(1)  # never empty
    idx = torch.multinomial(keep.float().cpu(), n, replacement=True,
                            generator=generator if gdev.type == "cpu" else None).to(dev)
    out = points.gather(1, idx[..., None].expand(-1, -1, 3))
    noise = torch.randn(out.shape, generator=generator, device=gdev).to(dev)
    return out + jitter * noise.clamp(-3, 3)


class OcclusionPose(nn.Module, PretextTask):
    """Supervised on synthetic + noisy-student refinement on real-like (see the module)."""

    def __init__(self, encoder: DPDN, dataset: Any, config: OcclusionPoseConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        c = config
        # Self-DPDN's supervised half (its own buffers of the synthetic train split)
        self.sup = SelfDPDN(encoder, dataset, SelfDPDNConfig(
            self_weight=0.0, max_angle=c.max_angle, shift=c.shift, scale=c.scale,
            synthetic_batch=c.synthetic_batch))
        self.teacher = copy.deepcopy(encoder).requires_grad_(False)
        self.progress = 0.0

    def weight(self) -> float:
        c = self.config
        return c.self_weight if self.progress >= c.start else 0.0

    def unsupervised(self, batch: dict[str, torch.Tensor], generator: torch.Generator
                     ) -> dict[str, torch.Tensor]:
        c = self.config
        pts, cats = batch["points"].float(), batch["category"].long()
        self.teacher.eval()
        with torch.no_grad():
            teach = self.teacher.predict({"points": pts, "category": cats})
        view = noisy(pts, generator, c.jitter, c.dropout, c.occlusion)
        tf = self.sup._draw(view, generator)
        out = self.encoder.predict({"points": tf.points(view), "category": cats})
        r, t, s = tf.back(out["rotation"], out["translation"], out["size"])
        pseudo = pose_distance(r, t, s, teach["rotation"], teach["translation"],
                               teach["size"], self.sup.symmetric[cats]) + \
            c.beta * chamfer(out["qv"], teach["qv"])
        prior = posed_prior(out["qv"], r, t, s)
        amodal, visible = visibility(prior.detach(), pts, c.ray_radius, c.depth_tol)
        target = visible if c.occlusion_aware else torch.ones_like(visible)
        align = visible_chamfer(pts, prior, target, c.align_clip)
        return {"loss": pseudo + c.align_weight * align, "pseudo": pseudo.detach(),
                "align": align.detach(),
                "visible_share": visible.float().mean(),
                "amodal_share": amodal.float().mean()}

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator
                ) -> dict[str, torch.Tensor]:
        out = self.sup.supervised(generator)
        w = self.weight()
        if w > 0:
            unsup = self.unsupervised(batch, generator)
            out = {**out, **{k: v for k, v in unsup.items() if k != "loss"},
                   "loss": out["loss"] + w * unsup["loss"]}
        return out

    @torch.no_grad()
    def on_train_step_end(self, step: int, total_steps: int) -> None:
        self.progress = step / max(1, total_steps)  # step counts from 1
        m = self.config.ema
        for pt, ps in zip(self.teacher.parameters(), self.encoder.parameters(), strict=True):
            pt.mul_(m).add_(ps.detach(), alpha=1 - m)


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> OcclusionPose:
    """``vision3d.occlusion_pose`` factory: ``encoder`` is a :class:`DPDN`."""
    config = parse_options(OcclusionPoseConfig, options, NAME)
    ds = _pose_dataset(dataset, NAME)
    if not isinstance(encoder, DPDN):
        raise ConfigError(f"{NAME} trains the {ENCODER} network, got {type(encoder).__name__}")
    return OcclusionPose(encoder, ds, config)

