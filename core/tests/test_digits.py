"""core.digits and core.mlp: the built-in vector modality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.datasets.digits import DigitsDataset
from selfsup.encoders.mlp import MLPEncoder, build


def test_splits_are_stratified_and_disjoint() -> None:
    ds = DigitsDataset()
    sizes = {s: ds.n_labelled(s) for s in ds.splits}
    assert sizes == {"train": 1078, "val": 359, "test": 360}
    assert len(ds.pretrain_set()) == 1078
    for split in ds.splits:
        counts = np.bincount(ds.labels(split), minlength=10)
        assert counts.min() >= 0.08 * sizes[split]  # every class present in proportion
    train = {tuple(x.tolist()) for x, _ in ds.labelled_split("train")}  # type: ignore[attr-defined]
    test = [tuple(x.tolist()) for x, _ in ds.labelled_split("test")]  # type: ignore[attr-defined]
    # digits has a few duplicated images, but the split itself never reuses an index
    assert sum(t in train for t in test) < 10
    assert ds.labelled_split("holdout") is None


def test_views_follow_the_generator_and_keep_the_shape() -> None:
    ds = DigitsDataset()
    x = torch.stack([ds.pretrain_set()[i] for i in range(16)])
    a = ds.augment(x, torch.Generator().manual_seed(0))
    b = ds.augment(x, torch.Generator().manual_seed(0))
    c = ds.augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    plain = DigitsDataset(views={"noise_std": 0.0, "mask_prob": 0.0, "shift": 0})
    assert torch.equal(plain.augment(x, torch.Generator()), x)


def test_shift_moves_the_image_without_wrapping() -> None:
    ds = DigitsDataset(views={"noise_std": 0.0, "mask_prob": 0.0, "shift": 1})
    img = torch.zeros(1, 64)
    img[0, 0] = 1.0  # top-left pixel
    seen = {tuple(ds.augment(img, torch.Generator().manual_seed(s)).nonzero()[:, 1].tolist())
            for s in range(40)}
    # the pixel can move right/down (to 1, 8, 9) or stay; moving left/up drops it
    assert seen <= {(0,), (1,), (8,), (9,), ()} and len(seen) >= 4


def test_fingerprint_is_stable_and_tracks_the_split() -> None:
    assert DigitsDataset().fingerprint() == DigitsDataset().fingerprint()
    assert DigitsDataset().fingerprint() != DigitsDataset(seed=1).fingerprint()


def test_bad_options_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"option mask_prob must lie in \[0.0, 0.95\], got 1\.5"):
        DigitsDataset(views={"mask_prob": 1.5})
    with pytest.raises(ValueError, match="norm='group'"):
        MLPEncoder(64, norm="group")
    enc = build(DigitsDataset(), hidden_dims=[16], embed_dim=8)
    with pytest.raises(ValueError, match=r"expects \[B, 64\] inputs, got \(2, 63\)"):
        enc(torch.zeros(2, 63))
    assert enc(torch.zeros(2, 64)).shape == (2, 8)


def test_fingerprint_sees_inside_dict_samples_and_large_tensors() -> None:
    from typing import Any

    import torch

    from selfsup.components import SSLDataset

    class Volumes(SSLDataset):
        name = "toy.volumes"

        def __init__(self, value: float) -> None:
            self.items = [{"image": torch.zeros(32, 32, 32), "id": i} for i in range(4)]
            self.items[2]["image"][16, 16, 16] = value  # past the first 4 KiB; repr elides it

        def pretrain_set(self) -> Any:
            return self.items

    assert Volumes(0.0).fingerprint() == Volumes(0.0).fingerprint()
    assert Volumes(0.0).fingerprint() != Volumes(1.0).fingerprint()
