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


def _reference_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC of linear Gram matrices with explicit loops over sample pairs (paper eq. 3-4)."""
    n = len(x)
    k = np.array([[float(np.dot(x[i], x[j])) for j in range(n)] for i in range(n)])
    l_ = np.array([[float(np.dot(y[i], y[j])) for j in range(n)] for i in range(n)])

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        h = np.eye(n) - np.ones((n, n)) / n
        return float(np.trace(a @ h @ b @ h))

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def _matrix(text: str, measure: str = "linear CKA") -> np.ndarray:
    block = text.split(f"\n{measure}\n", 1)[1].split("\n\n")[0]  # its table only
    rows = [line for line in block.splitlines() if line.startswith("| A")]
    return np.array([[float(v) for v in line.strip(" |").split(" | ")[1:]] for line in rows])


def test_layer_matrix_against_a_loop_reference() -> None:
    from selfsup.evaluators.alignment import layer_matrix

    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(15, d)) for d in (6, 4)]
    ys = [rng.normal(size=(15, d)) for d in (3, 5, 2)]
    matrix = layer_matrix(xs, ys)
    assert matrix.shape == (2, 3)
    for i, j in ((0, 0), (1, 2)):
        assert matrix[i, j] == pytest.approx(_reference_linear_cka(xs[i], ys[j]))
    with pytest.raises(ValueError, match="same samples"):
        layer_matrix(xs, [ys[0][:10]])


def test_compare_layers_between_and_within_encoders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selfsup.components import EvalContext
    from selfsup.evaluators.alignment import extract_stages
    from selfsup.runner import load_exported

    base = ["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp", "--steps", "3",
            "--set", "training.progress=false", "--set", "training.batch_size=64",
            "--set", "encoder.hidden_dims=[32, 16]", "--set", "encoder.embed_dim=8"]
    assert main([*base, "--pretext", "core.simclr", "--set", "pretext.proj_hidden_dim=16",
                 "--run-dir", str(tmp_path / "a")]) == 0
    assert main([*base, "--pretext", "core.lsskd", "--set", "pretext.head_hidden_dim=16",
                 "--run-dir", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--layers",
                 "--max-samples", "40", "--rsa"]) == 0
    out = capsys.readouterr().out
    assert "3 stages: 32, 16, 8" in out and "40 test samples of core.digits" in out
    between = _matrix(out)
    assert between.shape == (3, 3) and _matrix(out, "RSA").shape == (3, 3)
    rows = np.sort(np.random.default_rng(0).permutation(360)[:40])  # the command's subset
    built = [load_exported(tmp_path / r)[1] for r in ("a", "b")]
    stages = [extract_stages(b.encoder, b.dataset, "test", EvalContext()) for b in built]
    ref = _reference_linear_cka(stages[0][0][rows], stages[1][2][rows])
    assert between[0, 2] == pytest.approx(ref, abs=6e-4)  # printed to 3 decimals

    assert main(["compare", str(tmp_path / "a"), "--layers"]) == 0
    within = _matrix(capsys.readouterr().out)
    assert within.shape == (3, 3) and np.allclose(np.diag(within), 1.0)
    assert np.allclose(within, within.T, atol=1e-3)

    assert main(["compare", str(tmp_path / "a")]) == 2
    assert "two runs" in capsys.readouterr().err
