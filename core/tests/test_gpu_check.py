"""``benchmarks/gpu_check.py`` on a CPU with tiny steps, so the GPU script cannot rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_cpu_and_writes_one_json(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu_check.json"
    assert module.main(["--device", "cpu", "--steps", "2", "--benchmark", "core.sanity_digits",
                        "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["ok"] and report["device"] and report["steps"] == 2
    overhead = report["trainer_overhead"]
    assert overhead["precision"] == "fp32" and overhead["ratio"] > 0
    bench = report["benchmarks"]["core.sanity_digits"]
    assert bench["failed"] == [] and bench["peak_memory_mb"] is None
    assert "core.simclr" in bench["rows"] and "baseline:core.random_init" in bench["rows"]
    assert len(bench["samples_per_s"]) == 5 and min(bench["samples_per_s"]) > 0
