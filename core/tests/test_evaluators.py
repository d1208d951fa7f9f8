"""Tests of core's generic evaluators (selfsup.evaluators) on tiny in-memory data.

Datasets are numpy arrays wrapped in the SSLDataset contract: scikit-learn's
digits (informative features, 10 classes), Gaussian blobs (separable clusters),
pure noise with random labels (nothing to find), a linear regression target,
and a node-style dataset whose ``labelled_batches`` yields one whole "graph"
and the rows of its labelled nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import TensorDataset

from selfsup.components import EvalContext, SSLDataset, TaskSpec
from selfsup.evaluators import cka, finetune, kmeans, knn, linear_probe, ood
from selfsup.evaluators.cka import linear_cka
from selfsup.evaluators.embeddings import (
    carve_validation,
    extract_embeddings,
    fraction_suffix,
    stratified_subset,
    summarise_seeds,
)
from selfsup.evaluators.finetune import train_supervised
from selfsup.evaluators.knn import knn_accuracy
from selfsup.evaluators.ood import auroc, fpr_at_95_tpr, knn_distance, mahalanobis_distance


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run BLAS and torch on one thread: these problems are tiny, and on a shared
    two-core machine spinning worker threads made a 0.02 s fit take 0.5 s."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(torch_threads)


# -- tiny datasets and encoders -------------------------------------------------------

Parts = dict[str, tuple[np.ndarray, np.ndarray]]


class ArrayDataset(SSLDataset):
    """Labelled splits held as arrays; items are ``(x, y)`` like a TensorDataset."""

    name = "arrays"
    modality = "vector"

    def __init__(self, parts: Parts, task: TaskSpec) -> None:
        self.task = task
        self.splits = tuple(parts)
        self._parts = {
            split: TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y))
            for split, (x, y) in parts.items()
        }

    def pretrain_set(self) -> TensorDataset:
        return TensorDataset(self._parts["train"].tensors[0])

    def labelled_split(self, split: str) -> TensorDataset | None:
        return self._parts.get(split)

    def labels(self, split: str) -> np.ndarray:  # the same values as the default, faster
        return self._require_split(split).tensors[1].numpy()  # type: ignore[attr-defined,no-any-return]


def split_three(x: np.ndarray, y: np.ndarray, n_train: int, n_val: int) -> Parts:
    return {
        "train": (x[:n_train], y[:n_train]),
        "val": (x[n_train : n_train + n_val], y[n_train : n_train + n_val]),
        "test": (x[n_train + n_val :], y[n_train + n_val :]),
    }


def digits_dataset(*, with_val: bool = True) -> ArrayDataset:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    parts = split_three(x, y, 1000, 300)
    if not with_val:
        del parts["val"]
    return ArrayDataset(parts, TaskSpec("classification", n_classes=10))


def blobs_dataset(
    n_classes: int = 4, dim: int = 16, *, random_labels: bool = False
) -> ArrayDataset:
    x, y = make_blobs(
        n_samples=600,
        centers=n_classes,
        n_features=dim,
        cluster_std=1.0,
        center_box=(-10.0, 10.0),
        random_state=0,
    )
    if random_labels:
        y = np.random.default_rng(1).integers(0, n_classes, size=len(y))
    return ArrayDataset(
        split_three(x, y, 300, 100), TaskSpec("classification", n_classes=n_classes)
    )


def noise_dataset(n_classes: int = 4) -> ArrayDataset:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(800, 32))
    y = rng.integers(0, n_classes, size=800)
    return ArrayDataset(
        split_three(x, y, 400, 200), TaskSpec("classification", n_classes=n_classes)
    )


def regression_dataset() -> ArrayDataset:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 8))
    y = x @ rng.normal(size=8) + 3.0 + 0.01 * rng.normal(size=600)
    return ArrayDataset(split_three(x, y, 300, 100), TaskSpec("regression"))


class IdentityEncoder(nn.Module):
    """Embeds a sample as its own features; records the mode it was called in."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed_dim = dim
        self.modes_seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes_seen.append(self.training)
        return x.float()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)



