"""``vision3d.kicad``: real CAD models of electronic parts, where KiCad's 3D library is installed.

Debian's ``kicad-packages3d`` (``apt-get install kicad-packages3d``: a 379 MB
download, 5.4 GB installed, so never a default or a test dependency) puts 6,227
VRML models of real packages under ``/usr/share/kicad/3dmodels``, one
``<Library>.3dshapes`` folder per family (``Resistor_SMD``, ``Package_DIP``,
``Connector_PinHeader_2.54mm``, ...). Each family is a class: a shape
classification task on real, human-made models, with large intra-class variation in
size and pin count. Licence of the models: CC-BY-SA 4.0 with the KiCad libraries'
exception (designs that use them are not adapted material); credit the KiCad
library team when you publish results on them.

Each ``.wrl`` is read by :func:`selfsup_vision3d.io.read_wrl` and sampled
area-weighted (seeded by ``seed`` and the file's position); families with fewer than
``min_per_class`` usable models are left out, at most ``max_classes`` of the largest
families are kept and at most ``n_per_class`` models of each (the first in name
order), so the default is a 20-class set of up to 2,000 models. Unreadable models
are skipped and listed in :attr:`skipped` and one warning. Splits are 60/20/20
stratified by ``seed``. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.api import non_negative_int, option, parse_options, positive_int

from .base import PointCloudDataset
from .folder import read_entries
from .shapes import stratified_splits
from .views import PointViews

NAME = "vision3d.kicad"
DEFAULT_PATH = "/usr/share/kicad/3dmodels"
INSTALL = ("install Debian's kicad-packages3d (apt-get install kicad-packages3d; 379 MB, "
           "CC-BY-SA 4.0 with the KiCad libraries' exception) or pass path= to a copy")


@dataclass(frozen=True)
class KiCadConfig:
    """Options of ``vision3d.kicad``."""

    path: str = option(DEFAULT_PATH, lambda x: None if isinstance(x, str) else "be a path",
                       "KiCad's 3dmodels folder: one <Library>.3dshapes folder per class")
    n_per_class: int = option(100, positive_int, "most models of each family")
    min_per_class: int = option(10, positive_int, "families with fewer models are left out")
    max_classes: int = option(20, positive_int, "the largest families kept")
    n_points: int = option(1024, positive_int, "points per cloud")
    seed: int = option(0, non_negative_int, "surface sampling and splits")


def discover(root: Path, config: KiCadConfig) -> list[tuple[Path, str, str | None]]:
    """``(model, family, None)`` of the kept families (see the module), sorted."""
    families = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        models = sorted(f for f in folder.glob("*.wrl") if f.is_file())
        if len(models) >= config.min_per_class:
            families[folder.name.removesuffix(".3dshapes")] = models
    kept = sorted(families, key=lambda k: (-len(families[k]), k))[: config.max_classes]
    return [(f, fam, None) for fam in sorted(kept) for f in families[fam][: config.n_per_class]]


class KiCadModels(PointCloudDataset):
    """KiCad's 3D models as a shape-classification set (see the module)."""

    def __init__(self, config: KiCadConfig, views: PointViews) -> None:
        root = Path(config.path)
        if not root.is_dir():
            raise FileNotFoundError(f"{NAME}: {root} does not exist: {INSTALL}")
        entries = discover(root, config)
        clouds, names, _, self.skipped = read_entries(entries, config.n_points, config.seed,
                                                      NAME)
        classes = sorted(set(names))
        if len(classes) < 2:
            raise ValueError(f"{NAME}: {root} gives {len(classes)} famil(ies) with at least "
                             f"{config.min_per_class} usable .wrl models "
                             f"({len(self.skipped)} skipped): {INSTALL}")
        labels = np.asarray([classes.index(c) for c in names])
        super().__init__(np.stack(clouds), labels, stratified_splits(labels, config.seed),
                         classes, views)


def build(views: dict[str, Any] | None = None, **options: Any) -> KiCadModels:
    """``vision3d.kicad`` factory; ``options`` are :class:`KiCadConfig` fields."""
    config = parse_options(KiCadConfig, options, NAME)
    return KiCadModels(config, parse_options(PointViews, views or {}, f"{NAME} views"))
