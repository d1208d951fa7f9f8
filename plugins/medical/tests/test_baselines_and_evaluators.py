"""Classical baselines and the restoration / Dice evaluators, against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import (
    normalized_root_mse,
    peak_signal_noise_ratio,
    structural_similarity,
)
from skimage.restoration import denoise_tv_chambolle
from torch import nn

from selfsup.api import KSPACE, BaselineContext, EvalContext, Registry, TaskSpec
from selfsup_medical import baselines as B
from selfsup_medical.evaluators import restoration as R
from selfsup_medical.evaluators import segmentation as S
from selfsup_medical.images import ImageDataset
from selfsup_medical.kspace import KSpaceDataset, simulate_scan
from selfsup_medical.models import UNET_ENCODER_FACES, MedUNet

SMALL = (8, 8, 16, 32, 64, 8)  # U-Net widths small enough for a CPU test


# -- fixtures -----------------------------------------------------------------------------


def smooth_image(i: int, size: int = 32) -> torch.Tensor:
    """A smooth, positive test image [1, size, size] in about [0.2, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    cx, cy = 0.3 * np.cos(i), 0.3 * np.sin(i)
    blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.2)
    return (0.2 + 0.6 * blob + 0.2 * (xx**2 + yy**2 < 0.25).float())[None]


def denoising_dataset(sigma: float = 0.1) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    pairs = []
    for i in range(10):
        clean = smooth_image(i)
        pairs.append((clean + sigma * torch.randn(clean.shape, generator=g), clean))
    return ImageDataset(
        "toy_denoise",
        modality="image2d",
        pretrain=[p[0] for p in pairs],
        labelled={"train": pairs[:2], "val": pairs[2:6], "test": pairs[6:]},
        task=TaskSpec("dense"),
    )


def piecewise_smooth(size: int, shift: int) -> torch.Tensor:
    """An ellipse with an intensity ramp, a brighter disk and a darker box, [1, size, size]."""
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    xx = xx - shift / size
    img = 0.5 * ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1) * (1 + 0.3 * yy)
    img += 0.4 * ((xx - 0.3) ** 2 + (yy + 0.2) ** 2 < 0.06)
    img -= 0.3 * ((np.abs(xx + 0.3) < 0.15) & (np.abs(yy - 0.3) < 0.2))
    return torch.from_numpy((img / img.max()).astype(np.float32))[None]


