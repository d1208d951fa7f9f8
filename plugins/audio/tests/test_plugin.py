"""selfsup's conformance kit over everything selfsup-audio registers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfsup.api import EMBEDDING, MASKED_TOKENS, TOKENS, Registry, check_plugin

from .conftest import TINY_KWS, TINY_SCORES
from .folders import write_speech_commands

TINY_AST = {"embed_dim": 16, "depth": 1, "n_heads": 2}
TINY_CNN = {"width": 4, "embed_dim": 8}
TINY_PAIR = {"audio_width": 4, "score_width": 4, "embed_dim": 8}


@pytest.fixture(scope="module")
def registry(kws_cache: Path, score_cache: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Registry:
    folder = write_speech_commands(tmp_path_factory.mktemp("sc"))
    return check_plugin(
        "audio",
        dataset_options={"audio.kws_synth": {**TINY_KWS, "cache_dir": str(kws_cache)},
                         "audio.mixtures": {"n_clips": 120},
                         "audio.folder": {"path": str(folder)},
                         "audio.score_pairs": {**TINY_SCORES, "cache_dir": str(score_cache)}},
        encoder_options={"audio.ast": TINY_AST, "audio.cnn": TINY_CNN,
                         "audio.score_pair": TINY_PAIR},
    )


def test_check_plugin_passes(registry: Registry) -> None:
    report = next(r for r in registry.reports if r.name == "audio")
    assert set(report.registered["dataset"]) == {"audio.kws_synth", "audio.mixtures",
                                                 "audio.folder", "audio.score_pairs"}
    assert set(report.registered["encoder"]) == {"audio.ast", "audio.cnn", "audio.score_pair"}
    assert set(report.registered["pretext"]) == {"audio.ssast", "audio.score_contrast"}
    assert set(report.registered["evaluator"]) == {"audio.retrieval"}
    assert set(report.registered["baseline"]) == {"audio.logmel_stats", "audio.mfcc"}
    assert set(report.registered["benchmark"]) == {"audio.kws", "audio.tagging",
                                                   "audio.score_retrieval", *SANITY}


#: issue 16's sanity benchmarks (``selfsup bench --sanity``)
SANITY = ("audio.sanity_invariance", "audio.sanity_ssast", "audio.sanity_ssast_finetune")


def test_sanity_benchmarks_compare_rows_they_run(registry: Registry) -> None:
    for key in SANITY:
        bench = registry.get("benchmark", key)
        rows = {*bench.pretexts, *(f"baseline:{b}" for b in bench.baselines)}
        assert bench.sanity, key
        for expect in bench.sanity:
            assert {expect.method, expect.beats} <= rows, (key, expect)
            assert expect.margin > 0, (key, expect)
    # without the crop, no view cuts an event out of a clip: the views keep the labels
    invariance = registry.get("benchmark", "audio.sanity_invariance")
    assert invariance.dataset_options["views"]["crop_min"] == 1.0


def test_faces_are_declared(registry: Registry) -> None:
    assert registry.get("encoder", "audio.ast").faces == (EMBEDDING, TOKENS, MASKED_TOKENS)
    assert registry.get("encoder", "audio.cnn").faces == (EMBEDDING,)
    assert registry.get("pretext", "audio.ssast").face == MASKED_TOKENS
    assert registry.get("encoder", "audio.score_pair").faces == (EMBEDDING, "audio.score")
    assert registry.get("pretext", "audio.score_contrast").face == "audio.score"


def test_benchmark_is_the_issue_s(registry: Registry) -> None:
    bench = registry.get("benchmark", "audio.kws")
    assert bench.headline == "linear_probe.accuracy" and bench.direction == "higher"
    assert bench.evaluator_options["core.linear_probe"]["label_fractions"] == [1.0, 0.1, 0.01]
    assert {"audio.ssast", "core.simclr", "core.byol"} == set(bench.pretexts)
    assert {"core.input", "core.random_init", "core.supervised", "audio.logmel_stats",
            "audio.mfcc"} == set(bench.baselines)
    assert bench.gpu_train["steps"] > bench.train["steps"]
    assert bench.quick["seconds"] > 0


def test_registering_imports_no_domain_library() -> None:
    code = ("import sys, selfsup_audio.plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchaudio', 'soundfile', 'numpy', 'espeakng_loader', 'music21')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_torch_threads_untouched_by_import() -> None:
    assert torch.get_num_threads() == 1


def test_registered_view_defaults_are_the_options_defaults() -> None:
    from dataclasses import fields

    from selfsup_audio.datasets.views import AudioViews
    from selfsup_audio.plugin import VIEWS

    assert {f.name: getattr(AudioViews(), f.name) for f in fields(AudioViews)} == VIEWS