class LinearEncoder(nn.Module):
    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.embed_dim = dim
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)



def ctx(seeds: tuple[int, ...] = (0, 1), **kwargs: Any) -> EvalContext:
    return EvalContext(device="cpu", seeds=seeds, batch_size=128, **kwargs)


# -- extract_embeddings ---------------------------------------------------------------


class NodeDataset(SSLDataset):
    """One graph of 12 nodes; each split labels some of them, as node datasets do.

    ``labelled_batches`` yields the whole graph (features of every node) and the
    rows of the split's labelled nodes, so an encoder that mixes nodes would see
    its neighbours. Labels are ``10 * node``, so a wrong row shows up.
    """

    name = "nodes"
    modality = "graph.node"
    task = TaskSpec("classification", n_classes=120)
    nodes: ClassVar[dict[str, list[int]]] = {
        "train": [1, 3, 5, 7, 9, 11],
        "val": [0, 2],
        "test": [10, 4, 6, 8],
    }

    def __init__(self) -> None:
        self.x = torch.arange(12 * 3, dtype=torch.float32).reshape(12, 3)

    def pretrain_set(self) -> TensorDataset:
        return TensorDataset(self.x)

    def labels(self, split: str) -> np.ndarray:
        return 10 * np.asarray(self.nodes[split])

    def labelled_batches(
        self,
        split: str,
        batch_size: int,
        *,
        indices: Sequence[int] | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor | None]]:
        nodes = torch.as_tensor(self.nodes[split])
        if indices is not None:
            nodes = nodes[torch.as_tensor(list(indices), dtype=torch.long)]
        yield self.x, 10 * nodes, nodes


def test_extract_embeddings_respects_rows_of_a_node_style_dataset() -> None:
    dataset, encoder = NodeDataset(), IdentityEncoder(3)
    z, y = extract_embeddings(encoder, dataset, "test", ctx())
    np.testing.assert_array_equal(z, dataset.x[[10, 4, 6, 8]].numpy())
    np.testing.assert_array_equal(y, [100, 40, 60, 80])
    z_sub, y_sub = extract_embeddings(encoder, dataset, "train", ctx(), indices=[4, 0])
    np.testing.assert_array_equal(z_sub, dataset.x[[9, 1]].numpy())
    np.testing.assert_array_equal(y_sub, [90, 10])


def test_extract_embeddings_runs_in_eval_mode_without_grad_and_restores_mode() -> None:
    dataset = digits_dataset()
    encoder = IdentityEncoder(64)
    encoder.train()
    z, y = extract_embeddings(encoder, dataset, "val", ctx())
    assert z.shape == (300, 64) and z.dtype == np.float32 and y.shape == (300,)
    assert encoder.modes_seen and not any(encoder.modes_seen)  # eval mode during extraction
    assert encoder.training  # and train mode again afterwards
    linear = LinearEncoder(64, 8).eval()
    z_lin, _ = extract_embeddings(linear, dataset, "val", ctx(), indices=range(5))
    assert z_lin.shape == (5, 8)
    assert not linear.training  # eval stays eval


