"""Readers of users' files: NIfTI, DICOM series, fastMRI HDF5, and the folder datasets.

Every file is written here in its real format (nibabel, pydicom, h5py) and read
back through :mod:`selfsup_medical.io` and through the registry; expected values
come from the writer's side (the arrays written, pydicom's own decoding, numpy's
FFT), never from the code under test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from selfsup.api import Registry
from selfsup_medical import io
from selfsup_medical.datasets import folder
from selfsup_medical.images import ImageDataError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry(plugins=["medical"], strict=True)
    reg.load()
    return reg


# -- writers -----------------------------------------------------------------------------
def write_nifti(
    path: Path,
    array: np.ndarray,
    spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
    slope: float | None = None,
    inter: float | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    diag = [*[*spacing, 1.0, 1.0][:3], 1.0]  # NIfTI affines are 4 x 4, also for 2D
    img = nib.Nifti1Image(array, np.diag(diag))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, path)
    return path


def write_dicom_series(
    folder_: Path,
    volume: np.ndarray,
    *,
    pixel_spacing=(0.5, 0.7),
    thickness: float = 2.5,
    intercept: float = -1024.0,
    prefix: str = "slice",
) -> list[Path]:
    """One CT slice file per ``volume[k]`` (int16 ``[rows, cols]``), written in reverse order."""
    folder_.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for k, plane in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.PatientID = "CT", "test"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, thickness * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = thickness
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
        ds.PixelData = plane.astype(np.int16).tobytes()
        path = folder_ / f"{prefix}_{len(volume) - k:03d}.dcm"  # file order opposite to slice order
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def fft2c_np(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D FFT in numpy (fastMRI's convention), independent of torch."""
    shifted = np.fft.ifftshift(image, axes=(-2, -1))
    return np.fft.fftshift(np.fft.fft2(shifted, norm="ortho"), axes=(-2, -1))


