"""``selfsup bench`` on core's built-in benchmark: pretexts beside the three baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfsup.bench import run_bench
from selfsup.cli import main


def test_bench_runs_pretexts_and_baselines(tmp_path: Path) -> None:
    result = run_bench(tmp_path, steps=10, seeds=(0,), pretexts=["core.barlow_twins"],
                       evaluators=["core.linear_probe", "core.knn", "core.kmeans"])
    methods = [r.method for r in result.rows]
    assert methods == ["core.barlow_twins", "baseline:core.input", "baseline:core.random_init",
                       "baseline:core.supervised"]
    assert result.ok and not result.skipped
    by = {r.method: r.metrics for r in result.rows}
    # raw digit pixels are linearly separable far above chance; a supervised MLP too
    assert by["baseline:core.input"]["linear_probe.accuracy"] > 0.9
    assert by["baseline:core.supervised"]["knn.accuracy"] > 0.8
    assert "selfsup-graph" in result.missing_plugins
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["rows"]) == 4
    md = (tmp_path / "results.md").read_text()
    assert "### core.digits" in md and "baseline:core.random_init" in md
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_bench_cli(tmp_path: Path) -> None:
    assert main(["bench", "--out", str(tmp_path), "--steps", "3", "--seeds", "0",
                 "--pretext", "core.simclr", "--baseline", "core.input",
                 "--evaluator", "core.finetune"]) == 0
    assert (tmp_path / "results.md").is_file()


def _toy_registry(plugin: object) -> Any:
    from selfsup.plugins import Registry

    reg = Registry(plugins=[])
    reg.add_plugin(plugin, "toy")
    return reg


def test_mean_baseline_and_a_plugin_baseline_with_its_own_budget(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BaselineSpec, BenchmarkSpec

    class Toy:
        @hookimpl
        def register_baselines(self, register):  # type: ignore[no-untyped-def]
            register(BaselineSpec("toy.untrained_mlp", lambda ds, ctx: ctx.encoder_factory(),
                                  ("vector",), "an untrained MLP, through a plugin's hook"))

        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.digits", dataset="core.digits", encoder="core.mlp",
                pretexts=("core.simclr",), evaluators=("core.linear_probe",),
                summary="toy", baselines=("core.mean", "toy.untrained_mlp", "core.supervised"),
                baseline_options={"core.supervised": {"epochs": 1}},
                pretext_options={"core.simclr": {"proj_hidden_dim": 32}},
                train={"steps": 2, "batch_size": 64}))

    result = run_bench(tmp_path, benchmarks=["toy.digits"], registry=_toy_registry(Toy()),
                       seeds=(0,))
    by = {r.method: r for r in result.rows}
    # a constant encoder can only predict the majority class: digits are balanced
    assert by["baseline:core.mean"].metrics["linear_probe.accuracy"] < 0.15
    assert by["baseline:toy.untrained_mlp"].metrics["linear_probe.accuracy"] > 0.8
    # one epoch of supervised training is far cheaper than the default 60
    assert by["baseline:core.supervised"].seconds < 30


def test_a_pretext_can_bring_its_own_encoder_through_a_face(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BenchmarkSpec, EncoderSpec, PretextSpec

    class Toy:
        @hookimpl
        def register_encoders(self, register):  # type: ignore[no-untyped-def]
            register(EncoderSpec("toy.wide_mlp", "selfsup.encoders.mlp:build", ("vector",),
                                 "a wider MLP", options={"embed_dim": 48},
                                 faces=("embedding", "toy.wide")))

        @hookimpl
        def register_pretext_tasks(self, register):  # type: ignore[no-untyped-def]
            register(PretextSpec("toy.picky", "selfsup.objectives.simclr:build", ("vector",),
                                 "SimCLR on toy.wide_mlp only", needs_views=True,
                                 face="toy.wide",
                                 options={"proj_hidden_dim": 32, "proj_out_dim": 32}))

        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.faces", dataset="core.digits", encoder="core.mlp",
                pretexts=("toy.picky",), evaluators=("core.linear_probe",),
                summary="toy", baselines=("core.mean",), train={"steps": 2, "batch_size": 64}))

    result = run_bench(tmp_path, benchmarks=["toy.faces"], registry=_toy_registry(Toy()),
                       seeds=(0,))
    picky = [r for r in result.rows if r.method == "toy.picky"]
    assert "encoder toy.wide_mlp" in picky[0].note
    assert result.ok


def test_a_crashing_pretext_is_a_failure_and_a_non_applying_baseline_a_skip(
    tmp_path: Path,
) -> None:
    from selfsup import hookimpl
    from selfsup.components import BaselineSpec, BenchmarkSpec, PretextSpec
    from selfsup.errors import NotApplicable

    def crash(encoder: Any, dataset: Any) -> Any:
        raise RuntimeError("boom in the pretext")

    def not_here(dataset: Any, context: Any) -> Any:
        raise NotApplicable("this dataset has nothing for it")

    class Toy:
        @hookimpl
        def register_pretext_tasks(self, register):  # type: ignore[no-untyped-def]
            register(PretextSpec("toy.crash", crash, ("vector",), "raises"))

        @hookimpl
        def register_baselines(self, register):  # type: ignore[no-untyped-def]
            register(BaselineSpec("toy.absent", not_here, ("vector",), "never applies"))

        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.crash", dataset="core.digits", encoder="core.mlp",
                pretexts=("toy.crash",), evaluators=("core.linear_probe",),
                summary="toy", baselines=("toy.absent", "core.mean"),
                train={"steps": 2, "batch_size": 64}))

    reg = _toy_registry(Toy())
    result = run_bench(tmp_path, benchmarks=["toy.crash"], registry=reg, seeds=(0,))
    assert not result.ok
    assert result.failed == ["toy.crash / toy.crash: RuntimeError: boom in the pretext"]
    assert result.skipped == ["toy.crash / baseline toy.absent: this dataset has nothing for it"]
    assert [r.method for r in result.rows] == ["baseline:core.mean"]
    md = (tmp_path / "results.md").read_text()
    assert "Failed" in md and "boom in the pretext" in md and "nothing for it" in md


def test_a_filter_naming_nothing_the_benchmark_runs_is_an_error(tmp_path: Path) -> None:
    import pytest

    from selfsup.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--baseline input: not run by the selected "
                                          r"benchmark\(s\); they run core.input, "):
        run_bench(tmp_path, benchmarks=["core.digits"], baselines=["input"], seeds=(0,))


def test_bench_cli_can_run_baselines_alone(tmp_path: Path) -> None:
    assert main(["bench", "--out", str(tmp_path), "--seeds", "0", "--pretext", "none",
                 "--baseline", "core.input", "--evaluator", "core.knn"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["baseline:core.input"]


def test_sanity_conditions_are_checked_against_the_rows(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BenchmarkSpec, Expect

    class Toy:
        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.sanity", dataset="core.digits", encoder="core.mlp",
                pretexts=(), evaluators=("core.linear_probe",), summary="toy",
                baselines=("core.input", "core.mean"), headline="linear_probe.accuracy",
                # pixels separate digits (0.96); a constant predicts one class (0.1)
                sanity=(Expect("baseline:core.input", beats="baseline:core.mean", margin=0.5),
                        Expect("baseline:core.mean", beats="baseline:core.input"))))

            register(BenchmarkSpec(
                name="toy.plain", dataset="core.digits", encoder="core.mlp", pretexts=(),
                evaluators=("core.linear_probe",), summary="not a sanity benchmark",
                baselines=("core.input",), headline="linear_probe.accuracy"))

    from selfsup.bench import select_benchmarks

    reg = _toy_registry(Toy())
    assert [s.name for s in select_benchmarks(reg, None)] == ["toy.plain"]
    # core's own sanity benchmark (the generic objectives) always runs with --sanity
    assert [s.name for s in select_benchmarks(reg, None, sanity=True)] == [
        "toy.sanity", "core.sanity_digits"]
    result = run_bench(tmp_path, registry=reg, benchmarks=["toy.sanity"], seeds=(0,))
    assert [c["passed"] for c in result.sanity] == [True, False]
    assert result.sanity[0]["ahead"] > 0.5 and len(result.sanity_failed) == 1
    assert "**FAIL**" in (tmp_path / "results.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["sanity"][1]["passed"] is False


def test_an_expectation_must_name_rows_the_benchmark_runs() -> None:
    import pytest

    from selfsup.components import BenchmarkSpec, Expect

    with pytest.raises(ValueError, match=r"row\(s\) \['baseline:core.random_init'\]"):
        BenchmarkSpec(name="toy.bad", dataset="core.digits", encoder="core.mlp",
                      pretexts=("core.simclr",), evaluators=("core.linear_probe",),
                      summary="toy", baselines=("core.input",), headline="x",
                      sanity=(Expect("core.simclr", beats="baseline:core.random_init"),))


def test_bench_sanity_cli_fails_when_a_condition_cannot_be_checked(tmp_path: Path,
                                                                   capsys: Any) -> None:
    # no pretext rows: core.sanity_digits' conditions have nothing to compare
    assert main(["bench", "--sanity", "--out", str(tmp_path), "--pretext", "none",
                 "--no-report"]) == 1
    out = capsys.readouterr()
    assert "FAIL  core.sanity_digits: core.simclr > baseline:core.random_init" in out.out
    assert "sanity condition(s) failed" in out.err


def test_an_expectation_can_compare_two_metrics_of_one_row() -> None:
    import pytest

    from selfsup.bench import Row, check_sanity
    from selfsup.components import BenchmarkSpec, Expect

    def spec(*expects: Expect) -> BenchmarkSpec:
        return BenchmarkSpec(
            name="toy.finetune", dataset="core.digits", encoder="core.mlp",
            pretexts=("core.simclr",), evaluators=("core.linear_probe",), summary="toy",
            headline="dice", sanity=expects)

    # an evaluator that scores the pretrained network and the same one from scratch
    rows = [Row("toy.finetune", "core.simclr", "pretext",
                {"dice": 0.6, "scratch_dice": 0.5}, 1.0)]
    checks = check_sanity(spec(
        Expect("core.simclr", beats="core.simclr", beats_metric="scratch_dice", margin=0.05),
        Expect("core.simclr", beats="core.simclr", beats_metric="scratch_dice", margin=0.2),
        Expect("core.simclr", beats="core.simclr", beats_metric="absent")), rows)
    assert [c["passed"] for c in checks] == [True, False, False]
    assert checks[0]["condition"] == "core.simclr dice > core.simclr scratch_dice + 0.05"
    assert checks[0]["reference"] == 0.5 and checks[0]["beats_metric"] == "scratch_dice"
    assert checks[2]["detail"].startswith("no absent of core.simclr")
    with pytest.raises(ValueError, match="compares a row with itself"):
        spec(Expect("core.simclr", beats="core.simclr"))


def test_trained_baselines_get_the_step_cap_of_steps_and_quick(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BaselineSpec, BenchmarkSpec

    seen: list[Any] = []

    def record(ds: Any, ctx: Any) -> Any:
        seen.append((ctx.steps, ctx.eval.device))
        return ctx.encoder_factory()

    class Toy:
        @hookimpl
        def register_baselines(self, register):  # type: ignore[no-untyped-def]
            register(BaselineSpec("toy.record", record, ("vector",), "records its context"))

        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.digits", dataset="core.digits", encoder="core.mlp", pretexts=(),
                evaluators=("core.knn",), summary="toy", baselines=("toy.record",),
                train={"steps": 50}, quick={"train": {"steps": 7}}))

    reg = _toy_registry(Toy())
    for kwargs in ({}, {"steps": 3}, {"quick": True}):
        run_bench(tmp_path / str(len(seen)), benchmarks=["toy.digits"], registry=reg,
                  seeds=(0,), **kwargs)
    assert seen == [(None, "cpu"), (3, "cpu"), (7, "cpu")]


def test_a_benchmark_names_the_columns_its_table_shows() -> None:
    from selfsup.bench import BenchResult, Row, markdown_table

    metrics = {"pose.acc": 0.5, "pose.acc@10%": 0.4, "pose.rot_err": 12.0,
               "pose.iou": 0.3, "pose.n_test": 60.0}
    result = BenchResult(rows=[Row("toy.pose", "toy.m", "pretext", metrics, 1.0)])
    result.benchmarks["toy.pose"] = {"headline": "pose.acc", "columns": ["pose.rot_err"]}
    table, details = markdown_table(result).split("<details>")
    assert "| method | pose.acc | pose.acc@10% | pose.rot_err | time (s) |" in table
    assert "pose.iou" not in table and "| method | pose.iou | pose.n_test |" in details
    result.benchmarks["toy.pose"]["columns"] = []  # every score
    assert "| pose.rot_err | pose.iou | time (s) |" in markdown_table(result)


def test_a_baselines_val_choice_is_recorded_in_its_row(tmp_path: Path) -> None:
    from selfsup import hookimpl
    from selfsup.components import BaselineSpec, BenchmarkSpec

    def tuned(ds: Any, ctx: Any) -> Any:
        model = ctx.encoder_factory()
        model.chosen = {"width": 3, "val_accuracy": {"3": 0.9, "5": 0.8}, "selected_on": "val"}
        return model

    class Toy:
        @hookimpl
        def register_baselines(self, register):  # type: ignore[no-untyped-def]
            register(BaselineSpec("toy.tuned", tuned, ("vector",), "chooses on val"))

        @hookimpl
        def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
            register(BenchmarkSpec(
                name="toy.digits", dataset="core.digits", encoder="core.mlp", pretexts=(),
                evaluators=("core.knn",), summary="toy", baselines=("toy.tuned", "core.input")))

    result = run_bench(tmp_path, benchmarks=["toy.digits"], registry=_toy_registry(Toy()),
                       seeds=(0,))
    by = {r.method: r for r in result.rows}
    assert by["baseline:toy.tuned"].choices["width"] == 3
    assert "chosen on val: width=3" in by["baseline:toy.tuned"].note
    assert by["baseline:core.input"].choices == {}
    saved = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert saved[0]["choices"]["val_accuracy"] == {"3": 0.9, "5": 0.8}
