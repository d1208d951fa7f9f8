"""GPU readiness: every installed benchmark under its ``gpu_train`` setting, briefly.

One script for the first minutes on a CUDA machine. It runs

1. the trainer-overhead benchmark (``benchmarks/trainer_overhead.py``) in bf16
   (fp32 on a CPU), Trainer against a hand-written loop;
2. each installed plugin's benchmarks (sanity benchmarks left out) under their
   ``gpu_train`` setting for ``--steps`` pretraining steps, one seed, every pretext
   and baseline, the evaluators of the benchmark's quick share (all with
   ``--all-evaluators``), through ``selfsup.bench.run_bench``: a device mismatch,
   a dtype error (bf16 autocast) or a crash in any row shows up as a failed row;

and writes one JSON (``--out``): per benchmark its wall time, rows, failed and
skipped rows, the pretraining samples/s each row logged, peak GPU memory, and the
number of host-device synchronisations CUDA's sync debug mode reported while the
rows ran (``torch.cuda.set_sync_debug_mode("warn")``: a logging ``.item()`` every
``log_every`` steps is expected; one per step is a host sync in the loop). The
trainer pins host memory on CUDA (``pin_memory``); the JSON records whether the
loader of each benchmark did.

It also runs on a CPU (``--device cpu``, tiny steps; a core test does so), so it
cannot rot between GPU loans::

    python benchmarks/gpu_check.py --device cuda --steps 20 --out gpu_check.json
    python benchmarks/gpu_check.py --device cpu --steps 2 --benchmark core.digits \\
        --skip-overhead --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from selfsup.bench import run_bench, select_benchmarks
from selfsup.plugins import get_registry

HERE = Path(__file__).resolve().parent


def trainer_overhead(device: str, steps: int) -> dict[str, Any]:
    """``trainer_overhead.py`` once each way, in bf16 on CUDA (fp32 on a CPU)."""
    spec = importlib.util.spec_from_file_location("trainer_overhead", HERE / "trainer_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    precision = "bf16" if device.startswith("cuda") else "fp32"
    args = module.parser().parse_args(["--device", device, "--precision", precision,
                                       "--steps", str(max(steps, module.WARMUP + 2)),
                                       "--repeats", "2"])
    t0 = time.perf_counter()
    out = module.measure(args)
    return {"precision": precision, "steps": args.steps, "seconds": time.perf_counter() - t0,
            "ratio": out["ratio"], "best_ms": out["best_ms"],
            "losses_agree": True}  # measure() asserts they agree to 5 decimals


def _samples_per_s(folder: Path) -> list[float]:
    """The samples/s each pretext row's trainer logged (``metrics.jsonl``)."""
    speeds = []
    for log in sorted(folder.glob("*/metrics.jsonl")):
        rates = [json.loads(line).get("samples_per_s") for line in
                 log.read_text(encoding="utf-8").splitlines() if line.strip()]
        rates = [r for r in rates if r]
        if rates:
            speeds.append(float(rates[-1]))
    return speeds


def check_benchmark(name: str, out: Path, device: str, steps: int,
                    all_evaluators: bool) -> dict[str, Any]:
    registry = get_registry()
    spec = registry.get("benchmark", name)
    evaluators = None if all_evaluators else list(spec.quick.get("evaluators", ())) or None
    settings = ["training.precision=bf16"] if device.startswith("cuda") else []
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.set_sync_debug_mode("warn")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = run_bench(out / name, benchmarks=[name], registry=registry, steps=steps,
                               seeds=(0,), gpu=True, device=device, evaluators=evaluators,
                               settings=settings)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    return {
        "seconds": time.perf_counter() - t0,
        "rows": [r.method for r in result.rows],
        "failed": result.failed,
        "skipped": result.skipped,
        "train": dict(spec.gpu_train or spec.train),
        "samples_per_s": _samples_per_s(out / name / name),
        "host_syncs": syncs,
        "pin_memory": cuda,  # the trainer's DataLoader pins exactly when the device is CUDA
        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--steps", type=int, default=20, help="pretraining steps per pretext")
    ap.add_argument("--benchmark", action="append", default=[],
                    help="only these (repeatable; default: every installed plugin's)")
    ap.add_argument("--all-evaluators", action="store_true",
                    help="every evaluator, not only the quick share's")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available here; use --device cpu")

    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
        else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "steps": args.steps,
        "command": "python benchmarks/gpu_check.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
    }
    if not args.skip_overhead:
        report["trainer_overhead"] = trainer_overhead(args.device, args.steps)
    names = args.benchmark or [s.name for s in select_benchmarks(get_registry(), None)]
    report["benchmarks"] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        for name in names:
            print(f"gpu_check: {name}", file=sys.stderr)
            try:
                report["benchmarks"][name] = check_benchmark(name, Path(tmp), args.device,
                                                             args.steps, args.all_evaluators)
            except Exception as exc:  # a benchmark that cannot even start: record, go on
                report["benchmarks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    bad = {n: b.get("error") or b["failed"] for n, b in report["benchmarks"].items()
           if b.get("error") or b.get("failed")}
    report["ok"] = not bad
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    for name, info in report["benchmarks"].items():
        state = "ok" if name not in bad else f"FAILED: {bad[name]}"
        print(f"{name}: {info.get('seconds', 0):.0f} s, syncs {info.get('host_syncs')}, {state}")
    print(f"gpu_check: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
