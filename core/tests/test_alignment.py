"""Representational alignment (CKA, RSA) and ``selfsup compare``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from selfsup.cli import main
from selfsup.evaluators.alignment import compare_representations, rbf_cka, rsa


def _reference_rbf_cka(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Gretton's HSIC with explicit loops over the Gram matrices (the paper's eq. 3-4)."""
    def gram(a: np.ndarray) -> np.ndarray:
        n = len(a)
        d = np.array([[np.linalg.norm(a[i] - a[j]) for j in range(n)] for i in range(n)])
        width = sigma * np.median([d[i, j] for i in range(n) for j in range(i + 1, n)])
        return np.exp(-(d**2) / (2 * width**2))

    def hsic(k: np.ndarray, l_: np.ndarray) -> float:
        n = len(k)
        h = np.eye(n) - np.ones((n, n)) / n
        return float(np.trace(k @ h @ l_ @ h))

    kx, ky = gram(x), gram(y)
    return hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky))


def test_rbf_cka_and_rsa_against_loop_references() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 3))
    assert rbf_cka(x, y, 0.5) == pytest.approx(_reference_rbf_cka(x, y, 0.5))
    pairs = [(i, j) for i in range(12) for j in range(i + 1, 12)]
    rdm = [[1 - np.corrcoef(a[i], a[j])[0, 1] for i, j in pairs] for a in (x, y)]
    assert rsa(x, y) == pytest.approx(spearmanr(rdm[0], rdm[1]).statistic)


def test_a_rotated_copy_is_aligned_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    aligned = {r.measure: r for r in compare_representations(x, 3 * x @ rotation,
                                                             permutations=50)}
    assert aligned["linear_cka"].value == pytest.approx(1.0)
    assert aligned["rbf_cka"].value == pytest.approx(1.0)
    assert all(r.p_value == pytest.approx(1 / 51) for r in aligned.values())
    # RSA's correlation distance centres each sample's features: invariant to scaling,
    # not to rotations, unlike CKA
    assert rsa(x, 3 * x) == pytest.approx(1.0)
    assert aligned["rsa"].value < 0.95
    unrelated = compare_representations(x, rng.normal(size=(60, 5)), permutations=50)
    assert all(r.p_value > 0.05 for r in unrelated)


def test_compare_cli_prints_the_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp", "--steps", "3",
            "--set", "training.progress=false", "--set", "training.batch_size=64",
            "--set", "pretext.proj_hidden_dim=16", "--set", "pretext.proj_out_dim=16"]
    assert main([*base, "--pretext", "core.simclr", "--run-dir", str(tmp_path / "a")]) == 0
    assert main([*base, "--pretext", "core.vicreg", "--run-dir", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--permutations", "20",
                 "--max-samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "100 test samples of core.digits, 20 permutations" in out
    for measure in ("linear_cka", "rbf_cka", "rsa"):
        assert f"| {measure} | " in out
    assert main([*base, "--pretext", "core.simclr", "--set", "dataset.seed=1",
                 "--run-dir", str(tmp_path / "c")]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "embed different data" in capsys.readouterr().err
