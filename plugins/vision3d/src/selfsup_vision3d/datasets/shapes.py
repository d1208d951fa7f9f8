"""``vision3d.shapes``: procedural shape classification (the offline default).

Twelve classes of triangle meshes built in numpy from the primitives open3d's
``create_*`` functions make (sphere, box, cylinder, cone, torus) and a few more,
each with its own intra-class variation of proportions:

===  ==========  ===================================================================
 0   sphere      unit sphere
 1   box         box, side ratios 1 : [0.5, 1] : [0.3, 1]
 2   cylinder    closed, height / diameter in [0.8, 2.5]
 3   cone        closed, height / diameter in [0.7, 2]
 4   torus       tube radius / ring radius in [0.15, 0.45]
 5   pyramid     square base, height / base in [0.5, 1.2]
 6   bowl        open hemisphere shell, depth squashed to [0.4, 1]
 7   table       a slab on four legs (leg length and thickness vary)
 8   chair       a seat on four legs and a back rest
 9   mug         open cylinder with a bottom and a torus handle
10   dumbbell    two spheres joined by a bar
11   arrow       a cylinder shaft and a cone head
===  ==========  ===================================================================

Each sample: a mesh of its class with drawn proportions, ``oversample x n_points``
points sampled uniformly on its surface (area-weighted, with a seeded numpy
generator: open3d's samplers take no seed), then the nuisances that keep classical
descriptors from saturating:

- anisotropic scale: each axis by a factor in ``[1 - aniso, 1 + aniso]``;
- a random rotation uniform on SO(3) (``rotation="up"``: about z only);
- with probability ``partial``, a one-view partial scan: only the points a camera in
  a random direction sees (hidden point removal, see :func:`~..geometry.visible_from`);
- ``n_points`` drawn from what is left, centred and scaled into the unit sphere;
- Gaussian jitter of std ``jitter``, and a share ``outliers`` of the points
  replaced by uniform noise in the unit ball.

Deterministic by ``seed``; generated once (about a second per 500 clouds) and
cached as ``.npz`` in ``cache_dir`` (default ``$SELFSUP_VISION3D_CACHE`` or
``~/.cache/selfsup-vision3d``), keyed by every option. Splits are stratified:
``train``/``val``/``test`` shares 0.6/0.2/0.2 of each class; the train clouds are
the unlabelled pretraining set.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.api import (
    non_negative_int,
    one_of,
    option,
    optional,
    parse_options,
    positive_int,
    unit_interval,
)

from .. import geometry as g
from .base import PointCloudDataset
from .views import PointViews

NAME = "vision3d.shapes"
#: bump when generation below changes what a cache holds
VERSION = 1


def _r(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _sphere(rng: np.random.Generator) -> g.Mesh:
    return g.sphere()


def _box(rng: np.random.Generator) -> g.Mesh:
    return g.box((1.0, _r(rng, 0.5, 1.0), _r(rng, 0.3, 1.0)))


def _cylinder(rng: np.random.Generator) -> g.Mesh:
    return g.cylinder(1.0, 2 * _r(rng, 0.8, 2.5))


def _cone(rng: np.random.Generator) -> g.Mesh:
    return g.cone(1.0, 2 * _r(rng, 0.7, 2.0))


def _torus(rng: np.random.Generator) -> g.Mesh:
    return g.torus(1.0, _r(rng, 0.15, 0.45))


def _pyramid(rng: np.random.Generator) -> g.Mesh:
    return g.pyramid(2.0, 2 * _r(rng, 0.5, 1.2))


def _bowl(rng: np.random.Generator) -> g.Mesh:
    return g.transform(g.hemisphere_shell(), scale=(1, 1, _r(rng, 0.4, 1.0)))


def _legs(rng: np.random.Generator, width: float, depth: float, length: float,
          thick: float) -> list[g.Mesh]:
    x, y = width / 2 - thick, depth / 2 - thick
    return [g.transform(g.box((thick, thick, length)), offset=(sx * x, sy * y, length / 2))
            for sx in (-1, 1) for sy in (-1, 1)]


def _table(rng: np.random.Generator) -> g.Mesh:
    w, d, h = 2.0, _r(rng, 0.8, 1.6), _r(rng, 0.8, 1.6)
    top = _r(rng, 0.06, 0.15)
    legs = _legs(rng, w, d, h, _r(rng, 0.08, 0.2))
    return g.merge(g.transform(g.box((w, d, top)), offset=(0, 0, h + top / 2)), *legs)


def _chair(rng: np.random.Generator) -> g.Mesh:
    w, h = 1.0, _r(rng, 0.7, 1.1)
    seat, thick = 0.08, _r(rng, 0.06, 0.12)
    back_h = _r(rng, 0.7, 1.3)
    legs = _legs(rng, w, w, h, thick)
    back = g.transform(g.box((w, 0.08, back_h)), offset=(0, w / 2 - 0.04, h + seat + back_h / 2))
    return g.merge(g.transform(g.box((w, w, seat)), offset=(0, 0, h + seat / 2)), back, *legs)


def _mug(rng: np.random.Generator) -> g.Mesh:
    h = 2 * _r(rng, 0.8, 1.3)
    wall = g.cylinder(1.0, h, caps=False)
    bottom = g.surface_of_revolution(np.asarray([(0.0, -h / 2), (1.0, -h / 2)]))
    ring = _r(rng, 0.3, 0.45) * h
    rot = np.asarray([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # the ring stands upright
    handle = g.transform(g.torus(ring, 0.08), rotation=rot, offset=(1.0, 0, 0))
    return g.merge(wall, bottom, handle)


def _dumbbell(rng: np.random.Generator) -> g.Mesh:
    r, length = _r(rng, 0.35, 0.6), _r(rng, 1.5, 3.0)
    bar = g.cylinder(_r(rng, 0.08, 0.18), length)
    ends = [g.transform(g.sphere(), scale=(r, r, r), offset=(0, 0, s * length / 2))
            for s in (-1, 1)]
    return g.merge(bar, *ends)


def _arrow(rng: np.random.Generator) -> g.Mesh:
    shaft_len, head_len = _r(rng, 1.5, 3.0), _r(rng, 0.5, 1.0)
    head_r = _r(rng, 0.3, 0.5)
    shaft = g.cylinder(_r(rng, 0.08, 0.16), shaft_len)
    head = g.transform(g.cone(head_r, head_len), offset=(0, 0, shaft_len / 2 + head_len / 2))
    return g.merge(shaft, head)


CLASSES: dict[str, Callable[[np.random.Generator], g.Mesh]] = {
    "sphere": _sphere, "box": _box, "cylinder": _cylinder, "cone": _cone, "torus": _torus,
    "pyramid": _pyramid, "bowl": _bowl, "table": _table, "chair": _chair, "mug": _mug,
    "dumbbell": _dumbbell, "arrow": _arrow,
}


def _share(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1
    return None if ok else "be in [0, 1)"


@dataclass(frozen=True)
class ShapesConfig:
    """Options of ``vision3d.shapes``."""

    n_per_class: int = option(100, positive_int, "clouds per class (60/20/20 split)")
    n_points: int = option(512, positive_int, "points per cloud")
    rotation: str = option("so3", one_of("so3", "up", "none"), "pose of each cloud")
    aniso: float = option(0.3, _share, "per-axis scale in [1 - aniso, 1 + aniso]")
    partial: float = option(0.5, unit_interval, "share of clouds that are one-view scans")
    jitter: float = option(0.01, _share, "std of the Gaussian noise on each coordinate")
    outliers: float = option(0.03, _share, "share of points replaced by uniform noise")
    oversample: int = option(3, positive_int, "surface points drawn per kept point")
    seed: int = option(0, non_negative_int, "everything random above")
    cache_dir: str | None = option(None, optional(lambda x: None if isinstance(x, str)
                                                  else "be a path"),
                                   "cache folder (default $SELFSUP_VISION3D_CACHE or "
                                   "~/.cache/selfsup-vision3d)")


def default_cache_dir() -> Path:
    env = os.environ.get("SELFSUP_VISION3D_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "selfsup-vision3d"


def make_cloud(label: int, config: ShapesConfig, rng: np.random.Generator) -> np.ndarray:
    """One cloud ``[n_points, 3]`` of class ``label`` (see the module)."""
    mesh = list(CLASSES.values())[label](rng)
    pts = g.sample_surface(mesh, config.oversample * config.n_points, rng)
    pts = pts - pts.mean(0)
    pts = pts * rng.uniform(1 - config.aniso, 1 + config.aniso, size=3)
    if config.rotation == "so3":
        pts = pts @ g.random_rotation_np(rng).T
    elif config.rotation == "up":
        t = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(t), np.sin(t)
        pts = pts @ np.asarray([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
    if rng.random() < config.partial:
        pts = g.normalise(pts)
        seen = g.visible_from(pts, rng.standard_normal(3))
        if len(seen) >= config.n_points // 4:  # a degenerate view keeps the full cloud
            pts = pts[seen]
    pts = g.normalise(g.resample(pts, config.n_points, rng))
    pts = pts + config.jitter * rng.standard_normal(pts.shape)
    n_out = round(config.outliers * config.n_points)
    if n_out:
        where = rng.choice(config.n_points, n_out, replace=False)
        ball = rng.standard_normal((n_out, 3))
        ball *= (rng.random((n_out, 1)) ** (1 / 3)) / np.linalg.norm(ball, axis=1, keepdims=True)
        pts[where] = ball
    return pts.astype(np.float32)


def generate(config: ShapesConfig) -> tuple[np.ndarray, np.ndarray]:
    """All clouds ``[C * n_per_class, n_points, 3]`` and labels, class-interleaved."""
    n = len(CLASSES) * config.n_per_class
    labels = np.arange(n) % len(CLASSES)
    seeds = np.random.SeedSequence(config.seed).spawn(n)
    clouds = np.stack([make_cloud(int(y), config, np.random.default_rng(s))
                       for y, s in zip(labels, seeds, strict=True)])
    return clouds, labels


def _key(config: ShapesConfig) -> str:
    fields = {k: v for k, v in asdict(config).items() if k != "cache_dir"}
    text = json.dumps({"version": VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_generate(config: ShapesConfig) -> tuple[np.ndarray, np.ndarray, Path, bool]:
    """The cached clouds of these settings, generated first if absent.

    Returns ``(clouds, labels, file, generated)``; the file is written atomically.
    """
    folder = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    path = folder / f"shapes-{_key(config)}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["clouds"], data["labels"], path, False
    clouds, labels = generate(config)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, clouds=clouds, labels=labels)
    os.replace(tmp, path)
    return clouds, labels, path, True


def stratified_splits(labels: np.ndarray, seed: int,
                      shares: tuple[float, float] = (0.6, 0.2)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    out: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = round(shares[0] * len(idx))
        b = a + round(shares[1] * len(idx))
        out["train"].append(idx[:a])
        out["val"].append(idx[a:b])
        out["test"].append(idx[b:])
    return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


class Shapes(PointCloudDataset):
    """The procedural shapes (see the module); ``generated`` and ``seconds`` say
    whether this build generated the cache and how long loading took."""

    def __init__(self, config: ShapesConfig, views: PointViews) -> None:
        start = time.perf_counter()
        clouds, labels, self.cache_file, self.generated = load_or_generate(config)
        self.seconds = time.perf_counter() - start
        self.config = config
        super().__init__(clouds, labels, stratified_splits(labels, config.seed),
                         list(CLASSES), views)


def build(views: dict[str, Any] | None = None, **options: Any) -> Shapes:
    """``vision3d.shapes`` factory; ``options`` are :class:`ShapesConfig` fields."""
    config = parse_options(ShapesConfig, options, NAME)
    return Shapes(config, parse_options(PointViews, views or {}, f"{NAME} views"))
