"""The molecular datasets: the RDKit corpus, ChEMBL2321810 and the CSV reader, read
through their real code paths from the files RDKit ships or CSV files written here."""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup.api import SMILES, DatasetSpec, SSLDataset, check_dataset
from selfsup_molecular import chem, chembl, moleculenet
from selfsup_molecular.corpus import NCI_FILE, WEHI_FILE, build_corpus, load_corpus, rdkit_file
from selfsup_molecular.smiles import (
    EMPTY_SMILES,
    INVALID_LABEL,
    INVALID_SMILES,
    MISSING_LABEL,
    TOO_LONG,
    SmilesDataset,
)
from selfsup_molecular.splits import group_split
from selfsup_molecular.tokenizer import tokenize
from selfsup_molecular.views import DEFAULT_VIEWS

VALID = [
    "CC(=O)Nc1ccc(O)cc1",
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "CN1CCC[C@H]1c2cccnc2",
    "O=C(O)c1ccccc1O",
    "CCN(CC)CC(=O)Nc1c(C)cccc1C",
    "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "Clc1ccc(cc1)C(c1ccccc1)N1CCN(CC1)CCOCC(=O)O",
    "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc34)[C@@H]1CC[C@@H]2O",
    "c1ccc2ccccc2c1",
    "C1CCCCC1O",
    "OC1CCNCC1",
    "c1ccncc1C(=O)N",
    "FC(F)(F)c1ccccc1",
    "CCCCO",
    "CC(C)O",
    "Brc1ccc(Br)s1",
    "O=C1CCCN1",
    "c1cc[nH]c1C",
]
TOO_LONG_SMILES = "C" * 200


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def chembl_ds() -> SmilesDataset:
    return chembl.build()


@pytest.fixture(scope="module")
def small() -> SmilesDataset:
    return SmilesDataset([chem.canonical(s) or "" for s in VALID], name="test.small")


