"""Category-level pose: the procedural scenes, the metrics, the baselines, Self-DPDN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup_vision3d import geometry as g
from selfsup_vision3d.datasets import pose_objects as po
from selfsup_vision3d.evaluators import pose_metrics as pm

from .conftest import TINY_POSE


@pytest.fixture(scope="module")
def scenes(pose_cache: Path) -> po.PoseObjects:
    return po.build(**TINY_POSE, cache_dir=str(pose_cache))


def _in_box_share(ds: po.PoseObjects, part: str, tol: float = 0.003) -> float:
    i = ds.indices(part)
    r, t, s = pm.split_label(ds.y[i].numpy().astype(np.float64))
    local = np.einsum("bji,bnj->bni", r, ds.points[i].numpy() - t[:, None])
    return float((np.abs(local) <= s[:, None] / 2 + tol).all(-1).mean())


def test_scenes_are_deterministic_cached_and_split(scenes: po.PoseObjects,
                                                   tmp_path: Path) -> None:
    again = po.build(**TINY_POSE, cache_dir=str(tmp_path))
    assert again.generated and torch.equal(again.points, scenes.points)
    assert torch.equal(again.y, scenes.y)
    cached = po.build(**TINY_POSE, cache_dir=str(tmp_path))
    assert not cached.generated and torch.equal(cached.points, scenes.points)
    other = po.build(**{**TINY_POSE, "seed": 1}, cache_dir=str(tmp_path))
    assert not torch.equal(other.points, scenes.points)
    n = {k: len(scenes.indices(k)) for k in ("train", "val", "unlabelled", "test")}
    assert n == {"train": 20, "val": 10, "unlabelled": 20, "test": 20}
    assert scenes.points.shape == (70, 64, 3) and torch.isfinite(scenes.points).all()
    assert len(scenes.pretrain_set()) == 20 and "category" in scenes.pretrain_set()[0]
    sample, y = scenes.labelled_split("test")[0]  # type: ignore[index]
    assert y.shape == (15,) and sample["points"].shape == (64, 3)


def test_labels_are_rigid_poses_that_explain_the_synthetic_points(
        scenes: po.PoseObjects) -> None:
    r, t, s = pm.split_label(scenes.y.numpy().astype(np.float64))
    assert np.allclose(np.einsum("bji,bjk->bik", r, r), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(r), 1, atol=1e-5)
    assert (t[:, 2] > 0.3).all() and (s > 0.01).all() and (s < 0.5).all()
    # clean synthetic depth: every observed point lies on the object, inside its box;
    # the real-like domain (noise, leaky mask) puts points outside it
    assert _in_box_share(scenes, "train") == 1.0
    assert _in_box_share(scenes, "test") < 0.97
    # the camera sees the object from above: its up axis points against camera y (down)
    assert (r[:, 1, 2] < -0.2).all()


def test_symmetric_labels_are_canonical_about_the_axis(scenes: po.PoseObjects) -> None:
    r, t, _ = pm.split_label(scenes.y.numpy().astype(np.float64))
    sym = scenes.symmetric.numpy()[scenes.category.numpy()]
    ray = t / np.linalg.norm(t, axis=1, keepdims=True)
    assert sym.any() and (~sym).any()
    assert np.allclose((r[sym, :, 0] * ray[sym]).sum(1), 0, atol=1e-5)


def test_priors_are_canonical_mean_shapes(scenes: po.PoseObjects) -> None:
    pri = scenes.priors.numpy()
    assert pri.shape == (5, 64, 3)
    ext = pri.max(1) - pri.min(1)
    assert np.all(np.linalg.norm(ext, axis=1) < 1.0 + 1e-6)
    assert np.all(np.linalg.norm(ext, axis=1) > 0.8)  # sampled points nearly span the box
    models = scenes.models.numpy()
    assert np.abs(models).max() <= 0.5 + 1e-6


def test_rotation_error_is_symmetry_aware() -> None:
    rng = np.random.default_rng(0)
    r = np.stack([g.random_rotation_np(rng) for _ in range(4)])
    spin = np.stack([po._rot_z(a) for a in (0.3, 1.0, 2.0, 3.0)])
    turned = r @ spin  # the same axis, turned about it
    err = pm.rotation_error_deg(turned, r, np.zeros(4, bool))
    assert np.allclose(err, np.degrees([0.3, 1.0, 2.0, 3.0]), atol=1e-4)
    assert np.allclose(pm.rotation_error_deg(turned, r, np.ones(4, bool)), 0, atol=1e-3)
    tilt = np.asarray([[1.0, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2),
                                                                    np.cos(0.2)]])
    err = pm.rotation_error_deg(r @ tilt[None], r, np.ones(4, bool))
    assert np.allclose(err, np.degrees(0.2), atol=1e-3)


def test_box_iou_matches_closed_forms() -> None:
    eye = np.eye(3)[None]
    s = np.asarray([[0.2, 0.1, 0.1]])
    t0 = np.zeros((1, 3))
    assert pm.box_iou(eye, t0, s, eye, t0, s)[0] == pytest.approx(1.0)
    # shifted by half its length along x: overlap 1/2, IoU 1/3
    iou = pm.box_iou(eye, t0, s, eye, np.asarray([[0.1, 0, 0]]), s)[0]
    assert iou == pytest.approx(1 / 3, abs=0.01)
    # nested: half the size in each dimension, IoU 1/8
    assert pm.box_iou(eye, t0, s, eye, t0, s / 2)[0] == pytest.approx(1 / 8, abs=0.01)
    assert pm.box_iou(eye, t0, s, eye, np.asarray([[1.0, 0, 0]]), s)[0] == 0.0
    # a cube turned 90 degrees about z is the same cube
    cube = np.full((1, 3), 0.1)
    assert pm.box_iou(po._rot_z(np.pi / 2)[None], t0, cube, eye, t0, cube)[0] == \
        pytest.approx(1.0, abs=1e-6)


def test_pose_metrics_thresholds() -> None:
    rng = np.random.default_rng(1)
    r = np.stack([g.random_rotation_np(rng) for _ in range(3)])
    t = np.asarray([[0, 0, 0.6]] * 3)
    s = np.asarray([[0.1, 0.1, 0.2]] * 3)
    labels = np.concatenate([r.reshape(3, 9), t, s], 1)
    tilt = np.stack([po._rot_z(np.radians(a)) for a in (3.0, 7.0, 20.0)])
    pred = {"rotation": r @ tilt,
            "translation": t + np.asarray([[0.03, 0, 0], [0.08, 0, 0], [0.01, 0, 0]]),
            "size": s}
    m = pm.pose_metrics(pred, labels, np.zeros(3, bool))
    assert m["acc_5deg5cm"] == pytest.approx(1 / 3) and m["acc_10deg10cm"] == pytest.approx(2 / 3)
    assert m["rot_err_deg"] == pytest.approx(10.0, abs=1e-3)
    assert m["trans_err_cm"] == pytest.approx(4.0, abs=1e-6)
    exact = pm.pose_metrics({"rotation": r, "translation": t, "size": s}, labels,
                            np.zeros(3, bool))
    assert exact["iou3d"] == pytest.approx(1.0) and exact["acc_5deg5cm"] == 1.0


def test_transform_maps_poses_and_back() -> None:
    from selfsup_vision3d.pretexts.self_dpdn import Transform, nocs_of

    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(4, 32, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.6])
    rng = np.random.default_rng(0)
    r = torch.as_tensor(np.stack([g.random_rotation_np(rng) for _ in range(4)])).float()
    t, s = pts.mean(1) + 0.01, torch.full((4, 3), 0.1)
    tf = Transform.draw(pts, gen, max_angle=60.0, shift=0.02, scale=0.2)
    moved = tf.pose(r, t, s)
    back = tf.back(*moved)
    for a, b in zip(back, (r, t, s), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # a transformed scan in the transformed pose has the same canonical coordinates
    assert torch.allclose(nocs_of(tf.points(pts), *moved), nocs_of(pts, r, t, s), atol=1e-5)


def test_registration_recovers_a_posed_scaled_prior(scenes: po.PoseObjects) -> None:
    from selfsup.api import BaselineContext, EvalContext
    from selfsup_vision3d.pose_baselines import build_registration

    scenes.name = "vision3d.pose_objects"
    model = build_registration(scenes, BaselineContext(lambda: torch.nn.Linear(1, 1),
                                                       EvalContext()), voxel=0.008)
    rng = np.random.default_rng(3)
    for c in (2, 3, 4):  # the asymmetric categories: the whole rotation is determined
        r = po._rot_z(rng.uniform(0, 2 * np.pi))
        t = np.asarray([0.02, -0.01, 0.7])
        obs = 0.9 * model.priors[c] @ r.T + t
        rot, trans, size = model.register(obs, c)
        assert pm.rotation_error_deg(rot[None], r[None], np.zeros(1, bool))[0] < 3
        assert np.linalg.norm(trans - t) < 0.005
        assert np.allclose(size, 0.9 * model.extents[c], rtol=0.05)


def test_synthetic_training_lowers_the_supervised_loss(scenes: po.PoseObjects) -> None:
    from selfsup_vision3d.pretexts import self_dpdn as sd

    torch.manual_seed(0)
    net = sd.build_network(scenes, width=16)
    task = sd.SelfDPDN(net, scenes, sd.SelfDPDNConfig(synthetic_batch=20))

    def loss() -> float:
        with torch.no_grad():
            return float(task.supervised(torch.Generator().manual_seed(5))["loss"])

    before = loss()
    sd.train_synthetic(net, scenes, steps=60, batch_size=20, lr=3e-3)
    assert loss() < 0.7 * before
    pose = net.pose({"points": scenes.points[:3], "category": scenes.category[:3]})
    r = pose["rotation"]
    assert torch.allclose(r.transpose(1, 2) @ r, torch.eye(3).expand(3, 3, 3), atol=1e-5)
    assert (pose["size"] > 0).all()


def test_self_dpdn_consistency_terms_train_the_network(scenes: po.PoseObjects) -> None:
    from selfsup_vision3d.pretexts import self_dpdn as sd

    torch.manual_seed(0)
    net = sd.build_network(scenes, width=16)
    task = sd.build(net, scenes, synthetic_batch=8)
    batch = {"points": scenes.points[scenes.indices("unlabelled")[:8]],
             "category": scenes.category[scenes.indices("unlabelled")[:8]]}
    out = task(batch, torch.Generator().manual_seed(0))
    assert {"inter", "intra", "sup_pose"} <= set(out) and torch.isfinite(out["loss"])
    # the unlabelled terms alone send gradient into the deformation and the pose head
    net.zero_grad()
    task.unsupervised(batch, torch.Generator().manual_seed(0))["loss"].backward()
    assert net.deform[-1].weight.grad.abs().sum() > 0
    assert net.pose_head[-1].weight.grad.abs().sum() > 0
    # the unlabelled scans' labels never enter: same loss with the labels scrambled
    scrambled = sd.build(net, scenes, synthetic_batch=8)
    scenes_y = scenes.y.clone()
    try:
        scenes.y[scenes.indices("unlabelled")] = 0
        again = scrambled.unsupervised(batch, torch.Generator().manual_seed(0))["loss"]
    finally:
        scenes.y.copy_(scenes_y)
    first = task.unsupervised(batch, torch.Generator().manual_seed(0))["loss"]
    assert torch.allclose(first, again)


def test_intra_consistency_leaves_the_size_alone_unless_asked(scenes: po.PoseObjects) -> None:
    from selfsup_vision3d.pretexts import self_dpdn as sd

    i = scenes.indices("unlabelled")[:8]
    batch = {"points": scenes.points[i], "category": scenes.category[i]}
    grads = []
    for free in (False, True):
        torch.manual_seed(0)
        net = sd.build_network(scenes, width=16)
        task = sd.build(net, scenes, lambda1=0.0, intra_size_grad=free)  # intra term only
        task.unsupervised(batch, torch.Generator().manual_seed(0))["loss"].backward()
        grads.append(net.pose_head[-1].weight.grad[9:12].abs().sum())  # the size outputs
    assert grads[0] == 0 and grads[1] > 0
