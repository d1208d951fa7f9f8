"""``selfsup report`` on a small real bench folder, and the bench as a newcomer meets it."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from selfsup.bench import BenchResult, apply_settings, quick_plan, run_bench
from selfsup.cli import main
from selfsup.errors import ConfigError
from selfsup.report import compare, load, verdicts, write_comparison, write_report

EVALUATORS = ["core.linear_probe", "core.knn"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """core.digits: two pretexts and three baselines, 5 steps, two seeds."""
    out = tmp_path_factory.mktemp("bench")
    result = run_bench(out, steps=5, seeds=(0, 1), pretexts=["core.simclr", "core.vicreg"],
                       evaluators=EVALUATORS, command=["selfsup", "bench", "--steps", "5"])
    assert result.ok, result.failed
    return out


def _recomputed_verdicts(data: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str, str]]:
    """The verdicts from results.json by hand: (bench, key) -> (pretext, baseline, verdict)."""
    out = {}
    for bench, info in data["benchmarks"].items():
        rows = [r for r in data["rows"] if r["benchmark"] == bench]
        head = info["headline"]
        keys = {k for r in rows for k in r["metrics"]
                if k.split("@")[0] == head and not k.endswith("_std")}
        for key in keys:
            sign = 1 if info["direction"] == "higher" else -1
            pre = [r for r in rows if r["kind"] == "pretext"]
            base = [r for r in rows if r["kind"] == "baseline"
                    and not (r["uses_labels"] and "@" in key)]
            p = max(pre, key=lambda r: sign * r["metrics"][key])
            b = max(base, key=lambda r: sign * r["metrics"][key])
            diff = sign * (p["metrics"][key] - b["metrics"][key])
            spread = math.hypot(p["metrics"].get(key + "_std", 0),
                                b["metrics"].get(key + "_std", 0))
            word = ("win" if diff > spread else "loss" if diff < -spread else "tie")
            out[(bench, key)] = (p["method"], b["method"],
                                 word if spread else word + " (no spread)")
    return out


def test_report_holds_every_benchmark_row_and_verdict(bench_dir: Path) -> None:
    md_path, html_path = write_report(bench_dir)
    data = json.loads((bench_dir / "results.json").read_text())
    md, page = md_path.read_text(), html_path.read_text()
    for row in data["rows"]:
        assert row["method"] in md and row["method"] in page
    assert "core.digits" in md
    expected = _recomputed_verdicts(data)
    got = {(v.benchmark, v.metric): (v.pretext, v.baseline, v.verdict)
           for v in verdicts(load(bench_dir))}
    assert got == expected and len(got) == 2  # all labels and 10% of them
    # with 10% of the labels the supervised MLP (trained on all of them) does not compete
    assert got[("core.digits", "linear_probe.accuracy@10%")][1] != "baseline:core.supervised"
    for (bench, _), (pretext, baseline, word) in expected.items():
        assert re.search(rf"\| {re.escape(bench)} \|[^\n]*\| {re.escape(pretext)} "
                         rf"[^\n]*\| {re.escape(baseline)} [^\n]*\| {re.escape(word)} \|", md)


def test_report_html_is_self_contained_with_figures(bench_dir: Path) -> None:
    _, html_path = write_report(bench_dir)
    page = html_path.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing to fetch
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # bars, label-efficiency curves, training curves, embedding maps
    assert len(images) >= 4 and all(len(i) > 1000 for i in images)
    for title in ("Label efficiency", "Training curves", "Test embeddings", "Provenance"):
        assert title in page
    provenance = load(bench_dir).provenance
    assert provenance["command"] == "selfsup bench --steps 5"
    assert provenance["torch_threads"] >= 1 and provenance["torch"] in page
    # every row with an embedding face left a map; counts are not among the scores
    assert len(list(bench_dir.glob("core.digits/*/embeddings.npz"))) == 5
    header = re.search(r"\| method \|[^\n]*\n", (bench_dir / "results.md").read_text())
    assert header and "n_train" not in header.group(0)


def test_no_plus_minus_without_a_measured_spread(tmp_path: Path) -> None:
    result = run_bench(tmp_path, steps=3, seeds=(0,), pretexts=["core.simclr"],
                       baselines=["core.input"], evaluators=["core.linear_probe"])
    assert "±" not in (tmp_path / "results.md").read_text()
    assert not any(k.endswith("_std") for r in result.rows for k in r.metrics)


def test_compare_marks_regressions(bench_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "b"
    shutil.copytree(bench_dir, other)
    data = json.loads((other / "results.json").read_text())
    row = next(r for r in data["rows"] if r["method"] == "core.simclr")
    row["metrics"]["linear_probe.accuracy"] -= 0.2  # far beyond any seed spread
    (other / "results.json").write_text(json.dumps(data))
    changes = compare(load(bench_dir), load(other))
    worse = [(c.method, c.metric) for c in changes if c.status == "worse"]
    assert worse == [("core.simclr", "linear_probe.accuracy")]
    assert all(c.status == "same" for c in changes if (c.method, c.metric) not in worse)
    md, page, _ = write_comparison(bench_dir, other)
    assert "WORSE" in md.read_text() and 'class="worse"' in page.read_text()
    assert main(["report", str(bench_dir), str(other)]) == 0


def test_report_cli_and_missing_folder(bench_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(bench_dir)]) == 0
    assert "Where pretraining beats the best baseline" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_quick_plan_and_budget() -> None:
    from selfsup.plugins import get_registry

    spec = get_registry().get("benchmark", "core.digits")
    assert quick_plan([spec], None) == {"core.digits": spec.quick["train"]["steps"]}
    doubled = quick_plan([spec], 2 * spec.quick["seconds"] / 60)
    assert doubled == {"core.digits": 2 * spec.quick["train"]["steps"]}
    with pytest.raises(ConfigError, match="--budget"):
        quick_plan([spec], 0)


def test_set_reaches_training_and_one_component() -> None:
    from selfsup.plugins import get_registry

    spec = get_registry().get("benchmark", "core.digits")
    changed = apply_settings(spec, ["training.lr=0.01", "core.simclr.temperature=0.5",
                                    "core.supervised.epochs=3"])
    assert changed.train["lr"] == 0.01 and changed.pretext_options["core.simclr"][
        "temperature"] == 0.5
    assert changed.baseline_options["core.supervised"] == {"epochs": 3}
    assert spec.train["lr"] == 2e-3  # the registered spec is untouched
    with pytest.raises(ConfigError, match="no selected benchmark runs a component"):
        run_bench("/tmp/unused", settings=["core.nothing.x=1"])


def test_steps_cap_the_supervised_baseline(tmp_path: Path) -> None:
    from selfsup.baselines import capped_epochs

    assert capped_epochs(60, 1078, 128, None) == 60
    assert capped_epochs(60, 1078, 128, 2) == 1  # 9 steps an epoch
    assert capped_epochs(60, 1078, 128, 20) == 3
    assert capped_epochs(2, 1078, 128, 1000) == 2
    run_bench(tmp_path, steps=2, seeds=(0,), pretexts=[], baselines=["core.supervised"],
              evaluators=["core.knn"])
    data = BenchResult.from_json(json.loads((tmp_path / "results.json").read_text()))
    assert [r.method for r in data.rows] == ["baseline:core.supervised"]
    assert data.rows[0].uses_labels


def test_bench_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "(default: bench-results)" in text and "--quick" in text and "--set" in text


def test_warnings_become_one_counted_note_per_kind() -> None:
    import warnings

    from selfsup.runner import summarise_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for rcond in (1.6e-08, 3.7e-07):
            warnings.warn(f"An ill-conditioned matrix detected: slice 0 has rcond = {rcond}.",
                          RuntimeWarning, stacklevel=1)
        warnings.warn("Singular matrix in solving dual problem.", UserWarning, stacklevel=1)
    assert summarise_warnings("core.linear_probe", caught) == [
        "core.linear_probe: 2x RuntimeWarning: An ill-conditioned matrix detected: slice N has "
        "rcond = N.",
        "core.linear_probe: 1x UserWarning: Singular matrix in solving dual problem.",
    ]
