"""PSNR against training steps for the medical plugin's self-supervised restorers (issue 16).

Each *run* trains one pretext on one dataset setting with core's ``Trainer`` at the
benchmark's CPU setting (batch 8, lr 1e-3, no weight decay, 10 warm-up steps, cosine
decay over ``--steps``) and scores the test split with ``medical.restoration`` every
``--every`` steps (the online evaluation of the ``Trainer``, which does not shift the
training's random streams). It prints one table per experiment, PSNR (dB) by step,
with the noisy input's PSNR (the ``medical.identity`` / zero-filled row of the
benchmark) and the first evaluated step at which each run passes it, writes every
curve to ``<out>.json`` and draws them in ``<out>.png``.

Experiments (``--experiment``, repeatable; all by default):

- ``blind_spot_iid``: the sanity setting of Noise2Self / Noise2Void: i.i.d. Gaussian
  noise (sigma 0.05, input 26.0 dB) on the full-dose 64x64 slices of
  ``medical.ct_denoise`` (``noise="gaussian"``); both maskings.
- ``blind_spot_matched``: the same network on the CT benchmark's FBP noise
  (``noise="ct"``, 1e4 and 1e3 photons) and on i.i.d. Gaussian noise of the same
  input PSNR (sigma 0.0116 and 0.0352): does spatial correlation, or the noise level,
  decide whether a blind-spot network passes its input?
- ``blind_spot_budget``: on the CT benchmark's noise (1e4 photons), the blind-spot
  U-Net beside the same U-Net trained *supervised* on the training pairs (a reference
  outside the plugin: what this network reaches in as many steps); run it with more
  ``--steps`` to find where each passes the input.
- ``cbsn_correlated``: C-BSN's sanity setting, Gaussian noise blurred by a 1-pixel
  Gaussian (``noise="correlated"``, sigma 0.05): C-BSN against the plain blind-spot
  U-Net (Noise2Self masking) on the same images.
- ``cbsn_stride``: C-BSN on the same setting with the blind loss's pixel-shuffle
  stride ``s_b`` at 5 (the authors' default), 3 and 2. It also prints, for each
  stride, the PSNR of the *clean* test images predicted by the mean of their four
  neighbours ``s`` pixels away: how much of a 64x64 slice survives being seen only
  through pixels ``s`` apart, which is all the blind branch sees.
- ``noise2recon``: Noise2Recon on ``medical.mri_recon`` (4x, 64x64), self- and
  semi-supervised, and supervised with every training reference, against the
  zero-filled image (the benchmark's split: train on T1 volumes, test on an EPI volume).
- ``noise2recon_normalized``: the matched runs with ``normalize=True`` (the default
  since issue 16: the residual follows each scan's level and global phase).
- ``noise2recon_matched``: the same on ``split="matched"`` (train, val and test slices
  dealt out of the same two T1 volumes, so the training scans match the test scans),
  with ``medical.recon_unet`` as it was before issue 16 (``normalize=False``).

    OMP_NUM_THREADS=1 python benchmarks/medical_sanity_curves.py \\
        --experiment blind_spot_iid --steps 200 --every 20 --out plugins/medical/docs/sanity

One thread (``torch.set_num_threads(1)``); runs are sequential. ``--replot a.json
b.json --out c`` redraws saved curves into ``c.png`` without training.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from selfsup.api import BaselineContext, EvalContext, TrainConfig, Trainer, get_registry

TRAIN = {"batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 10}
CT = {"image_size": 64}
MRI = {"image_size": 64, "acceleration": 4}


@dataclass(frozen=True)
class Run:
    label: str
    dataset: str
    dataset_options: dict[str, Any]
    encoder: str
    pretext: str
    pretext_options: dict[str, Any] = field(default_factory=dict)
    encoder_options: dict[str, Any] = field(default_factory=dict)


def experiments() -> dict[str, list[Run]]:
    ct, bs, n2v = "medical.ct_denoise", "medical.blind_spot", {"masking": "noise2void"}
    iid = {**CT, "noise": "gaussian", "sigma": 0.05}
    corr = {**CT, "noise": "correlated", "sigma": 0.05, "correlation": 1.0}
    mri, recon, n2r = "medical.mri_recon", "medical.recon_unet", "medical.noise2recon"
    matched = {**MRI, "split": "matched"}
    norm, plain = {"normalize": True}, {"normalize": False}
    return {
        "blind_spot_iid": [
            Run("Noise2Self, i.i.d. sigma 0.05", ct, iid, "medical.unet", bs),
            Run("Noise2Void, i.i.d. sigma 0.05", ct, iid, "medical.unet", bs, n2v),
        ],
        "blind_spot_matched": [
            Run("Noise2Self, FBP 1e4 photons", ct, {**CT, "photons": 1e4}, "medical.unet", bs),
            Run("Noise2Self, i.i.d. sigma 0.0116 (same input PSNR)", ct,
                {**CT, "noise": "gaussian", "sigma": 0.0116}, "medical.unet", bs),
            Run("Noise2Self, FBP 1e3 photons", ct, {**CT, "photons": 1e3}, "medical.unet", bs),
            Run("Noise2Self, i.i.d. sigma 0.0352 (same input PSNR)", ct,
                {**CT, "noise": "gaussian", "sigma": 0.0352}, "medical.unet", bs),
        ],
        "blind_spot_budget": [
            Run("supervised U-Net (reference), FBP 1e4 photons", ct, {**CT, "photons": 1e4},
                "medical.unet", "supervised"),
            Run("Noise2Self, FBP 1e4 photons", ct, {**CT, "photons": 1e4}, "medical.unet", bs),
        ],
        "cbsn_correlated": [
            Run("blind-spot U-Net (Noise2Self), correlated", ct, corr, "medical.unet", bs),
            Run("C-BSN, correlated", ct, corr, "medical.cbsn_net", "medical.cbsn"),
        ],
        "cbsn_stride": [
            Run(f"C-BSN, correlated, s_b={sb}", ct, corr, "medical.cbsn_net", "medical.cbsn",
                {"blind_stride": sb})
            for sb in (5, 3, 2)
        ],
        "noise2recon": [
            Run("Noise2Recon self-supervised", mri, MRI, recon, n2r),
            Run("Noise2Recon semi-supervised (4 refs)", mri, {**MRI, "n_supervised": 4},
                recon, n2r),
            Run("supervised (61 refs)", mri, {**MRI, "n_supervised": 61}, recon, n2r,
                {"reconstruction": "supervised", "consistency_weight": 0.0}),
        ],
        "noise2recon_matched": [  # medical.recon_unet as it was before issue 16
            Run("Noise2Recon self-supervised, matched", mri, matched, recon, n2r, {}, plain),
            Run("Noise2Recon semi-supervised (4 refs), matched", mri,
                {**matched, "n_supervised": 4}, recon, n2r, {}, plain),
            Run("supervised (37 refs), matched", mri, {**matched, "n_supervised": 37}, recon,
                n2r, {"reconstruction": "supervised", "consistency_weight": 0.0}, plain),
        ],
        "noise2recon_normalized": [
            Run("Noise2Recon self-supervised, matched, normalize", mri, matched, recon, n2r,
                {}, norm),
            Run("supervised (37 refs), matched, normalize", mri,
                {**matched, "n_supervised": 37}, recon, n2r,
                {"reconstruction": "supervised", "consistency_weight": 0.0}, norm),
        ],
    }


class Supervised(torch.nn.Module):
    """A reference, not a method of the plugin: the same network trained on the
    training split's (noisy, clean) pairs with the mean squared error, at the same
    budget; it bounds what the self-supervised runs can reach in that many steps."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        noisy, clean = batch[:, :1], batch[:, 1:]
        return {"loss": ((self.encoder.dense(noisy) - clean) ** 2).mean()}


