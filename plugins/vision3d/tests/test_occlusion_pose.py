"""The occlusion-aware noisy student: its visibility split and a run through the runner."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from selfsup.api import Component, Experiment, run_experiment
from selfsup_vision3d.pretexts import occlusion_pose as op

from .conftest import TINY_POSE


def _plate() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A thin plate 0.7 m in front of the camera: a 6 x 6 front face and the back
    face 4 cm behind it; an occluder 0.5 m away covers the rays of its left half."""
    g = torch.linspace(-0.05, 0.05, 6)
    x, y = torch.meshgrid(g, g, indexing="ij")
    xy = torch.stack([x.reshape(-1), y.reshape(-1)], 1)
    front = torch.cat([xy, torch.full((36, 1), 0.70)], 1)
    back = torch.cat([xy * 0.74 / 0.70, torch.full((36, 1), 0.74)], 1)  # on the same rays
    prior = torch.cat([front, back])[None]
    left = front[:, 0] < 0
    occluder = front[left] * (0.5 / 0.7)  # on the rays of the left half, nearer
    observed = torch.cat([front[~left], occluder])[None]
    return prior, observed, torch.cat([~left, torch.zeros(36, dtype=torch.bool)])


def test_visibility_splits_a_hand_made_occluded_scene() -> None:
    prior, observed, expected = _plate()
    amodal, visible = op.visibility(prior, observed, ray_radius=0.01, depth_tol=0.01)
    # the object's own front is amodal, its back hidden by the front
    assert amodal[0, :36].all() and not amodal[0, 36:].any()
    # the occluder hides the left half of the front: only the right half is visible
    assert torch.equal(visible[0], expected)
    # the alignment term: observed points pull only visible prior points
    prior = prior.clone().requires_grad_(True)
    shifted = observed + torch.tensor([0.004, 0.0, 0.0])
    op.visible_chamfer(shifted, prior, visible, clip=0.03).backward()
    pulled = prior.grad[0].abs().sum(1) > 0
    assert pulled[expected].all() and not pulled[~expected].any()
    # without the split, the occluder's rays pull the hidden front half as well
    everything = prior.detach().clone().requires_grad_(True)
    op.visible_chamfer(shifted, everything, torch.ones_like(visible), clip=1.0).backward()
    assert (everything.grad[0, :36][~expected[:36]].abs().sum(1) > 0).any()


def test_noisy_student_view_cuts_one_side_and_keeps_the_size() -> None:
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(4, 200, 3) * 0.1 + torch.tensor([0.0, 0.0, 0.7])
    view = op.noisy(pts, gen, jitter=0.0, dropout=0.0, occlusion=0.9)
    assert view.shape == pts.shape
    # each view is drawn from its own scan's points, and some scans lost many of them
    same = ((view[:, :, None] - pts[:, None]).norm(dim=-1) < 1e-7).any(-1)
    assert same.all()
    distinct = torch.tensor([len(torch.unique(v, dim=0)) for v in view])
    assert (distinct < 150).any()


def test_occlusion_pose_runs_through_the_runner(tmp_path: Path, pose_cache: Path) -> None:
    exp = Experiment(
        name="occlusion", dataset=Component("vision3d.pose_objects",
                                            {**TINY_POSE, "cache_dir": str(pose_cache)}),
        encoder=Component("vision3d.dpdn", {"width": 8}),
        pretext=Component("vision3d.occlusion_pose", {"synthetic_batch": 8, "start": 0.5}),
        training={"steps": 4, "batch_size": 8, "lr": 1e-3, "log_every": 1},
        evaluators=[Component("vision3d.pose_metrics", {"synthetic": False})],
        evaluation={"seeds": [0]})
    out = run_experiment(exp, tmp_path)
    assert out["train"]["steps"] == 4
    m = out["metrics"]
    assert 0.0 <= m["pose.acc_10deg10cm"] <= 1.0 and m["pose.trans_err_cm"] > 0
    logged = [json.loads(line) for f in tmp_path.rglob("*.jsonl")
              for line in f.read_text().splitlines() if line.strip()]
    aligned = [r for r in logged if "align" in r]
    # the real-like terms switch on after half the steps, with a non-trivial split
    assert aligned and all(r["align"] > 0 for r in aligned)
    assert all(0 < r["visible_share"] <= r["amodal_share"] < 1 for r in aligned)
    assert any("sup_pose" in r and "align" not in r for r in logged)
