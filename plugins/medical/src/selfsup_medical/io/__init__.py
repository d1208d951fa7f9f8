"""Readers of the field's file formats: NIfTI, DICOM, DICOM series and fastMRI HDF5.

- :mod:`.nifti_dicom`: :func:`read_image`, one NIfTI file, DICOM file or DICOM
  series folder as ``[C, *spatial]`` float32 with its geometry;
- :mod:`.folder`: :func:`scan_folder`, every image under a folder, label maps
  paired by name, unreadable files skipped with the reason;
- :mod:`.fastmri`: :func:`read_fastmri`, single-coil k-space and its reference;
- :mod:`.checks`: :class:`ImageReadError` and :func:`check_label`.

No training code here. (In 0.1 this was one module, ``selfsup_medical.io``; the
names below are still importable from it.)
"""

from .checks import ImageReadError, check_label
from .fastmri import center_crop, fastmri_header, read_fastmri
from .folder import FolderItem, Skipped, image_stem, label_name_matches, scan_folder
from .nifti_dicom import SUPPORTED, image_format, read_image

__all__ = [
    "SUPPORTED",
    "FolderItem",
    "ImageReadError",
    "Skipped",
    "center_crop",
    "check_label",
    "fastmri_header",
    "image_format",
    "image_stem",
    "label_name_matches",
    "read_fastmri",
    "read_image",
    "scan_folder",
]
