"""Tests of the denoising and reconstruction pretexts: Noise2Recon, blind-spot
(Noise2Self / Noise2Void), C-BSN and Noise2Score.

Images are crops of scikit-image's Shepp-Logan phantom (a real CT phantom shipped
in the wheel) with Gaussian noise; k-space scans are simulated from them with
:func:`selfsup_medical.kspace.simulate_scan`. Losses are checked against small
references computed here, independently of the code under test.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.api import KSPACE, EncoderSpec, TaskSpec
from selfsup_medical.images import ImageDataset
from selfsup_medical.kspace import (
    KSpaceDataset,
    complex_to_channels,
    fft2c,
    ifft2c,
    simulate_scan,
)
from selfsup_medical.models import MedUNet, build_recon_unet, build_unet
from selfsup_medical.pretexts import blind_spot, cbsn, noise2recon, noise2score

TINY = (4, 4, 8, 8, 16, 4)  # U-Net widths small enough for CPU tests


def phantom_crops(n: int, size: int = 32) -> list[torch.Tensor]:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    big = resize(shepp_logan_phantom(), (2 * size, 2 * size), anti_aliasing=True)
    big = big.astype(np.float32)
    corners = [(i, j) for i in range(0, size + 1, size // 4) for j in range(0, size + 1, size // 4)]
    return [torch.from_numpy(big[i : i + size, j : j + size].copy())[None] for i, j in corners[:n]]


def noisy_dataset(
    n: int = 8, size: int = 32, sigma: float = 0.1, seed: int = 0
) -> tuple[ImageDataset, torch.Tensor, torch.Tensor]:
    clean = phantom_crops(n, size)
    g = torch.Generator().manual_seed(seed)
    noisy = [c + sigma * torch.randn(c.shape, generator=g) for c in clean]
    ds = ImageDataset(
        "phantom_noise",
        modality="image2d",
        pretrain=noisy,
        labelled={"test": list(zip(noisy, clean))},
        task=TaskSpec("dense"),
    )
    return ds, torch.stack(noisy), torch.stack(clean)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class OffsetModel(nn.Module):
    """A dense model ``x + delta``: its output at each pixel is set by the test."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(shape))
        self.embed_dim = shape[1]
        self.seen: torch.Tensor | None = None

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.detach().clone()
        return x + self.delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class SmallCNN(nn.Module):
    """A four-layer CNN: a cheap dense denoiser for the training checks."""

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.embed_dim = channels
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