# -- corpus ----------------------------------------------------------------------------------
def test_corpus_counts_and_dedup() -> None:
    report = load_corpus()
    n_lines = sum(
        1 for f in (NCI_FILE, WEHI_FILE) for line in rdkit_file(*f).open() if line.strip()
    )
    assert report.read == n_lines
    assert report.read == report.kept + report.invalid + report.too_long + report.duplicates
    assert report.invalid > 0 and report.duplicates > 0 and report.kept > 10_000
    assert len(set(report.smiles)) == len(report.smiles) == report.kept
    for s in report.smiles[:: len(report.smiles) // 40]:
        assert chem.canonical(s) == s
    assert f"kept {report.kept}" in report.summary()


def test_corpus_subset_and_dataset() -> None:
    a, b = load_corpus(100, seed=0), load_corpus(100, seed=0)
    assert a.smiles == b.smiles and len(a) == 100
    assert load_corpus(100, seed=1).smiles != a.smiles
    assert set(a.smiles) <= set(load_corpus().smiles)
    ds = build_corpus(corpus_size=200)
    assert ds.task.kind == "none" and ds.splits == ()
    assert ds.labelled_split("train") is None
    assert len(ds.pretrain_set()) == 200
    with pytest.raises(TypeError, match="unknown option"):
        build_corpus(corpus_sise=10)


# -- ChEMBL2321810 ---------------------------------------------------------------------------
def test_chembl_loads_all_compounds(chembl_ds: SmilesDataset) -> None:
    n_on_disk = sum(1 for line in rdkit_file(*chembl.DATA_DIR, chembl.SMILES_FILE).open()
                    if line.strip())
    assert n_on_disk == 1017
    sizes = {s: chembl_ds.n_labelled(s) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == n_on_disk
    assert chembl_ds.task.kind == "regression"
    for split in sizes:
        y = chembl_ds.labels(split)
        assert y.dtype == np.float32 and np.isfinite(y).all()
        assert y.min() > 4.0 and y.max() < 10.0
    smiles, label = chembl_ds.labelled_split("test")[0]  # type: ignore[index]
    assert isinstance(smiles, str) and label.dtype == torch.float32 and label.ndim == 0


def test_chembl_scaffold_split(chembl_ds: SmilesDataset) -> None:
    n = 1017
    splits = ("train", "val", "test")
    molecules = [m for s in splits for m in chembl_ds.labelled_smiles(s)]
    keys = [chem.murcko_scaffold(m) for m in molecules]
    bounds = np.cumsum([0] + [chembl_ds.n_labelled(s) for s in splits])
    scaf = {s: set(keys[bounds[i] : bounds[i + 1]]) for i, s in enumerate(splits)}
    assert not scaf["train"] & scaf["val"]
    assert not scaf["train"] & scaf["test"]
    assert not scaf["val"] & scaf["test"]
    assert 0.75 * n <= chembl_ds.n_labelled("train") <= 0.8 * n
    assert 0.07 * n <= chembl_ds.n_labelled("val") <= 0.1 * n
    assert 0.07 * n <= chembl_ds.n_labelled("test") <= 0.13 * n
    # deterministic: splitting the molecules again, in this order, gives the same sets
    again = group_split(keys)
    for i, s in enumerate(splits):
        assert again[s].tolist() == list(range(bounds[i], bounds[i + 1]))


def test_chembl_evaluation_molecules_are_not_pretrained_on(chembl_ds: SmilesDataset) -> None:
    pretrain = set(chembl_ds.pretrain_smiles)
    labelled = {m for s in chembl_ds.splits for m in chembl_ds.labelled_smiles(s)}
    assert not pretrain & labelled
    corpus = set(load_corpus().smiles)
    assert chembl_ds.overlap_removed == len(corpus & labelled)
    assert len(pretrain) == len(corpus) - chembl_ds.overlap_removed
    assert f"removing {chembl_ds.overlap_removed}" in chembl_ds.describe()


def test_chembl_random_split_and_fingerprint() -> None:
    a = chembl.build(split="random", seed=0, corpus_size=300)
    b = chembl.build(split="random", seed=0, corpus_size=300)
    c = chembl.build(split="random", seed=1, corpus_size=300)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert [a.n_labelled(s) for s in a.splits] == [814, 102, 101]
    assert len(a.pretrain_set()) == 300


# -- CSV reader ------------------------------------------------------------------------------
def messy_rows() -> list[tuple[str, str]]:
    return [
        *((s, f"{0.1 * i:.2f}") for i, s in enumerate(VALID)),
        ("C1CC", "1.0"),  # unclosed ring
        ("C(C)(C)(C)(C)C", "1.0"),  # pentavalent carbon
        ("", "1.0"),
        (TOO_LONG_SMILES, "1.0"),
        ("CCOCC", ""),  # missing label
        ("CCOC", "n/a"),
        ("CCCOC", "abc"),
    ]


def test_csv_reader_skips_bad_rows_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_csv(tmp_path / "mols.csv", messy_rows(), ("smiles", "logS"))
    with caplog.at_level(logging.WARNING):
        ds = moleculenet.build(path, label_column="logS", split="random")
    assert sum(ds.n_labelled(s) for s in ds.splits) == len(VALID)
    reasons = {s.row: s.reason for s in ds.skipped}
    first_bad = len(VALID) + 2  # line numbers: the header is line 1
    assert reasons == {
        first_bad: INVALID_SMILES,
        first_bad + 1: INVALID_SMILES,
        first_bad + 2: EMPTY_SMILES,
        first_bad + 3: TOO_LONG,
        first_bad + 4: MISSING_LABEL,
        first_bad + 5: MISSING_LABEL,
        first_bad + 6: INVALID_LABEL,
    }
    too_long = next(s for s in ds.skipped if s.reason == TOO_LONG)
    assert "202 tokens > max_length 128" in too_long.detail
    summary = ds.skip_summary()
    assert "skipped 7 row(s)" in summary
    assert f"{INVALID_SMILES}: 2" in summary and f"{MISSING_LABEL}: 2" in summary
    warnings = [r for r in caplog.records if "skipped 7" in r.getMessage()]
    assert len(warnings) == 1
    # pretraining on 'self' uses the train split's molecules only
    assert set(ds.pretrain_smiles) == set(ds.labelled_smiles("train"))


def test_csv_scaffold_split_and_inferred_label_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mols.csv", messy_rows(), ("SMILES", "y"))
    ds = moleculenet.build(path, smiles_column="SMILES")  # one other column: the label
    scaf = [{chem.murcko_scaffold(m) for m in ds.labelled_smiles(s)} for s in ds.splits]
    assert not (scaf[0] & scaf[1] or scaf[0] & scaf[2] or scaf[1] & scaf[2])
    assert ds.split_method == "scaffold"


def test_csv_classification(tmp_path: Path) -> None:
    rows = [(s, str(i % 2)) for i, s in enumerate(VALID)] + [("CCO", "2"), ("CCN", "0.5")]
    ds = moleculenet.build(
        write_csv(tmp_path / "cls.csv", rows, ("smiles", "active")),
        label_column="active", task="classification", split="random",
    )
    assert ds.task.kind == "classification" and ds.task.n_classes == 2
    assert ds.labelled_split("train")[0][1].dtype == torch.long  # type: ignore[index]
    assert set(np.concatenate([ds.labels(s) for s in ds.splits]).tolist()) == {0, 1}
    assert [s.reason for s in ds.skipped] == [INVALID_LABEL, INVALID_LABEL]


def test_csv_missing_column_names_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mols.csv", [("CCO", "1")], ("mol", "activity"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['smiles'\].*\['mol', 'activity'\]"):
        moleculenet.build(path, label_column="activity")
    path.write_text("smiles,a,b\nCCO,1,2\n")
    with pytest.raises(ValueError, match=r"label_column=.*\['smiles', 'a', 'b'\]"):
        moleculenet.build(path)  # two candidate label columns


def test_csv_pretrain_on_corpus_removes_overlap(tmp_path: Path) -> None:
    corpus = load_corpus().smiles
    shared = list(corpus[:3])
    rng = random.Random(0)
    # written as non-canonical SMILES: the overlap is found by canonical form
    rows = [(chem.randomized(s, rng), "1.0") for s in shared]
    rows += [(s, "0.5") for s in VALID if chem.canonical(s) not in set(corpus)]
    ds = moleculenet.build(
        write_csv(tmp_path / "mols.csv", rows, ("smiles", "y")),
        label_column="y", pretrain_on="corpus", split="random",
    )
    assert ds.overlap_removed == 3
    assert not set(shared) & set(ds.pretrain_smiles)
    assert len(ds.pretrain_smiles) == len(corpus) - 3


# -- batches and views -----------------------------------------------------------------------
def test_collate(small: SmilesDataset) -> None:
    pre = small.pretrain_set()
    samples = [pre[i] for i in range(5)]
    batch = small.collate(samples)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = [len(tokenize(s)) + 2 for s in samples]
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert ids.shape == mask.shape == (5, max(lengths))
    assert mask.sum(1).tolist() == lengths
    assert (ids[~mask] == small.tokenizer.pad_id).all()
    assert (ids[:, 0] == small.tokenizer.bos_id).all()
    assert ids[torch.arange(5), torch.tensor(lengths) - 1].eq(small.tokenizer.eos_id).all()
    assert batch["smiles"] == samples
    for row, s in zip(ids, samples):
        assert small.tokenizer.decode(row.tolist()) == s


def test_sample_lengths_match_tokens(small: SmilesDataset) -> None:
    pre = small.pretrain_set()
    lengths = small.sample_lengths()
    assert len(lengths) == len(pre)
    for i in range(len(pre)):
        assert lengths[i] == int(small.collate([pre[i]])["attention_mask"].sum())


def test_augment_views(small: SmilesDataset) -> None:
    pre = small.pretrain_set()
    batch = small.collate([pre[i] for i in range(8)])
    a = small.augment(batch, torch.Generator().manual_seed(0))
    b = small.augment(batch, torch.Generator().manual_seed(0))
    c = small.augment(batch, torch.Generator().manual_seed(1))
    assert a.keys() == batch.keys()
    assert a["input_ids"].shape == a["attention_mask"].shape and a["input_ids"].shape[0] == 8
    assert torch.equal(a["input_ids"], b["input_ids"]) and a["smiles"] == b["smiles"]
    assert a["smiles"] != c["smiles"]
    for view, original in zip(a["smiles"], batch["smiles"]):
        assert chem.canonical(view) == original  # the same molecule, rewritten
    # masking touches ordinary tokens only
    tok = small.tokenizer
    masked = a["input_ids"] == tok.mask_id
    assert masked.any()
    assert not (masked & ~a["attention_mask"]).any()
    assert (a["input_ids"][:, 0] == tok.bos_id).all()
    assert a["attention_mask"].sum().item() == sum(len(tokenize(s)) + 2 for s in a["smiles"])


def test_augment_mask_rate() -> None:
    ds = SmilesDataset(load_corpus(256, seed=0).smiles, views={"mask_prob": 0.3})
    batch = ds.collate(ds.pretrain_set()[i] for i in range(256))
    view = ds.augment(batch, torch.Generator().manual_seed(3))
    ordinary = view["attention_mask"].sum() - 2 * 256
    rate = (view["input_ids"] == ds.tokenizer.mask_id).sum() / ordinary
    assert 0.27 < float(rate) < 0.33
    unmasked = SmilesDataset(ds.pretrain_smiles[:20], views={"mask_prob": 0.0})
    view = unmasked.augment(unmasked.collate(unmasked.pretrain_smiles), torch.Generator())
    for row, s in zip(view["input_ids"], unmasked.pretrain_smiles):
        assert chem.canonical(unmasked.tokenizer.decode(row.tolist())) == s


def test_views_without_randomizing_keep_the_canonical_smiles(small: SmilesDataset) -> None:
    ds = SmilesDataset(small.pretrain_smiles, views={"randomize": False, "mask_prob": 0.3})
    batch = ds.collate(ds.pretrain_smiles[:8])
    view = ds.augment(batch, torch.Generator().manual_seed(0))
    assert view["smiles"] == batch["smiles"]  # the same strings: only masking varies
    masked = view["input_ids"] == ds.tokenizer.mask_id
    assert masked.any()
    assert torch.equal(view["input_ids"][~masked], batch["input_ids"][~masked])


def test_view_options_are_declared_once_and_checked(small: SmilesDataset) -> None:
    assert small.views.mask_prob == 0.15 and small.views.randomize is True
    with pytest.raises(ValueError, match=r"test\.bad views: option mask_prob must be in "
                                         r"\[0, 1\), got 1\.5"):
        SmilesDataset(["CCO"], views={"mask_prob": 1.5}, name="test.bad")
    with pytest.raises(TypeError, match=r"unknown option 'mask_rate'.*did you mean 'mask_prob'"):
        SmilesDataset(["CCO"], views={"mask_rate": 0.2})
    # through the spec: the factory gets the declared views, updated by the user's table
    spec = DatasetSpec("molecular.corpus", build_corpus, (SMILES,), "test",
                       {"corpus_size": 32}, views=DEFAULT_VIEWS)
    assert spec.build(views={"mask_prob": 0.4}).views.mask_prob == 0.4
    with pytest.raises(TypeError, match="unknown view option"):
        spec.build(views={"mask_rate": 0.2})
    with pytest.raises(TypeError, match="unknown option"):
        build_corpus(corpus_size=32, mask_prob=0.2)  # a view option, not a dataset one


def test_augment_falls_back_to_canonical_when_too_long(
    small: SmilesDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chem, "randomized", lambda mol, rng: "C" * 300)
    batch = small.collate(small.pretrain_smiles[:3])
    view = small.augment(batch, torch.Generator().manual_seed(0))
    assert view["smiles"] == batch["smiles"]


def test_pretraining_molecules_too_long_are_skipped() -> None:
    ds = SmilesDataset(["CCO", "CCO", TOO_LONG_SMILES, "c1ccccc1"], max_length=16)
    assert ds.pretrain_smiles == ["CCO", "c1ccccc1"]
    assert [(s.reason, s.smiles) for s in ds.skipped] == [(TOO_LONG, TOO_LONG_SMILES)]
    with pytest.raises(ValueError, match="max_length"):
        SmilesDataset(["CCO"], max_length=2)


def test_labelled_batches_and_input_features(chembl_ds: SmilesDataset) -> None:
    x, y, rows = next(iter(chembl_ds.labelled_batches("val", batch_size=4)))
    assert rows is None and y.shape == (4,) and x["input_ids"].shape[0] == 4
    feats = chembl_ds.input_features(x)
    assert feats.shape == (4, 2048) and feats.dtype == torch.float32 and feats.sum() > 0


def test_randomized_views_change_only_the_padded_length(small: SmilesDataset) -> None:
    """What the conformance kit cannot check: its shape test refuses a view whose
    padded length differs from the batch's, which a randomized SMILES may have."""
    batch = small.collate(small.pretrain_smiles[:8])
    view = small.augment(batch, torch.Generator().manual_seed(0))
    assert view.keys() == batch.keys() and len(view["smiles"]) == 8
    for key in ("input_ids", "attention_mask"):
        assert view[key].dtype == batch[key].dtype and view[key].shape[0] == 8
    assert view["input_ids"].shape[1] == int(view["attention_mask"].sum(1).max())


def test_conformance_kit_accepts_the_datasets(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mols.csv", messy_rows(), ("smiles", "y"))
    masking_only = {"randomize": False}  # see test_randomized_views_change_only_the_padded_length
    for key, factory, options in (
        ("molecular.csv", moleculenet.build, {"path": path, "split": "random"}),
        ("molecular.corpus", build_corpus, {"corpus_size": 64}),
    ):
        spec = DatasetSpec(key, factory, (SMILES,), "test", options, views=DEFAULT_VIEWS)
        ds = check_dataset(spec, views=masking_only)
        assert isinstance(ds, SSLDataset)
        # the registry stamps the spec's name, modality and offline status on the dataset
        assert (ds.name, ds.modality, ds.offline) == (key, SMILES, True)
