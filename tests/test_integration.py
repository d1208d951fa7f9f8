"""Every installed distribution together: strict loading, conformance, a short bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from selfsup.api import Registry, check_benchmark

#: rows that `selfsup bench` may skip here, each with the reason it does not apply
EXPECTED_SKIPS: dict[str, str] = {}


def test_all_installed_plugins_load_strictly_together() -> None:
    reg = Registry(strict=True).load()
    assert all(r.ok for r in reg.reports), [r.errors for r in reg.reports]
    for spec in reg.benchmarks():
        check_benchmark(spec, reg)


def test_every_sanity_benchmark_runs_and_is_checked(tmp_path: Path) -> None:
    # 3 steps are far too few for the conditions to hold: this checks that every sanity
    # benchmark runs without a failed row and that each condition is checked and printed
    out = tmp_path / "sanity"
    proc = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "--strict", "bench", "--sanity", "--out", str(out),
         "--steps", "3", "--no-report"],
        capture_output=True, text=True, check=False,
    )
    result = json.loads((out / "results.json").read_text())
    assert result["failed"] == [], result["failed"]
    specs = [s for s in Registry().load().benchmarks() if s.sanity]
    assert {c["benchmark"] for c in result["sanity"]} == {s.name for s in specs}
    assert len(result["sanity"]) == sum(len(s.sanity) for s in specs)
    failed = [c for c in result["sanity"] if not c["passed"]]
    assert proc.returncode == (1 if failed else 0), proc.stderr[-2000:]
    assert proc.stdout.count("PASS  ") + proc.stdout.count("FAIL  ") == len(result["sanity"])


def test_bench_command_runs_every_installed_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "--strict", "bench", "--out", str(out),
         "--steps", "3", "--seeds", "0", "--baseline", "core.random_init",
         "--evaluator", "core.linear_probe"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())
    assert result["failed"] == []
    unexpected = [s for s in result["skipped"] if s.split(":", 1)[0] not in EXPECTED_SKIPS]
    assert not unexpected, unexpected
    rows = result["rows"]
    # a benchmark without pretexts and without core.random_init (every method a
    # per-item baseline, e.g. remote_sensing.hsi_complete) has no row under this filter
    benches = {spec.name for spec in Registry().load().benchmarks()
               if not spec.name.startswith("core.") and not spec.sanity
               and (spec.pretexts or "core.random_init" in spec.baselines)} or {"core.digits"}
    assert {r["benchmark"] for r in rows} == benches
    assert any(r["method"] == "baseline:core.random_init" for r in rows)
    pretexts = {(spec.name, p) for spec in Registry().load().benchmarks()
                if spec.name in benches for p in spec.pretexts}
    assert {(r["benchmark"], r["method"]) for r in rows if r["kind"] == "pretext"} == pretexts
