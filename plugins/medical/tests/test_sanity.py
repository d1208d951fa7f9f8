"""Sanity settings of issue 16 at test size: a method must beat its input where its
paper's assumption holds by construction (see BENCHMARKS.md, Medical plugin,
"Sanity settings and the rows below their input").

The blind-spot regression: MONAI's ``BasicUNet`` instance-normalises its first
block, so a plain U-Net cannot see an image's intensity level; before
``MedUNet.standardize`` the blind-spot denoiser ended 5 dB *below* its i.i.d.
Gaussian input on the CT slices (26.0 -> 21.0 dB at 64x64, 200 steps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.api import EvalContext, TrainConfig, Trainer
from selfsup_medical.datasets import ct as ct_data
from selfsup_medical.evaluators.restoration import build as restoration
from selfsup_medical.models import MedUNet, build_unet
from selfsup_medical.pretexts import blind_spot

SMALL = (8, 8, 16, 32, 64, 8)


@pytest.fixture(scope="module")
def iid() -> ct_data.ImageDataset:
    # 32x32 CT slices (full-dose FBP) plus i.i.d. Gaussian noise: input about 20 dB
    return ct_data.build(image_size=32, angles=45, noise="gaussian", sigma=0.1)


def test_synthetic_noise_has_its_sigma_and_correlation() -> None:
    for correlation in (0.0, 1.0):
        n = ct_data.synthetic_noise((1, 256, 256), sigma=0.05, correlation=correlation,
                                    seed=3).numpy()[0]
        assert abs(n.std() - 0.05) < 0.003 and abs(n.mean()) < 0.003
        rho = np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1]
        # i.i.d.: no neighbour correlation; blurred by 1 px: exp(-1/4) = 0.78
        expected = 0.0 if correlation == 0 else np.exp(-1 / 4)
        assert abs(rho - expected) < 0.03, (correlation, rho)


def test_noise_options_are_checked() -> None:
    with pytest.raises(ValueError, match="noise must be one of"):
        ct_data.build(image_size=32, noise="speckle")
    with pytest.raises(ValueError, match="sigma must be"):
        ct_data.build(image_size=32, noise="gaussian", sigma=0)


def test_standardised_unet_is_equivariant_to_intensity() -> None:
    torch.manual_seed(0)
    unet = MedUNet(2, 1, 1, features=SMALL, standardize=True).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(unet.dense(3.0 * x + 0.5), 3.0 * unet.dense(x) + 0.5,
                                   rtol=1e-4, atol=1e-4)
        plain = MedUNet(2, 1, 1, features=SMALL).eval()
        plain.load_state_dict(unet.state_dict())
        # instance norm hides the level: the plain U-Net answers 3x + 0.5 almost as x
        assert (plain.dense(3.0 * x + 0.5) - plain.dense(x)).abs().mean() < 0.1


def test_unet_standardises_restoration_datasets_only(iid: ct_data.ImageDataset) -> None:
    assert build_unet(iid).standardize
    assert not build_unet(iid, standardize=False).standardize


def test_blind_spot_beats_its_iid_input(iid: ct_data.ImageDataset) -> None:
    """Noise2Self on i.i.d. noise, where its assumption holds, must beat the input."""
    torch.manual_seed(0)
    unet = build_unet(iid, features=SMALL)
    task = blind_spot.build(unet, iid)
    config = TrainConfig(steps=150, batch_size=8, lr=3e-3, weight_decay=0.0, warmup_steps=5,
                         progress=False, device="cpu")
    Trainer(task, iid, config).fit()
    ctx = EvalContext(seeds=(0,), batch_size=32)
    noisy = float(np.mean([10 * np.log10(1 / float(((x - y) ** 2).mean()))
                           for x, y in iid.labelled_split("test")]))
    denoised = restoration()(unet, iid, ctx)["restoration.psnr"]
    assert noisy < 21.0
    # measured: 25.9 dB (+6); with standardize=False 18.9 dB, below the input
    assert denoised > noisy + 4.0, (noisy, denoised)


def test_recon_unet_residual_follows_level_and_global_phase() -> None:
    """The MRI fix of issue 16: with ``normalize`` the residual of a scan scaled by a
    complex number is that number times the scan's residual; without it, it is not
    (so a trained U-Net's correction did not follow the random global phase)."""
    from selfsup_medical.kspace import channels_to_complex, complex_to_channels
    from selfsup_medical.models import ReconUNet

    torch.manual_seed(0)
    net = ReconUNet(SMALL).eval()
    torch.nn.init.normal_(net.unet.net.final_conv.weight, std=0.1)  # leave the zero start
    g = torch.Generator().manual_seed(1)
    image = torch.complex(torch.rand(2, 1, 32, 32, generator=g),
                          torch.rand(2, 1, 32, 32, generator=g))
    z = 2.5 * torch.exp(torch.tensor(1j * 2.0))
    with torch.no_grad():
        base = channels_to_complex(net.correction(complex_to_channels(image)))
        turned = channels_to_complex(net.correction(complex_to_channels(image * z)))
        torch.testing.assert_close(turned, base * z, rtol=1e-3, atol=1e-4)
        net.normalize = False
        base = channels_to_complex(net.correction(complex_to_channels(image)))
        turned = channels_to_complex(net.correction(complex_to_channels(image * z)))
        assert (turned - base * z).abs().mean() > 0.1 * (base * z).abs().mean()


def test_matched_mri_split_deals_slices_of_the_training_volumes() -> None:
    from selfsup_medical.datasets import mri

    ds = mri.build(image_size=32, split="matched")
    sizes = {s: len(ds.labelled_split(s) or ()) for s in ("train", "val", "test")}
    assert sizes == {"train": 37, "val": 12, "test": 12}
    with pytest.raises(ValueError, match="split must be one of"):
        mri.build(image_size=32, split="random")
