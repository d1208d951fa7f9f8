"""selfsup's conformance kit over everything selfsup-vision3d registers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selfsup.api import DENSE, EMBEDDING, MASKED_TOKENS, TOKENS, Registry, check_plugin

from .conftest import TINY_POSE, TINY_SHAPES

TINY = {
    "vision3d.point_transformer": {"n_patches": 8, "group_size": 8, "embed_dim": 16,
                                   "depth": 1, "n_heads": 2},
    "vision3d.pointnet": {"embed_dim": 16, "width": 8},
    "vision3d.dgcnn": {"embed_dim": 16, "width": 8, "k": 4},
    "vision3d.dpdn": {"width": 8},
}


@pytest.fixture(scope="module")
def registry(shapes_cache: Path, class_folder: Path, pose_cache: Path,
             kicad_library: Path) -> Registry:
    with pytest.warns(UserWarning, match="skipped 3"):
        return check_plugin(
            "vision3d",
            dataset_options={
                "vision3d.shapes": {**TINY_SHAPES, "cache_dir": str(shapes_cache)},
                "vision3d.folder": {"path": str(class_folder), "n_points": 64},
                "vision3d.kicad": {"path": str(kicad_library), "n_points": 64},
                "vision3d.pose_objects": {**TINY_POSE, "cache_dir": str(pose_cache)},
            },
            encoder_options=TINY,
        )


def test_check_plugin_passes(registry: Registry) -> None:
    report = next(r for r in registry.reports if r.name == "vision3d")
    assert set(report.registered["dataset"]) == {"vision3d.shapes", "vision3d.folder",
                                                 "vision3d.kicad", "vision3d.pose_objects"}
    assert set(report.registered["encoder"]) == set(TINY)
    assert set(report.registered["pretext"]) == {"vision3d.point_mae", "vision3d.equivariant",
                                                 "vision3d.depth_contrast",
                                                 "vision3d.self_dpdn", "vision3d.occlusion_pose"}
    assert set(report.registered["evaluator"]) == {"vision3d.few_shot", "vision3d.rotation_r2",
                                                     "vision3d.linear_svm",
                                                     "vision3d.pose_metrics"}
    assert set(report.registered["baseline"]) == {"vision3d.fpfh", "vision3d.d2",
                                                  "vision3d.pca_box", "vision3d.pose_registration",
                                                  "vision3d.pose_synthetic_only"}
    assert set(report.registered["benchmark"]) == {"vision3d.shapes", "vision3d.pose",
                                                   "vision3d.sanity_simclr",
                                                   "vision3d.sanity_self_dpdn",
                                                   "vision3d.sanity_equivariant"}


def test_faces_are_declared(registry: Registry) -> None:
    assert registry.get("encoder", "vision3d.point_transformer").faces == (
        EMBEDDING, TOKENS, MASKED_TOKENS)
    assert registry.get("encoder", "vision3d.pointnet").faces == (EMBEDDING, DENSE)
    assert registry.get("encoder", "vision3d.dgcnn").faces == (EMBEDDING, DENSE)
    assert registry.get("pretext", "vision3d.point_mae").face == MASKED_TOKENS


def test_benchmark_is_the_issue_s(registry: Registry) -> None:
    bench = registry.get("benchmark", "vision3d.shapes")
    assert bench.headline == "linear_probe.accuracy" and bench.direction == "higher"
    assert bench.evaluator_options["core.linear_probe"]["label_fractions"] == [1.0, 0.1]
    assert {"vision3d.fpfh", "vision3d.d2", "vision3d.pca_box", "core.random_init",
            "core.supervised"} == set(bench.baselines)
    assert {"vision3d.point_mae", "core.simclr"} == set(bench.pretexts)
    assert "vision3d.few_shot" in bench.evaluators
    assert bench.gpu_train["steps"] > bench.train["steps"]
    assert bench.quick["seconds"] > 0


def test_registering_imports_no_domain_library() -> None:
    code = ("import sys, selfsup_vision3d.plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'numpy', 'scipy', 'open3d')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_open3d_is_named_in_one_line() -> None:
    code = ("import sys; sys.modules['open3d'] = None\n"
            "from selfsup_vision3d.open3d_support import require_open3d\n"
            "try:\n    require_open3d('vision3d.fpfh')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = out.stdout.strip()
    assert "\n" not in line and "vision3d.fpfh needs open3d" in line and "open3d-cpu" in line


def test_pose_benchmark_is_wired(registry: Registry) -> None:
    from selfsup.api import check_benchmark

    bench = registry.get("benchmark", "vision3d.pose")
    check_benchmark(bench, registry)
    assert bench.headline == "pose.acc_10deg10cm" and bench.direction == "higher"
    assert set(bench.baselines) == {"vision3d.pose_registration",
                                    "vision3d.pose_synthetic_only"}
    # the synthetic-only row trains as long as the self-supervised one
    assert bench.baseline_options["vision3d.pose_synthetic_only"]["steps"] == \
        bench.train["steps"]
    assert bench.gpu_train["steps"] > bench.train["steps"]
    assert bench.quick["seconds"] > 0  # selfsup bench --budget needs it


def test_sanity_benchmarks_are_wired(registry: Registry) -> None:
    from selfsup.api import check_benchmark

    names = {b.name for b in registry.benchmarks() if b.sanity and b.name.startswith("vision3d.")}
    assert names == {"vision3d.sanity_simclr", "vision3d.sanity_self_dpdn",
                     "vision3d.sanity_equivariant"}
    for name in sorted(names):
        bench = registry.get("benchmark", name)
        check_benchmark(bench, registry)
        rows = set(bench.pretexts) | {f"baseline:{b}" for b in bench.baselines}
        for expect in bench.sanity:
            assert {expect.method, expect.beats} <= rows, (name, expect)
            assert expect.margin > 0
    # like for like: the synthetic-only row trains the pretext's steps, not its own 600
    pose = registry.get("benchmark", "vision3d.sanity_self_dpdn")
    assert pose.baseline_options["vision3d.pose_synthetic_only"]["steps"] == \
        pose.train["steps"]
    # SimCLR's assumption: the views keep the class (the vision3d.shapes views)
    simclr = registry.get("benchmark", "vision3d.sanity_simclr")
    assert simclr.dataset == "vision3d.shapes" and simclr.pretexts == ("core.simclr",)
    # the equivariant objective's: views that only rotate aligned complete clouds
    equi = registry.get("benchmark", "vision3d.sanity_equivariant")
    views = equi.dataset_options["views"]
    assert views["scale_min"] == views["scale_max"] == 1.0
    assert views["jitter"] == views["dropout_max"] == views["crop_prob"] == 0.0
