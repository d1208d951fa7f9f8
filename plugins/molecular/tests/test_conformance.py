"""selfsup's conformance kit over everything selfsup-molecular registers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfsup.plugins import Registry
from selfsup.testing import check_encoder, check_plugin

TINY_MOLFORMER = {"embed_dim": 16, "n_layers": 1, "n_heads": 2, "ffn_dim": 32}
#: Morgan bits and RDKit descriptors are fixed features without parameters: the
#: kit's pretext check (the loss must send a gradient into the encoder) cannot
#: apply to them, so they skip check_plugin and get the encoder check below.
FIXED_FEATURES = ("molecular.morgan", "molecular.rdkit_descriptors")

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


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("molecules") / "esol_like.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def registry(csv_path: Path) -> Registry:
    torch.set_num_threads(1)
    return check_plugin(
        "molecular",
        dataset_options={
            "molecular.chembl2321810": {"corpus_size": 40},
            "molecular.corpus": {"corpus_size": 40},
            "molecular.csv": {"path": str(csv_path)},
        },
        encoder_options={"molecular.molformer": TINY_MOLFORMER},
        skip=FIXED_FEATURES,
    )


def test_check_plugin_passes(registry: Registry) -> None:
    report = next(r for r in registry.reports if r.name == "molecular")
    keys = {key for keys in report.registered.values() for key in keys}
    assert {"molecular.molformer", "molecular.mlm", "molecular.mtr",
            "molecular.random_forest", "molecular.chembl2321810"} <= keys


@pytest.mark.parametrize("key", FIXED_FEATURES)
def test_fixed_feature_encoders_conform(registry: Registry, csv_path: Path, key: str) -> None:
    dataset = registry.get("dataset", "molecular.csv").build(path=str(csv_path))
    check_encoder(registry.get("encoder", key), dataset)


def test_benchmark_names_the_issue_components(registry: Registry) -> None:
    bench = registry.get("benchmark", "molecular.chembl2321810")
    assert bench.dataset == "molecular.chembl2321810" and bench.encoder == "molecular.molformer"
    assert set(bench.pretexts) == {"molecular.mlm", "molecular.mtr", "core.simclr",
                                   "core.barlow_twins"}
    assert {"encoder:molecular.morgan", "encoder:molecular.rdkit_descriptors", "mean",
            "random_init", "supervised"} <= set(bench.baselines)
    for name in bench.baselines:
        if name.startswith("encoder:"):
            registry.get("encoder", name.split(":", 1)[1])
    assert bench.gpu_train["steps"] > bench.train["steps"]


def test_registering_imports_neither_torch_nor_rdkit() -> None:
    import subprocess
    import sys

    code = ("import sys, selfsup_molecular.plugin; "
            "print(any(m == 'torch' or m.startswith(('torch.', 'rdkit')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
