"""A spatial-spectral network for hyperspectral cubes (face ``dense``).

``dense(sample [B, 2, bands, H, W]) -> cube [B, bands, H, W]``: unobserved bands (mask 0)
are filled by linear interpolation along the spectrum (:func:`fill_bands`), then a
residual 3-D convolutional network, ``x - body(x)``, runs over the cube as one volume
``[1, bands, H, W]``: every 3x3x3 kernel mixes three neighbouring bands and a 3x3
neighbourhood, so spectral and spatial correlation are learned together (the 3-D
convolutions of QRNN3D / HSID-CNN-style denoisers, without their recurrent or
multi-scale parts), and any number of bands is accepted.

``blind_grid = g > 0`` (a buffer, set by :mod:`.pretexts.noise2self_hsi` and saved with
the weights): J-invariant inference as in Noise2Self: for each of the ``g^2`` phases of a
spatial grid, the grid's pixels (all bands) are replaced by the mean of their four
spatial neighbours and the network's output is kept on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import SSLDataset


def fill_bands(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``obs [B, bands, H, W]`` with each sample's unobserved bands (``mask`` all 0 over the
    band) linearly interpolated along the spectrum from the nearest observed bands."""
    observed = mask.flatten(2).amax(2) > 0  # [B, bands]
    if bool(observed.all()):
        return obs
    out = obs.clone()
    for i in range(obs.shape[0]):
        keep = torch.nonzero(observed[i]).flatten()
        if len(keep) == 0:
            continue
        for band in torch.nonzero(~observed[i]).flatten().tolist():
            lo, hi = keep[keep < band], keep[keep > band]
            if len(lo) and len(hi):
                a, b = int(lo[-1]), int(hi[0])
                t = (band - a) / (b - a)
                out[i, band] = (1 - t) * obs[i, a] + t * obs[i, b]
            else:
                out[i, band] = obs[i, int(lo[-1] if len(lo) else hi[0])]
    return out


_NEIGHBOURS = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])


def blind_cube(x: torch.Tensor, grid: int, phase: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [B, bands, H, W]`` with one spatial grid phase's pixels (all bands) replaced by
    the mean of their four neighbours, and that grid as a bool mask ``[1, 1, H, W]``."""
    dy, dx = divmod(int(phase), grid)
    mask = torch.zeros((1, 1, *tuple(x.shape[-2:])), dtype=torch.bool, device=x.device)
    mask[..., dy::grid, dx::grid] = True
    b, c, h, w = x.shape
    kernel = _NEIGHBOURS.to(x)[None, None]
    flat = x.reshape(b * c, 1, h, w)
    neighbours = F.conv2d(F.pad(flat, (1, 1, 1, 1), mode="reflect"), kernel).reshape(b, c, h, w)
    return torch.where(mask, neighbours, x), mask


class SpatialSpectralNet(nn.Module):
    """Residual 3-D CNN over ``(bands, H, W)`` (module docstring); ``depth`` conv layers of
    ``width`` channels."""

    def __init__(self, width: int = 16, depth: int = 5) -> None:
        super().__init__()
        if width < 1 or depth < 2:
            raise ValueError(f"SpatialSpectralNet needs width >= 1 and depth >= 2, got "
                             f"{width}, {depth}")
        self.embed_dim = 1
        layers: list[nn.Module] = [nn.Conv3d(1, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv3d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv3d(width, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.register_buffer("blind_grid", torch.zeros((), dtype=torch.long))

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """The restored cube ``[B, bands, H, W]`` of a filled cube ``[B, bands, H, W]``."""
        return x - self.body(x[:, None])[:, 0]

    def restore_blind(self, x: torch.Tensor, grid: int) -> torch.Tensor:
        out = torch.zeros_like(x)
        for phase in range(grid * grid):
            masked, mask = blind_cube(x, grid, phase)
            out = torch.where(mask, self.restore(masked), out)
        return out

    def dense(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 5 or batch.shape[1] != 2:
            raise ValueError(f"SpatialSpectralNet takes samples [B, 2, bands, H, W] "
                             f"(observation, mask), got {tuple(batch.shape)}")
        x = fill_bands(batch[:, 0], batch[:, 1])
        grid = int(self.get_buffer("blind_grid"))
        return self.restore_blind(x, grid) if grid > 0 else self.restore(x)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.dense(batch)


def build_spatial_spectral(dataset: SSLDataset, width: int = 16,
                           depth: int = 5) -> SpatialSpectralNet:
    """``remote_sensing.spatial_spectral``."""
    return SpatialSpectralNet(width=width, depth=depth)
