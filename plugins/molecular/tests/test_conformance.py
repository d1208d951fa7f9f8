"""selfsup's conformance kit over everything selfsup-molecular registers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfsup.api import (
    EMBEDDING,
    MASKED_TOKENS,
    TOKENS,
    BaselineContext,
    EvalContext,
    Registry,
    check_plugin,
)

TINY_MOLFORMER = {"embed_dim": 16, "n_layers": 1, "n_heads": 2, "ffn_dim": 32}
#: The kit requires a view to keep every tensor's shape, padded length included; a
#: randomized SMILES has its own token count, so its batch pads to another length
#: (test_datasets.py checks those views). The kit runs on the masking-only views,
#: which keep the length and are still stochastic.
MASKING_ONLY = {"randomize": False}
#: Morgan bits and RDKit descriptors: fixed features, registered as baselines
FIXED_FEATURES = ("molecular.morgan", "molecular.rdkit_descriptors")
#: every baseline: the fixed features, FreeSolv's calculated value, the loaded encoder
BASELINES = (*FIXED_FEATURES, "molecular.freesolv_calc", "molecular.pretrained")

CSV = """smiles,logS
CC(=O)Oc1ccccc1C(=O)O,-1.7
CN1C=NC2=C1C(=O)N(C(=O)N2C)C,-0.9
CCO,1.1
c1ccc2c(c1)[nH]c1ccccc12,-5.3
CCN(CC)CCNC(=O)c1cc(Cl)c(N)cc1OC,-2.2
CC(C)Cc1ccc(cc1)C(C)C(=O)O,-3.9
OC(=O)CCCCC,-1.1
c1ccncc1,0.8
COc1ccc2[nH]cc(CCN)c2c1,-1.5
Nc1ccc(cc1)S(=O)(=O)N,-1.3
C1CCCCC1,-3.1
CC(=O)Nc1ccc(O)cc1,-1.0
"""


#: the first rows of MOSES's train.csv.gz (drug-like ZINC molecules, none of them a
#: benchmark molecule; the CSV above holds several FreeSolv and solubility ones)
MOSES_ROWS = [
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1", "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
    "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO", "Cn1cnc2c1c(=O)n(CC(O)CO)c(=O)n2C",
    "CC1Oc2ccc(Cl)cc2N(CC(O)CO)C1=O", "CCOC(=O)c1ccc(NC(=O)c2ccco2)cc1",
    "COc1ccc(CNC(=O)c2ccc(Br)o2)cc1", "CN1CCN(C(=O)c2ccc(F)cc2)CC1",
    "O=C(O)c1ccccc1Nc1cccc(C(F)(F)F)c1", "COc1ccc(C(=O)Nc2ccc(C)cc2)cc1OC",
    "CC(C)NC(=O)c1ccc(S(=O)(=O)N2CCCC2)cc1", "Cc1ccc(NC(=O)CSc2nnc(C)n2C)cc1",
]


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("molecules") / "esol_like.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def moses_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MOSES-format corpus of the CSV's molecules (the real file holds 1.58M)."""
    import gzip

    path = tmp_path_factory.mktemp("moses") / "train.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("SMILES\n" + "\n".join(MOSES_ROWS) + "\n")
    return path


@pytest.fixture(scope="module")
def registry(csv_path: Path, moses_path: Path) -> Registry:
    torch.set_num_threads(1)
    return check_plugin(
        "molecular",
        dataset_options={
            "molecular.moses": {"path": str(moses_path), "views": MASKING_ONLY},
            "molecular.freesolv": {"pretrain_on": "self", "views": MASKING_ONLY},
            "molecular.solubility": {"pretrain_on": "self", "views": MASKING_ONLY},
            "molecular.chembl2321810": {"corpus_size": 40, "views": MASKING_ONLY},
            "molecular.corpus": {"corpus_size": 40, "views": MASKING_ONLY},
            "molecular.csv": {"path": str(csv_path), "views": MASKING_ONLY},
        },
        encoder_options={"molecular.molformer": TINY_MOLFORMER},
    )


def test_check_plugin_passes(registry: Registry) -> None:
    report = next(r for r in registry.reports if r.name == "molecular")
    keys = {key for keys in report.registered.values() for key in keys}
    assert {"molecular.molformer", "molecular.mlm", "molecular.mtr",
            "molecular.random_forest", "molecular.chembl2321810", *FIXED_FEATURES} <= keys
    assert set(report.registered["baseline"]) == set(BASELINES)
    assert not set(FIXED_FEATURES) & set(report.registered["encoder"])


