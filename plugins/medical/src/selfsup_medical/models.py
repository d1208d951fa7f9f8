"""MONAI U-Nets for dense tasks, their contracting path as an encoder, and a k-space wrapper.

All models are MONAI's ``BasicUNet`` (Ronneberger, Fischer and Brox, "U-Net",
MICCAI 2015; Falk et al., Nat. Methods 2019): four down-sampling blocks, four
up-sampling blocks with skip connections, 2D or 3D. :class:`MedUNet` wraps one
and gives it two faces:

- ``dense(x)``: the U-Net's output, ``[B, out_channels, *spatial]``: a restored
  image or segmentation logits;
- ``embed(x)``: the global average of the deepest feature map, ``[B, features[4]]``,
  for core's probes and joint-embedding objectives (``embed_dim = features[4]``).

Both registered encoders offer both faces and differ only in the first, which
``forward`` returns: ``medical.unet`` is ``("dense", "embedding")`` (restoration,
segmentation), ``medical.unet_encoder`` is ``("embedding", "dense")`` (probes on
volume embeddings). In 0.1 a switch ``output="dense"|"embedding"`` chose what
``forward`` returned; the weights, their initialisation and every number are
unchanged, and ``embed_dim`` is now ``features[4]`` for both.
A U-Net pretrained through either face loads into a dense one for segmentation
fine-tuning (:meth:`MedUNet.as_dense`). Default widths ``(16, 16, 32, 64, 128, 16)``
in 2D and ``(8, 8, 16, 32, 64, 8)`` in 3D train on a CPU; the paper-sized default of
MONAI is ``(32, 32, 64, 128, 256, 32)``. ``standardize=True`` makes ``dense``
equivariant to each image's intensity level and contrast: ``dense(x) = mu + sd *
net((x - mu) / sd)`` with ``mu``/``sd`` the mean and standard deviation of each
image and channel (``encode``/``embed`` see the standardised image too). MONAI's
``BasicUNet`` instance-normalises every block, its first included, so without it the
network cannot see an image's absolute intensity and a restoration must guess it
from structure. Measured (issue 16, ``benchmarks/medical_sanity_curves.py``):
supervised, 200 steps, on the 64x64 CT slices with i.i.d. Gaussian noise (sigma
0.05, input 26.0 dB), the test PSNR ends at 23.0 dB without it (an intensity bias of
+0.04 on the darker test EPI brain) and 32.9 dB with it; the blind-spot denoiser
ended 5 dB below its input without it. ``medical.unet`` turns it on for restoration
datasets (task ``dense``) unless told; segmentation and embeddings keep the plain
U-Net. Inputs need spatial sides divisible by 16, and to train, at least one side of
32 or more (instance norm needs more than one voxel in the deepest map).

:class:`ReconUNet` (``medical.recon_unet``) reconstructs MRI from a k-space
batch: the zero-filled complex image (two channels) goes through a 2D U-Net
whose output is added to it (residual learning), giving a complex image
``[B, 2, H, W]`` (its one face, ``dense``). The U-Net's last convolution starts at
zero, so an untrained model returns the zero-filled image. With ``data_consistency=True`` (default)
the output's k-space on the acquired columns is replaced by the measured data
(the hard data-consistency step of unrolled networks such as MoDL, Aggarwal et
al. 2019, and of SSDU's network): the network only fills in the missing
columns. Measured on ``medical.mri4x`` at 64x64 (supervised, 27 references,
200 steps, before the MNI152 template joined the training split): without data
consistency and the zero start, the test PSNR fell to 15.5 dB, below the
zero-filled 19.9 dB; with both (and the template), all 61 references give
20.9 dB against 20.1 zero-filled (BENCHMARKS.md). On noisy scans the
acquired columns keep their noise; ``data_consistency=False`` lets the network
denoise them too.

``normalize=True`` (default since issue 16) computes the U-Net's residual on the
zero-filled image divided by a complex scalar per scan (its RMS magnitude times the
phase of its mean) and multiplies the residual back by it, so the correction follows
the scan's level and global phase. The U-Net's instance norm otherwise hides both
(each channel, real and imaginary, is normalised on its own, and the random global
phase decides how a magnitude splits between them). Measured with
``benchmarks/medical_sanity_curves.py`` on ``split="matched"`` 4x scans (train and
test slices from the same T1 volumes, 200 steps): without it even 37 supervised
references ended at 19.0 dB against 18.8 zero-filled, and self-supervised
Noise2Recon at 18.7; with it see BENCHMARKS.md, Medical plugin, "Sanity settings".
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from selfsup.api import DENSE, EMBEDDING, IMAGE2D, KSPACE, VOLUME3D, SSLDataset

FEATURES_2D = (16, 16, 32, 64, 128, 16)
FEATURES_3D = (8, 8, 16, 32, 64, 8)
#: the faces of medical.unet and medical.unet_encoder; forward returns the first
UNET_FACES: tuple[str, str] = (DENSE, EMBEDDING)
UNET_ENCODER_FACES: tuple[str, str] = (EMBEDDING, DENSE)


class MedUNet(nn.Module):
    """MONAI ``BasicUNet`` with a dense and an embedding face (see the module docstring).

    ``faces``: :data:`UNET_FACES` or :data:`UNET_ENCODER_FACES`, as the registered
    encoder declares them; ``forward`` returns the first.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        features: Sequence[int] | None = None,
        faces: tuple[str, ...] = UNET_FACES,
        dropout: float = 0.0,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        from monai.networks.nets import BasicUNet

        if spatial_dims not in (2, 3):
            raise ValueError(f"U-Net: spatial_dims must be 2 or 3, got {spatial_dims}")
        faces = tuple(faces)
        if faces not in (UNET_FACES, UNET_ENCODER_FACES):
            raise ValueError(
                f"U-Net: faces must be {list(UNET_FACES)} or {list(UNET_ENCODER_FACES)}, "
                f"got {list(faces)}"
            )
        feats = tuple(features or (FEATURES_2D if spatial_dims == 2 else FEATURES_3D))
        if len(feats) != 6 or any(f < 1 for f in feats):
            raise ValueError(f"U-Net: features must be 6 positive widths, got {list(feats)}")
        self.spatial_dims, self.in_channels, self.out_channels = (
            spatial_dims,
            in_channels,
            out_channels,
        )
        self.features, self.faces = feats, faces
        self.net = BasicUNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            features=feats,
            dropout=dropout,
        )
        self.embed_dim = feats[4]
        self.standardize = bool(standardize)

    def standardized(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``((x - mu) / sd, mu, sd)`` per image and channel with ``standardize``, else
        ``(x, None, None)``; ``sd`` is floored at 1e-6 (a constant image)."""
        if not self.standardize:
            return x, None, None
        dims = tuple(range(2, x.ndim))
        mu = x.mean(dim=dims, keepdim=True)
        sd = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
        return (x - mu) / sd, mu, sd

    @staticmethod
    def destandardized(
        y: torch.Tensor, mu: torch.Tensor | None, sd: torch.Tensor | None
    ) -> torch.Tensor:
        """The inverse of :meth:`standardized` on an output (identity without it)."""
        return y if mu is None or sd is None else mu + sd * y

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The contracting path's feature maps, shallow to deep (five maps)."""
        self._check(x)
        n = self.net
        x0 = n.conv_0(self.standardized(x)[0])
        x1 = n.down_1(x0)
        x2 = n.down_2(x1)
        x3 = n.down_3(x2)
        return [x0, x1, x2, x3, n.down_4(x3)]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global average of the deepest feature map, ``[B, features[4]]``."""
        return self.encode(x)[-1].flatten(2).mean(2)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net output ``[B, out_channels, *spatial]``."""
        self._check(x)
        z, mu, sd = self.standardized(x)
        return self.destandardized(self.net(z), mu, sd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x) if self.faces[0] == DENSE else self.embed(x)

    def as_dense(self, out_channels: int | None = None) -> MedUNet:
        """A copy with these weights whose ``forward`` is ``dense``; a new final 1x1 conv
        if ``out_channels`` differs."""
        model = copy.deepcopy(self)
        model.faces = UNET_FACES
        if out_channels is not None and out_channels != self.out_channels:
            conv = nn.Conv2d if self.spatial_dims == 2 else nn.Conv3d
            model.net.final_conv = conv(self.features[5], out_channels, kernel_size=1)
            model.out_channels = out_channels
        return model

    def _check(self, x: torch.Tensor) -> None:
        spatial = tuple(x.shape[2:])
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"U-Net expects [B, {self.in_channels}, *{self.spatial_dims} spatial "
                f"dims], got {tuple(x.shape)}"
            )
        if any(s % 16 for s in spatial):
            raise ValueError(
                f"U-Net: spatial sides {spatial} must be divisible by 16 (four "
                "down-sampling steps); crop or pad the images"
            )
        if self.training and all(s == 16 for s in spatial):
            # instance norm needs more than one voxel in the deepest map
            raise ValueError(
                f"U-Net: spatial shape {spatial} leaves one voxel after four down-sampling "
                "steps, too few to train; use at least one side >= 32"
            )


