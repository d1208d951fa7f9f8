"""``selfsup bench`` on core's built-in benchmark: pretexts beside the three baselines."""

from __future__ import annotations

import json
from pathlib import Path

from selfsup.bench import run_bench
from selfsup.cli import main


def test_bench_runs_pretexts_and_baselines(tmp_path: Path) -> None:
    result = run_bench(tmp_path, steps=10, seeds=(0,), pretexts=["core.barlow_twins"],
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
                 "--pretext", "core.simclr", "--baseline", "input"]) == 0
    assert (tmp_path / "results.md").is_file()
