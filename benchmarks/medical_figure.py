"""The medical benchmarks' figures from a real `selfsup bench` run, from the command line.

`selfsup report` puts the same figures in its page (``BenchmarkSpec.figures``:
:mod:`selfsup_medical.figures`): one low-dose CT test slice of
``medical.ct_denoise`` through every pretext and baseline of the run, and one 4x
test scan of each MRI benchmark present; each panel's title gives its PSNR
against the reference (data range 1).

    selfsup bench --benchmark medical.ct_denoise --benchmark medical.mri4x \\
        --benchmark medical.mri4x_semi --seeds 0 --out bench-results
    python benchmarks/medical_figure.py --bench-dir bench-results --out figures/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-dir", type=Path, default=Path("bench-results"))
    ap.add_argument("--out", type=Path, default=Path("medical_figures"))
    args = ap.parse_args()

    from selfsup_medical import figures

    rows = json.loads((args.bench_dir / "results.json").read_text(encoding="utf-8"))["rows"]
    args.out.mkdir(parents=True, exist_ok=True)
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        draw = (figures.ct_denoise if bench == "medical.ct_denoise"
                else figures.mri if bench.startswith("medical.mri") else None)
        if draw is None:
            continue
        for _, fig in draw(args.bench_dir, [r for r in rows if r["benchmark"] == bench]):
            path = args.out / f"{bench}.png"
            fig.savefig(path, dpi=110)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