class ReconUNet(nn.Module):
    """Zero-filled complex image -> residual 2D U-Net -> complex image ``[B, 2, H, W]``."""

    def __init__(
        self,
        features: Sequence[int] | None = None,
        *,
        data_consistency: bool = True,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.unet = MedUNet(2, 2, 2, features=features)
        final = self.unet.net.final_conv
        nn.init.zeros_(final.weight)
        nn.init.zeros_(final.bias)
        self.data_consistency = data_consistency
        self.normalize = bool(normalize)
        self.embed_dim = 2

    @staticmethod
    def reference(image: torch.Tensor) -> torch.Tensor:
        """A complex scalar per scan ``[B, 1, 1, 1]``: the root-mean-square magnitude of
        the complex image ``[B, 1, H, W]`` times the phase of its mean (the global
        phase); dividing by it gives a scan of unit level and zero mean phase."""
        rms = image.abs().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        phase = torch.where(mean.abs() > 0, mean / mean.abs().clamp_min(1e-12),
                            torch.ones_like(mean))
        return rms * phase

    def correction(self, zero_filled: torch.Tensor) -> torch.Tensor:
        """The U-Net's residual ``[B, 2, H, W]`` for the zero-filled channels; with
        ``normalize`` computed on the scan divided by :meth:`reference` and multiplied
        back, so that it follows the scan's level and global phase."""
        from .kspace import channels_to_complex, complex_to_channels

        if not self.normalize:
            return self.unet.dense(zero_filled)  # type: ignore[no-any-return]
        ref = self.reference(channels_to_complex(zero_filled))
        unit = complex_to_channels(channels_to_complex(zero_filled) / ref)
        return complex_to_channels(channels_to_complex(self.unet.dense(unit)) * ref)

    def dense(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The complex image ``[B, 2, H, W]`` of a k-space batch."""
        from .kspace import channels_to_complex, complex_to_channels, fft2c, ifft2c

        zero_filled = complex_to_channels(ifft2c(batch["kspace"]))
        out = zero_filled + self.correction(zero_filled)
        if not self.data_consistency:
            return out  # type: ignore[no-any-return]
        mask = batch["mask"].to(out.dtype)
        kspace = fft2c(channels_to_complex(out)) * (1 - mask) + batch["kspace"] * mask
        return complex_to_channels(ifft2c(kspace))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.dense(batch)


def image_dataset(dataset: SSLDataset, key: str) -> Any:
    """``dataset`` if it holds 2D images or 3D volumes, else a ValueError naming ``key``."""
    if dataset.modality not in (IMAGE2D, VOLUME3D):
        raise ValueError(
            f"{key} needs an image2d or volume3d dataset; {dataset.name!r} is {dataset.modality!r}"
        )
    return dataset


def build_unet(
    dataset: SSLDataset,
    *,
    features: Sequence[int] | None = None,
    out_channels: int | None = None,
    dropout: float = 0.0,
    standardize: bool | None = None,
) -> MedUNet:
    """``medical.unet``: dense first, then embedding; ``out_channels`` defaults to the
    classes of a segmentation dataset, else to the input's channels (restoration);
    ``standardize`` (see the module docstring) to True on a restoration dataset (task
    ``dense``), else False."""
    ds = image_dataset(dataset, "medical.unet")
    if standardize is None:
        standardize = dataset.task.kind == "dense"
    if out_channels is None:
        task = dataset.task
        out_channels = task.n_classes if task.kind == "segmentation" else None
        out_channels = out_channels or ds.in_channels
    return MedUNet(
        ds.spatial_dims,
        ds.in_channels,
        int(out_channels),
        features=features,
        faces=UNET_FACES,
        dropout=dropout,
        standardize=bool(standardize),
    )


def build_unet_encoder(
    dataset: SSLDataset, *, features: Sequence[int] | None = None, dropout: float = 0.0
) -> MedUNet:
    """``medical.unet_encoder``: the U-Net's contracting path, globally pooled, first;
    the same U-Net's dense output second."""
    ds = image_dataset(dataset, "medical.unet_encoder")
    n_out = dataset.task.n_classes if dataset.task.kind == "segmentation" else ds.in_channels
    return MedUNet(
        ds.spatial_dims,
        ds.in_channels,
        int(n_out or ds.in_channels),
        features=features,
        faces=UNET_ENCODER_FACES,
        dropout=dropout,
    )


def build_recon_unet(
    dataset: SSLDataset,
    *,
    features: Sequence[int] | None = None,
    data_consistency: bool = True,
    normalize: bool = True,
) -> ReconUNet:
    """``medical.recon_unet``: residual U-Net on the zero-filled image of a k-space batch,
    with hard data consistency on the acquired columns unless ``data_consistency=False``;
    ``normalize``: the residual follows each scan's level and global phase
    (:meth:`ReconUNet.correction`)."""
    if dataset.modality != KSPACE:
        raise ValueError(
            f"medical.recon_unet needs a k-space dataset; {dataset.name!r} is {dataset.modality!r}"
        )
    for name, value in (("data_consistency", data_consistency), ("normalize", normalize)):
        if not isinstance(value, bool):
            raise ValueError(f"medical.recon_unet: {name} must be true or false, got {value!r}")
    return ReconUNet(features, data_consistency=data_consistency, normalize=normalize)