def test_extract_embeddings_rejects_mismatched_rows() -> None:
    class BadRows(NodeDataset):
        def labelled_batches(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            yield self.x, torch.arange(3), torch.arange(5)  # 5 rows, 3 labels

    with pytest.raises(ValueError, match="rows"):
        extract_embeddings(IdentityEncoder(3), BadRows(), "test", ctx())


# -- splits, fractions and summaries --------------------------------------------------


def test_stratified_subset_keeps_one_example_per_class_at_one_percent() -> None:
    y = np.repeat(np.arange(10), 100)
    y = np.concatenate([y, np.full(5, 10)])  # a rare 11th class of 5 examples
    subset = stratified_subset(y, 0.01, seed=0)
    counts = np.bincount(y[subset], minlength=11)
    assert (counts == 1).all()  # 1% of 100 is 1, and the rare class still keeps one
    ten = stratified_subset(y, 0.1, seed=0)
    assert (np.bincount(y[ten])[:10] == 10).all()
    assert not np.array_equal(ten, stratified_subset(y, 0.1, seed=1))  # seeded
    np.testing.assert_array_equal(ten, stratified_subset(y, 0.1, seed=0))
    assert len(stratified_subset(y, 0.1, seed=0, stratify=False)) == 101  # 100.5, half up
    np.testing.assert_array_equal(stratified_subset(y, 1.0, seed=3), np.arange(len(y)))


def test_carve_validation_is_stratified_and_leaves_every_class_in_fit() -> None:
    y = np.concatenate([np.repeat(np.arange(3), 50), [3]])  # class 3 has a single example
    fit, val = carve_validation(y, seed=0, fraction=0.2)
    assert set(fit).isdisjoint(val) and len(fit) + len(val) == len(y)
    assert list(np.bincount(y[val], minlength=4)) == [10, 10, 10, 0]
    assert set(y[fit]) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="'val' split"):
        carve_validation(np.arange(3), seed=0)  # three singleton classes: nothing to spare


def test_fraction_suffix_and_summary_keys() -> None:
    assert [fraction_suffix(f) for f in (1.0, 0.1, 0.05, 0.01, 0.005)] == [
        "",
        "@10%",
        "@5%",
        "@1%",
        "@0.5%",
    ]
    summary = summarise_seeds([{"m.a": 1.0}, {"m.a": 3.0}])
    assert summary == {"m.a": 2.0, "m.a_std": pytest.approx(math.sqrt(2.0))}
    assert summarise_seeds([{"m.a": 1.0}]) == {"m.a": 1.0}  # one seed: no spread to report


# -- linear probe ---------------------------------------------------------------------

FAST_GRID = {"c_grid": (0.01, 0.1, 1.0)}


def test_linear_probe_on_informative_features_beats_chance_widely() -> None:
    metrics = linear_probe.build(**FAST_GRID)(IdentityEncoder(64), digits_dataset(), ctx())
    assert metrics["linear_probe.accuracy"] > 0.9  # chance is 0.1
    assert metrics["linear_probe.f1_macro"] > 0.9
    assert metrics["linear_probe.accuracy_std"] == 0.0  # a real val split and L-BFGS: no noise
    assert metrics["linear_probe.n_train"] == 1000


