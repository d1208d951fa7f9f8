"""Figure of inputs, outputs and references from a real `selfsup bench` run of selfsup-medical.

Top row: one low-dose CT test slice of ``medical.ct_denoise``, the encoders that
blind-spot, Noise2Score and Filter2Noise pretraining exported, non-local means,
and the full-dose reference. Bottom row: one 4x test scan of ``medical.mri4x``:
zero-filled, TV compressed sensing, the Noise2Recon reconstructions (self- and
semi-supervised runs), and the fully-sampled reference. Each panel's title gives
its PSNR against the reference (data range 1). Also writes Filter2Noise's
per-pixel filter parameters for the same CT slice.

    selfsup bench --benchmark medical.ct_denoise --benchmark medical.mri4x \\
        --benchmark medical.mri4x_semi --seeds 0 --out bench-results
    python benchmarks/medical_figure.py --bench-dir bench-results --out figure.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-dir", type=Path, default=Path("bench-results"))
    ap.add_argument("--out", type=Path, default=Path("medical_figure.png"))
    ap.add_argument("--index", type=int, default=12, help="which test slice to show")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfsup.plugins import get_registry
    from selfsup.runner import load_exported
    from selfsup_medical.evaluators.restoration import psnr

    registry = get_registry()
    panels: list[list[tuple[str, torch.Tensor]]] = []

    ct_dir = args.bench_dir / "medical.ct_denoise"
    _, built = load_exported(ct_dir / "medical.blind_spot", registry)
    ct = built.dataset
    noisy, clean = ct.labelled_split("test")[args.index % ct.n_labelled("test")]
    x = noisy[None]
    row = [("low-dose input", noisy[0])]
    agbf = None
    for key, title in (("medical.blind_spot", "blind-spot (N2S)"),
                       ("medical.noise2score", "Noise2Score"),
                       ("medical.filter2noise", "Filter2Noise")):
        model = load_exported(ct_dir / key, registry)[1].encoder.eval()
        with torch.no_grad():
            row.append((title, model.dense(x)[0, 0]))
        if key == "medical.filter2noise":
            agbf = model
    nlm = registry.get("baseline", "medical.nlm").build(ct)
    with torch.no_grad():
        row.append(("non-local means", nlm.dense(x)[0, 0]))
    row.append(("full-dose reference", clean[0]))
    panels.append(row)

    from selfsup_medical.kspace import magnitude

    mri_dir = args.bench_dir / "medical.mri4x"
    _, built = load_exported(mri_dir / "medical.noise2recon", registry)
    mri = built.dataset
    scan, target = mri.labelled_split("test")[args.index % mri.n_labelled("test")]
    batch = mri.collate([scan])
    row = []
    for key, title in (("medical.zero_filled", "zero-filled (4x)"), ("medical.tv_cs", "TV-CS")):
        model = registry.get("baseline", key).build(mri)
        with torch.no_grad():
            row.append((title, magnitude(model.dense(batch))[0, 0]))
    for folder, title in (("medical.mri4x", "Noise2Recon, 0 refs"),
                          ("medical.mri4x_semi", "Noise2Recon, 4 refs")):
        run = args.bench_dir / folder / "medical.noise2recon"
        if run.is_dir():
            model = load_exported(run, registry)[1].encoder.eval()
            with torch.no_grad():
                row.append((title, magnitude(model.dense(batch))[0, 0]))
    row.append(("fully-sampled reference", target[0]))
    panels.append(row)

    cols = max(len(r) for r in panels)
    fig, axes = plt.subplots(len(panels), cols, figsize=(2.6 * cols, 2.9 * len(panels)))
    for r, row in enumerate(panels):
        ref = row[-1][1]
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(row):
                continue
            title, image = row[c]
            ax.imshow(image.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            score = psnr(image.numpy(), ref.numpy())
            label = title if c == len(row) - 1 else f"{title}\n{score:.1f} dB"
            ax.set_title(label, fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    if agbf is not None and hasattr(agbf, "save_parameter_maps"):
        maps = args.out.with_name(args.out.stem + "_filter2noise_parameters.png")
        agbf.save_parameter_maps(x, maps)
        print(f"wrote {maps}")


if __name__ == "__main__":
    main()
