"""Tests of medical.filter2noise (+ medical.agbf), medical.context_restoration,
medical.mae3d and medical.contrastive_2d3d.

Loss formulas are checked against plain-loop references written here; images are
real phantoms (scikit-image's Shepp-Logan) and MONAI's synthetic label volumes, kept
tiny (32x32 images, 16x32x32 volumes: MONAI's U-Net needs more than one voxel at
its deepest level in training, so 16^3 is too small).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup.api import NTXentLoss, TaskSpec
from selfsup_medical.images import ImageDataset
from selfsup_medical.models import UNET_ENCODER_FACES, MedUNet, build_unet, build_unet_encoder
from selfsup_medical.pretexts import context_restoration as cr
from selfsup_medical.pretexts import contrastive_2d3d as c23
from selfsup_medical.pretexts import filter2noise as f2n
from selfsup_medical.pretexts import mae3d

torch.set_num_threads(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_phantom() -> torch.Tensor:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    img = resize(shepp_logan_phantom(), (32, 32), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(img / img.max())[None]  # [1, 32, 32]


@pytest.fixture(scope="module")
def noisy_dataset(clean_phantom: torch.Tensor) -> ImageDataset:
    rng = np.random.default_rng(0)
    noisy = [
        clean_phantom + torch.from_numpy(rng.normal(0, 0.1, (1, 32, 32)).astype(np.float32))
        for _ in range(4)
    ]
    return ImageDataset("phantom", modality="image2d", pretrain=noisy)


@pytest.fixture(scope="module")
def seg_dataset2d() -> ImageDataset:
    from monai.data.synthetic import create_test_image_2d

    rs = np.random.RandomState(0)
    items = []
    for _ in range(4):
        im, seg = create_test_image_2d(
            32,
            32,
            num_objs=4,
            rad_max=8,
            rad_min=3,
            noise_max=0.2,
            num_seg_classes=2,
            random_state=rs,
        )
        items.append(
            (torch.from_numpy(im[None].astype(np.float32)), torch.from_numpy(seg.astype(np.int64)))
        )
    return ImageDataset(
        "seg2d",
        modality="image2d",
        pretrain=[x for x, _ in items],
        labelled={"train": items},
        task=TaskSpec("segmentation", 3),
    )


@pytest.fixture(scope="module")
def volume_dataset() -> ImageDataset:
    from monai.data.synthetic import create_test_image_3d

    rs = np.random.RandomState(1)
    vols = []
    for _ in range(4):
        im, _ = create_test_image_3d(
            32, 32, 16, num_objs=5, rad_max=6, rad_min=2, noise_max=0.2, random_state=rs
        )
        vols.append(torch.from_numpy(im.transpose(2, 0, 1)[None].astype(np.float32)))
    return ImageDataset("vols", modality="volume3d", pretrain=vols)


def batch_of(ds: ImageDataset) -> torch.Tensor:
    return torch.stack(ds.pretrain_set())


def train(task: torch.nn.Module, x: torch.Tensor, steps: int, lr: float) -> list[float]:
    """Adam on a fixed batch with the same generator seed every step (a fixed objective)."""
    opt = torch.optim.Adam(task.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = task(x, gen(7))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    return losses


def encoder_grad(encoder: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in encoder.parameters() if p.grad is not None)


# -- Filter2Noise: references ---------------------------------------------------------------


def bilateral_loop(
    x: np.ndarray, sx: np.ndarray, sy: np.ndarray, sr: np.ndarray, k: int
) -> np.ndarray:
    """Per-pixel bilateral filter with explicit loops; x [C, H, W], sigmas [H, W]."""
    c, h, w = x.shape
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), mode="reflect")
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            num, den = np.zeros(c), 0.0
            for dy in range(-p, p + 1):
                for dx in range(-p, p + 1):
                    q = xp[:, i + p + dy, j + p + dx]
                    wgt = math.exp(
                        -dx * dx / (2 * sx[i, j] ** 2)
                        - dy * dy / (2 * sy[i, j] ** 2)
                        - float(((q - x[:, i, j]) ** 2).sum()) / (2 * sr[i, j] ** 2)
                    )
                    num += wgt * q
                    den += wgt
            out[:, i, j] = num / den
    return out


def downsample_loop(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, h, w = x.shape
    d1, d2 = np.zeros((c, h // 2, w // 2)), np.zeros((c, h // 2, w // 2))
    for i in range(h // 2):
        for j in range(w // 2):
            d1[:, i, j] = (x[:, 2 * i, 2 * j + 1] + x[:, 2 * i + 1, 2 * j]) / 2
            d2[:, i, j] = (x[:, 2 * i, 2 * j] + x[:, 2 * i + 1, 2 * j + 1]) / 2
    return d1, d2


def els_loop(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    _, h, w = x.shape
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            pos = [(i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1)]
            best, pair = np.inf, None
            for a, b in itertools.combinations(range(4), 2):
                d = float(((x[:, pos[a][0], pos[a][1]] - x[:, pos[b][0], pos[b][1]]) ** 2).sum())
                if d < best:
                    best, pair = d, (a, b)
            (ya, xa), (yb, xb) = pos[pair[0]], pos[pair[1]]
            out[:, ya, xa], out[:, yb, xb] = x[:, yb, xb], x[:, ya, xa]
    return out


def conv_zero_pad_loop(x: np.ndarray, kern: np.ndarray) -> np.ndarray:
    h, w = x.shape
    p = kern.shape[0] // 2
    xp = np.pad(x, p)
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            out[i, j] = (xp[i : i + 2 * p + 1, j : j + 2 * p + 1] * kern).sum()
    return out


def test_bilateral_filter_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 2, 6, 6))
    sx, sy, sr = (rng.uniform(0.4, 3.0, (2, 6, 6)) for _ in range(3))
    out = f2n.bilateral_filter(
        *(torch.tensor(a, dtype=torch.float32) for a in (x, sx, sy, sr)), kernel_size=5
    )
    for b in range(2):
        ref = bilateral_loop(x[b], sx[b], sy[b], sr[b], 5)
        np.testing.assert_allclose(out[b].numpy(), ref, rtol=1e-5, atol=1e-6)


def test_bilateral_filter_limits_and_errors() -> None:
    x = torch.rand(1, 1, 6, 6)
    tiny = torch.full((1, 6, 6), 1e-3)
    # vanishing spatial sigmas: only the centre has weight, the filter is the identity
    assert torch.allclose(f2n.bilateral_filter(x, tiny, tiny, torch.ones(1, 6, 6), 5), x)
    # huge sigmas: the mean of the (reflection padded) 3x3 window
    big = torch.full((1, 6, 6), 1e6)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    box = torch.nn.functional.avg_pool2d(xp, 3, stride=1)
    assert torch.allclose(f2n.bilateral_filter(x, big, big, big, 3), box, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        f2n.bilateral_filter(x, big, big, big, 4)
    with pytest.raises(ValueError, match="larger than 6 pixels"):
        f2n.bilateral_filter(x, big, big, big, 13)


def test_downsampling_and_euclidean_local_shuffle_match_loops() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((2, 8, 8))
    d1, d2 = f2n.diagonal_downsample(torch.tensor(x)[None])
    r1, r2 = downsample_loop(x)
    np.testing.assert_allclose(d1[0].numpy(), r1)
    np.testing.assert_allclose(d2[0].numpy(), r2)
    shuffled = f2n.euclidean_local_shuffle(torch.tensor(x)[None])[0].numpy()
    np.testing.assert_allclose(shuffled, els_loop(x))
    assert not np.allclose(shuffled, x)


def test_filter2noise_loss_matches_reference() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((1, 8, 8))
    cfg = f2n.Filter2NoiseConfig()

    def denoise(z: np.ndarray) -> np.ndarray:  # any fixed map; squaring is not trivial
        return z**2

    got = f2n.filter2noise_loss(lambda t: t**2, torch.tensor(x, dtype=torch.float32)[None], cfg)
    d1, d2 = downsample_loop(x)
    y1, y2 = denoise(els_loop(d1)), denoise(els_loop(d2))
    full = denoise(x)
    b1, b2 = downsample_loop(full)
    r = np.arange(7) - 3
    d2grid = r[:, None] ** 2 + r[None, :] ** 2
    g9, g10 = np.exp(-d2grid / (2 * 81.0)), np.exp(-d2grid / (2 * 100.0))
    dog = g9 / g9.sum() - g10 / g10.sum()
    e_noisy, e_out = conv_zero_pad_loop(x[0], dog), conv_zero_pad_loop(full[0], dog)
    ref = {
        "loss_resolution": np.abs(y1 - y2).mean() / 3,
        "loss_cross_scale": (np.abs(y1 - b1).mean() + np.abs(y2 - b2).mean()) / 3,
        "loss_denoise": np.abs(b1 - b2).mean() / 3,
        "loss_edge": 350 * np.abs(np.abs(e_noisy) - np.abs(e_out)).mean(),
    }
    ref["loss"] = sum(ref.values())
    for key, value in ref.items():
        assert float(got[key]) == pytest.approx(value, rel=1e-4, abs=1e-7), key
    # A constant image is a fixed point of any bilateral filter: every term is 0.
    enc = f2n.AttentionGuidedBilateralFilter(1)
    flat = f2n.filter2noise_loss(enc, torch.full((1, 1, 16, 16), 0.3), cfg)
    assert float(flat["loss"].detach()) == pytest.approx(0.0, abs=1e-6)


def test_agbf_parameter_maps_shapes_ranges_and_control(noisy_dataset: ImageDataset) -> None:
    torch.manual_seed(0)
    enc = f2n.build_encoder(noisy_dataset)
    assert enc.embed_dim == 1 and enc.kernel_size == 13  # 2 * ceil(6) + 1
    # the paper's size: about 1.8k parameters per stage (F2N-S2: 3.6k)
    assert sum(p.numel() for p in enc.parameters()) == 2 * 1819
    x = batch_of(noisy_dataset)[:2]
    maps = enc.filter_parameters(x)
    assert maps.shape == (2, 2, 3, 32, 32)
    assert bool((maps > 0).all()) and bool((maps <= 6.0 + 1e-6).all())
    blocks = maps.reshape(2, 2, 3, 4, 8, 4, 8)  # 8x8 patches: constant inside each
    assert torch.equal(blocks.amax(dim=(4, 6)), blocks.amin(dim=(4, 6)))
    assert torch.allclose(enc.filter_with(x, maps), enc(x), atol=1e-6)
    # user control: tiny spatial sigmas everywhere turn every stage into the identity
    edited = maps.clone()
    edited[:, :, :2] = 1e-3
    assert torch.allclose(enc.filter_with(x, edited), x, atol=1e-6)
    # sides that are not multiples of the patch size: maps still cover the image
    odd = enc.filter_parameters(torch.rand(1, 1, 20, 28))
    assert odd.shape == (1, 2, 3, 20, 28)
    with pytest.raises(ValueError, match="expected"):
        enc.filter_with(x, maps[:, :1])
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        enc(torch.rand(1, 2, 32, 32))


def test_save_parameter_maps_writes_png(noisy_dataset: ImageDataset, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    enc = f2n.build_encoder(noisy_dataset, n_stages=1)
    path = enc.save_parameter_maps(batch_of(noisy_dataset), tmp_path / "sub" / "maps.png", index=1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0.01
    with pytest.raises(ValueError, match="outside the batch"):
        enc.save_parameter_maps(batch_of(noisy_dataset), tmp_path / "x.png", index=9)


def test_filter2noise_errors(noisy_dataset: ImageDataset, volume_dataset: ImageDataset) -> None:
    enc = f2n.build_encoder(noisy_dataset)
    with pytest.raises(ValueError, match="edge_weight"):
        f2n.build(enc, noisy_dataset, edge_weight=-1.0)
    with pytest.raises(TypeError, match="did you mean 'edge_weight'"):
        f2n.build(enc, noisy_dataset, edge_weigth=1.0)
    with pytest.raises(ValueError, match="smaller than"):
        f2n.build(enc, noisy_dataset, dog_sigma_narrow=10.0, dog_sigma_wide=9.0)
    with pytest.raises(ValueError, match="odd"):
        f2n.build_encoder(noisy_dataset, kernel_size=4)
    with pytest.raises(TypeError, match="unknown option"):
        f2n.build_encoder(noisy_dataset, stages=2)
    with pytest.raises(ValueError, match="2D images"):
        f2n.build_encoder(volume_dataset)
    task = f2n.build(enc, noisy_dataset)
    with pytest.raises(ValueError, match="multiples of 4"):
        task(torch.rand(2, 1, 30, 30), gen())


def test_filter2noise_trains_denoises_and_is_deterministic(
    noisy_dataset: ImageDataset, clean_phantom: torch.Tensor
) -> None:
    x = batch_of(noisy_dataset)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        task = f2n.build(f2n.build_encoder(noisy_dataset, kernel_size=7), noisy_dataset)
        out = task(x, gen(0))
        out["loss"].backward()
        outs.append((out["loss"].item(), encoder_grad(task.encoder)))
    assert outs[0] == outs[1]
    assert outs[0][1] > 0  # gradients reach the attention modules
    losses = train(task, x, steps=20, lr=1e-2)
    assert np.mean(losses[-5:]) < losses[0]

    def psnr(a: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / ((a - clean_phantom) ** 2).mean()))

    with torch.no_grad():
        denoised = task.encoder(x)
    assert np.mean([psnr(d) for d in denoised]) > np.mean([psnr(n) for n in x]) + 1.0
    fitted = f2n.fit_single_image(task.encoder, x[0], steps=3)
    assert fitted is not task.encoder and not fitted.training
    changed = any(
        not torch.equal(a, b) for a, b in zip(fitted.parameters(), task.encoder.parameters())
    )
    assert changed


# -- context restoration ------------------------------------------------------------------------


def test_swap_corruption_is_reproducible_and_keeps_intensities() -> None:
    x = torch.rand(2, 1, 32, 32)
    a, ma = cr.swap_patches(x, 6, 0.125, gen(1))
    b, mb = cr.swap_patches(x, 6, 0.125, gen(1))
    c, _ = cr.swap_patches(x, 6, 0.125, gen(2))
    assert torch.equal(a, b) and torch.equal(ma, mb) and not torch.equal(a, c)
    for i in range(2):  # a swap permutes voxels: the intensity distribution is unchanged
        assert torch.equal(a[i].flatten().sort().values, x[i].flatten().sort().values)
    assert torch.equal(a.masked_select(~ma), x.masked_select(~ma))
    assert not torch.equal(a.masked_select(ma), x.masked_select(ma))
    # 6 swaps of two disjoint 4x4 patches touch at most 6 * 2 * 16 voxels per image
    assert 0 < int(ma[0].sum()) <= 192


def test_inpaint_and_dropout_corruptions() -> None:
    x = torch.rand(2, 2, 64, 64) + 0.5
    y, m = cr.inpaint_boxes(x, 3, 0.125, gen(4))
    assert m.shape == (2, 1, 64, 64)
    assert bool((y.masked_select(m.expand_as(y)) == 0).all())
    assert torch.equal(y.masked_select(~m.expand_as(y)), x.masked_select(~m.expand_as(x)))
    assert 64 <= int(m[0].sum()) <= 3 * 64
    y, m = cr.drop_voxels(x, 0.25, gen(5))
    assert abs(float(m.float().mean()) - 0.25) < 0.02
    assert torch.equal(y, x.masked_fill(m, 0.0))


def test_restoration_loss_reference() -> None:
    rng = np.random.default_rng(3)
    orig, rest = rng.random((2, 1, 8, 8)), rng.random((2, 1, 8, 8))
    mask = rng.random((2, 1, 8, 8)) < 0.3
    t = [torch.tensor(a) for a in (rest, orig, mask)]
    assert float(cr.restoration_loss(t[1], t[1], t[2], "image")) == 0.0
    assert float(cr.restoration_loss(t[1], t[1], t[2], "corrupted")) == 0.0
    sq = [(rest[idx] - orig[idx]) ** 2 for idx in np.ndindex(orig.shape)]
    assert float(cr.restoration_loss(*t, "image")) == pytest.approx(np.mean(sq))
    masked = [(rest[idx] - orig[idx]) ** 2 for idx in np.ndindex(orig.shape) if mask[idx]]
    assert float(cr.restoration_loss(*t, "corrupted")) == pytest.approx(np.mean(masked))


def test_unet_restore_is_the_unet_forward(noisy_dataset: ImageDataset) -> None:
    unet = build_unet(noisy_dataset).eval()
    x = batch_of(noisy_dataset)
    # step by step (the path a segmentation U-Net's restoration head takes) or whole,
    # the same operations: 0.1's numbers are unchanged by calling the dense face
    assert torch.equal(cr.unet_restore(unet, x, None), unet.dense(x))
    assert torch.equal(cr.restore(unet, x, None), unet.dense(x))


def test_context_restoration_trains_and_is_deterministic(noisy_dataset: ImageDataset) -> None:
    x = batch_of(noisy_dataset)
    torch.manual_seed(0)
    task = cr.build(build_unet(noisy_dataset), noisy_dataset, n_swaps=4)
    assert task.head is None  # the U-Net's own output restores (1 channel in, 1 out)
    first, again = task(x, gen(3)), task(x, gen(3))
    assert torch.equal(first["loss"], again["loss"])
    first["loss"].backward()
    assert encoder_grad(task.encoder) > 0
    assert set(first) == {"loss", "corrupted_fraction"}  # a dense model has no embedding
    losses = train(task, x, steps=15, lr=3e-3)
    assert np.mean(losses[-3:]) < losses[0]
    for mode in ("inpaint", "dropout"):
        other = cr.build(build_unet(noisy_dataset), noisy_dataset, mode=mode, loss_on="corrupted")
        assert math.isfinite(other(x, gen(0))["loss"].item())


def test_context_restoration_on_a_segmentation_unet_then_as_dense(
    seg_dataset2d: ImageDataset,
) -> None:
    unet = build_unet(seg_dataset2d)  # out_channels = 3 classes, in_channels = 1
    task = cr.build(unet, seg_dataset2d)
    assert isinstance(task.head, torch.nn.Conv2d) and task.head.out_channels == 1
    x = batch_of(seg_dataset2d)
    task(x, gen(0))["loss"].backward()
    assert float(unet.net.conv_0.conv_0.conv.weight.grad.abs().sum()) > 0
    assert unet.net.final_conv.weight.grad is None  # the class head is not trained here
    dense = unet.as_dense(3)
    assert dense(x).shape == (4, 3, 32, 32)


def test_context_restoration_3d_and_errors(
    volume_dataset: ImageDataset, noisy_dataset: ImageDataset
) -> None:
    task = cr.build(build_unet_encoder(volume_dataset), volume_dataset, patch_fraction=0.25)
    out = task(batch_of(volume_dataset)[:2], gen(0))
    out["loss"].backward()
    assert encoder_grad(task.encoder) > 0 and float(out["corrupted_fraction"]) > 0
    # any model with a dense face that restores the input's channels: here Filter2Noise's
    other = cr.build(f2n.build_encoder(noisy_dataset), noisy_dataset)
    assert other.head is None
    other(batch_of(noisy_dataset), gen(0))["loss"].backward()
    assert encoder_grad(other.encoder) > 0
    with pytest.raises(ValueError, match="mode"):
        cr.build(build_unet(noisy_dataset), noisy_dataset, mode="jigsaw")
    with pytest.raises(ValueError, match="patch_fraction"):
        cr.build(build_unet(noisy_dataset), noisy_dataset, patch_fraction=0.4)
    with pytest.raises(TypeError, match="n_swaps"):
        cr.build(build_unet(noisy_dataset), noisy_dataset, swaps=3)


# -- MAE --------------------------------------------------------------------------------------


def test_patch_mask_count_alignment_and_patchify() -> None:
    grid = (4, 8, 8)
    pm = mae3d.random_patch_mask(3, grid, 0.75, gen(0))
    assert pm.shape == (3, 256) and pm.sum(1).tolist() == [192, 192, 192]
    assert torch.equal(pm, mae3d.random_patch_mask(3, grid, 0.75, gen(0)))
    assert not torch.equal(pm, mae3d.random_patch_mask(3, grid, 0.75, gen(1)))
    vm = mae3d.voxel_mask(pm, grid, 4)
    assert vm.shape == (3, 1, 16, 32, 32)
    x = torch.rand(3, 2, 16, 32, 32)
    patches = mae3d.patchify(x, 4)
    for b, n in [(0, 0), (1, 37), (2, 255)]:
        gz, gy, gx = np.unravel_index(n, grid)
        block = x[b, :, 4 * gz : 4 * gz + 4, 4 * gy : 4 * gy + 4, 4 * gx : 4 * gx + 4]
        assert torch.equal(patches[b, n], block.flatten())
        vblock = vm[b, 0, 4 * gz : 4 * gz + 4, 4 * gy : 4 * gy + 4, 4 * gx : 4 * gx + 4]
        assert bool((vblock == pm[b, n]).all())


@pytest.mark.parametrize("norm_pix", [False, True])
def test_masked_loss_reference_and_ignores_visible_voxels(norm_pix: bool) -> None:
    rng = np.random.default_rng(4)
    pred, target = rng.random((2, 1, 8, 8)), rng.random((2, 1, 8, 8))
    pm = torch.tensor(rng.random((2, 4)) < 0.5)
    pm[:, 0] = True
    loss = mae3d.masked_patch_mse(torch.tensor(pred), torch.tensor(target), pm, 4, norm_pix)
    per_patch = []
    for b in range(2):
        for n in range(4):
            if not pm[b, n]:
                continue
            gy, gx = divmod(n, 2)
            t = target[b, :, 4 * gy : 4 * gy + 4, 4 * gx : 4 * gx + 4]
            p = pred[b, :, 4 * gy : 4 * gy + 4, 4 * gx : 4 * gx + 4]
            if norm_pix:
                t = (t - t.mean()) / np.sqrt(t.var() + 1e-6)
            per_patch.append(((p - t) ** 2).mean())
    assert float(loss) == pytest.approx(np.mean(per_patch), rel=1e-6)
    vm = mae3d.voxel_mask(pm, (2, 2), 4)
    changed = torch.tensor(pred).masked_fill(~vm, 123.0)  # change only visible voxels
    assert float(
        mae3d.masked_patch_mse(changed, torch.tensor(target), pm, 4, norm_pix)
    ) == pytest.approx(float(loss), rel=1e-12)
    changed = torch.tensor(pred).masked_fill(vm, 0.5)
    assert float(
        mae3d.masked_patch_mse(changed, torch.tensor(target), pm, 4, norm_pix)
    ) != pytest.approx(float(loss), rel=1e-6)


def test_mae3d_trains_and_errors(volume_dataset: ImageDataset, noisy_dataset: ImageDataset) -> None:
    x = batch_of(volume_dataset)[:2]
    torch.manual_seed(0)
    task = mae3d.build(build_unet(volume_dataset), volume_dataset)
    out = task(x, gen(1))
    assert torch.equal(out["loss"], task(x, gen(1))["loss"])
    assert float(out["mask_ratio"]) == 0.75 and "embedding" not in out
    out["loss"].backward()
    assert encoder_grad(task.encoder) > 0
    losses = train(task, x, steps=6, lr=3e-3)
    assert np.mean(losses[-2:]) < losses[0]
    # image2d works too (same code, square patches)
    flat = mae3d.build(build_unet(noisy_dataset), noisy_dataset, patch_size=8)
    assert math.isfinite(flat(batch_of(noisy_dataset), gen(0))["loss"].item())
    with pytest.raises(ValueError, match="not divisible by patch_size=5"):
        mae3d.build(build_unet(volume_dataset), volume_dataset, patch_size=5)(x, gen(0))
    with pytest.raises(ValueError, match="mask_ratio"):
        mae3d.build(build_unet(volume_dataset), volume_dataset, mask_ratio=1.0)


# -- joint 2D/3D contrast -----------------------------------------------------------------------


def ntxent_loop(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        den = sum(math.exp(z[a] @ z[k] / t) for k in range(2 * n) if k != a)
        total += -math.log(math.exp(z[a] @ z[pos] / t) / den)
    return total / (2 * n)


def test_ntxent_and_intra_volume_ntxent_match_loops() -> None:
    rng = np.random.default_rng(5)
    z1, z2 = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
    core = NTXentLoss(0.5)(torch.tensor(z1[0]), torch.tensor(z2[0]))
    assert float(core) == pytest.approx(ntxent_loop(z1[0], z2[0], 0.5), rel=1e-9)
    intra = c23.intra_volume_ntxent(torch.tensor(z1), torch.tensor(z2), 0.5)
    ref = np.mean([ntxent_loop(z1[b], z2[b], 0.5) for b in range(2)])
    assert float(intra) == pytest.approx(ref, rel=1e-9)


def test_slice_sampling_and_slabs() -> None:
    idx = c23.stratified_slices(3, 16, 4, gen(0))
    assert torch.equal(idx, c23.stratified_slices(3, 16, 4, gen(0)))
    for j in range(4):
        assert bool(((idx[:, j] >= 4 * j) & (idx[:, j] < 4 * j + 4)).all())
    assert c23.stratified_slices(2, 5, 5, gen(1)).tolist() == [[0, 1, 2, 3, 4]] * 2
    with pytest.raises(ValueError, match="more than"):
        c23.stratified_slices(1, 3, 4, gen(0))
    x = torch.rand(3, 2, 16, 8, 8)
    slabs = c23.slice_slabs(x, idx, 16)
    assert slabs.shape == (12, 2, 16, 8, 8)
    for b, s, d in [(0, 0, 0), (1, 2, 7), (2, 3, 15)]:
        assert torch.equal(slabs[4 * b + s, :, d], x[b, :, int(idx[b, s])])


def test_contrastive_2d3d_forward_grads_training(volume_dataset: ImageDataset) -> None:
    x = batch_of(volume_dataset)[:2]
    torch.manual_seed(0)
    task = c23.build(build_unet_encoder(volume_dataset), volume_dataset, slices_per_volume=2)
    out = task(x, gen(2))
    assert out["loss"].item() == pytest.approx(float(out["loss_3d"] + out["loss_2d"]), rel=1e-6)
    assert torch.equal(out["loss"], task(x, gen(2))["loss"])  # same generator, same views
    assert out["embedding"].shape == (2, 64)
    out["loss"].backward()
    assert encoder_grad(task.encoder) > 0
    losses = train(task, x, steps=4, lr=1e-3)
    assert losses[-1] < losses[0]
    only_3d = c23.build(build_unet(volume_dataset), volume_dataset, weight_2d=0.0)
    assert float(only_3d(x, gen(0))["loss_2d"]) == 0.0


def test_contrastive_2d3d_errors(volume_dataset: ImageDataset, noisy_dataset: ImageDataset) -> None:
    enc = build_unet_encoder(volume_dataset)
    with pytest.raises(ValueError, match="both 0"):
        c23.build(enc, volume_dataset, weight_2d=0.0, weight_3d=0.0)
    with pytest.raises(ValueError, match="multiple of 16"):
        c23.build(enc, volume_dataset, slab_depth=10)
    with pytest.raises(ValueError, match=">= 2"):
        c23.build(enc, volume_dataset, slices_per_volume=1)
    with pytest.raises(ValueError, match="volume3d"):
        c23.build(MedUNet(3, 1, 1, faces=UNET_ENCODER_FACES), noisy_dataset)
    task = c23.build(enc, volume_dataset)
    with pytest.raises(ValueError, match="at least 2 volumes"):
        task(batch_of(volume_dataset)[:1], gen(0))
