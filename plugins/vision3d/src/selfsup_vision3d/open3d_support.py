"""The one door to open3d: imported lazily, and a failure named in one line.

open3d-cpu (the dependency; the ``open3d`` wheel is a CUDA build) loads its
compiled module only when the Debian package ``libusb-1.0-0`` is installed.
Everything in this plugin except the FPFH and pose-registration baselines and the
generation of the pose scenes (ray casting) works without open3d.
"""

from __future__ import annotations

from types import ModuleType


class Open3DMissing(ImportError):
    """open3d cannot be imported; the message says what to install."""


def require_open3d(what: str) -> ModuleType:
    """``import open3d``, or :class:`Open3DMissing` naming the package to install."""
    try:
        import open3d
    except ImportError as err:
        text = str(err)
        fix = ("install the Debian package libusb-1.0-0 (apt-get install libusb-1.0-0)"
               if "libusb" in text or "pybind" in text else "pip install open3d-cpu")
        raise Open3DMissing(f"{what} needs open3d, which failed to import ({text}): {fix}"
                            ) from err
    return open3d