def paired(dataset: Any) -> Any:
    """``dataset`` whose pretraining items are its training pairs, stacked as channels."""
    from selfsup_medical.images import ImageDataset

    pairs = dataset.labelled_split("train")
    return ImageDataset(dataset.name, modality=dataset.modality,
                        pretrain=[torch.cat([x, y]) for x, y in pairs],
                        labelled={s: dataset.labelled_split(s) for s in dataset.splits},
                        task=dataset.task)


def input_psnr(dataset: Any, registry: Any) -> float:
    """The test PSNR of the benchmark's do-nothing row: the noisy input (denoising) or
    the zero-filled image (MRI)."""
    key = "medical.zero_filled" if dataset.modality == "kspace" else "medical.identity"
    ctx = EvalContext(device="cpu", seeds=(0,), batch_size=32)
    spec = registry.get("baseline", key)

    model = spec.build(dataset, BaselineContext(encoder_factory=lambda: None, eval=ctx))
    evaluate = registry.get("evaluator", "medical.restoration").build()
    return float(evaluate(model, dataset, ctx)["restoration.psnr"])


def neighbour_bound(registry: Any, strides: tuple[int, ...] = (1, 2, 3, 5)) -> str:
    """PSNR of the clean test slices of the correlated setting predicted by the mean of
    their four neighbours ``s`` pixels away (8-pixel border left out), for each ``s``."""
    import torch.nn.functional as F

    dataset = registry.get("dataset", "medical.ct_denoise").build(
        **experiments()["cbsn_correlated"][0].dataset_options)
    clean = torch.stack([y for _, y in dataset.labelled_split("test")])
    cells = []
    for s in strides:
        p = F.pad(clean, (s, s, s, s), mode="replicate")
        pred = (p[..., :-2 * s, s:-s] + p[..., 2 * s:, s:-s]
                + p[..., s:-s, :-2 * s] + p[..., s:-s, 2 * s:]) / 4
        mse = ((pred - clean)[..., 8:-8, 8:-8] ** 2).mean(dim=(1, 2, 3))
        cells.append(f"s={s}: {float((-10 * torch.log10(mse)).mean()):.2f}")
    return "clean slice from its 4 neighbours s pixels away (PSNR, dB): " + ", ".join(cells)


