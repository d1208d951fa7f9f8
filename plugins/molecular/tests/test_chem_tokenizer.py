"""The SMILES tokenizer and the RDKit helpers, on real molecules."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from selfsup_molecular import chem
from selfsup_molecular.splits import group_split, random_split
from selfsup_molecular.tokenizer import SPECIAL_TOKENS, SmilesTokenizer, tokenize

TRICKY = [
    "c1cc[nH]c1",  # aromatic NH
    "ClC(Br)c1ccc(Cl)cc1Br",  # two-letter elements
    "C%10CCCCC%10",  # %nn ring closure
    "C[N+](C)(C)C.[O-]C(=O)C",  # charges, dot
    "N[C@@H](C)C(=O)O",  # stereo centre
    "F/C=C/F",  # cis/trans bonds
    "C/C=C\\C",
    "[2H]C([2H])([2H])O",  # isotopes
    "O=S(=O)(Nc1nccs1)c1ccc(Oc2ccccc2-c2ccn[nH]2)cc1",
    "CC#N",
]

DRUGS = [
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",  # caffeine
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",  # ibuprofen
    "CN1CCC[C@H]1c2cccnc2",  # nicotine
    "O=C(O)c1ccccc1O",  # salicylic acid
    "CCN(CC)CC(=O)Nc1c(C)cccc1C",  # lidocaine
    "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",  # melatonin
    "Clc1ccc(cc1)C(c1ccccc1)N1CCN(CC1)CCOCC(=O)O",  # cetirizine
    "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc34)[C@@H]1CC[C@@H]2O",  # estradiol
]


# -- tokenizer -------------------------------------------------------------------------------
@pytest.mark.parametrize("smiles", TRICKY)
def test_tokenize_covers_and_round_trips(smiles: str) -> None:
    tokens = tokenize(smiles)
    assert "".join(tokens) == smiles
    tok = SmilesTokenizer.build(TRICKY)
    ids = tok.encode(smiles)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.unk_id not in ids
    assert tok.decode(ids) == smiles


def test_multi_character_tokens_are_single_tokens() -> None:
    assert tokenize("c1cc[nH]c1") == ["c", "1", "c", "c", "[nH]", "c", "1"]
    assert tokenize("ClCBr") == ["Cl", "C", "Br"]
    assert tokenize("C%10CC%10") == ["C", "%10", "C", "C", "%10"]
    assert tokenize("N[C@@H](C)[N+]") == ["N", "[C@@H]", "(", "C", ")", "[N+]"]
    assert tokenize("F/C=C\\F") == ["F", "/", "C", "=", "C", "\\", "F"]
    assert tokenize("C%(123)CC%(123)")[1] == "%(123)"


def test_uncovered_text_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'CCZ'.*'Z' at position 2"):
        tokenize("CCZ")
    with pytest.raises(ValueError, match="'i'"):
        tokenize("C[Si]CSi")  # unbracketed Si


def test_special_tokens_and_unknown() -> None:
    tok = SmilesTokenizer.build(["CCO"])
    assert tok.tokens[:5] == list(SPECIAL_TOKENS)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    ids = tok.encode("[Se]CC[Te]")
    assert ids == [tok.bos_id, tok.unk_id, tok.index["C"], tok.index["C"], tok.unk_id, tok.eos_id]
    assert tok.decode(ids) == "<unk>CC<unk>"
    assert tok.vocab_size == len(tok.tokens)


def test_build_is_deterministic_and_min_freq_drops_rare_tokens() -> None:
    corpus = ["C[Se]C", "CC[Hg]", "[Hg]CC"]
    assert SmilesTokenizer.build(corpus) == SmilesTokenizer.build(list(reversed(corpus)))
    rare = SmilesTokenizer.build(corpus, min_freq=2)
    assert "[Hg]" in rare.index and "[Se]" not in rare.index


def test_encode_refuses_over_long() -> None:
    tok = SmilesTokenizer()
    assert len(tok.encode("CCCC", max_length=6)) == 6
    with pytest.raises(ValueError, match="max_length=5"):
        tok.encode("CCCC", max_length=5)


def test_save_load_identity(tmp_path: Path) -> None:
    tok = SmilesTokenizer.build(TRICKY + DRUGS)
    path = tmp_path / "vocab.json"
    tok.save(path)
    back = SmilesTokenizer.load(path)
    assert back == tok and back.tokens == tok.tokens
    for s in TRICKY:
        assert back.encode(s) == tok.encode(s)
    path.write_text(json.dumps({"tokens": ["a"]}))
    with pytest.raises(ValueError, match="not a SMILES tokenizer"):
        SmilesTokenizer.load(path)


# -- RDKit helpers ---------------------------------------------------------------------------
def test_canonical() -> None:
    assert chem.canonical("OCC") == chem.canonical("C(O)C") == "CCO"
    assert chem.canonical("c1ccccc1") == chem.canonical("C1=CC=CC=C1")
    for bad in ("C1CC", "C(C)(C)(C)(C)C", "", "   ", "xyz"):
        assert chem.canonical(bad) is None, bad


def test_parsing_bad_smiles_is_quiet_and_restores_the_log(capfd: pytest.CaptureFixture) -> None:
    from rdkit import rdBase

    before = rdBase.LogStatus()
    assert chem.canonical("C1CC") is None
    assert rdBase.LogStatus() == before
    assert "C1CC" not in capfd.readouterr().err


def test_randomized_smiles() -> None:
    differs = 0
    for s in DRUGS:
        can = chem.canonical(s)
        view = chem.randomized(s, random.Random(7))
        assert chem.canonical(view) == can
        assert view == chem.randomized(s, random.Random(7))  # a pure function of the rng
        differs += view != can
    assert differs >= 8
    views = {chem.randomized(DRUGS[-1], random.Random(seed)) for seed in range(10)}
    assert len(views) >= 8
    with pytest.raises(ValueError, match="not a valid SMILES"):
        chem.randomized("C1CC", random.Random(0))


def test_murcko_scaffold() -> None:
    assert chem.murcko_scaffold("CC(=O)Nc1ccc(O)cc1") == "c1ccccc1"
    assert chem.murcko_scaffold("CCO") == ""
    assert chem.murcko_scaffold("C[C@H](N)c1ccc(-c2ccncc2)cc1") == "c1ccc(-c2ccncc2)cc1"


def test_group_split_is_greedy_largest_first() -> None:
    keys = ["a"] * 5 + ["b"] * 3 + ["c", "d"]
    split = group_split(keys, (0.5, 0.3, 0.2))
    assert split["train"].tolist() == [0, 1, 2, 3, 4]
    assert split["val"].tolist() == [5, 6, 7]
    assert split["test"].tolist() == [8, 9]
    with pytest.raises(ValueError, match="sum to 1"):
        group_split(keys, (0.5, 0.5, 0.5))


def test_random_split_is_seeded() -> None:
    a, b, c = random_split(50, seed=0), random_split(50, seed=0), random_split(50, seed=1)
    assert all((a[s] == b[s]).all() for s in a)
    assert any(len(a[s]) != len(c[s]) or (a[s] != c[s]).any() for s in a)
    assert [len(a[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(i for s in a for i in a[s].tolist()) == list(range(50))