def kspace_dataset(size: int = 64) -> KSpaceDataset:
    def item(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        img = piecewise_smooth(size, shift=seed % 5 - 2)
        scan = simulate_scan(
            img, kind="random", acceleration=4, center_fraction=0.08, snr_db=None, seed=seed
        )
        return scan, img

    items = [item(s) for s in range(6)]
    ds = KSpaceDataset(
        "toy_mri",
        pretrain=[it[0] for it in items],
        labelled={"train": items[:2], "val": items[2:4], "test": items[4:]},
    )
    ds.modality = KSPACE  # what the registry sets from a DatasetSpec
    return ds


def disks_dataset(n_train: int = 4, n_test: int = 6, size: int = 32) -> ImageDataset:
    """Bright disks on noise; label 1 inside the disk."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    items = []
    for _ in range(n_train + n_test):
        cy, cx = rng.uniform(10, size - 10, 2)
        r = rng.uniform(5, 8)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img = 0.2 + 0.6 * disk + 0.15 * rng.standard_normal((size, size))
        items.append(
            (torch.tensor(img[None], dtype=torch.float32), torch.from_numpy(disk.astype(np.int64)))
        )
    return ImageDataset(
        "toy_disks",
        modality="image2d",
        pretrain=[x for x, _ in items],
        labelled={"train": items[:n_train], "test": items[n_train:]},
        task=TaskSpec("segmentation", 2),
    )


def evaluate(model: nn.Module, dataset: object, **options: object) -> dict[str, float]:
    return R.build(**options)(model, dataset, EvalContext(batch_size=4))  # type: ignore[arg-type]


# -- restoration metrics ------------------------------------------------------------------


def test_metrics_match_skimage_and_numpy() -> None:
    rng = np.random.default_rng(1)
    target = rng.uniform(0.1, 0.9, (1, 32, 32))
    pred = target + 0.05 * rng.standard_normal(target.shape)
    assert R.psnr(pred, target, 1.0) == pytest.approx(
        peak_signal_noise_ratio(target, pred, data_range=1.0)
    )
    rng_range = float(target.max() - target.min())
    assert R.psnr(pred, target, None) == pytest.approx(
        peak_signal_noise_ratio(target, pred, data_range=rng_range)
    )
    assert R.ssim(pred, target, 1.0) == pytest.approx(
        structural_similarity(target[0], pred[0], data_range=1.0)
    )
    assert R.nrmse(pred, target) == pytest.approx(
        np.sqrt(((pred - target) ** 2).sum() / (target**2).sum())
    )
    assert R.nrmse(pred, target) == pytest.approx(
        normalized_root_mse(target, pred, normalization="euclidean")
    )
    # 3D: one SSIM per volume
    vol = rng.uniform(0, 1, (1, 16, 16, 16))
    noisy = vol + 0.1 * rng.standard_normal(vol.shape)
    assert R.ssim(noisy, vol, 1.0) == pytest.approx(
        structural_similarity(vol[0], noisy[0], data_range=1.0)
    )
    assert R.psnr(vol, vol) == R.PSNR_CAP


def test_identity_scores_the_degraded_input() -> None:
    ds = denoising_dataset()
    metrics = evaluate(B.build_identity(ds), ds)
    pairs = ds.labelled_split("test")
    ref_psnr = np.mean(
        [peak_signal_noise_ratio(c.numpy(), n.numpy(), data_range=1.0) for n, c in pairs]
    )
    ref_ssim = np.mean(
        [structural_similarity(c[0].numpy(), n[0].numpy(), data_range=1.0) for n, c in pairs]
    )
    ref_nrmse = np.mean([np.linalg.norm(n - c) / np.linalg.norm(c) for n, c in pairs])
    assert set(metrics) == {"restoration.psnr", "restoration.ssim", "restoration.nrmse"}
    assert metrics["restoration.psnr"] == pytest.approx(ref_psnr, rel=1e-5)
    assert metrics["restoration.ssim"] == pytest.approx(ref_ssim, rel=1e-5)
    assert metrics["restoration.nrmse"] == pytest.approx(ref_nrmse, rel=1e-5)


def test_shape_mismatch_names_both_shapes_and_the_model() -> None:
    class Pooled(nn.Module):
        def dense(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((2, 3))

    with pytest.raises(ValueError, match=r"Pooled.*\(4, 1\).*\(4, 1, 32, 32\)"):
        evaluate(Pooled(), denoising_dataset())


def test_restoration_options_and_task_are_checked() -> None:
    with pytest.raises(TypeError, match="data_range"):
        R.build(data_rang=1.0)
    with pytest.raises(ValueError, match="data_range"):
        R.build(data_range=-1.0)
    with pytest.raises(ValueError, match="dice_finetune"):
        evaluate(nn.Identity(), disks_dataset())


# -- image denoising baselines ------------------------------------------------------------


def test_noise_sigma_estimate() -> None:
    g = torch.Generator().manual_seed(3)
    img = smooth_image(0, 64)[0] + 0.1 * torch.randn(64, 64, generator=g)
    assert B.estimate_noise_sigma(img.numpy()) == pytest.approx(0.1, rel=0.15)


@pytest.mark.parametrize(
    "factory,option,grid",
    [
        (B.build_tv_denoise, "weight", B.TV_DENOISE_GRID),
        (B.build_nlm, "h", B.NLM_GRID),
        (B.build_bilateral, "sigma_color", B.BILATERAL_GRID),
    ],
)
def test_filters_beat_identity_with_strength_chosen_on_val(factory, option, grid) -> None:
    ds = denoising_dataset()
    base = evaluate(B.build_identity(ds), ds)["restoration.psnr"]
    module = factory(ds)
    assert module.chosen["selected_on"] == "val"
    assert module.chosen[option] in grid and module.strength == module.chosen[option]
    assert set(module.chosen["val_psnr"]) == {str(v) for v in grid}
    assert list(module.parameters()) == []
    assert evaluate(module, ds)["restoration.psnr"] > base + 2.0
    given = factory(ds, **{option: grid[0]})
    assert given.chosen == {option: grid[0], "selected_on": "given"}


def test_strength_selection_needs_val() -> None:
    ds = denoising_dataset()
    no_val = ImageDataset(
        "no_val",
        modality="image2d",
        pretrain=ds.pretrain_set(),
        labelled={"test": ds.labelled_split("test")},
        task=TaskSpec("dense"),
    )
    with pytest.raises(ValueError, match="pass weight="):
        B.build_tv_denoise(no_val)
    with pytest.raises(ValueError, match="weight"):
        B.build_tv_denoise(ds, weight=0.0)


def test_registered_baselines_build_from_their_specs() -> None:
    reg = Registry(plugins=["medical"], strict=True)
    reg.load()
    images, kspace = denoising_dataset(), kspace_dataset(32)
    context = BaselineContext(encoder_factory=nn.Identity, eval=EvalContext())
    for key, ds in (
        ("medical.identity", images),
        ("medical.tv_denoise", images),
        ("medical.zero_filled", kspace),
    ):
        spec = reg.get("baseline", key)
        assert spec.faces == ("dense",) and spec.accepts(ds.modality)
        module = spec.build(ds, context)
        batch, _, _ = next(ds.labelled_batches("test", 2))
        assert torch.equal(module(batch), module.dense(batch))  # forward is the dense face
    tv = reg.get("baseline", "medical.tv_denoise").build(images, context)
    assert tv.chosen == B.build_tv_denoise(images).chosen  # the spec adds no options
    assert reg.get("baseline", "medical.tv_cs").options["iterations"] == 100


# -- MRI baselines ------------------------------------------------------------------------


def test_zero_filled_is_the_inverse_fft_of_the_masked_kspace() -> None:
    ds = kspace_dataset(32)
    scan, img = ds.labelled_split("test")[0]
    mask = scan["mask"].numpy()[0, 0]  # [W]
    full = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img[0].numpy()), norm="ortho"))
    expected = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(full * mask), norm="ortho"))
    batch = ds.collate([scan])
    out = B.build_zero_filled(ds)(batch)[0].numpy()
    assert out.shape == (2, 32, 32)
    np.testing.assert_allclose(out[0] + 1j * out[1], expected, atol=1e-5)
    # the evaluator scores the magnitude of the complex output against the reference
    refs = []
    for scan, img in ds.labelled_split("test"):
        k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img[0].numpy()), norm="ortho"))
        zf = np.fft.fftshift(
            np.fft.ifft2(np.fft.ifftshift(k * scan["mask"].numpy()[0, 0]), norm="ortho")
        )
        refs.append(peak_signal_noise_ratio(img[0].numpy(), np.abs(zf), data_range=1.0))
    psnr = evaluate(B.build_zero_filled(ds), ds)["restoration.psnr"]
    assert psnr == pytest.approx(np.mean(refs), abs=1e-3)
    with pytest.raises(ValueError, match="kspace"):
        B.build_zero_filled(denoising_dataset())


def test_tv_prox_matches_skimage_chambolle_on_a_real_image() -> None:
    g = torch.Generator().manual_seed(0)
    img = smooth_image(1)[0] + 0.1 * torch.randn(32, 32, generator=g)
    v = torch.stack([img, torch.zeros_like(img)])[None]  # real image as (real, imaginary)
    dual = torch.zeros(1, 2, 2, 32, 32)
    lam = torch.full((1, 1, 1, 1, 1), 0.1)
    ours = B.tv_prox(v, lam, dual, 300)[0].numpy()
    ref = denoise_tv_chambolle(img.double().numpy(), weight=0.1, eps=1e-12, max_num_iter=300)
    np.testing.assert_allclose(ours[0], ref, atol=1e-4)
    np.testing.assert_allclose(ours[1], 0.0, atol=1e-6)


def test_tv_cs_beats_zero_filled_at_4x() -> None:
    ds = kspace_dataset(64)
    zero_filled = evaluate(B.build_zero_filled(ds), ds)
    tv = B.build_tv_cs(ds)
    assert tv.chosen["weight"] in B.TV_CS_GRID and tv.chosen["selected_on"] == "val"
    metrics = evaluate(tv, ds)
    assert metrics["restoration.psnr"] > zero_filled["restoration.psnr"] + 3.0
    assert metrics["restoration.ssim"] > zero_filled["restoration.ssim"]
    assert metrics["restoration.nrmse"] < zero_filled["restoration.nrmse"]


# -- Dice fine-tuning ---------------------------------------------------------------------


def test_mean_dice_matches_a_hand_computed_dice() -> None:
    ds = disks_dataset(n_train=1, n_test=3)
    test = ds.labelled_split("test")
    rng = np.random.default_rng(0)
    flips = [rng.random((32, 32)) < 0.1 for _ in test]  # corrupt 10% of the pixels

    class Fixed(nn.Module):  # logits of a known segmentation, item by item
        def __init__(self) -> None:
            super().__init__()
            self.i = 0

        def dense(self, x: torch.Tensor) -> torch.Tensor:
            out = []
            for _ in range(x.shape[0]):
                seg = test[self.i][1].numpy() ^ flips[self.i]
                self.i += 1
                out.append(torch.from_numpy(np.stack([1 - seg, seg]).astype(np.float32)))
            return torch.stack(out)

    expected = np.mean(
        [
            2 * (y.numpy() & (y.numpy() ^ f)).sum() / (y.numpy().sum() + (y.numpy() ^ f).sum())
            for (_, y), f in zip(test, flips)
        ]
    )
    got = S.mean_dice(
        Fixed(), ds, "test", 2, batch_size=2, device=torch.device("cpu")  # type: ignore[arg-type]
    )
    assert got == pytest.approx(expected, rel=1e-5)


def test_dice_finetune_learns_disks_and_reports_scratch() -> None:
    torch.manual_seed(0)
    ds = disks_dataset()
    model = MedUNet(2, 1, 2, features=SMALL, faces=UNET_ENCODER_FACES)  # embedding first
    ctx = EvalContext(seeds=(0,), encoder_factory=lambda: MedUNet(2, 1, 2, features=SMALL))
    before = [p.detach().clone() for p in model.parameters()]
    metrics = S.build(n_labelled=[2], epochs=15, lr=1e-2)(model, ds, ctx)
    assert set(metrics) == {"dice_finetune.dice@2", "dice_finetune.scratch_dice@2"}  # one seed
    assert metrics["dice_finetune.dice@2"] > 0.5
    assert 0.0 <= metrics["dice_finetune.scratch_dice@2"] <= 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # not modified


def test_dice_finetune_rejects_other_models_and_bad_options() -> None:
    ds = disks_dataset()
    ctx = EvalContext(seeds=(0,), encoder_factory=lambda: MedUNet(2, 1, 2, features=SMALL))
    with pytest.raises(TypeError, match=r"Conv2d.*MedUNet"):
        S.build(epochs=1)(nn.Conv2d(1, 2, 1), ds, ctx)
    with pytest.raises(ValueError, match="n_labelled"):
        S.build(n_labelled=[0])
    with pytest.raises(ValueError, match="exceed"):
        S.build(n_labelled=[50], epochs=1)(MedUNet(2, 1, 2, features=SMALL), ds, ctx)
    with pytest.raises(ValueError, match="segmentation"):
        S.build(epochs=1)(MedUNet(2, 1, 1, features=SMALL), denoising_dataset(), ctx)