def multilabel_dataset(informative: bool) -> ArrayDataset:
    """Five tags per sample, each a linear threshold of the features (or of noise)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(900, 16))
    source = x if informative else rng.normal(size=x.shape)
    y = (source @ rng.normal(size=(16, 5)) > 0.5).astype(np.int64)
    return ArrayDataset(split_three(x, y, 500, 200), TaskSpec("multilabel", n_classes=5))


def test_linear_probe_on_multilabel_targets_reports_mean_average_precision() -> None:
    probe = linear_probe.build(**FAST_GRID, label_fractions=[1.0, 0.1])
    good = probe(IdentityEncoder(16), multilabel_dataset(informative=True), ctx())
    bad = probe(IdentityEncoder(16), multilabel_dataset(informative=False), ctx())
    assert good["linear_probe.map"] > 0.9 and good["linear_probe.f1_macro"] > 0.8
    # tags independent of the features: AP falls to about the tags' base rate
    assert bad["linear_probe.map"] < 0.5
    assert good["linear_probe.map@10%"] < good["linear_probe.map"]
    assert good["linear_probe.n_train@10%"] == 50


def test_linear_probe_on_uninformative_features_is_near_chance() -> None:
    metrics = linear_probe.build(**FAST_GRID)(IdentityEncoder(32), noise_dataset(), ctx())
    assert metrics["linear_probe.accuracy"] < 0.4  # chance is 0.25


def test_linear_probe_label_fractions_carve_val_and_report_per_fraction() -> None:
    dataset = digits_dataset(with_val=False)  # forces the seeded validation carve
    evaluator = linear_probe.build(label_fractions=[0.1, 1.0], **FAST_GRID)  # a list, as TOML
    metrics = evaluator(IdentityEncoder(64), dataset, ctx())
    means = {f"linear_probe.{m}{s}" for m in ("accuracy", "f1_macro") for s in ("", "@10%")}
    counts = {"linear_probe.n_train", "linear_probe.n_train@10%"}
    assert set(metrics) == means | {f"{key}_std" for key in means} | counts
    # 20% of each class (rounded half up) went to validation, then 10% of each class remain
    per_class = np.bincount(dataset.labels("train"))
    fit = per_class - np.floor(0.2 * per_class + 0.5)
    assert metrics["linear_probe.n_train"] == fit.sum() == pytest.approx(800, abs=5)
    assert metrics["linear_probe.n_train@10%"] == np.floor(0.1 * fit + 0.5).sum()
    assert 0.7 < metrics["linear_probe.accuracy@10%"] < metrics["linear_probe.accuracy"]
    assert metrics["linear_probe.accuracy_std"] > 0.0  # the carved split differs per seed


def test_linear_probe_regression_uses_ridge_and_fits_a_linear_target() -> None:
    metrics = linear_probe.build()(IdentityEncoder(8), regression_dataset(), ctx())
    assert metrics["linear_probe.r2"] > 0.99
    assert metrics["linear_probe.rmse"] < 0.05 and metrics["linear_probe.mae"] < 0.05
    assert "linear_probe.accuracy" not in metrics


def test_linear_probe_reports_roc_auc_for_binary_tasks_only() -> None:
    separable = linear_probe.build(**FAST_GRID)(IdentityEncoder(16), blobs_dataset(2), ctx())
    assert separable["linear_probe.roc_auc"] > 0.99
    assert "linear_probe.roc_auc_std" in separable
    noise = linear_probe.build(**FAST_GRID)(IdentityEncoder(32), noise_dataset(2), ctx())
    assert 0.35 < noise["linear_probe.roc_auc"] < 0.65  # chance is 0.5
    multiclass = linear_probe.build(**FAST_GRID)(IdentityEncoder(16), blobs_dataset(4), ctx())
    assert not any("roc_auc" in key for key in multiclass)


def test_binary_roc_auc_ranks_scores_and_is_nan_for_one_class() -> None:
    y = np.array([0, 0, 1, 1])
    assert linear_probe.binary_roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert linear_probe.binary_roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert linear_probe.binary_roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1]), positive=0) == 1.0
    assert math.isnan(linear_probe.binary_roc_auc(np.ones(4), np.arange(4.0)))


# -- kNN ------------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["temperature", "majority"])
def test_knn_on_separable_blobs_is_perfect(weighting: str) -> None:
    metrics = knn.build(weighting=weighting)(IdentityEncoder(16), blobs_dataset(), ctx())
    assert metrics == {"knn.accuracy": 1.0}


def test_knn_temperature_weighting_trusts_the_closest_neighbour() -> None:
    # One training point almost on the query (class 0), two farther ones (class 1).
    z_train = np.array([[1.0, 0.02], [0.8, 0.6], [0.8, -0.6]])
    y_train = np.array([0, 1, 1])
    query, label = np.array([[1.0, 0.0]]), np.array([0])
    assert knn_accuracy(z_train, y_train, query, label, k=3, temperature=0.05) == 1.0
    assert knn_accuracy(z_train, y_train, query, label, k=3, weighting="majority") == 0.0
    # k above the bank size is clamped; labels need not be contiguous; tiny temperatures
    # do not overflow
    assert knn_accuracy(z_train, y_train + 7, query, label + 7, k=50, temperature=1e-4) == 1.0


def test_knn_accuracy_accepts_tensors_for_online_monitoring() -> None:
    x, y = make_blobs(n_samples=200, centers=3, n_features=8, random_state=0)
    z, labels = torch.as_tensor(x), torch.as_tensor(y)
    assert knn_accuracy(z[:150], labels[:150], z[150:], labels[150:], k=5) == 1.0


def test_knn_refuses_regression() -> None:
    with pytest.raises(ValueError, match=r"classification.*linear_probe"):
        knn.build()(IdentityEncoder(8), regression_dataset(), ctx())


# -- k-means --------------------------------------------------------------------------


def test_kmeans_recovers_separable_blobs() -> None:
    metrics = kmeans.build(n_init=3)(IdentityEncoder(16), blobs_dataset(), ctx())
    assert metrics["kmeans.nmi"] > 0.95 and metrics["kmeans.ari"] > 0.95
    assert {"kmeans.nmi_std", "kmeans.ari_std"} <= set(metrics)


def test_kmeans_against_random_labels_scores_near_zero() -> None:
    evaluator = kmeans.build(n_init=3, split="all", l2_normalize=False)
    metrics = evaluator(IdentityEncoder(16), blobs_dataset(random_labels=True), ctx())
    assert abs(metrics["kmeans.ari"]) < 0.02
    assert metrics["kmeans.nmi"] < 0.02


# -- CKA ------------------------------------------------------------------------------


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Reference: CKA from Gram matrices, HSIC(K, L) = tr(K H L H) / (n - 1)^2."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_identity_invariances_and_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 10))
    y = x @ rng.normal(size=(10, 6)) + 0.5 * rng.normal(size=(50, 6))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 2.0) == pytest.approx(1.0)  # rotation, scale, shift
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), rel=1e-9)
    assert linear_cka(x @ q, 0.1 * y) == pytest.approx(linear_cka(x, y))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))  # symmetric
    stretch = x * np.linspace(0.1, 10.0, 10)  # an anisotropic, invertible map changes CKA
    assert linear_cka(x, stretch) < 0.9
    assert linear_cka(torch.as_tensor(x), torch.as_tensor(x)) == pytest.approx(1.0)
    assert math.isnan(linear_cka(x, np.ones((50, 3))))  # a collapsed representation


def test_cka_evaluator_compares_with_a_fresh_encoder() -> None:
    dataset = digits_dataset()
    same = cka.build()(
        IdentityEncoder(64), dataset, ctx(encoder_factory=lambda: IdentityEncoder(64))
    )
    assert same["cka.vs_random_init"] == pytest.approx(1.0)
    assert same["cka.vs_random_init_std"] == pytest.approx(0.0, abs=1e-12)
    moved = cka.build()(
        LinearEncoder(64, 16), dataset, ctx(encoder_factory=lambda: LinearEncoder(64, 16))
    )
    assert 0.0 < moved["cka.vs_random_init"] < 1.0
    assert moved["cka.vs_random_init_std"] > 0.0  # each seed draws another initialisation


def test_cka_without_encoder_factory_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="encoder_factory"):
        cka.build()(IdentityEncoder(64), digits_dataset(), ctx())


# -- fine-tuning ----------------------------------------------------------------------

QUICK_FT = {"epochs": 10, "lr": 3e-2, "batch_size": 64, "min_steps": 0}


def test_finetune_improves_on_the_random_init_linear_probe() -> None:
    dataset = digits_dataset()
    torch.manual_seed(0)
    encoder = LinearEncoder(64, 4)  # a random 4-d projection: a poor frozen representation
    before = encoder.proj.weight.detach().clone()
    probe = linear_probe.build(**FAST_GRID)(encoder, dataset, ctx(seeds=(0,)))
    tuned = finetune.build(label_fractions=(1.0,), **QUICK_FT)(encoder, dataset, ctx(seeds=(0,)))
    assert tuned["finetune.accuracy"] > probe["linear_probe.accuracy"] + 0.2  # ~0.91 vs ~0.60
    assert tuned["finetune.accuracy"] > 0.85
    assert torch.equal(encoder.proj.weight, before)  # the encoder given is left alone


def test_finetune_one_percent_keeps_one_example_per_class() -> None:
    dataset = digits_dataset()
    evaluator = finetune.build(label_fractions=(0.01, 0.1), epochs=2, min_steps=4)
    metrics = evaluator(LinearEncoder(64, 8), dataset, ctx())
    assert metrics["finetune.n_train@1%"] == 10  # 1% of ~100 per class rounds to 1 each
    per_class = np.bincount(dataset.labels("train"))
    assert metrics["finetune.n_train@10%"] == np.floor(0.1 * per_class + 0.5).sum()
    assert {"finetune.accuracy@1%", "finetune.accuracy@1%_std", "finetune.f1_macro@10%"} <= set(
        metrics
    )
    assert metrics["finetune.accuracy@1%"] > 0.1  # ten labels still beat chance


def test_finetune_regression_path() -> None:
    metrics = finetune.build(label_fractions=(1.0,), **QUICK_FT)(
        LinearEncoder(8, 8), regression_dataset(), ctx(seeds=(0,))
    )
    assert metrics["finetune.r2"] > 0.95
    assert {"finetune.rmse", "finetune.mae"} <= set(metrics)
    assert "finetune.r2_std" not in metrics  # one seed: no spread


def test_train_supervised_is_a_seeded_copy_and_leaves_global_rng_alone() -> None:
    dataset = digits_dataset()
    encoder = LinearEncoder(64, 8)
    kwargs: dict[str, Any] = {"epochs": 2, "lr": 1e-2, "weight_decay": 0.0, "batch_size": 64}
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = train_supervised(encoder, dataset, ctx(), seed=7, val_split="val", **kwargs)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's stream did not move
    second = train_supervised(encoder, dataset, ctx(), seed=7, indices=range(1000), **kwargs)
    other = train_supervised(encoder, dataset, ctx(), seed=8, **kwargs)
    assert first is not encoder and not first.training

    def weight(module: nn.Module) -> torch.Tensor:
        assert isinstance(module, LinearEncoder)
        return module.proj.weight

    assert not torch.equal(weight(first), weight(encoder))
    # Same seed, same data: the same weights (model selection aside, both ran 2 rounds).
    third = train_supervised(encoder, dataset, ctx(), seed=7, **kwargs)
    assert torch.equal(weight(second), weight(third))
    assert not torch.equal(weight(other), weight(third))


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize("module", [linear_probe, knn, kmeans, finetune, cka])
def test_unknown_option_lists_the_valid_ones(module: Any) -> None:
    with pytest.raises(TypeError, match=r"unknown option 'splitt'.*valid options are "):
        module.build(splitt="test")


def test_close_misspelling_gets_a_suggestion() -> None:
    with pytest.raises(TypeError, match="did you mean 'temperature'"):
        knn.build(temprature=0.1)


@pytest.mark.parametrize(
    ("module", "options", "field"),
    [
        (linear_probe, {"label_fractions": (0.0,)}, "label_fractions"),
        (linear_probe, {"label_fractions": (1.5, 0.1)}, "label_fractions"),
        (linear_probe, {"c_grid": ()}, "c_grid"),
        (linear_probe, {"val_fraction": 1.0}, "val_fraction"),
        (knn, {"k": 0}, "k"),
        (knn, {"k": 2.5}, "k"),
        (knn, {"weighting": "cosine"}, "weighting"),
        (knn, {"temperature": -1}, "temperature"),
        (kmeans, {"n_clusters": 0}, "n_clusters"),
        (kmeans, {"l2_normalize": "yes"}, "l2_normalize"),
        (finetune, {"lr": 0}, "lr"),
        (finetune, {"epochs": True}, "epochs"),
        (finetune, {"weight_decay": -0.1}, "weight_decay"),
        (finetune, {"label_fractions": "all"}, "label_fractions"),
        (cka, {"split": ""}, "split"),
    ],
)
def test_bad_option_values_name_the_field(module: Any, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"option {field} "):
        module.build(**options)


def test_missing_split_is_named() -> None:
    with pytest.raises(ValueError, match="no labelled split 'holdout'"):
        kmeans.build(split="holdout")(IdentityEncoder(16), blobs_dataset(), ctx())


def test_finetune_reports_roc_auc_for_binary_tasks() -> None:
    evaluate = finetune.build(label_fractions=[1.0], epochs=10, min_steps=300, lr=1e-2)
    metrics = evaluate(LinearEncoder(16, 4), blobs_dataset(2), ctx())
    assert metrics["finetune.roc_auc"] > 0.95
    assert "finetune.roc_auc_std" in metrics
    multiclass = evaluate(LinearEncoder(16, 4), blobs_dataset(3), ctx())
    assert not any("roc_auc" in key for key in multiclass)


# -- core.ood: held-out classes scored by kNN and Mahalanobis distance ------------------


def test_separated_held_out_classes_are_detected() -> None:
    metrics = ood.build(ood_fraction=0.25)(IdentityEncoder(16), blobs_dataset(), ctx())
    for score in ("knn", "mahalanobis"):
        assert metrics[f"ood.{score}_auroc"] > 0.95
        assert metrics[f"ood.{score}_fpr95"] < 0.1


def test_features_unrelated_to_the_classes_detect_nothing() -> None:
    metrics = ood.build(ood_fraction=0.25)(IdentityEncoder(32), noise_dataset(), ctx())
    for score in ("knn", "mahalanobis"):
        assert 0.35 < metrics[f"ood.{score}_auroc"] < 0.65
        assert metrics[f"ood.{score}_fpr95"] > 0.8


def test_a_constant_encoder_detects_nothing_and_does_not_crash() -> None:
    from selfsup.baselines import Constant

    ds = blobs_dataset()
    metrics = ood.build()(Constant(ds), ds, ctx(seeds=(0,)))
    assert metrics["ood.knn_auroc"] == 0.5 and metrics["ood.mahalanobis_auroc"] == 0.5


def test_scores_against_loop_references() -> None:
    rng = np.random.default_rng(0)
    memory, queries = rng.normal(size=(30, 5)), rng.normal(size=(7, 5))
    labels = rng.integers(0, 3, size=30)
    k = 3
    for q, got in zip(queries, knn_distance(memory, queries, k)):
        sims = sorted((float(q @ m / np.linalg.norm(q) / np.linalg.norm(m)) for m in memory),
                      reverse=True)
        assert got == pytest.approx(1 - sims[k - 1])
    means = {c: memory[labels == c].mean(0) for c in range(3)}
    centred = np.stack([m - means[c] for m, c in zip(memory, labels)])
    cov = centred.T @ centred / len(memory)
    cov += 1e-3 * np.trace(cov) / 5 * np.eye(5)
    inv = np.linalg.inv(cov)
    for q, got in zip(queries, mahalanobis_distance(memory, labels, queries, 1e-3)):
        assert got == pytest.approx(min((q - m) @ inv @ (q - m) for m in means.values()))
    # AUROC: share of (OOD, ID) pairs ordered correctly; FPR@95: OOD under the 95% ID cut
    # OOD 3.0 beats ID 1, 2 and ties 3 (2.5 of 3); OOD 4.0 beats all three: 5.5 of 6 pairs
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(5.5 / 6)
    ids = np.arange(100.0)
    assert fpr_at_95_tpr(np.array([10.0, 94.0, 96.0, 200.0]), ids) == 0.5


def test_named_held_out_classes_and_bad_options() -> None:
    metrics = ood.build(ood_classes=[0])(IdentityEncoder(16), blobs_dataset(), ctx(seeds=(0,)))
    assert metrics["ood.knn_auroc"] > 0.95 and "ood.knn_auroc_std" not in metrics
    with pytest.raises(ValueError, match=r"ood_classes \[7\] are not classes"):
        ood.build(ood_classes=[7])(IdentityEncoder(16), blobs_dataset(), ctx())
    with pytest.raises(ValueError, match="option ood_fraction must be in \\(0, 1\\)"):
        ood.build(ood_fraction=1.5)
    with pytest.raises(TypeError, match="unknown option 'kk'"):
        ood.build(kk=3)