def train(task: nn.Module, batch: object, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        loss = task(batch, gen(step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        task.on_train_step_end(step + 1, steps)
        losses.append(loss.item())
    return losses


def grads_reach(module: nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


# -- blind spot: Noise2Self and Noise2Void ------------------------------------------------


def test_noise2self_hides_one_grid_phase_and_scores_only_it() -> None:
    ds, y, _ = noisy_dataset(4)
    model = OffsetModel(tuple(y.shape))
    task = blind_spot.build(model, ds, masking="noise2self", grid=4)
    loss = task(y, gen(3))["loss"]
    hidden = (model.seen != y)[:, 0]  # the replaced pixels differ from the noisy ones
    assert hidden.float().mean() == pytest.approx(1 / 16)
    for b in range(y.shape[0]):
        rows, cols = torch.nonzero(hidden[b], as_tuple=True)
        assert len(set((rows % 4).tolist())) == 1 and len(set((cols % 4).tolist())) == 1
        assert len(rows) == 64  # one full phase of the 4 x 4 lattice on 32 x 32
    # the replacement is Noise2Self's neighbour mean: weights 1 (faces), 1/2 (diagonals)
    b, (i, j) = 0, torch.nonzero(hidden[0])[5].tolist()
    w = {
        (di, dj): (1.0 if abs(di) + abs(dj) == 1 else 0.5)
        for di, dj in itertools.product((-1, 0, 1), repeat=2)
        if (di, dj) != (0, 0)
    }
    ref = sum(wt * float(y[b, 0, i + di, j + dj]) for (di, dj), wt in w.items()) / sum(w.values())
    if 0 < i < 31 and 0 < j < 31:
        assert float(model.seen[b, 0, i, j]) == pytest.approx(ref, abs=1e-5)
    # reference loss: mean squared error over the hidden pixels only
    ref_loss = ((model.seen - y) ** 2)[:, 0][hidden].mean()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    # changing the prediction at visible pixels leaves the loss unchanged ...
    with torch.no_grad():
        model.delta[:, 0][~hidden] = 5.0
    assert task(y, gen(3))["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
    # ... and at a hidden pixel changes it
    with torch.no_grad():
        model.delta[:, 0][hidden] += 0.5
    assert task(y, gen(3))["loss"].item() > loss.item() + 0.1


def test_noise2void_replaces_with_a_neighbour_only() -> None:
    h = w = 32
    base = torch.arange(4 * h * w, dtype=torch.float32).view(4, 1, h, w)
    y = torch.cat([base, base + 1e5], dim=1)  # two channels; values identify pixels
    ds = ImageDataset("ids", modality="image2d", pretrain=list(y))
    model = OffsetModel(tuple(y.shape))
    task = blind_spot.build(model, ds, masking="noise2void", grid=4, radius=2)
    task(y, gen(11))
    seen = model.seen
    hidden = seen[:, 0] != y[:, 0]
    offsets = set()
    for b, i, j in torch.nonzero(hidden).tolist():
        src = int(seen[b, 0, i, j]) - b * h * w
        si, sj = divmod(src, w)
        assert 0 <= src < h * w  # from the same image
        assert (si, sj) != (i, j) and max(abs(si - i), abs(sj - j)) <= 2
        assert float(seen[b, 1, i, j]) == float(seen[b, 0, i, j]) + 1e5  # same neighbour
        offsets.add((si - i, sj - j))
    # exactly one hidden pixel per 4 x 4 box (Noise2Void's stratified sampling)
    boxes = hidden.view(4, 8, 4, 8, 4).sum(dim=(2, 4))
    assert torch.equal(boxes, torch.ones_like(boxes))
    assert len(offsets) == 24  # every offset of the 5 x 5 window but the centre occurs


def test_blind_spot_volumes_and_determinism() -> None:
    g = gen(0)
    vols = [torch.rand(1, 16, 16, 16, generator=g) for _ in range(2)]
    ds = ImageDataset("vols", modality="volume3d", pretrain=vols)
    batch = torch.stack(vols)
    model = OffsetModel(tuple(batch.shape))
    task = blind_spot.build(model, ds, masking="noise2self", grid=2)
    task(batch, gen(0))
    hidden = (model.seen != batch)[:, 0]
    assert hidden.float().mean() == pytest.approx(1 / 8)  # one phase of 2 x 2 x 2
    for b in range(2):
        coords = torch.nonzero(hidden[b]) % 2
        assert (coords == coords[0]).all()
    conv = nn.Conv3d(1, 1, 3, padding=1)
    conv.dense = conv.forward  # type: ignore[method-assign]  # a one-layer dense model
    task = blind_spot.build(conv, ds, masking="noise2void", grid=4)
    out = task(batch, gen(5))
    assert torch.equal(out["loss"], task(batch, gen(5))["loss"])
    assert not torch.equal(out["loss"], task(batch, gen(6))["loss"])
    out["loss"].backward()
    assert grads_reach(conv)


def test_noise2self_training_denoises_phantoms() -> None:
    ds, y, x = noisy_dataset(8)
    torch.manual_seed(0)
    model = SmallCNN()
    task = blind_spot.build(model, ds, masking="noise2self", grid=4)
    losses = train(task, y, steps=60, lr=3e-3)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    with torch.no_grad():
        denoised = model(y)  # inference: the plain model on the unmasked image
    assert psnr(denoised, x) > psnr(y, x) + 2.0


def test_blind_spot_unet_gradients_and_errors() -> None:
    ds, y, _ = noisy_dataset(2)
    unet = build_unet(ds, features=TINY)
    blind_spot.build(unet, ds)(y, gen(0))["loss"].backward()
    assert grads_reach(unet)
    with pytest.raises(ValueError, match="masking"):
        blind_spot.build(unet, ds, masking="noise2noise")
    with pytest.raises(ValueError, match="grid"):
        blind_spot.build(unet, ds, grid=1)
    with pytest.raises(ValueError, match="replacement"):
        blind_spot.build(unet, ds, masking="noise2void", replacement="zero")
    with pytest.raises(TypeError, match="did you mean 'grid'"):
        blind_spot.build(unet, ds, gird=4)
    # a segmentation U-Net (2 output channels) pretrains through a restoration head
    two = MedUNet(2, 1, 2, features=TINY)
    task = blind_spot.build(two, ds)
    assert task.head is not None and torch.isfinite(task(y, gen(0))["loss"])
    with pytest.raises(ValueError, match="radius"):
        blind_spot.build(unet, ds, masking="noise2void", radius=20)(y, gen(0))


# -- C-BSN -------------------------------------------------------------------------------


def test_cbsn_blind_spot_is_conditional() -> None:
    torch.manual_seed(0)
    net = cbsn.CBSNNet(2, channels=16, blocks=2)
    for i, j in ((10, 10), (0, 5), (19, 19)):
        for blind in (True, False):
            x = torch.randn(1, 2, 20, 20, requires_grad=True)
            net.core(x, blind=blind)[0, :, i, j].sum().backward()
            at_p = x.grad[0, :, i, j].abs().sum()
            around = x.grad[0].abs().sum() - at_p
            assert around > 0
            if blind:
                assert at_p == 0  # the output at p never sees the input at p
            else:
                assert at_p > 0


def test_cbsn_downsampling_matches_slicing() -> None:
    x = torch.randn(3, 2, 10, 15)
    s = 5
    sub = cbsn.space_to_batch(x, s)
    for i, j in itertools.product(range(s), repeat=2):
        k = i * s + j
        assert torch.equal(sub[k * 3 : (k + 1) * 3], x[:, :, i::s, j::s])
    assert torch.equal(cbsn.batch_to_space(sub, s), x)
    y = torch.randn(2, 2, 8, 6)
    index = torch.randint(0, 4, (2, 4, 3), generator=gen(0))
    ref = torch.empty(2, 2, 4, 3)
    for b, i, j in itertools.product(range(2), range(4), range(3)):
        di, dj = divmod(int(index[b, i, j]), 2)
        ref[b, :, i, j] = y[b, :, 2 * i + di, 2 * j + dj]
    assert torch.equal(cbsn.subsample(y, index, 2), ref)


def test_cbsn_loss_terms_and_schedule() -> None:
    ds, y, _ = noisy_dataset(4, size=32)
    y = y[..., :20, :20]  # sides divisible by both strides: no random crop
    torch.manual_seed(0)
    net = cbsn.build_encoder(ds, channels=8, blocks=1)
    task = cbsn.build(net, ds, ramp_fraction=0.0)
    out = task(y, gen(0))
    total = out["blind"] + out["self"] + 2.0 * out["invariance"]
    assert out["loss"].item() == pytest.approx(float(total), rel=1e-5)
    # the blind term, recomputed with slicing as the pixel-shuffle downsampler
    mean = y.mean(dim=(2, 3), keepdim=True)
    std = y.std(dim=(2, 3), keepdim=True, unbiased=False)
    yn = (y - mean) / std
    pred = torch.empty_like(yn)
    with torch.no_grad():
        for i, j in itertools.product(range(5), repeat=2):
            pred[:, :, i::5, j::5] = net.core(yn[:, :, i::5, j::5], blind=True)
    assert float(out["blind"]) == pytest.approx(float((pred - yn).abs().mean()), rel=1e-5)
    # inference is the unblinded network in data units: affine-equivariant
    with torch.no_grad():
        assert torch.allclose(net(3.0 * y + 0.5), 3.0 * net(y) + 0.5, atol=1e-4)
    ramped = cbsn.build(net, ds)  # ramp_fraction 0.4
    assert float(ramped(y, gen(0))["ramp"]) == 0.0
    ramped.on_train_step_end(20, 100)
    assert float(ramped.ramp) == pytest.approx(0.5)
    ramped.on_train_step_end(60, 100)
    assert float(ramped.ramp) == 1.0


def test_cbsn_training_lowers_the_loss_and_checks() -> None:
    ds, y, _ = noisy_dataset(4, size=32)
    torch.manual_seed(0)
    net = cbsn.build_encoder(ds, channels=8, blocks=1)
    task = cbsn.build(net, ds, ramp_fraction=0.0)  # all terms from the start
    out = task(y, gen(1))
    assert torch.equal(out["loss"], task(y, gen(1))["loss"])  # 32 % 5 != 0: random crop
    out["loss"].backward()
    assert grads_reach(net)
    losses = train(task, y, steps=30, lr=3e-3)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    with pytest.raises(ValueError, match="blind_stride"):
        cbsn.build(net, ds, blind_stride=0)
    with pytest.raises(ValueError, match="ramp_fraction"):
        cbsn.build(net, ds, ramp_fraction=2.0)


# -- Noise2Score -------------------------------------------------------------------------


class LinearScore(nn.Module):
    """A known score field ``a (y - b)``: the score of a Gaussian ``N(b, -1/a)``."""

    def __init__(self, a: float, b: float | torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = b

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.a * (y - self.b)


def test_noise2score_ardae_loss_formula() -> None:
    ds, y, _ = noisy_dataset(2)
    enc = noise2score.ScoreUNet(2, 1, score_model=LinearScore(-2.0, 0.3))
    task = noise2score.build(enc, ds, sigma_max=0.05, sigma_min=0.01)
    loss = task(y, gen(4))["loss"]
    u = torch.randn(y.shape, generator=gen(4))
    s = -2.0 * (y + 0.05 * u - 0.3)
    assert loss.item() == pytest.approx(float(((0.05 * s + u) ** 2).mean()), rel=1e-5)
    loss.backward()
    assert grads_reach(enc)
    # annealing: linear from sigma_max to sigma_min over training
    task.on_train_step_end(50, 100)
    assert float(task.sigma_a) == pytest.approx(0.03)
    task.on_train_step_end(100, 100)
    assert float(task.sigma_a) == pytest.approx(0.01)


def test_tweedie_gives_the_mmse_estimate_on_a_gaussian_toy() -> None:
    mu, tau, sigma = 0.4, 0.2, 0.1
    g = gen(0)
    x = mu + tau * torch.randn(64, 1, 32, 32, generator=g)
    y = x + sigma * torch.randn(x.shape, generator=g)
    # p(y) = N(mu, tau^2 + sigma^2): its score is known in closed form
    true_score = LinearScore(-1.0 / (tau**2 + sigma**2), mu)
    enc = noise2score.ScoreUNet(2, 1, score_model=true_score, noise_level=sigma)
    with torch.no_grad():
        out = enc(y)
    mmse = (tau**2 * y + sigma**2 * mu) / (tau**2 + sigma**2)  # posterior mean
    assert torch.allclose(out, mmse, atol=1e-6)
    risk = float(((out - x) ** 2).mean())
    assert risk == pytest.approx(tau**2 * sigma**2 / (tau**2 + sigma**2), rel=0.05)
    assert risk < sigma**2
    # Poisson: (y + eta / 2) exp(eta l'(y))
    pois = noise2score.ScoreUNet(2, 1, score_model=true_score, noise="poisson", noise_level=0.02)
    with torch.no_grad():
        ref = (y + 0.01) * torch.exp(0.02 * true_score(y))
        assert torch.allclose(pois(y), ref, atol=1e-6)


def test_noise_level_search_finds_the_true_sigma() -> None:
    # piecewise-constant clean images; the oracle score of p(y | x) makes Tweedie
    # exact at the true sigma, and the TV search must land there
    x = torch.zeros(3, 1, 32, 32)
    x[:, :, 8:24, 8:24] = 0.8
    x[1, :, :, 16:] += 0.3
    for sigma in (0.03, 0.1):
        y = x + sigma * torch.randn(x.shape, generator=gen(1))
        oracle = LinearScore(-1.0 / sigma**2, x)
        enc = noise2score.ScoreUNet(2, 1, score_model=oracle)
        levels = enc.estimate_levels(y)
        assert torch.allclose(levels, torch.full_like(levels, sigma), rtol=0.1)
        with torch.no_grad():  # unknown level: forward searches per image
            assert psnr(enc(y), x) > psnr(y, x) + 10


def test_noise2score_training_and_level_estimation() -> None:
    ds, y, _ = noisy_dataset(4, sigma=0.1)
    torch.manual_seed(0)
    enc = noise2score.build_encoder(ds, features=TINY)
    assert not enc.level_known
    task = noise2score.build(enc, ds, sigma_max=0.1, sigma_min=0.1)  # fixed sigma_a
    probe = [task(y, gen(100 + k))["loss"].item() for k in range(3)]
    assert torch.equal(task(y, gen(7))["loss"], task(y, gen(7))["loss"])
    train(task, y, steps=30, lr=3e-3)
    after = [task(y, gen(100 + k))["loss"].item() for k in range(3)]
    assert np.mean(after) < np.mean(probe)
    assert enc.level_known and 0 < float(enc.noise_level) < 1  # set after the last step
    given = noise2score.build_encoder(ds, features=TINY, noise_level=0.05)
    noise2score.build(given, ds).on_train_step_end(10, 10)
    assert float(given.noise_level) == pytest.approx(0.05)  # a given level is kept
    assert given(y).shape == y.shape


def test_noise2score_errors() -> None:
    ds, _, _ = noisy_dataset(2)
    enc = noise2score.build_encoder(ds, features=TINY)
    with pytest.raises(ValueError, match="sigma_min"):
        noise2score.build(enc, ds, sigma_max=0.01, sigma_min=0.1)
    with pytest.raises(ValueError, match="noise must be one of"):
        noise2score.build_encoder(ds, noise="gamma")
    with pytest.raises(ValueError, match="noise_level"):
        noise2score.build_encoder(ds, noise_level=-1.0)


# -- Noise2Recon -------------------------------------------------------------------------


def kspace_dataset(
    n_supervised: int, n: int = 4, snr_range_db: tuple[float, float] = (5.0, 20.0)
) -> KSpaceDataset:
    scans = []
    for i, image in enumerate(phantom_crops(n)):
        scan = simulate_scan(
            image, kind="random", acceleration=2, center_fraction=0.08, snr_db=None, seed=i
        )
        if i >= n_supervised:  # no reference: zeros, as the contract says
            scan = {
                **scan,
                "target": torch.zeros_like(scan["target"]),
                "has_target": torch.tensor(False),
            }
        scans.append(scan)
    ds = KSpaceDataset("phantom_kspace", pretrain=scans, labelled={}, snr_range_db=snr_range_db)
    ds.modality = KSPACE  # what the registry sets from a DatasetSpec
    return ds


def kbatch(ds: KSpaceDataset) -> dict[str, torch.Tensor]:
    return ds.collate(ds.pretrain_set())  # type: ignore[no-any-return]


def test_recon_unet_starts_at_zero_filled_and_keeps_the_acquired_columns() -> None:
    ds = kspace_dataset(n_supervised=0)
    batch = kbatch(ds)
    torch.manual_seed(0)
    enc = build_recon_unet(ds, features=TINY)
    zero_filled = complex_to_channels(ifft2c(batch["kspace"]))
    with torch.no_grad():
        assert torch.allclose(enc(batch), zero_filled, atol=1e-6)  # last conv starts at zero
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))  # any weights: the acquired data stays
        out = enc(batch)
        kspace = fft2c(torch.complex(out[:, :1], out[:, 1:]))
    acquired = batch["mask"].expand_as(kspace) > 0
    assert not torch.allclose(out, zero_filled, atol=1e-3)
    assert torch.allclose(kspace[acquired], batch["kspace"][acquired], atol=1e-5)
    free = build_recon_unet(ds, features=TINY, data_consistency=False)
    free.load_state_dict(enc.state_dict())
    with torch.no_grad():
        raw = free(batch)
        raw_k = fft2c(torch.complex(raw[:, :1], raw[:, 1:]))
    assert not torch.allclose(raw_k[acquired], batch["kspace"][acquired], atol=1e-3)
    # the missing columns are the network's own in both
    assert torch.allclose(kspace[~acquired], raw_k[~acquired], atol=1e-5)


def test_noise2recon_supervised_term_only_on_referenced_scans() -> None:
    ds = kspace_dataset(n_supervised=2)
    torch.manual_seed(0)
    enc = build_recon_unet(ds, features=TINY)
    task = noise2recon.build(enc, ds, consistency_weight=0.5)
    assert task.mode == "supervised"
    batch = kbatch(ds)
    out = task(batch, gen(0))
    with torch.no_grad():
        pred = enc({k: v[:2] for k, v in batch.items()})
        mag = torch.sqrt(pred[:, :1] ** 2 + pred[:, 1:] ** 2)
        ref = (mag - batch["target"][:2]).abs().mean()
    assert float(out["reconstruction"]) == pytest.approx(float(ref), rel=1e-4)
    total = out["reconstruction"] + 0.5 * out["consistency"]
    assert out["loss"].item() == pytest.approx(float(total), rel=1e-5)
    # a target on an unreferenced scan is never read
    junk = {**batch, "target": batch["target"].clone()}
    junk["target"][2:] = 7.0
    assert torch.equal(task(junk, gen(0))["loss"], out["loss"])
    # a batch without referenced scans: consistency only
    unsup = {k: v[2:] for k, v in batch.items()}
    only = task(unsup, gen(0))
    assert float(only["reconstruction"]) == 0.0 and float(only["consistency"]) > 0


def test_noise2recon_consistency_is_detached_and_vanishes_without_noise() -> None:
    quiet = kspace_dataset(n_supervised=0, snr_range_db=(300.0, 300.0))
    torch.manual_seed(0)
    enc = build_recon_unet(quiet, features=TINY)
    task = noise2recon.build(enc, quiet, reconstruction="ssdu")
    out = task(kbatch(quiet), gen(0))
    assert float(out["consistency"]) < 1e-4  # no noise added: same reconstruction
    noisy = kspace_dataset(n_supervised=2)
    task = noise2recon.build(enc, noisy, reconstruction="supervised")
    batch = kbatch(noisy)
    out = task(batch, gen(3))
    assert float(out["consistency"]) > 1e-3
    # gradient of the consistency term = gradient of |f(aug) - stop_grad(f(clean))|
    cons_only = noise2recon.build(enc, noisy, reconstruction="supervised", consistency_weight=1.0)
    unsup = {k: v[2:] for k, v in batch.items()}
    enc.zero_grad()
    cons_only(unsup, gen(3))["loss"].backward()
    got = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    aug = noisy.augment(unsup, gen(3))  # the first draws of the generator
    with torch.no_grad():
        target = enc(unsup)
    diff = enc(aug) - target
    torch.sqrt(diff[:, :1] ** 2 + diff[:, 1:] ** 2 + 1e-12).mean().backward()
    for g_task, p in zip(got, enc.parameters()):
        assert torch.allclose(g_task, p.grad, atol=1e-6)


def test_ssdu_split_and_loss_references() -> None:
    ds = kspace_dataset(n_supervised=0)
    batch = kbatch(ds)
    mask = batch["mask"]
    keep, held = noise2recon.ssdu_split(mask, 0.4, gen(0))
    assert torch.equal(keep + held, mask)  # a partition of the acquired columns
    width = mask.shape[-1]
    centre = slice(width // 2 - 2, width // 2 + 2)
    for b in range(mask.shape[0]):
        assert held[b, 0, 0, centre].sum() == 0  # the central block stays in the input
        outside = mask[b, 0, 0].clone()
        outside[centre] = 0
        assert int(held[b].sum()) == round(0.4 * int(outside.sum()))
    # the exact image predicts the held-out data perfectly (noise-free scans) ...
    full = torch.stack(
        [
            complex_to_channels(ifft2c(fft2c(img[None].to(torch.complex64))))[0]
            for img in phantom_crops(4)
        ]
    )
    loss = noise2recon.kspace_loss
    assert float(loss(full, batch["kspace"], held)) < 1e-4
    assert float(loss(full, batch["kspace"], keep)) < 1e-4
    # ... and the zero-filled input reproduces its input columns exactly but predicts
    # nothing on the held-out ones: both ratios are 1 there
    zero_filled = complex_to_channels(ifft2c(batch["kspace"] * keep))
    assert float(loss(zero_filled, batch["kspace"], keep)) < 1e-4
    assert float(loss(zero_filled, batch["kspace"], held)) == pytest.approx(2.0, abs=1e-4)
    # the SSDU-mode reconstruction term is held-out + input_weight * input fidelity
    enc = build_recon_unet(ds, features=TINY)
    task = noise2recon.build(enc, ds, input_weight=0.5, consistency_weight=0.0)
    out = task(batch, gen(0))
    keep, held = noise2recon.ssdu_split(mask, 0.4, gen(0))  # the task's first draws
    with torch.no_grad():
        pred = enc({**batch, "kspace": batch["kspace"] * keep, "mask": keep})
    ref = loss(pred, batch["kspace"], held) + 0.5 * loss(pred, batch["kspace"], keep)
    assert out["loss"].item() == pytest.approx(float(ref), rel=1e-5)


def test_noise2recon_self_supervised_training() -> None:
    ds = kspace_dataset(n_supervised=0)
    torch.manual_seed(0)
    enc = build_recon_unet(ds, features=TINY)
    task = noise2recon.build(enc, ds)  # auto: no reference anywhere -> SSDU
    assert task.mode == "ssdu"
    batch = kbatch(ds)
    out = task(batch, gen(1))
    assert torch.equal(out["loss"], task(batch, gen(1))["loss"])
    out["loss"].backward()
    assert grads_reach(enc)
    probe = [task(batch, gen(100 + k))["reconstruction"].item() for k in range(2)]
    train(task, batch, steps=20, lr=3e-3)
    after = [task(batch, gen(100 + k))["reconstruction"].item() for k in range(2)]
    assert np.mean(after) < np.mean(probe)


def test_noise2recon_errors() -> None:
    ds = kspace_dataset(n_supervised=0)
    enc = build_recon_unet(ds, features=TINY)
    with pytest.raises(ValueError, match="reconstruction='ssdu'"):
        noise2recon.build(enc, ds, reconstruction="supervised")
    with pytest.raises(ValueError, match="consistency_weight"):
        noise2recon.build(enc, ds, consistency_weight=-1)
    with pytest.raises(ValueError, match="holdout_fraction"):
        noise2recon.build(enc, ds, holdout_fraction=1.0)
    with pytest.raises(ValueError, match="input_weight"):
        noise2recon.build(enc, ds, input_weight=-0.1)
    with pytest.raises(TypeError, match="did you mean 'consistency_weight'"):
        noise2recon.build(enc, ds, consistency_weigth=1.0)
    task = noise2recon.build(enc, ds)
    with pytest.raises(TypeError, match="has_target"):
        task({"kspace": kbatch(ds)["kspace"]}, gen(0))
    images, _, _ = noisy_dataset(2)
    with pytest.raises(ValueError, match="k-space"):
        noise2recon.build(enc, images)

    class Magnitude(nn.Module):
        embed_dim = 1

        def dense(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return ifft2c(batch["kspace"]).abs()

    with pytest.raises(ValueError, match="two channels"):
        noise2recon.build(Magnitude(), ds)(kbatch(ds), gen(0))
    assert math.isfinite(task(kbatch(ds), gen(0))["loss"].item())


# -- the registered specs ----------------------------------------------------------------


def test_registered_factories_pass_the_conformance_checks() -> None:
    from selfsup.api import check_encoder, check_pretext
    from selfsup_medical import plugin

    specs: dict[str, Any] = {}
    plugin.register_encoders(lambda spec: specs.setdefault(spec.name, spec))
    plugin.register_pretext_tasks(lambda spec: specs.setdefault(spec.name, spec))
    images, _, _ = noisy_dataset(4)
    kspace = kspace_dataset(n_supervised=2)
    unet = check_encoder(specs["medical.unet"], images, features=TINY)
    check_pretext(specs["medical.blind_spot"], unet, images)
    recon = check_encoder(specs["medical.recon_unet"], kspace, features=TINY)
    check_pretext(specs["medical.noise2recon"], recon, kspace)
    net = check_encoder(specs["medical.cbsn_net"], images, channels=8, blocks=1)
    check_pretext(specs["medical.cbsn"], net, images)
    score = check_encoder(specs["medical.score_unet"], images, features=TINY)
    check_pretext(specs["medical.noise2score"], score, images)
    # each of these pretexts trains a face that only its own network offers
    for pretext, network in (("medical.cbsn", "medical.cbsn_net"),
                             ("medical.noise2score", "medical.score_unet")):
        face = specs[pretext].face
        offering = [k for k, e in specs.items() if isinstance(e, EncoderSpec) and e.offers(face)]
        assert offering == [network]
    x = images.pretrain_set()[0][None]
    assert torch.equal(net(x), net.dense(x))  # forward is the first face, dense
