"""Tiling with overlap and stitching back: exact for local operators, no seams for a U-Net."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup_remote_sensing.encoders import MerlinUNet
from selfsup_remote_sensing.tiling import apply_tiled, stitch, tile, tile_starts


def test_starts_cover_the_axis() -> None:
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tile_starts(20, 32, 8) == [0]


def test_identity_round_trip() -> None:
    x = torch.randn(3, 70, 53)
    patches, positions = tile(x, 32, 12)
    assert torch.allclose(stitch(patches, positions, (70, 53), 12), x, atol=1e-6)


def test_local_operator_stitches_exactly() -> None:
    x = torch.randn(1, 90, 77)

    def box(batch: torch.Tensor) -> torch.Tensor:  # radius 2, zero padding
        return F.avg_pool2d(batch, 5, stride=1, padding=2, count_include_pad=True)

    whole = box(x[None])[0]
    tiled = apply_tiled(box, x, 32, 16, margin=3)
    # zero padding differs only within 2 pixels of the image border
    assert torch.allclose(tiled[:, 2:-2, 2:-2], whole[:, 2:-2, 2:-2], atol=1e-5)


def test_unet_output_has_no_seams() -> None:
    torch.manual_seed(0)
    net = MerlinUNet(width=4, depth=2).eval()
    slc = torch.randn(2, 96, 96) * 0.3
    with torch.no_grad():
        whole = net.dense(slc[None])[0, 0]
        tiled = apply_tiled(net.dense, slc, 48, 24)[0]
    # a seam is a jump across the tile borders (rows/columns 24, 48, 72) that the
    # whole-image output does not have
    diff = (tiled - whole).abs()
    assert diff.mean() < 0.05 * whole.std()
    jump_t = (tiled[:, 1:] - tiled[:, :-1]).abs()
    jump_w = (whole[:, 1:] - whole[:, :-1]).abs()
    for col in (23, 47, 71):
        assert jump_t[:, col].mean() < 1.2 * jump_w[:, col].mean() + 1e-3