def curve(run: Run, steps: int, every: int, registry: Any) -> dict[str, Any]:
    """Train ``run`` for ``steps`` steps; its test PSNR every ``every`` steps."""
    t0 = time.perf_counter()
    dataset = registry.get("dataset", run.dataset).build(**run.dataset_options)
    torch.manual_seed(0)
    encoder = registry.get("encoder", run.encoder).build(dataset, **run.encoder_options)
    train_set = dataset
    if run.pretext == "supervised":
        task: torch.nn.Module = Supervised(encoder)
        train_set = paired(dataset)
    else:
        task = registry.get("pretext", run.pretext).build(encoder, dataset,
                                                          **run.pretext_options)
    evaluate = registry.get("evaluator", "medical.restoration").build()
    ctx = EvalContext(device="cpu", seeds=(0,), batch_size=32)
    points: list[tuple[int, float]] = [(0, float(evaluate(encoder, dataset, ctx)[
        "restoration.psnr"]))]

    def online(model: torch.nn.Module) -> dict[str, float]:
        value = float(evaluate(model, dataset, ctx)["restoration.psnr"])
        points.append((points[-1][0] + every, value))
        print(f"  {run.label}: step {points[-1][0]}: {value:.2f} dB", flush=True)
        return {"psnr": value}

    config = TrainConfig(steps=steps, online_eval_every=every, progress=False, device="cpu",
                         **TRAIN)
    Trainer(task, train_set, config, online_eval=online).fit()
    baseline = input_psnr(dataset, registry)
    passed = next((s for s, v in points if v > baseline), None)
    return {"label": run.label, "dataset": run.dataset, "dataset_options": run.dataset_options,
            "encoder": run.encoder, "encoder_options": run.encoder_options,
            "pretext": run.pretext, "pretext_options": run.pretext_options,
            "input_psnr": baseline, "points": points, "passes_input_at": passed,
            "seconds": time.perf_counter() - t0}


def table(name: str, results: list[dict[str, Any]]) -> str:
    steps = [s for s, _ in results[0]["points"]]
    head = "| run | input | " + " | ".join(str(s) for s in steps) + " | passes input at |"
    rule = "| --- " * (len(steps) + 3) + "|"
    rows = [
        f"| {r['label']} | {r['input_psnr']:.2f} | "
        + " | ".join(f"{v:.2f}" for _, v in r["points"])
        + f" | {r['passes_input_at'] if r['passes_input_at'] is not None else 'not reached'} |"
        for r in results
    ]
    return "\n".join([f"{name} (test PSNR, dB, by training step)", "", head, rule, *rows])


def plot(all_results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(2, len(all_results))
    rows = -(-len(all_results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(all_results):]:
        ax.axis("off")
    for ax, (name, results) in zip(axes.flat, all_results.items()):
        for k, r in enumerate(results):
            colour = f"C{k}"
            s, v = zip(*r["points"])
            ax.plot(s, v, "-o", ms=3, color=colour, label=r["label"])
            ax.axhline(r["input_psnr"], color=colour, ls=":", lw=1)
        ax.set(title=name, xlabel="training step", ylabel="test PSNR (dB)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, "dotted: each run's noisy / zero-filled input", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", action="append", choices=sorted(experiments()))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--out", default="medical-sanity", help="writes <out>.json and <out>.png")
    ap.add_argument("--replot", nargs="+", metavar="JSON",
                    help="no training: print and draw the curves saved in these files")
    args = ap.parse_args()
    if args.replot:
        merged: dict[str, list[dict[str, Any]]] = {}
        for name in args.replot:
            merged.update(json.loads(Path(name).read_text()))
        for name, results in merged.items():
            print(table(name, results), "\n")
        plot(merged, Path(args.out).with_suffix(".png"))
        return
    torch.set_num_threads(1)
    registry = get_registry()
    chosen = args.experiment or sorted(experiments())
    out = Path(args.out)
    all_results: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for name in chosen:
        all_results[name] = [curve(r, args.steps, args.every, registry)
                             for r in experiments()[name]]
        print(table(name, all_results[name]), "\n", flush=True)
        if name == "cbsn_stride":
            print(neighbour_bound(registry), "\n", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(all_results, indent=1))
    plot(all_results, out.with_suffix(".png"))
    seconds = [round(r["seconds"]) for rs in all_results.values() for r in rs]
    print(f"wall time {time.perf_counter() - t0:.0f} s (runs: {seconds} s)")


if __name__ == "__main__":
    main()
