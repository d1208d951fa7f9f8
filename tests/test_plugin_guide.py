"""The plugin guide's worked example, as a new author would use it.

The files of the time-series plugin in core/README.md ("Worked example") are
written to a folder outside the repository, pip-installed (no network: no
dependencies, no build isolation), and then the plugin's own test (the
conformance kit) and ``selfsup bench`` run on it, with no change to core.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "core" / "README.md"


def guide_files() -> dict[str, str]:
    """``{relative path: text}`` of the fenced blocks of the worked example."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("### Worked example", 1)[1].split("\n### ", 1)[0]
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", section, re.S):
        first, _, body = block.partition("\n")
        if (first.startswith("# ") and "/" in first) or first.strip() == "# pyproject.toml":
            files[first[2:].strip()] = body
    return files


def test_the_guide_names_every_file_of_the_plugin() -> None:
    assert set(guide_files()) == {
        "pyproject.toml", "src/selfsup_timeseries/plugin.py", "src/selfsup_timeseries/data.py",
        "src/selfsup_timeseries/model.py", "tests/test_conformance.py",
    }


def test_a_plugin_written_from_the_guide_installs_passes_the_kit_and_benches(
    tmp_path: Path,
) -> None:
    project = tmp_path / "selfsup-timeseries"
    for rel, body in guide_files().items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(site), str(project)],
        capture_output=True, text=True, check=False,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "tests")],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path,
    )
    assert kit.returncode == 0, kit.stdout[-3000:]
    out = tmp_path / "bench"
    bench = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "--strict", "--plugins", "timeseries", "bench",
         "--benchmark", "timeseries.waves", "--out", str(out), "--steps", "20", "--seeds", "0"],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path,
    )
    assert bench.returncode == 0, bench.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["failed"] == [] and result["skipped"] == []
    by = {r["method"]: r["metrics"] for r in result["rows"]}
    assert set(by) == {"core.simclr", "core.vicreg", "baseline:core.input",
                       "baseline:core.random_init", "baseline:core.supervised"}
    # three waveform shapes in noise: a supervised CNN tells them apart
    assert by["baseline:core.supervised"]["linear_probe.accuracy"] > 0.8