def phantom_slices(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Complex images: a bright ellipse with texture, smooth phase."""
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((n, h, w), dtype=np.complex64)
    for k in range(n):
        inside = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2 < 1
        mag = inside * (1.0 + 0.3 * rng.random((h, w)))
        out[k] = mag * np.exp(1j * (0.02 * xx + 0.01 * k * yy))
    return out


def write_fastmri(
    path: Path, image: np.ndarray, crop: tuple[int, int], **extra: np.ndarray
) -> np.ndarray:
    """A single-coil file whose reference is the numpy centre crop of ``|image|``."""
    h, w = crop
    top, left = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    reference = np.abs(image)[:, top : top + h, left : left + w].astype(np.float32)
    with h5py.File(path, "w") as fh:
        fh["kspace"] = fft2c_np(image).astype(np.complex64)
        fh["reconstruction_rss"] = reference
        for key, value in extra.items():
            fh[key] = value
    return reference


# -- single files --------------------------------------------------------------------------
def test_nifti_round_trip_with_scaling_and_spacing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(6, 7, 8)).astype(np.float32)
    array, meta = io.read_image(write_nifti(tmp_path / "a.nii.gz", vol, (2.0, 1.0, 3.0)))
    assert array.dtype == np.float32 and array.shape == (1, 6, 7, 8)
    np.testing.assert_array_equal(array[0], vol)
    assert meta["format"] == "nifti" and meta["spacing"] == pytest.approx((2.0, 1.0, 3.0))

    raw = rng.integers(-100, 100, size=(5, 4, 3)).astype(np.int16)  # stored ints, scl_slope/inter
    array, _ = io.read_image(write_nifti(tmp_path / "b.nii", raw, slope=2.0, inter=5.0))
    np.testing.assert_allclose(array[0], raw * 2.0 + 5.0)

    image2d = rng.random((9, 5)).astype(np.float32)
    array, _ = io.read_image(
        write_nifti(tmp_path / "c.nii.gz", image2d, (1.0, 1.0)), spatial_dims=2
    )
    np.testing.assert_array_equal(array, image2d[None])


def test_dicom_series_and_file_match_pydicom(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 2000, size=(3, 8, 10)).astype(np.int16)  # [slices, rows, cols]
    files = write_dicom_series(tmp_path / "series", vol)
    array, meta = io.read_image(tmp_path / "series")
    # reference: pydicom's own decoding, rescaled, slices ordered by position
    decoded = sorted((pydicom.dcmread(f) for f in files), key=lambda d: d.ImagePositionPatient[2])
    expected = np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in decoded]
    )
    assert array.shape == (1, 10, 8, 3)  # MONAI's order: columns, rows, slices
    np.testing.assert_array_equal(array[0].transpose(2, 1, 0), expected)
    assert meta["format"] == "dicom_series" and len(meta["files"]) == 3
    assert meta["spacing"] == pytest.approx((0.7, 0.5, 2.5))

    ct = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    array, meta = io.read_image(ct)
    d = pydicom.dcmread(ct)
    hu = d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
    assert meta["format"] == "dicom"
    np.testing.assert_array_equal(array[0], hu.T)


def test_read_errors_name_the_file_and_field(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(np.random.default_rng(2).bytes(600))
    with pytest.raises(io.ImageReadError, match=r"corrupt\.nii\.gz.*NIfTI.*supported"):
        io.read_image(corrupt)

    nan = np.ones((4, 4, 4), dtype=np.float32)
    nan[1, 2, 3] = np.nan
    with pytest.raises(ImageDataError, match=r"nan\.nii\.gz: image has 1 NaN/Inf .*\(0, 1, 2, 3\)"):
        io.read_image(write_nifti(tmp_path / "nan.nii.gz", nan))

    flat = write_nifti(tmp_path / "flat.nii.gz", np.ones((5, 6), np.float32), (1.0, 1.0))
    with pytest.raises(ImageDataError, match=r"flat\.nii\.gz: image has shape \(1, 5, 6\)"):
        io.read_image(flat, spatial_dims=3)

    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG....")
    with pytest.raises(io.ImageReadError, match=r"photo\.png: not a supported .*'\.png'"):
        io.read_image(png)
    with pytest.raises(FileNotFoundError, match=r"missing\.nii"):
        io.read_image(tmp_path / "missing.nii")

    vol, lab = np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(
        ImageDataError,
        match=r"label map l\.nii has spatial shape \(4, 4, 3\) "
        r"but its image i\.nii has \(4, 4, 4\)",
    ):
        io.check_label(lab, vol, label_path="l.nii", image_path="i.nii")
    lab = np.full((1, 4, 4, 4), 1.5, np.float32)
    with pytest.raises(ImageDataError, match=r"l\.nii has 64 voxels that are not non-negative"):
        io.check_label(lab, vol, label_path="l.nii", image_path="i.nii")


def test_label_pairing_rule() -> None:
    assert io.label_name_matches("img_001", "img_001")
    assert io.label_name_matches("img_001", "img_001_seg")
    assert io.label_name_matches("case_7_0000", "case_7")  # nnU-Net channel suffix
    assert not io.label_name_matches("img_001", "img_0011")
    assert not io.label_name_matches("img_001", "img_002_seg")
    assert io.image_stem(Path("x/img_001_seg.nii.gz")) == "img_001_seg"


# -- folders -------------------------------------------------------------------------------
def _labelled_folder(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Five good 16^3 volumes with label maps, a DICOM series, and bad files of each kind."""
    rng = np.random.default_rng(3)
    images, labels = tmp_path / "images", tmp_path / "labels"
    written = {}
    for i in range(5):
        vol = (rng.random((16, 16, 16)) * 100 - 20).astype(np.float32)
        written[f"img_{i}"] = vol
        write_nifti(images / f"img_{i}.nii.gz", vol)
        seg = np.zeros((16, 16, 16), np.uint8)
        seg[4:12, 4:12, 4:12] = 1
        seg[6:9, 6:9, 6:9] = 2 + (i == 0)  # class 3 only in img_0
        name = f"img_{i}.nii.gz" if i % 2 else f"img_{i}_seg.nii.gz"  # both naming rules
        write_nifti(labels / name, seg)
    write_nifti(images / "unlabelled.nii.gz", rng.random((16, 16, 16)).astype(np.float32))
    write_nifti(images / "mismatch.nii.gz", rng.random((16, 16, 16)).astype(np.float32))
    write_nifti(labels / "mismatch_seg.nii.gz", np.zeros((16, 16, 12), np.uint8))
    nan = rng.random((16, 16, 16)).astype(np.float32)
    nan[0, 0, 0] = np.inf
    write_nifti(images / "nan.nii.gz", nan)
    write_nifti(images / "flat2d.nii.gz", rng.random((16, 16)).astype(np.float32), (1.0, 1.0))
    (images / "corrupt.nii.gz").write_bytes(rng.bytes(800))
    (images / "notes.txt").write_text("not an image")  # a sidecar: ignored, not skipped
    write_dicom_series(
        images / "series",
        rng.integers(0, 500, (4, 16, 16)).astype(np.int16),
        pixel_spacing=(1.0, 1.0),
        thickness=4.0,
    )
    return images, labels, written


def test_volumes_folder_skips_bad_files_and_keeps_the_rest(
    tmp_path: Path, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    images, labels, written = _labelled_folder(tmp_path)
    spec = registry.get("dataset", "medical.volumes")
    with caplog.at_level(logging.INFO, logger="selfsup_medical.io"):
        ds = spec.build(root=str(images), labels=str(labels), size=16)
    skipped = {Path(s.path).name: s.reason for s in ds.skipped}
    assert set(skipped) == {"corrupt.nii.gz", "nan.nii.gz", "flat2d.nii.gz", "mismatch.nii.gz"}
    assert "could not be read as NIfTI" in skipped["corrupt.nii.gz"]
    assert "NaN/Inf" in skipped["nan.nii.gz"]
    assert "expected [C, D, H, W]" in skipped["flat2d.nii.gz"]
    assert (
        "mismatch_seg.nii.gz has spatial shape (16, 16, 12)" in skipped["mismatch.nii.gz"]
        and "mismatch.nii.gz has (16, 16, 16)" in skipped["mismatch.nii.gz"]
    )
    summary = [r.getMessage() for r in caplog.records if "skipped 4" in r.getMessage()]
    assert len(summary) == 1 and "corrupt.nii.gz: unreadable" in summary[0]

    assert ds.modality == "volume3d" and ds.task.kind == "segmentation" and ds.task.n_classes == 4
    assert sorted(p.name for p in ds.files) == sorted(
        [f"img_{i}.nii.gz" for i in range(5)] + ["series", "unlabelled.nii.gz"]
    )
    split_files = ds.split_files
    assert [len(split_files[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert {p.name for p in split_files["unlabelled"]} == {"series", "unlabelled.nii.gz"}
    # pretraining: the train volumes and the unlabelled ones, never val/test
    assert len(ds.pretrain_set()) == 3 + 2
    for split in ("train", "val", "test"):
        for path, (x, y) in zip(split_files[split], ds.labelled_split(split)):
            vol = written[io.image_stem(path)]
            # 16^3 at 1 mm and size=16: no resampling, so only the intensity scaling applies
            shifted = vol - vol.min()
            expected = shifted / np.quantile(shifted, 0.999)
            np.testing.assert_allclose(x[0].numpy(), expected, rtol=1e-5, atol=1e-6)
            assert y.dtype == torch.long and tuple(y.shape) == (16, 16, 16)
            assert int(y[8, 8, 8]) in (2, 3) and int(y[0, 0, 0]) == 0 and int(y[5, 5, 5]) == 1
    # the DICOM series (4 slices of 4 mm, 16 x 16 at 1 mm) is 16 mm deep: resampled to 16
    # slices; linear interpolation (half-voxel aligned) repeats the end slices twice
    series = ds.pretrain_set()[3]  # after the 3 train volumes: series, unlabelled (by name)
    assert series.shape == (1, 16, 16, 16)
    torch.testing.assert_close(series[0, :, :, 0], series[0, :, :, 1])
    first = min(
        (pydicom.dcmread(f) for f in (images / "series").iterdir()),
        key=lambda d: d.ImagePositionPatient[2],
    )
    hu = first.pixel_array.T.astype(np.float64) - 1024.0
    low = (
        min(float(pydicom.dcmread(f).pixel_array.min()) for f in (images / "series").iterdir())
        - 1024.0
    )
    ratio = series[0, :, :, 0].double().numpy() / np.where(hu > low, hu - low, np.nan)
    assert np.nanstd(ratio) < 1e-5 * np.nanmean(ratio)  # minimum to 0, then one scale
    batch = torch.stack(ds.pretrain_set()[:2])
    view = ds.augment(batch, torch.Generator().manual_seed(0))
    assert view.shape == batch.shape and torch.isfinite(view).all()


def test_labels_in_the_images_folder_and_resampling(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    root = tmp_path / "mixed"
    # 32 x 16 x 8 voxels of 1 mm: the longest side (32) becomes 16, the rest scale alike
    for i in range(3):
        write_nifti(root / f"vol{i}.nii.gz", (rng.random((32, 16, 8)) + 1).astype(np.float32))
        seg = np.zeros((32, 16, 8), np.int16)
        seg[:16] = 1
        write_nifti(root / f"vol{i}_label.nii.gz", seg)
    ds = folder.build_volumes(root=root, labels=root, size=16, seed=1)
    assert ds.skipped == [] and ds.task.n_classes == 2
    x, y = ds.labelled_split("train")[0]
    assert x.shape == (1, 16, 16, 16)
    # content fills [16, 8, 4] voxels, centred; the zero padding is outside it
    content = (x[0] > 0).nonzero()
    assert content.min(0).values.tolist() == [0, 4, 6]
    assert content.max(0).values.tolist() == [15, 11, 9]
    assert set(torch.unique(y).tolist()) == {0, 1}  # nearest neighbour: no new classes
    assert int((y == 1).sum()) == 8 * 8 * 4  # half of the 16 x 8 x 4 content


def test_images_folder_takes_2d_images_and_volume_slices(
    tmp_path: Path, registry: Registry
) -> None:
    rng = np.random.default_rng(5)
    root = tmp_path / "pics"
    for i in range(2):
        write_nifti(root / f"xray{i}.nii.gz", rng.random((32, 24)).astype(np.float32), (1.0, 1.0))
    vol = rng.random((16, 16, 5)).astype(np.float32)
    vol[..., 0] = 0.0  # a constant (empty) slice: left out
    write_nifti(root / "vol.nii.gz", vol)
    ds = registry.get("dataset", "medical.images").build(root=root, size=32)
    assert ds.modality == "image2d" and ds.task.kind == "none" and ds.skipped == []
    shapes = {tuple(x.shape) for x in ds.pretrain_set()}
    assert shapes == {(1, 32, 32)} and len(ds.pretrain_set()) == 2 + 4
    # a volume's slices share the volume's scale: the 99.9th percentile over all of it
    slices = ds.pretrain_set()[:4]  # files are sorted by name: vol.nii.gz comes first
    stacked = torch.stack(slices, -1)[0]  # [32, 32, 4], each slice upsampled 16 -> 32
    upsampled = torch.nn.functional.interpolate(
        torch.from_numpy(vol).permute(2, 0, 1)[None],
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
    )[0].permute(1, 2, 0)  # [32, 32, 5]; its minimum is 0 (slice 0)
    expected = upsampled[..., 1:] / torch.quantile(upsampled.flatten(), 0.999)
    np.testing.assert_allclose(stacked.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_folder_options_and_missing_root(tmp_path: Path, registry: Registry) -> None:
    spec = registry.get("dataset", "medical.volumes")
    with pytest.raises(ValueError, match=r"medical\.volumes needs the folder .*root="):
        spec.build()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        spec.build(root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="size=20 must be a multiple of 16"):
        spec.build(root=tmp_path, size=20)
    (tmp_path / "bad.nii.gz").write_bytes(b"junk")
    with pytest.raises(ImageDataError, match=r"no usable images .*bad\.nii\.gz: .*could not"):
        spec.build(root=tmp_path)
    assert folder.split_groups(10, 0) == folder.split_groups(10, 0)
    sizes = {s: len(v) for s, v in folder.split_groups(10, 3).items()}
    assert sizes == {"train": 6, "val": 2, "test": 2}


def test_scan_folder_dicom_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    root = tmp_path / "dicom"
    write_dicom_series(root / "ct", rng.integers(0, 99, (3, 16, 16)).astype(np.int16))
    (root / "ct" / "README.txt").write_text("a note inside a series folder")
    # radiographs: one file per series in one folder, one of them without a suffix
    write_dicom_series(root / "xr", rng.integers(0, 99, (1, 16, 20)).astype(np.int16), prefix="a")
    write_dicom_series(root / "xr", rng.integers(0, 99, (1, 12, 16)).astype(np.int16), prefix="b")
    (root / "xr" / "b_001.dcm").rename(root / "xr" / "IM0001")
    write_dicom_series(root / "mixed", rng.integers(0, 99, (2, 8, 8)).astype(np.int16), prefix="a")
    write_dicom_series(root / "mixed", rng.integers(0, 99, (2, 8, 8)).astype(np.int16), prefix="b")
    (root / "scan.mha").write_bytes(b"ObjectType = Image")
    items, skipped = io.scan_folder(root, spatial_dims=2)
    shapes = {it.path.name: tuple(it.image.shape) for it in items}
    assert shapes == {"ct": (1, 16, 16, 3), "a_001.dcm": (1, 20, 16), "IM0001": (1, 16, 12)}
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"mixed", "scan.mha"}
    assert (
        "holds 2 DICOM series" in reasons["mixed"] and "not NIfTI or DICOM" in reasons["scan.mha"]
    )
    items, skipped = io.scan_folder(root, spatial_dims=3)  # 2D radiographs are not volumes
    assert [it.path.name for it in items] == ["ct"]
    assert {Path(s.path).name for s in skipped} == {"mixed", "scan.mha", "a_001.dcm", "IM0001"}


def test_images_with_a_labels_subfolder_and_few_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    root = tmp_path / "pics"
    for i in range(3):
        write_nifti(root / f"img{i}.nii", rng.random((16, 16)).astype(np.float32), (1.0, 1.0))
    seg = np.zeros((16, 16), np.uint8)
    seg[:, 8:] = 1
    write_nifti(root / "labels" / "img0_mask.nii", seg, (1.0, 1.0))
    write_nifti(root / "labels" / "img1_gt.nii", seg, (1.0, 1.0))
    write_nifti(root / "labels" / "orphan_seg.nii", seg, (1.0, 1.0))
    with pytest.warns(UserWarning, match="only 2 labelled image"):
        ds = folder.build_images(root=root, labels=root / "labels", size=16)
    assert ds.skipped == [] and ds.task.n_classes == 2 and ds.splits == ("train",)
    assert [p.name for p in ds.split_files["train"]] == ["img0.nii", "img1.nii"]
    assert len(ds.pretrain_set()) == 3  # 2 train + 1 unlabelled; label maps are not images
    _, y = ds.labelled_split("train")[0]
    assert torch.equal(y, torch.from_numpy(seg).long())
    with pytest.raises(ImageDataError, match="n_classes=2; raise n_classes to 3"):
        write_nifti(root / "labels" / "img2.nii", seg * 2, (1.0, 1.0))
        folder.build_images(root=root, labels=root / "labels", size=16, n_classes=2)


# -- fastMRI -------------------------------------------------------------------------------
def test_read_fastmri_round_trip_and_errors(tmp_path: Path) -> None:
    image = phantom_slices(np.random.default_rng(6), 2, 40, 36)
    path = tmp_path / "a.h5"
    reference = write_fastmri(path, image, (32, 32))
    data = io.read_fastmri(path)
    np.testing.assert_allclose(data["kspace"], fft2c_np(image), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(data["reference"], reference)
    assert data["reference_field"] == "reconstruction_rss" and data["mask"] is None
    both = tmp_path / "both.h5"  # the single-coil reference is preferred when both exist
    write_fastmri(both, image, (32, 32), reconstruction_esc=2 * reference)
    data = io.read_fastmri(both)
    assert data["reference_field"] == "reconstruction_esc"
    np.testing.assert_array_equal(data["reference"], 2 * reference)

    real = tmp_path / "real.h5"
    with h5py.File(real, "w") as fh:
        fh["kspace"] = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(io.ImageReadError, match=r"real\.h5: field 'kspace' has dtype float32"):
        io.read_fastmri(real)
    multicoil = tmp_path / "multi.h5"
    with h5py.File(multicoil, "w") as fh:
        fh["kspace"] = np.zeros((2, 4, 8, 8), np.complex64)
    with pytest.raises(io.ImageReadError, match=r"multi\.h5: .*\(2, 4, 8, 8\).*multi-coil"):
        io.read_fastmri(multicoil)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(io.ImageReadError, match=r"text\.h5: not an HDF5 file"):
        io.read_fastmri(text)


def test_fastmri_dataset_aligns_splits_by_file_and_skips(
    tmp_path: Path, registry: Registry
) -> None:
    rng = np.random.default_rng(7)
    root = tmp_path / "knee"
    root.mkdir()
    references = {}
    for i in range(3):  # 40 x 36 k-space, references centre-cropped to 32 x 32
        references[f"v{i}.h5"] = write_fastmri(
            root / f"v{i}.h5", phantom_slices(rng, 2, 40, 36), (32, 32)
        )
    mask = np.zeros(36, np.float32)
    mask[::4] = 1
    write_fastmri(root / "test_file.h5", phantom_slices(rng, 2, 40, 36), (32, 32), mask=mask)
    (root / "broken.h5").write_bytes(rng.bytes(300))
    spec = registry.get("dataset", "medical.fastmri")
    ds = spec.build(root=root, n_supervised=1, seed=0)
    skipped = {Path(s.path).name: s.reason for s in ds.skipped}
    assert set(skipped) == {"test_file.h5", "broken.h5"}
    assert "already undersampled" in skipped["test_file.h5"]
    assert "samples 9 of 36 columns" in skipped["test_file.h5"]
    assert "not an HDF5 file" in skipped["broken.h5"]
    assert ds.crop_shape == (32, 32) and ds.image_shape == (32, 32)

    by_split = {f["path"].name: f["split"] for f in ds.files}
    assert sorted(by_split.values()) == ["test", "train", "val"]  # one file (2 slices) each
    for f in ds.files:  # the file's reference is the magnitude the dataset aligned to
        assert f["reference_nrmse"] < 1e-5
    for split in ("train", "val", "test"):
        items = ds.labelled_split(split)
        name = next(n for n, s in by_split.items() if s == split)
        assert len(items) == 2
        for k, (scan, target) in enumerate(items):
            ref = references[name][k]
            ratio = target[0].numpy() / np.where(ref > 0, ref, np.nan)
            assert np.nanstd(ratio) < 1e-4 * np.nanmean(ratio)  # target = reference / scale
            zero_filled = torch.fft.fftshift(
                torch.fft.ifft2(torch.fft.ifftshift(scan["kspace"], dim=(-2, -1)), norm="ortho"),
                dim=(-2, -1),
            ).abs()
            assert torch.quantile(zero_filled.flatten(), 0.999) == pytest.approx(1.0, rel=1e-4)
            m = scan["mask"].flatten()
            assert 3 / 32 <= float(m.mean()) <= 0.5 and m[15:18].all()  # centre: 3 columns
            unsampled = scan["kspace"][..., m == 0]
            assert unsampled.abs().max() == 0
    train = ds.labelled_split("train")
    assert not torch.equal(train[0][0]["mask"], train[1][0]["mask"])  # seeded per slice
    pre = ds.pretrain_set()
    assert len(pre) == 2 and ds.n_supervised == 1
    sup = [s for s in pre if bool(s["has_target"])]
    unsup = [s for s in pre if not bool(s["has_target"])]
    assert sup[0]["target"].abs().sum() > 0 and unsup[0]["target"].abs().sum() == 0

    again = spec.build(root=root, n_supervised=1, seed=0)
    assert again.fingerprint() == ds.fingerprint()
    full = spec.build(root=root, acceleration=1)
    scan, target = full.labelled_split("test")[0]
    np.testing.assert_allclose(
        torch.fft.fftshift(
            torch.fft.ifft2(torch.fft.ifftshift(scan["kspace"], dim=(-2, -1)), norm="ortho"),
            dim=(-2, -1),
        )
        .abs()
        .numpy(),
        target.numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match=r"medical\.fastmri needs .*root="):
        spec.build()
    with pytest.raises(ValueError, match="n_supervised=5 but the train split has only 2"):
        spec.build(root=root, n_supervised=5)
