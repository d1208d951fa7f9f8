"""Offline image sources, the low-dose CT simulator, and the MRI / CT / synthetic datasets.

Images stay tiny (32x32, 16^3) so the file runs in well under 30 s on one core.
References are computed independently: pixel data read with pydicom/nibabel
directly, FBP with scikit-image directly, FFTs with numpy, Poisson statistics
from the delta method.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch

from selfsup.api import Registry
from selfsup_medical import ct, sources
from selfsup_medical.datasets import brain_tissue, mri, synthetic_seg
from selfsup_medical.datasets import ct as ct_data
from selfsup_medical.datasets.views import VIEW_DEFAULTS, ImageViews
from selfsup_medical.evaluators.restoration import psnr

SIZE = 32


# -- sources ---------------------------------------------------------------------------------


def test_sources_load_in_range_and_non_empty() -> None:
    records = sources.anatomical_records(SIZE)
    assert len(records) == 89
    assert {r.volume for r in records} == {s.key for s in sources.SOURCES}
    for r in records:
        assert r.image.shape == (1, SIZE, SIZE) and r.image.dtype == torch.float32
        assert torch.isfinite(r.image).all() and r.image.min() >= 0
        # non-empty: a real part of the slice is tissue, not background
        assert (r.image > 0.1 * r.image.max()).float().mean() > 0.05
        if r.modality == "MR":  # divided by its own 99.9th percentile
            assert abs(float(torch.quantile(r.image.flatten(), 0.999)) - 1.0) < 1e-3
        else:  # (HU + 1000) / 2000: air 0, dense bone about 1
            assert float(r.image.max()) < 1.6
    phantom = sources.shepp_logan(SIZE)
    assert phantom.shape == (1, SIZE, SIZE) and phantom.min() >= 0 and phantom.max() <= 1


def test_sources_are_deterministic() -> None:
    first = [r.image for r in sources.anatomical_records(SIZE)]
    sources._records.cache_clear()  # read the files again rather than the cache
    second = sources.anatomical_slices(SIZE)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_native_size_slices_match_the_files_read_directly() -> None:
    import nibabel

    # CT_small is 128x128: no resizing, so the slice is exactly the HU mapping
    file = sources.package_file("pydicom", "data/test_files/CT_small.dcm")
    ds = pydicom.dcmread(file)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    (ct_small,) = [r for r in sources.ct_records(128) if r.volume == "pydicom:CT_small.dcm"]
    np.testing.assert_allclose(ct_small.image[0].numpy(), (hu + 1000) / 2000, atol=1e-6)

    # example4d is 128x96 (x, y): rotated to 96 rows x 128 columns, padded by 16 rows each side
    file = sources.package_file("nibabel", "tests/data/example4d.nii.gz")
    volume = np.asarray(nibabel.load(file).dataobj, dtype=np.float64)[..., 0]
    expect = np.zeros((128, 128))
    expect[16:112] = np.rot90(np.clip(volume[:, :, 12], 0, None))
    expect /= np.quantile(expect, 0.999)
    (epi,) = [
        r
        for r in sources.mr_records(128)
        if r.volume == "nibabel:example4d.nii.gz" and r.index == 12
    ]
    np.testing.assert_allclose(epi.image[0].numpy(), expect, rtol=1e-5, atol=1e-6)


def test_mni_template_slices_are_every_fourth_axial_slice() -> None:
    import nibabel

    key = "nilearn:mni152_t1.nii.gz"
    (source,) = [s for s in sources.SOURCES if s.key == key]
    mni = [r for r in sources.mr_records(SIZE) if r.volume == key]
    assert len(mni) == 35 and all(r.index % 4 == 0 for r in mni)
    # the kept slices are the ones with tissue, read straight from the file
    data = np.asarray(nibabel.load(sources.package_file("nilearn", source.path)).dataobj)
    reference = np.percentile(data.astype(np.float64), 99.9)
    tissue = [
        z for z in range(0, data.shape[2], 4) if (data[:, :, z] > 0.1 * reference).mean() >= 0.05
    ]
    assert [r.index for r in mni] == tissue


def test_missing_package_file_names_it() -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such\.dcm"):
        sources.package_file("pydicom", "data/test_files/no_such.dcm")


def test_split_by_volume_keeps_volumes_whole() -> None:
    records = [*sources.anatomical_records(SIZE), sources.phantom_record(SIZE)]
    splits = sources.split_by_volume(records)
    volumes = {s: {r.volume for r in items} for s, items in splits.items()}
    assert not volumes["train"] & volumes["val"] and not volumes["train"] & volumes["test"]
    assert not volumes["val"] & volumes["test"]
    assert sources.PHANTOM in volumes["train"]
    assert sum(len(v) for v in splits.values()) == len(records)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [61, 5, 24]


# -- CT simulator ----------------------------------------------------------------------------


def test_noise_free_path_reproduces_the_fbp_reference() -> None:
    from skimage.transform import iradon, radon

    image = sources.shepp_logan(SIZE)
    low, full = ct.simulate_low_dose(image, photons=None, seed=0)
    angles = np.arange(180) * 1.0
    reference = iradon(
        radon(image[0].double().numpy(), angles, circle=False),
        angles,
        output_size=SIZE,
        filter_name="ramp",
        circle=False,
    )
    np.testing.assert_allclose(full[0].numpy(), reference, atol=1e-5)
    assert torch.equal(low, full)
    # the transmission and log path is consistent: with plenty of photons it converges too
    nearly, _ = ct.simulate_low_dose(image, photons=1e9, seed=0)
    assert psnr(nearly.numpy(), full.numpy()) > 80


def test_noise_grows_as_photons_fall_and_is_spatially_correlated() -> None:
    image = sources.mr_records(SIZE)[10].image * 0.5
    _, full = ct.simulate_low_dose(image, photons=None, seed=0)
    def noisy_psnr(photons: float, seed: int) -> float:
        low, _ = ct.simulate_low_dose(image, photons=photons, seed=seed)
        return psnr(low.numpy(), full.numpy())

    scores = [np.mean([noisy_psnr(p, s) for s in range(2)]) for p in (1e3, 1e4, 1e5)]
    assert scores[0] + 5 < scores[1] < scores[2] - 5  # 10x photons: about +10 dB
    # FBP spreads each ray's noise along its line: neighbours are correlated, unlike white noise
    corr = []
    for s in range(3):
        noise = (ct.simulate_low_dose(image, photons=1e4, seed=s)[0] - full)[0].numpy()
        corr += [
            np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1],
            np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1],
        ]
    assert np.mean(corr) > 0.05


def test_poisson_line_integrals_have_the_delta_method_variance() -> None:
    p, mu_scale, photons = 10.0, 0.1, 1e4
    noisy = ct.noisy_line_integrals(
        np.full((200, 100), p), photons=photons, mu_scale=mu_scale, rng=np.random.default_rng(0)
    )
    counts = photons * np.exp(-mu_scale * p)
    assert abs(noisy.mean() - p) < 0.01
    assert abs(noisy.var() / (1.0 / (counts * mu_scale**2)) - 1.0) < 0.05


def test_ct_rejects_bad_photons() -> None:
    with pytest.raises(ValueError, match="photons"):
        ct.simulate_low_dose(sources.shepp_logan(SIZE), photons=0, seed=0)


def test_ct_dataset_pairs_share_units_and_order_by_dose() -> None:
    low_dose = ct_data.build(photons=1e3, image_size=SIZE)
    high_dose = ct_data.build(photons=1e5, image_size=SIZE)
    assert low_dose.task.kind == "dense" and low_dose.modality == "image2d"
    assert [len(low_dose.labelled_split(s)) for s in ("train", "val", "test")] == [61, 5, 24]
    train = low_dose.labelled_split("train")
    assert all(
        torch.equal(x, lo) for x, (lo, _) in zip(low_dose.pretrain_set(), train, strict=True)
    )
    for (lo, hi), (lo2, hi2) in zip(
        low_dose.labelled_split("test"), high_dose.labelled_split("test"), strict=True
    ):
        assert torch.equal(hi, hi2)  # the reference does not depend on the dose
        assert abs(float(torch.quantile(hi.flatten(), 0.999)) - 1.0) < 1e-3
        assert psnr(lo.numpy(), hi.numpy()) < psnr(lo2.numpy(), hi2.numpy())


def test_image_datasets_declare_their_views_once() -> None:
    reg = Registry(plugins=["medical"], strict=True)
    reg.load()
    image_datasets = [d for d in reg.specs("dataset") if d.modality in ("image2d", "volume3d")]
    assert len(image_datasets) == 6
    assert all(dict(d.views) == VIEW_DEFAULTS for d in image_datasets)
    spec = reg.get("dataset", "medical.ct_denoise")
    ds = spec.build(image_size=SIZE, angles=90, views={"crop": 1.0, "flip": 0.0})
    assert ds.views == ImageViews(crop=1.0, flip=0.0)  # the rest keep their defaults
    assert "90 angles" in ds.source
    batch = torch.stack(ds.pretrain_set()[:2])
    assert not torch.equal(ds.augment(batch, torch.Generator().manual_seed(0)), batch)
    with pytest.raises(TypeError, match=r"unknown view option.*'zoom'"):
        spec.build(image_size=SIZE, views={"zoom": 0.1})
    with pytest.raises(ValueError, match=r"medical\.ct_denoise views: option crop must be in"):
        spec.build(image_size=SIZE, views={"crop": 1.5})
    with pytest.raises(ValueError, match="angles must be an integer >= 8"):
        ct_data.build(image_size=SIZE, angles=4)


# -- MRI dataset -----------------------------------------------------------------------------


def _volume_of(target: torch.Tensor, records: list[sources.Slice]) -> str:
    from selfsup_medical.images import scale_unit

    (volume,) = {r.volume for r in records if torch.equal(scale_unit(r.image), target)}
    return volume


def test_mri_dataset_splits_by_volume_and_honours_n_supervised() -> None:
    ds = mri.build(image_size=SIZE, acceleration=4, n_supervised=3, seed=1)
    records = [*sources.anatomical_records(SIZE), sources.phantom_record(SIZE)]
    volumes = {s: {_volume_of(t, records) for _, t in ds.labelled_split(s)} for s in ds.splits}
    assert ds.splits == ("train", "val", "test")
    assert not volumes["train"] & volumes["test"] and not volumes["val"] & volumes["test"]
    assert not volumes["train"] & volumes["val"]
    assert sources.PHANTOM not in volumes["test"] | volumes["val"]

    assert ds.n_supervised == 3
    train = ds.labelled_split("train")
    for scan, (labelled_scan, target) in zip(ds.pretrain_set(), train, strict=True):
        assert torch.equal(scan["kspace"], labelled_scan["kspace"])
        if scan["has_target"]:
            assert torch.equal(scan["target"], target)
        else:
            assert not scan["target"].any()
    with pytest.raises(ValueError, match="n_supervised"):
        mri.build(image_size=SIZE, n_supervised=1000)


@pytest.mark.parametrize("kind", ["random", "equispaced"])
@pytest.mark.parametrize("acceleration", [4, 8])
def test_mri_masks_have_the_acceleration_and_centre(kind: str, acceleration: int) -> None:
    ds = mri.build(image_size=SIZE, acceleration=acceleration, mask=kind, smooth_phase=False)
    masks = torch.stack([s["mask"].flatten() for s, _ in ds.labelled_split("test")])
    n_center = round(SIZE * 0.08)
    start = (SIZE - n_center + 1) // 2
    centre = torch.zeros(SIZE, dtype=torch.bool)
    centre[start : start + n_center] = True
    assert (masks[:, centre] == 1).all()
    if kind == "random":  # 1/acceleration of the columns on average
        assert abs(float(masks.mean()) - 1 / acceleration) < 0.03
    else:  # equally spaced outer columns, spaced so that 1/acceleration are sampled
        for mask in masks:  # within rounding of one column at each end
            assert abs(float(mask.sum()) - SIZE / acceleration) <= 2
            left = torch.nonzero(mask[:start]).flatten()  # outer columns left of the centre
            if len(left) > 2:  # equally spaced, up to rounding
                gaps = torch.diff(left)
                assert int(gaps.max()) - int(gaps.min()) <= 1
    scan, target = ds.labelled_split("test")[0]
    full = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(target[0].numpy()), norm="ortho"))
    np.testing.assert_allclose(scan["kspace"][0].numpy(), full * scan["mask"][0].numpy(), atol=1e-5)


def test_mri_phase_is_smooth_and_keeps_the_magnitude_target() -> None:
    phase = mri.random_phase(SIZE, np.random.default_rng(0)).numpy()
    assert np.abs(np.diff(phase, axis=0)).max() < 0.5 and np.abs(np.diff(phase, axis=1)).max() < 0.5
    with_phase = mri.build(image_size=SIZE, smooth_phase=True)
    without = mri.build(image_size=SIZE, smooth_phase=False)
    (a, ta), (b, tb) = with_phase.labelled_split("test")[0], without.labelled_split("test")[0]
    assert torch.equal(ta, tb) and torch.equal(a["mask"], b["mask"])
    assert not torch.allclose(a["kspace"], b["kspace"])


# -- synthetic segmentation ------------------------------------------------------------------


def test_synthetic_seg_labels_have_n_classes_values() -> None:
    ds = synthetic_seg.build_2d(n_images=20, size=SIZE, n_classes=3)
    assert ds.task.kind == "segmentation" and ds.task.n_classes == 3
    assert [len(ds.labelled_split(s)) for s in ("train", "val", "test")] == [12, 4, 4]
    values: set[int] = set()
    for s in ds.splits:
        for image, label in ds.labelled_split(s):
            assert image.shape == (1, SIZE, SIZE) and label.shape == (SIZE, SIZE)
            assert label.dtype == torch.long and image.min() >= 0 and image.max() <= 1
            values |= set(label.unique().tolist())
    assert values == {0, 1, 2}
    two = synthetic_seg.build_3d(n_volumes=5, size=16, n_classes=2)
    assert {v for _, y in two.labelled_split("train") for v in y.unique().tolist()} == {0, 1}
    again = synthetic_seg.build_2d(n_images=20, size=SIZE, n_classes=3)
    assert all(
        torch.equal(x, y) for x, y in zip(ds.pretrain_set(), again.pretrain_set(), strict=True)
    )


def test_threshold_no_longer_segments_at_the_default_noise() -> None:
    # measured: 1.00 at noise 0.4 (a threshold solves it), 0.47 (2D) / 0.30 (3D) at 1.5
    assert synthetic_seg.DEFAULT_NOISE == 1.5
    easy = synthetic_seg.build_2d(n_images=40, size=SIZE, noise=0.4)
    assert synthetic_seg.threshold_baseline(easy) > 0.95
    hard = synthetic_seg.build_2d(n_images=40, size=SIZE)
    assert synthetic_seg.threshold_baseline(hard) < 0.6
    # the structure is still there for a method that looks at neighbours
    assert synthetic_seg.threshold_baseline(hard, opening=3) > 0.65
    hard3d = synthetic_seg.build_3d(n_volumes=10, size=16)
    assert synthetic_seg.threshold_baseline(hard3d) < 0.45


# -- brain tissue cubes ------------------------------------------------------------------------


def test_brain_tissue_cubes_labels_and_disjoint_bands() -> None:
    ds = brain_tissue.build(stride=32)
    t1, gm, wm = brain_tissue.template()
    assert t1.shape == gm.shape == wm.shape == (197, 233, 189)
    assert gm.min() >= 0 and gm.max() <= 1 and wm.min() >= 0 and wm.max() <= 1
    assert ds.task.kind == "classification" and ds.task.n_classes == 3
    assert ds.splits == ("train", "val", "test")
    ys = {}
    for split in ds.splits:
        items = ds.labelled_split(split)
        assert items and all(x.shape == (1, 32, 32, 32) for x, _ in items)
        ys[split] = {int(y) for _, y in items}
    assert ys["train"] == ys["test"] == {0, 1, 2}
    assert len(ds.pretrain_set()) == len(ds.labelled_split("train"))

    # each cube is the template's block at its corner, labelled by the largest mean tissue
    # fraction there; the coronal (second-axis) ranges of different splits never overlap
    bands: dict[str, set[int]] = {}
    for split, starts in brain_tissue.corners(stride=32).items():
        assert len(starts) == len(ds.labelled_split(split))
        for (x, y, z), (cube, label) in zip(starts, ds.labelled_split(split), strict=True):
            box = (slice(x, x + 32), slice(y, y + 32), slice(z, z + 32))
            assert np.array_equal(cube[0].numpy(), t1[box])
            g, w = gm[box].mean(), wm[box].mean()
            assert int(label) == int(np.argmax([g, w, 1 - g - w]))
            bands.setdefault(split, set()).update(range(y, y + 32))
    assert not bands["train"] & bands["test"] and not bands["train"] & bands["val"]
    assert not bands["val"] & bands["test"]


def test_brain_tissue_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        brain_tissue.build(patch=24)
    with pytest.raises(ValueError, match="stride"):
        brain_tissue.build(stride=0)
    with pytest.raises(ValueError, match="min_foreground"):
        brain_tissue.build(min_foreground=1.0)


def test_a_classification_label_out_of_range_names_the_item() -> None:
    from selfsup.api import TaskSpec
    from selfsup_medical.images import ImageDataError, ImageDataset

    x = torch.rand(1, 32, 32, 32)
    good = ImageDataset(
        "cubes", modality="volume3d", pretrain=[x], labelled={"train": [(x, torch.tensor(1))]},
        task=TaskSpec("classification", 2),
    )
    assert good.splits == ("train",)
    for bad in (torch.tensor(2), torch.tensor(0.5), torch.tensor([1])):
        with pytest.raises(ImageDataError, match=r"train item 0.*class label"):
            ImageDataset(
                "cubes", modality="volume3d", pretrain=[x], labelled={"train": [(x, bad)]},
                task=TaskSpec("classification", 2),
            )


def test_intensity_baseline_separates_classes_by_brightness() -> None:
    gen = torch.Generator().manual_seed(0)

    def cubes(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for i in range(n):
            label = i % 3
            cube = 0.3 * label + 0.05 * torch.rand(1, 4, 4, 4, generator=gen)
            out.append((cube, torch.tensor(label)))
        return out

    labelled = {"train": cubes(30), "test": cubes(12)}
    assert brain_tissue.intensity_baseline(labelled) == 1.0
    assert brain_tissue.intensity_baseline(labelled, statistics=True) == 1.0
    # it scores on the test split's own labels: relabelled test cubes are all wrong
    relabelled = {**labelled, "test": [(x, (y + 1) % 3) for x, y in labelled["test"]]}
    assert brain_tissue.intensity_baseline(relabelled) == 0.0
