"""The medical benchmarks' own figures for ``selfsup report`` (``BenchmarkSpec.figures``).

Each function gets a bench folder and its benchmark's result rows and returns
titled matplotlib figures: one test image through every method of the run, the
reference last, each panel titled with its PSNR against the reference (data
range 1). Pretexts are read from their exported encoders (``encoder.safetensors``
in the row's folder), baselines are rebuilt from the registry (they hold no
weights). ``benchmarks/medical_figure.py`` draws the same panels from the command
line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: which test image the panels show (an index into the test split, modulo its size)
INDEX = 12


def ct_denoise(bench_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """One low-dose CT test slice: input, every method of the run, full-dose reference."""
    import torch

    built, pretexts, baselines = _load(bench_dir, rows)
    ct = built.dataset
    noisy, clean = ct.labelled_split("test")[INDEX % ct.n_labelled("test")]
    x = noisy[None]
    panels = [("low-dose input", noisy[0])]
    with torch.no_grad():
        for name, model in [*pretexts, *baselines]:
            panels.append((name, model.dense(x)[0, 0]))
    panels.append(("full-dose reference", clean[0]))
    return [("One CT test slice through every method (PSNR against the full dose)",
             _panels(panels))]


def mri(bench_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """One undersampled MRI test scan: every method's magnitude image, then the reference."""
    import torch

    from selfsup_medical.kspace import magnitude

    built, pretexts, baselines = _load(bench_dir, rows)
    mri_set = built.dataset
    scan, target = mri_set.labelled_split("test")[INDEX % mri_set.n_labelled("test")]
    batch = mri_set.collate([scan])
    panels = []
    with torch.no_grad():
        for name, model in [*baselines, *pretexts]:
            panels.append((name, magnitude(model.dense(batch))[0, 0]))
    panels.append(("fully-sampled reference", target[0]))
    return [("One MRI test scan through every method (PSNR against the fully-sampled scan)",
             _panels(panels))]


def _load(bench_dir: Path, rows: list[dict[str, Any]]) -> tuple[Any, list[Any], list[Any]]:
    """The dataset (rebuilt from the first exported run), pretext models, baseline models."""
    from selfsup.api import get_registry, load_exported

    registry = get_registry()
    runs = [r for r in rows if r["kind"] == "pretext" and r.get("folder")
            and (bench_dir / r["folder"] / "encoder.json").is_file()]
    if not runs:
        raise FileNotFoundError(f"no exported pretext run under {bench_dir} to rebuild the "
                                "dataset from")
    built = load_exported(bench_dir / runs[0]["folder"], registry, evaluators=[])[1]
    pretexts = [(r["method"], load_exported(bench_dir / r["folder"], registry,
                                            evaluators=[])[1].encoder.eval()) for r in runs]
    baselines = []
    for r in rows:
        key = r["method"].removeprefix("baseline:")
        if r["kind"] == "baseline" and key in registry.keys("baseline"):
            baselines.append((key, registry.get("baseline", key).build(built.dataset, None)))
    return built, pretexts, baselines


def _panels(panels: list[tuple[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfsup_medical.evaluators.restoration import psnr

    ref = panels[-1][1].numpy()
    ncols = min(5, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for i, (ax, (title, image)) in enumerate(zip(axes.flat, panels, strict=False)):
        ax.imshow(image.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        last = i == len(panels) - 1
        ax.set_title(title if last else f"{title}\n{psnr(image.numpy(), ref):.1f} dB",
                     fontsize=9)
    fig.tight_layout()
    return fig