def test_faces_are_declared(registry: Registry) -> None:
    assert registry.get("encoder", "molecular.molformer").faces == (EMBEDDING, TOKENS,
                                                                    MASKED_TOKENS)
    assert registry.get("pretext", "molecular.mlm").face == TOKENS
    assert registry.get("pretext", "molecular.mtr").face == EMBEDDING
    assert registry.get("evaluator", "molecular.random_forest").face == EMBEDDING


@pytest.mark.parametrize("key", FIXED_FEATURES)
def test_fixed_feature_baselines_offer_the_embedding_face(
    registry: Registry, csv_path: Path, key: str
) -> None:
    dataset = registry.get("dataset", "molecular.csv").build(path=str(csv_path))
    spec = registry.get("baseline", key)
    assert spec.faces == (EMBEDDING,) and spec.accepts(dataset.modality)

    def no_encoder() -> torch.nn.Module:
        raise AssertionError("a fixed-feature baseline builds no encoder")

    context = BaselineContext(encoder_factory=no_encoder, eval=EvalContext(seeds=(0,)))
    model = spec.build(dataset, context)
    batch, _, _ = next(dataset.labelled_batches("train", batch_size=4))
    z = model.embed(batch)
    assert z.shape == (4, model.embed_dim) and z.dtype == torch.float32
    assert torch.isfinite(z).all() and torch.equal(model(batch), z)
    assert not list(model.parameters())


def test_fixed_feature_baseline_options_are_checked(registry: Registry, csv_path: Path) -> None:
    dataset = registry.get("dataset", "molecular.csv").build(path=str(csv_path))
    context = BaselineContext(encoder_factory=torch.nn.Identity, eval=EvalContext())
    morgan = registry.get("baseline", "molecular.morgan")
    assert morgan.build(dataset, context, n_bits=512).embed_dim == 512
    with pytest.raises(ValueError, match=r"molecular\.morgan: option n_bits must be a positive "
                                         r"int, got 0"):
        morgan.build(dataset, context, n_bits=0)
    with pytest.raises(TypeError, match="did you mean 'radius'"):
        morgan.build(dataset, context, radious=3)
    with pytest.raises(ValueError, match=r"molecular\.rdkit_descriptors: option clip must be a "
                                         r"number > 0"):
        registry.get("baseline", "molecular.rdkit_descriptors").build(dataset, context, clip=0)


def test_benchmark_names_the_issue_components(registry: Registry) -> None:
    bench = registry.get("benchmark", "molecular.chembl2321810")
    assert bench.dataset == "molecular.chembl2321810" and bench.encoder == "molecular.molformer"
    assert set(bench.pretexts) == {"molecular.mlm", "molecular.mtr", "core.simclr",
                                   "core.barlow_twins", "core.jepa"}
    # the 0.1 rows mean, random_init, supervised, encoder:molecular.morgan and
    # encoder:molecular.rdkit_descriptors, in that order, under their 0.2 keys
    assert bench.baselines == ("core.mean", "core.random_init", "core.supervised",
                               "molecular.morgan", "molecular.rdkit_descriptors")
    for name in bench.baselines:
        registry.get("baseline", name)
    assert not bench.baseline_options  # core.supervised keeps its 60 epochs, as in 0.1
    assert bench.gpu_train["steps"] > bench.train["steps"]


def test_registering_imports_neither_torch_nor_rdkit() -> None:
    import subprocess
    import sys

    code = ("import sys, selfsup_molecular.plugin; "
            "print(any(m == 'torch' or m.startswith(('torch.', 'rdkit')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scale_benchmarks_name_the_issue_baselines(registry: Registry) -> None:
    common = {"core.mean", "core.random_init", "core.supervised", "molecular.morgan",
              "molecular.rdkit_descriptors", "molecular.pretrained"}
    freesolv = registry.get("benchmark", "molecular.freesolv")
    solubility = registry.get("benchmark", "molecular.solubility")
    assert set(freesolv.baselines) == common | {"molecular.freesolv_calc"}
    assert set(solubility.baselines) == common
    for bench in (freesolv, solubility):
        assert bench.dataset_options["corpus_rows"] == 20_000  # a small cache, not 1.58M
        assert bench.headline == "linear_probe.rmse" and bench.direction == "lower"
    sanity = registry.get("benchmark", "molecular.sanity_freesolv")
    assert {e.beats for e in sanity.sanity} == {"baseline:core.mean"}
