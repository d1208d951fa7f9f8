"""The medical benchmarks' figures from a real `selfsup bench` run, from the command line.

`selfsup report` puts the same figures in its page (``BenchmarkSpec.figures``:
:mod:`selfsup_medical.figures`): one low-dose CT test slice of
``medical.ct_denoise`` through every pretext and baseline of the run, and one 4x
test scan of each MRI benchmark present; each panel's title gives its PSNR
against the reference (data range 1). One PNG per benchmark goes to ``--out``;
``--combined`` also stacks them, in the order drawn, into one image (the
README's ``plugins/medical/docs/figure.png``). ``--bench-dir`` repeats, for
benchmarks run into different folders.

    selfsup bench --benchmark medical.ct_denoise --seeds 0 --out bench-ct
    selfsup bench --benchmark medical.mri4x --benchmark medical.mri4x_semi \\
        --seeds 0 --out bench-mri
    python benchmarks/medical_figure.py --bench-dir bench-ct --bench-dir bench-mri \\
        --out figures/ --combined plugins/medical/docs/figure.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bench-dir",
        type=Path,
        action="append",
        help="a `selfsup bench --out` folder (repeatable; default bench-results)",
    )
    ap.add_argument("--out", type=Path, default=Path("medical_figures"))
    ap.add_argument(
        "--combined",
        type=Path,
        default=None,
        help="also write every benchmark's figure stacked into this one PNG",
    )
    args = ap.parse_args()

    from selfsup_medical import figures

    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for bench_dir in args.bench_dir or [Path("bench-results")]:
        rows = json.loads((bench_dir / "results.json").read_text(encoding="utf-8"))["rows"]
        for bench in dict.fromkeys(r["benchmark"] for r in rows):
            draw = (
                figures.ct_denoise
                if bench == "medical.ct_denoise"
                else figures.mri
                if bench.startswith("medical.mri")
                else None
            )
            if draw is None:
                continue
            for _, fig in draw(bench_dir, [r for r in rows if r["benchmark"] == bench]):
                # the benchmark's name on top: in the stacked image the MRI panels of
                # mri4x and mri4x_semi carry the same method names
                fig.suptitle(bench, fontsize=11, fontweight="bold")
                fig.tight_layout()  # again, to make room for the title
                path = args.out / f"{bench}.png"
                fig.savefig(path, dpi=110)
                written.append(path)
                print(f"wrote {path}")
    if args.combined is not None:
        _stack(written, args.combined)
        print(f"wrote {args.combined}")


def _stack(paths: list[Path], out: Path) -> None:
    """The PNGs one above the other, left-aligned on white."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    if not images:
        raise FileNotFoundError(
            "no medical.ct_denoise or medical.mri* benchmark in the "
            "--bench-dir folders' results.json to draw"
        )
    canvas = Image.new(
        "RGB", (max(i.width for i in images), sum(i.height for i in images)), "white"
    )
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)


if __name__ == "__main__":
    main()
