"""Tiling a large SAR image into overlapping patches, and stitching outputs back without seams.

A scene is far larger than what a network sees in training, and a convolutional
network's output near a patch border differs from its output in the middle of the
image (zero padding). :func:`tile` cuts ``[C, H, W]`` into ``tile x tile`` patches
whose starts step by ``tile - overlap`` (the last one flush with the border, so every
pixel is covered); :func:`stitch` puts per-patch outputs back as a weighted average in
which each patch's weight is 0 on the ``margin`` pixels next to a border shared with
another patch and rises linearly to 1 across the rest of the overlap (sides on the
image border keep weight 1). An operator whose output at a pixel depends only on
pixels within ``margin`` of it is therefore stitched exactly as if it had run on the
whole image, and a wider one (a U-Net) blends smoothly: no seam.
:func:`apply_tiled` does both around a function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the patches along one axis: steps of ``tile - overlap``, the last flush."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tiling needs tile >= 1 and 0 <= overlap < tile, got tile={tile}, "
                         f"overlap={overlap}")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def tile(image: torch.Tensor, size: int, overlap: int) -> tuple[list[torch.Tensor],
                                                                 list[tuple[int, int]]]:
    """Patches ``[C, size, size]`` of ``image`` ``[C, H, W]`` and their ``(row, column)`` starts.

    An image smaller than ``size`` along an axis gives one patch of its own extent there.
    """
    if image.ndim != 3:
        raise ValueError(f"tile takes an image [C, H, W], got shape {tuple(image.shape)}")
    h, w = image.shape[1:]
    positions = [(y, x) for y in tile_starts(h, size, overlap)
                 for x in tile_starts(w, size, overlap)]
    return [image[:, y:y + size, x:x + size] for y, x in positions], positions


def _ramp(n: int, first: bool, last: bool, overlap: int, margin: int) -> torch.Tensor:
    """Weights along one axis of a patch of ``n`` pixels; ``first``/``last``: that side is on
    the image border (no neighbour), so it keeps weight 1."""
    w = torch.ones(n, dtype=torch.float64)
    width = max(overlap - 2 * margin, 1)
    ramp = torch.clamp((torch.arange(n, dtype=torch.float64) - margin + 1) / (width + 1), 0, 1)
    if not first:
        w = torch.minimum(w, ramp)
    if not last:
        w = torch.minimum(w, ramp.flip(0))
    return w


def stitch(
    patches: list[torch.Tensor],
    positions: list[tuple[int, int]],
    shape: tuple[int, int],
    overlap: int,
    margin: int | None = None,
) -> torch.Tensor:
    """The image ``[C, H, W]`` of per-patch outputs ``[C, h, w]`` at ``positions``.

    ``margin`` (default ``overlap // 4``): pixels next to an interior patch border
    that get weight 0 (at most ``(overlap - 1) // 2``).
    """
    if not patches or len(patches) != len(positions):
        raise ValueError(f"stitch needs one position per patch, got {len(patches)} patches and "
                         f"{len(positions)} positions")
    margin = overlap // 4 if margin is None else margin
    if not 0 <= 2 * margin < max(overlap, 1):
        raise ValueError(f"stitch: margin must be in [0, (overlap - 1) / 2], got {margin} "
                         f"with overlap {overlap}")
    h, w = shape
    c = patches[0].shape[0]
    total = torch.zeros((c, h, w), dtype=torch.float64)
    weight = torch.zeros((h, w), dtype=torch.float64)
    for p, (y, x) in zip(patches, positions):
        ph, pw = p.shape[1:]
        wy = _ramp(ph, y == 0, y + ph >= h, overlap, margin)
        wx = _ramp(pw, x == 0, x + pw >= w, overlap, margin)
        wt = wy[:, None] * wx[None, :]
        total[:, y:y + ph, x:x + pw] += p.double() * wt
        weight[y:y + ph, x:x + pw] += wt
    if bool((weight <= 0).any()):
        raise ValueError("stitch: some pixels are covered by no patch with positive weight; "
                         "use the positions tile() returns")
    return (total / weight).to(patches[0].dtype)


def apply_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    size: int,
    overlap: int,
    batch_size: int = 16,
    margin: int | None = None,
) -> torch.Tensor:
    """``fn`` (batch ``[B, C, size, size]`` -> ``[B, C', size, size]``) over ``image`` ``[C, H, W]``
    patch by patch, stitched back to ``[C', H, W]``."""
    patches, positions = tile(image, size, overlap)
    outputs: list[torch.Tensor] = []
    for start in range(0, len(patches), batch_size):
        group = patches[start:start + batch_size]
        if len({tuple(p.shape) for p in group}) == 1:
            outputs += list(fn(torch.stack(group)))
        else:  # edge patches of an image smaller than the tile differ in shape
            outputs += [fn(p[None])[0] for p in group]
    return stitch(outputs, positions, (int(image.shape[1]), int(image.shape[2])), overlap,
                  margin)
