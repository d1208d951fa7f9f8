"""``selfsup bench`` on core's built-in benchmark: pretexts beside the three baselines."""

from __future__ import annotations

import json
from pathlib import Path

from selfsup.bench import run_bench
from selfsup.cli import main


def test_bench_runs_pretexts_and_baselines(tmp_path: Path) -> None:
    result = run_bench(tmp_path, steps=10, seeds=(0,), pretexts=["core.barlow_twins"],
                       evaluators=["core.linear_probe", "core.knn", "core.kmeans"],
                       supervised_epochs=5)
    methods = [r.method for r in result.rows]
    assert methods == ["core.barlow_twins", "baseline:input", "baseline:random_init",
                       "baseline:supervised"]
    by = {r.method: r.metrics for r in result.rows}
    # raw digit pixels are linearly separable far above chance; a supervised MLP too
    assert by["baseline:input"]["linear_probe.accuracy"] > 0.9
    assert by["baseline:supervised"]["knn.accuracy"] > 0.8
    assert "selfsup-graph" in result.missing_plugins
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["rows"]) == 4
    md = (tmp_path / "results.md").read_text()
    assert "### core.digits" in md and "baseline:random_init" in md
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_bench_cli(tmp_path: Path) -> None:
    assert main(["bench", "--out", str(tmp_path), "--steps", "3", "--seeds", "0",
                 "--pretext", "core.simclr", "--baseline", "input",
                 "--evaluator", "core.finetune"]) == 0
    assert (tmp_path / "results.md").is_file()


def test_mean_and_fixed_encoder_baselines(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BenchmarkSpec
    from selfsup.plugins import Registry

    class Toy:
        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.digits", dataset="core.digits", encoder="core.mlp",
                pretexts=("core.simclr",), evaluators=("core.linear_probe",),
                summary="toy", baselines=("mean", "encoder:core.mlp"),
                pretext_options={"core.simclr": {"proj_hidden_dim": 32}},
                train={"steps": 2, "batch_size": 64}))

    reg = Registry(plugins=[])
    reg.add_plugin(Toy(), "toy")
    result = run_bench(tmp_path, benchmarks=["toy.digits"], registry=reg, seeds=(0,))
    by = {r.method: r.metrics for r in result.rows}
    # a constant encoder can only predict the majority class: digits are balanced
    assert by["baseline:mean"]["linear_probe.accuracy"] < 0.15
    assert by["baseline:encoder:core.mlp"]["linear_probe.accuracy"] > 0.8


def test_a_pretext_can_bring_its_own_encoder(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BenchmarkSpec, EncoderSpec, PretextSpec
    from selfsup.plugins import Registry

    class Toy:
        @hookimpl
        def register_encoders(self, register):  # type: ignore[no-untyped-def]
            register(EncoderSpec("toy.wide_mlp", "selfsup.encoders.mlp:build", ("vector",),
                                 "a wider MLP", options={"embed_dim": 48}))

        @hookimpl
        def register_pretext_tasks(self, register):  # type: ignore[no-untyped-def]
            register(PretextSpec("toy.picky", "selfsup.objectives.simclr:build", ("vector",),
                                 "SimCLR on toy.wide_mlp only", needs_views=True,
                                 encoders=("toy.wide_mlp",),
                                 options={"proj_hidden_dim": 32, "proj_out_dim": 32}))

        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            for name, mapping in (("toy.mapped", {"toy.picky": "toy.wide_mlp"}),
                                  ("toy.unmapped", {})):
                register(BenchmarkSpec(
                    name=name, dataset="core.digits", encoder="core.mlp",
                    pretexts=("toy.picky",), evaluators=("core.linear_probe",),
                    summary="toy", baselines=("mean",), pretext_encoders=mapping,
                    train={"steps": 2, "batch_size": 64}))

    reg = Registry(plugins=[])
    reg.add_plugin(Toy(), "toy")
    result = run_bench(tmp_path, benchmarks=["toy.mapped", "toy.unmapped"], registry=reg,
                       seeds=(0,))
    picky = [r for r in result.rows if r.method == "toy.picky"]
    assert [r.benchmark for r in picky] == ["toy.mapped"]
    assert "encoder toy.wide_mlp" in picky[0].note
    assert any("toy.unmapped / toy.picky" in s and "toy.wide_mlp" in s for s in result.skipped)
