"""Checks shared by the readers: the error type for unreadable files, and label maps.

Images themselves are checked by :func:`selfsup_medical.images.check_image`
(dimensions, zero extent, NaN/Inf), whose errors name the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..images import ImageDataError, check_image


class ImageReadError(ImageDataError):
    """A file that is not a readable image of a supported format."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), for reports."""
    text = str(err).strip().splitlines()
    return text[0][:300] if text else "no message"


def check_dims(image: np.ndarray, path: Path, spatial_dims: int, field: str) -> None:
    if spatial_dims == 3:
        check_image(image, source=str(path), field=field, spatial_dims=3)
        if min(image.shape[1:]) == 1:
            raise ImageDataError(
                f"{path}: {field} has shape {tuple(image.shape)}, a volume of "
                "a single slice; a 3D dataset needs volumes (use medical.images "
                "for 2D images)"
            )
    elif image.ndim not in (3, 4):
        raise ImageDataError(
            f"{path}: {field} has shape {tuple(image.shape)} ({image.ndim} "
            "dimensions); expected [C, H, W] (2D) or [C, D, H, W] (a volume, "
            "used slice by slice)"
        )


def check_label(
    label: np.ndarray, image: np.ndarray, *, label_path: str | Path, image_path: str | Path
) -> None:
    """Reject a label map that is not one channel of non-negative integers in the image's shape."""
    if tuple(label.shape[1:]) != tuple(image.shape[1:]):
        raise ImageDataError(
            f"label map {label_path} has spatial shape {tuple(label.shape[1:])} but its image "
            f"{image_path} has {tuple(image.shape[1:])}; a label map must match its image voxel "
            "for voxel (resample it onto the image's grid)"
        )
    if label.shape[0] != 1:
        raise ImageDataError(
            f"label map {label_path} has {label.shape[0]} channels; expected "
            "one map of class indices"
        )
    check_image(label, source=str(label_path), field="label map", spatial_dims=label.ndim - 1)
    bad = (label != np.round(label)) | (label < 0)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ImageDataError(
            f"label map {label_path} has {int(bad.sum())} voxels that are not "
            f"non-negative integers (first at {first}: {label[first]!r}); label "
            "maps hold class indices 0, 1, ..."
        )


__all__ = ["ImageReadError", "check_dims", "check_label", "first_line"]
