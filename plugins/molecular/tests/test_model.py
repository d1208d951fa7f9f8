"""Tests of the model half: the MoLFormer encoder, the MLM and MTR pretexts, the
fixed-feature baselines and the random-forest evaluator, on a few real molecules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.api import BaselineContext, EvalContext, TaskSpec, Tokens
from selfsup_molecular import baselines, features
from selfsup_molecular.evaluators import random_forest
from selfsup_molecular.molformer import (
    MolFormerConfig,
    MolFormerEncoder,
    RotaryLinearAttention,
    apply_rotary,
    feature_map,
    rotary_angles,
    rotary_linear_attention,
)
from selfsup_molecular.molformer import build as build_molformer
from selfsup_molecular.pretexts import mlm, mtr
from selfsup_molecular.smiles import SmilesDataset

MOLECULES = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",  # caffeine
    "CCO",
    "c1ccc2c(c1)[nH]c1ccccc12",
    "CCN(CC)CCNC(=O)c1cc(Cl)c(N)cc1OC",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",  # ibuprofen
    "OC(=O)CCCCC",
    "c1ccncc1",
    "CC(C)(C)OC(=O)N1CCC(CC1)C(=O)O",
    "COc1ccc2[nH]cc(CCN)c2c1",
    "Nc1ccc(cc1)S(=O)(=O)N",
    "C1CCCCC1",
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol
    "ClC(Cl)Cl",
    "O=C(O)c1ccccc1O",
    "CCCCCCCCCC",
]
TINY: dict[str, Any] = {"embed_dim": 16, "n_layers": 2, "n_heads": 2, "ffn_dim": 32, "dropout": 0.0}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def unlabelled() -> SmilesDataset:
    return SmilesDataset(MOLECULES, max_length=64)


def labelled(kind: str) -> SmilesDataset:
    """Heavy-atom count as the target (regression), or "more than 9 heavy atoms"."""
    from rdkit import Chem

    counts = np.array([Chem.MolFromSmiles(s).GetNumHeavyAtoms() for s in MOLECULES], float)
    y = counts if kind == "regression" else (counts > 9).astype(float)
    task = TaskSpec("regression") if kind == "regression" else TaskSpec("classification", 2)
    order = np.arange(len(MOLECULES))
    parts = {"train": order[:10], "val": order[10:12], "test": order[12:]}
    split = {k: ([MOLECULES[i] for i in v], y[v]) for k, v in parts.items()}
    return SmilesDataset(MOLECULES, labelled=split, task=task, max_length=64)


def tiny_encoder(dataset: SmilesDataset, **overrides: Any) -> MolFormerEncoder:
    torch.manual_seed(0)
    return build_molformer(dataset, **{**TINY, **overrides})


# -- rotary embeddings and linear attention ---------------------------------------------


def test_rotary_dot_products_depend_on_relative_position_only() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g)

    def score(m: float, n: float) -> float:
        cos_m, sin_m = rotary_angles(torch.tensor([m]), 8)
        cos_n, sin_n = rotary_angles(torch.tensor([n]), 8)
        return float((apply_rotary(a, cos_m, sin_m) * apply_rotary(b, cos_n, sin_n)).sum())

    assert score(3, 7) == pytest.approx(score(10, 14), abs=1e-5)  # same offset 4
    assert score(0, 0) == pytest.approx(float((a * b).sum()), abs=1e-5)  # no rotation
    assert abs(score(3, 7) - score(3, 4)) > 1e-3  # different offset, different score


def test_attention_is_invariant_to_shifting_all_positions_but_not_to_order() -> None:
    torch.manual_seed(0)
    attn = RotaryLinearAttention(MolFormerConfig(**TINY)).eval()
    x = torch.randn(2, 6, 16)
    base = attn(x, None)
    shifted = attn(x, None, positions=torch.arange(6) + 17)
    torch.testing.assert_close(base, shifted, atol=1e-4, rtol=1e-4)  # relative, not absolute
    swapped = attn(x[:, [1, 0, 2, 3, 4, 5]], None)[:, [1, 0, 2, 3, 4, 5]]
    assert not torch.allclose(base, swapped, atol=1e-3)  # token order matters


def test_linear_attention_matches_the_quadratic_reference() -> None:
    g = torch.Generator().manual_seed(1)
    b, h, length, d = 2, 3, 7, 8
    q, k, v = (torch.randn(b, h, length, d, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 4:] = False
    cos, sin = rotary_angles(torch.arange(length), d)
    cos, sin = cos.double(), sin.double()
    fast = rotary_linear_attention(q, k, v, mask, cos, sin, eps=0.0)

    # O(L^2): the full score matrix, padded keys removed by the mask
    phi_q, phi_k = feature_map(q), feature_map(k)
    scores = apply_rotary(phi_q, cos, sin) @ apply_rotary(phi_k, cos, sin).transpose(-1, -2)
    norm = phi_q @ phi_k.transpose(-1, -2)
    keep = mask[:, None, None, :].double()
    reference = (scores * keep) @ v / (norm * keep).sum(-1, keepdim=True)
    torch.testing.assert_close(fast, reference, atol=1e-10, rtol=1e-10)


# -- the encoder ---------------------------------------------------------------------------


def test_padding_does_not_change_a_molecules_embedding() -> None:
    dataset = unlabelled()
    encoder = tiny_encoder(dataset).eval()
    short, long = "CCO", "CCN(CC)CCNC(=O)c1cc(Cl)c(N)cc1OC"
    with torch.no_grad():
        alone = encoder(dataset.collate([short]))
        batch = dataset.collate([long, short])
        padded = encoder(batch)
        assert (~batch["attention_mask"][1]).sum() > 10  # the short one is heavily padded
    torch.testing.assert_close(padded[1:], alone, atol=1e-5, rtol=1e-5)


def test_encoder_shapes_defaults_and_faces() -> None:
    dataset = unlabelled()
    encoder = build_molformer(dataset)
    assert encoder.embed_dim == 128 and len(encoder.blocks) == 4
    assert encoder.token_embedding.num_embeddings == dataset.tokenizer.vocab_size
    batch = dataset.collate(MOLECULES[:4])
    encoder.eval()
    with torch.no_grad():
        tokens = encoder.tokens(batch)
        z = encoder.embed(batch)
        assert torch.equal(encoder(batch), z)  # forward is the first face, embedding
    assert isinstance(tokens, Tokens)
    assert tokens.states.shape == (*batch["input_ids"].shape, 128)
    assert torch.equal(tokens.mask, batch["attention_mask"])
    assert tokens.flat().shape == (int(batch["attention_mask"].sum()), 128)
    assert z.shape == (4, 128) and torch.isfinite(z).all()
    # the embedding is the mean of the real tokens' states
    torch.testing.assert_close(z, MolFormerEncoder.pool(tokens.states, tokens.mask))


def test_masked_tokens_reads_hidden_tokens_as_mask_and_hides_their_content() -> None:
    dataset = unlabelled()
    encoder = tiny_encoder(dataset).eval()
    batch = dataset.collate(MOLECULES[:4])
    ids, real = batch["input_ids"], batch["attention_mask"]
    hide = torch.zeros_like(real)
    hide[:, 2:5] = True
    hide &= real
    with torch.no_grad():
        torch.testing.assert_close(encoder.masked_tokens(batch, torch.zeros_like(real)).states,
                                   encoder.tokens(batch).states)
        out = encoder.masked_tokens(batch, hide)
        explicit = encoder.tokens({**batch, "input_ids": ids.masked_fill(
            hide, dataset.tokenizer.mask_id)})
        other = encoder.masked_tokens({**batch, "input_ids": ids.masked_fill(hide, 7)}, hide)
    assert torch.equal(out.mask, real)
    torch.testing.assert_close(out.states, explicit.states)
    torch.testing.assert_close(other.states[real], out.states[real])  # content hidden
    with pytest.raises(ValueError, match="hide must be bool"):
        encoder.masked_tokens(batch, hide[:, :3])


def test_core_jepa_trains_the_molformer_on_padded_smiles() -> None:
    from selfsup.api import Registry, check_pretext

    dataset = unlabelled()
    spec = Registry(plugins=[], strict=True).get("pretext", "core.jepa")
    small = {"predictor_dim": 16, "predictor_depth": 1, "predictor_heads": 2}
    check_pretext(spec, tiny_encoder(dataset), dataset, **small)
    encoder = tiny_encoder(dataset)
    task = spec.build(encoder, dataset, **small)
    batch = dataset.collate(MOLECULES)
    out = task(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and 0 < out["hidden"].item() < 1
    assert out["embedding"].shape == (len(MOLECULES), 16)


def test_encoder_options_are_validated_with_the_fix() -> None:
    with pytest.raises(ValueError, match="even width"):
        build_molformer(unlabelled(), embed_dim=12, n_heads=4)  # head width 3
    with pytest.raises(TypeError, match="did you mean 'n_layers'"):
        build_molformer(unlabelled(), n_layer=2)
    with pytest.raises(ValueError, match=r"molecular\.molformer: option n_heads must be a "
                                         r"positive int, got 0"):
        build_molformer(unlabelled(), n_heads=0)
    with pytest.raises(ValueError, match=r"option dropout must be in \[0, 1\), got 1"):
        build_molformer(unlabelled(), dropout=1)
    with pytest.raises(ValueError, match="option rotary_base must be a number > 1"):
        build_molformer(unlabelled(), rotary_base=1.0)
    with pytest.raises(TypeError, match="input_ids"):
        tiny_encoder(unlabelled())(torch.zeros(2, 5))


# -- masked language modelling --------------------------------------------------------------


def test_mlm_masking_follows_the_80_10_10_recipe_and_spares_special_tokens() -> None:
    dataset = unlabelled()
    batch = dataset.collate(MOLECULES * 40)
    ids = batch["input_ids"]
    specials = torch.tensor(mlm.special_ids(dataset.tokenizer))
    maskable = batch["attention_mask"] & ~torch.isin(ids, specials)
    random_ids = torch.arange(dataset.tokenizer.n_special, dataset.tokenizer.vocab_size)
    g = torch.Generator().manual_seed(0)
    corrupted, chosen = mlm.mask_tokens(
        ids, maskable, g, mask_id=dataset.tokenizer.mask_id, random_ids=random_ids,
        config=mlm.MLMConfig(),
    )
    assert not (chosen & ~maskable).any()  # never pad, bos, eos
    assert chosen.sum() / maskable.sum() == pytest.approx(0.15, abs=0.02)
    masked = (corrupted == dataset.tokenizer.mask_id) & chosen
    changed = (corrupted != ids) & chosen & ~masked
    n = chosen.sum().item()
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.05)
    assert (changed.sum().item()) / n == pytest.approx(0.1 * (1 - 1 / len(random_ids)), abs=0.04)
    assert torch.equal(corrupted[~chosen], ids[~chosen])  # the rest untouched
    again, _ = mlm.mask_tokens(
        ids, maskable, torch.Generator().manual_seed(0), mask_id=dataset.tokenizer.mask_id,
        random_ids=random_ids, config=mlm.MLMConfig(),
    )
    assert torch.equal(again, corrupted)  # reproducible from the generator


def test_mlm_masks_at_least_one_token_of_a_tiny_batch() -> None:
    ids = torch.tensor([[2, 10, 3]])
    maskable = torch.tensor([[False, True, False]])
    for seed in range(20):
        _, chosen = mlm.mask_tokens(ids, maskable, torch.Generator().manual_seed(seed),
                                    mask_id=4, random_ids=torch.arange(5, 9),
                                    config=mlm.MLMConfig())
        assert chosen.sum() == 1 and chosen[0, 1]


def test_mlm_task_returns_loss_embedding_accuracy_and_learns() -> None:
    dataset = unlabelled()
    encoder = tiny_encoder(dataset)
    task = mlm.build(encoder, dataset)
    assert task.encoder is encoder
    assert task.head.decoder.weight is not encoder.token_embedding.weight  # untied default
    batch = dataset.collate(MOLECULES)
    optimiser = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        out = task(batch, torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        losses.append(out["loss"].item())
    assert set(out) == {"loss", "embedding", "accuracy"}
    assert out["embedding"].shape == (len(MOLECULES), 16) and not out["embedding"].requires_grad
    assert 0.0 <= out["accuracy"].item() <= 1.0
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


def test_mlm_can_tie_its_output_layer_to_the_embedding() -> None:
    dataset = unlabelled()
    encoder = tiny_encoder(dataset)
    task = mlm.build(encoder, dataset, tie_weights=True)
    assert task.head.decoder.weight is encoder.token_embedding.weight
    with pytest.raises(ValueError, match="replace_mask"):
        mlm.build(encoder, dataset, replace_mask=0.9, replace_random=0.2)


def test_mlm_options_are_checked() -> None:
    dataset = unlabelled()
    encoder = tiny_encoder(dataset)
    with pytest.raises(ValueError, match=r"molecular\.mlm: option mask_prob must be in "
                                         r"\(0, 1\], got 0"):
        mlm.build(encoder, dataset, mask_prob=0)
    with pytest.raises(ValueError, match=r"option replace_random must be in \[0, 1\], got -0.1"):
        mlm.build(encoder, dataset, replace_random=-0.1)
    with pytest.raises(ValueError, match="option tie_weights must be true or false"):
        mlm.build(encoder, dataset, tie_weights="yes")
    with pytest.raises(ValueError, match=r"molecular\.mtr: option clip must be a number > 0"):
        mtr.build(encoder, dataset, clip=0)


def test_mlm_trains_the_tokens_face() -> None:
    """The task reads token states only through encoder.tokens(batch)."""
    dataset = unlabelled()
    encoder = tiny_encoder(dataset)
    task = mlm.build(encoder, dataset)
    calls: list[str] = []
    original = encoder.tokens

    def tokens(batch: Any) -> Tokens:
        calls.append("tokens")
        return original(batch)

    encoder.tokens = tokens  # type: ignore[method-assign]
    task(dataset.collate(MOLECULES[:4]), torch.Generator().manual_seed(0))
    assert calls == ["tokens"]


# -- multi-task regression on descriptors -----------------------------------------------------


def test_mtr_targets_are_zscored_on_the_corpus_with_bad_columns_dropped() -> None:
    dataset = unlabelled()
    task = mtr.build(tiny_encoder(dataset), dataset)
    targets = task.targets
    names = targets.names
    assert 50 < targets.n_targets < len(features.descriptor_names())  # constants dropped
    assert "MolWt" in names and "NumRadicalElectrons" not in names  # constant 0 here
    values = targets.values.numpy()
    assert np.allclose(values.mean(axis=0), 0.0, atol=1e-4)
    inside = np.abs(values).max(axis=0) < 6.0  # clipping moves the std of clipped columns
    assert np.allclose(values.std(axis=0)[inside], 1.0, atol=1e-3)
    # lookup: as given, by canonical form, and computed on the fly for an unseen molecule
    row = targets.lookup(["CCO"])
    assert torch.equal(row, targets.lookup(["OCC"]))
    unseen = targets.lookup(["CCCCO"])
    assert unseen.shape == (1, targets.n_targets) and torch.isfinite(unseen).all()


def test_mtr_loss_is_finite_reaches_the_encoder_and_drops() -> None:
    dataset = unlabelled()
    encoder = tiny_encoder(dataset)
    task = mtr.build(encoder, dataset)
    batch = dataset.collate(MOLECULES)
    optimiser = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        out = task(batch, torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        out["loss"].backward()
        if step == 0:
            grad = encoder.token_embedding.weight.grad
            assert grad is not None and grad.abs().sum() > 0
        optimiser.step()
        losses.append(out["loss"].item())
    assert set(out) == {"loss", "embedding"}
    assert losses[-1] < 0.8 * losses[0]


# -- fixed features ---------------------------------------------------------------------------


def _no_encoder_context() -> BaselineContext:
    def no_encoder() -> nn.Module:
        raise AssertionError("a fixed-feature baseline builds no encoder")

    return BaselineContext(encoder_factory=no_encoder, eval=EvalContext(seeds=(0,)))


def test_morgan_fingerprint_matches_rdkit_and_reads_the_batch_smiles() -> None:
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    dataset = unlabelled()
    encoder = baselines.build_morgan(dataset, _no_encoder_context())
    z = encoder.embed(dataset.collate(MOLECULES[:3]))
    assert encoder.embed_dim == 2048 and z.shape == (3, 2048) and z.dtype == torch.float32
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    expected = gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(MOLECULES[0]))
    np.testing.assert_array_equal(z[0].numpy(), expected.astype(np.float32))
    assert torch.equal(encoder.embed(["not a smiles"]), torch.zeros(1, 2048))


def test_rdkit_descriptors_are_standardised_on_train_and_finite() -> None:
    dataset = labelled("regression")
    encoder = baselines.build_descriptors(dataset, _no_encoder_context())
    assert encoder.embed_dim == len(features.descriptor_names()) > 150
    z = encoder.embed(dataset.collate(dataset.labelled_smiles("train")))
    assert torch.isfinite(z).all()
    moving = z.std(dim=0) > 0
    assert torch.allclose(z.mean(dim=0), torch.zeros(encoder.embed_dim), atol=1e-4)
    assert torch.allclose(z.std(dim=0, unbiased=False)[moving], torch.ones(int(moving.sum())),
                          atol=1e-3)
    index = features.descriptor_names().index("HeavyAtomCount")
    raw = features.compute_descriptors(["CCO"])
    assert raw.shape == (1, encoder.embed_dim) and raw[0, index] == 3


def test_descriptors_are_cached_on_disk_and_read_back_without_rdkit(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdkit.Chem import Descriptors

    monkeypatch.setenv("SELFSUP_MOLECULAR_CACHE", str(tmp_path))
    monkeypatch.setattr(features, "DISK_CACHE_MIN_NEW", 1)
    monkeypatch.setattr(features, "_DESCRIPTOR_CACHE", {})
    monkeypatch.setattr(features, "_disk_loaded", set())
    first = features.compute_descriptors(["CCO", "c1ccccc1"])
    path = features.descriptor_cache_file()
    assert path is not None and path.parent == tmp_path and path.is_file()

    def no_rdkit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("descriptors were recomputed instead of read from the cache")

    monkeypatch.setattr(Descriptors, "CalcMolDescriptors", no_rdkit)
    monkeypatch.setattr(features, "_DESCRIPTOR_CACHE", {})  # a new process, in effect
    monkeypatch.setattr(features, "_disk_loaded", set())
    np.testing.assert_array_equal(features.compute_descriptors(["c1ccccc1", "CCO"]), first[::-1])
    monkeypatch.setenv("SELFSUP_MOLECULAR_CACHE", "off")
    assert features.descriptor_cache_file() is None


# -- random forest ------------------------------------------------------------------------------


class HeavyAtoms(nn.Module):
    """An 'encoder' that knows the answer: heavy-atom count plus a noise column."""

    embed_dim = 2

    def embed(self, batch: Any) -> torch.Tensor:
        raw = features.compute_descriptors(batch["smiles"])
        count = raw[:, features.descriptor_names().index("HeavyAtomCount")]
        return torch.tensor(np.stack([count, np.zeros_like(count)], axis=1), dtype=torch.float32)


def test_random_forest_regression_reports_rmse_mae_r2_with_spreads() -> None:
    ctx = EvalContext(seeds=(0, 1), batch_size=8)
    metrics = random_forest.build(n_estimators=20)(HeavyAtoms(), labelled("regression"), ctx)
    keys = {f"random_forest.{m}" for m in ("rmse", "mae", "r2")}
    assert set(metrics) == keys | {f"{k}_std" for k in keys}
    assert metrics["random_forest.rmse"] < 3.0


def test_random_forest_classification_reports_roc_auc() -> None:
    ctx = EvalContext(seeds=(0,), batch_size=8)
    metrics = random_forest.build(n_estimators=20)(HeavyAtoms(), labelled("classification"), ctx)
    assert metrics["random_forest.roc_auc"] == 1.0  # the feature separates the classes
    assert "random_forest.accuracy" in metrics


def test_random_forest_options_are_checked() -> None:
    with pytest.raises(TypeError, match="n_estimators"):
        random_forest.build(n_trees=10)
    with pytest.raises(ValueError, match="n_estimators"):
        random_forest.build(n_estimators=0)
