"""``vision3d.pose_objects``: category-level 6D pose and size, synthetic and real-like.

The setting of Self-DPDN (Lin et al., ECCV 2022) and of the NOCS benchmark (Wang et
al., CVPR 2019), built procedurally so that it needs no download: object categories
whose instances vary in shape, seen by a depth camera from one view, with their
known rotation, translation and size. Two domains:

- ``synthetic`` (the CAMERA25 analogue): clean depth, a perfect segmentation mask,
  the categories' synthetic shape statistics;
- ``real-like`` (the REAL275 analogue): the same categories with other shape
  statistics (parameter ranges shifted), depth noise growing with the square of
  the range and quantised (a structured-light sensor), holes (blobs of missing
  depth and dropped grazing-angle pixels), a box occluder between camera and
  object, and a segmentation mask that leaks onto the table and the occluder.

Categories (canonical frame: z up, the object's bounding box centred on the origin,
scaled so that the box diagonal is 1, NOCS's convention):

=====  =======  ==========================================================
 id    name     mesh (symmetric about z: bottle, bowl)
=====  =======  ==========================================================
 0     bottle   revolved profile: body, shoulder, neck
 1     bowl     open revolved shell with a foot
 2     mug      open cylinder with a bottom and a torus handle (along +x)
 3     box      a box with drawn side ratios
 4     chair    seat, four legs and a back rest (on the -y side)
=====  =======  ==========================================================

Each scene: a mesh of the category with drawn proportions, scaled to a box diagonal
(metres) drawn per domain, put on a table plane, seen by a pinhole camera (``image``
pixels square, 60 degree field of view) from an elevation of 15-60 degrees, any
azimuth, 0.5-0.9 m away with the object off-centre by up to 5 cm. Depth is ray-cast
on the CPU by open3d's ``RaycastingScene`` (its surface samplers take no seed; all
randomness is a numpy generator seeded per scene). ``n_points`` of the object's
pixels (those the mask keeps) are drawn, back-projected to the camera frame.

A sample is ``{"points": [n_points, 3] float32 (camera frame, metres),
"category": int64}``; a label is 15 numbers: the rotation ``R`` (object to camera,
row-major 9), the translation ``t`` (the box centre in the camera frame, metres) and
the size (box extents, metres): ``camera point = R (size-normalised canonical point *
diag) + t``. For the symmetric categories the rotation about the axis is
canonicalised (the object's x axis chosen perpendicular to the camera ray through the
centre), so that labels are a function of what is seen.

Splits: ``train`` (synthetic, labelled), ``val`` (synthetic, labelled, held out),
``test`` (real-like, labelled: what the pose benchmark reports); the unlabelled
pretraining set is a disjoint real-like set (its labels are never read). Besides,
:attr:`PoseObjects.models` holds each scene's complete canonical model points
(``n_model`` surface points; the deformation networks' supervision on synthetic
data) and :attr:`PoseObjects.priors` each category's mean-shape prior (the mesh of
the midpoint of its synthetic parameter ranges, ``n_model`` points).

Deterministic by ``seed``, generated in a few seconds per thousand scenes and cached
as ``.npz`` keyed by every option.
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
import torch
from torch.utils.data import Dataset

from selfsup.api import (
    SSLDataset,
    TaskSpec,
    non_negative_int,
    option,
    optional,
    parse_options,
    positive_int,
)

from .. import geometry as g
from ..open3d_support import require_open3d
from .shapes import default_cache_dir

NAME = "vision3d.pose_objects"
#: bump when generation below changes what a cache holds
VERSION = 1
POSE_SCAN = "vision3d.object_scan"
CATEGORIES: tuple[str, ...] = ("bottle", "bowl", "mug", "box", "chair")
#: categories symmetric about their canonical z axis
SYMMETRIC: tuple[bool, ...] = (True, True, False, False, False)
LABEL_DIM = 15
DOMAINS = ("synthetic", "real")

#: per category and domain: the parameter ranges of the mesh and its box diagonal (m)
Ranges = dict[str, tuple[float, float]]
PARAMS: dict[str, dict[str, Ranges]] = {
    "bottle": {"synthetic": {"height": (2.2, 3.2), "neck": (0.3, 0.45), "shoulder": (0.6, 0.75),
                             "diag": (0.18, 0.30)},
               "real": {"height": (2.8, 3.8), "neck": (0.22, 0.35), "shoulder": (0.7, 0.85),
                        "diag": (0.20, 0.32)}},
    "bowl": {"synthetic": {"depth": (0.45, 0.7), "foot": (0.35, 0.5), "diag": (0.14, 0.24)},
             "real": {"depth": (0.35, 0.55), "foot": (0.3, 0.45), "diag": (0.16, 0.26)}},
    "mug": {"synthetic": {"height": (1.6, 2.4), "handle": (0.3, 0.42), "diag": (0.12, 0.18)},
            "real": {"height": (1.3, 2.0), "handle": (0.35, 0.48), "diag": (0.12, 0.18)}},
    "box": {"synthetic": {"y": (0.5, 1.0), "z": (0.3, 0.8), "diag": (0.15, 0.30)},
            "real": {"y": (0.4, 0.8), "z": (0.2, 0.6), "diag": (0.18, 0.34)}},
    "chair": {"synthetic": {"legs": (0.8, 1.2), "back": (0.8, 1.2), "diag": (0.25, 0.40)},
              "real": {"legs": (0.9, 1.4), "back": (0.6, 1.0), "diag": (0.25, 0.40)}},
}


def _bottle(p: dict[str, float]) -> g.Mesh:
    h = p["height"]
    body = 0.62 * h
    prof = [(0.0, 0.0), (1.0, 0.0), (1.0, body), (p["shoulder"], body + 0.12 * h),
            (p["neck"], body + 0.22 * h), (p["neck"], h), (0.0, h)]
    return g.surface_of_revolution(np.asarray(prof), 24)


def _bowl(p: dict[str, float]) -> g.Mesh:
    phi = np.linspace(np.pi / 2, np.pi * 0.98, 7)
    shell = np.stack([np.sin(phi), -np.cos(phi) * p["depth"]], 1)[::-1]  # bottom to rim
    foot = np.asarray([(0.0, -0.05), (p["foot"], -0.05)])
    return g.merge(g.surface_of_revolution(np.concatenate([foot, shell[1:]]), 24),
                   g.surface_of_revolution(np.asarray([(0.0, 0.0), (shell[0, 0], 0.0)]), 24))


def _mug(p: dict[str, float]) -> g.Mesh:
    h = p["height"]
    wall = g.cylinder(1.0, h, caps=False, segments=24)
    bottom = g.surface_of_revolution(np.asarray([(0.0, -h / 2), (1.0, -h / 2)]), 24)
    ring = p["handle"] * h
    rot = np.asarray([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # the ring stands upright in x-z
    handle = g.transform(g.torus(ring, 0.1, 16, 8), rotation=rot, offset=(1.0, 0, 0))
    return g.merge(wall, bottom, handle)


def _box(p: dict[str, float]) -> g.Mesh:
    return g.box((1.0, p["y"], p["z"]))


def _chair(p: dict[str, float]) -> g.Mesh:
    w, legs, back, seat, thick = 1.0, p["legs"], p["back"], 0.08, 0.08
    x = w / 2 - thick
    parts = [g.transform(g.box((thick, thick, legs)), offset=(sx * x, sy * x, legs / 2))
             for sx in (-1, 1) for sy in (-1, 1)]
    parts.append(g.transform(g.box((w, w, seat)), offset=(0, 0, legs + seat / 2)))
    parts.append(g.transform(g.box((w, 0.08, back)),
                             offset=(0, -w / 2 + 0.04, legs + seat + back / 2)))
    return g.merge(*parts)


MESHES: dict[str, Callable[[dict[str, float]], g.Mesh]] = {
    "bottle": _bottle, "bowl": _bowl, "mug": _mug, "box": _box, "chair": _chair,
}


def canonical(mesh: g.Mesh) -> tuple[g.Mesh, np.ndarray]:
    """The mesh with its bounding box centred on the origin and a unit box diagonal,
    and the normalised extents ``[3]``."""
    v, f = mesh
    lo, hi = v.min(0), v.max(0)
    diag = float(np.linalg.norm(hi - lo))
    return ((v - (lo + hi) / 2) / diag, f), (hi - lo) / diag


def draw_params(category: str, domain: str, rng: np.random.Generator) -> dict[str, float]:
    return {k: float(rng.uniform(*r)) for k, r in PARAMS[category][domain].items()}


def mean_params(category: str) -> dict[str, float]:
    return {k: (a + b) / 2 for k, (a, b) in PARAMS[category]["synthetic"].items()}


def prior_points(category: str, n: int, seed: int) -> np.ndarray:
    """The category's mean-shape prior: ``n`` canonical points of its mean mesh."""
    mesh, _ = canonical(MESHES[category](mean_params(category)))
    return g.sample_surface(mesh, n, np.random.default_rng(seed)).astype(np.float32)


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.asarray([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def canonical_symmetric(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The rotation about the object's z axis chosen by a rule on what is seen: the
    object's x axis perpendicular to the camera ray through its centre (and to z)."""
    axis = rotation[:, 2]
    ray = translation / np.linalg.norm(translation)
    x = np.cross(axis, ray)
    if np.linalg.norm(x) < 1e-6:  # looking down the axis: any x will do
        x = np.cross(axis, [1.0, 0, 0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(axis, x), axis], 1)


@dataclass(frozen=True)
class PoseConfig:
    """Options of ``vision3d.pose_objects``."""

    n_train: int = option(120, positive_int, "synthetic labelled scenes per category")
    n_val: int = option(20, positive_int, "held-out synthetic scenes per category")
    n_unlabelled: int = option(80, positive_int, "unlabelled real-like scenes per category")
    n_test: int = option(40, positive_int, "labelled real-like test scenes per category")
    n_points: int = option(256, positive_int, "observed points per scene")
    n_model: int = option(256, positive_int, "points of each model and prior")
    image: int = option(96, positive_int, "depth image side (pixels)")
    seed: int = option(0, non_negative_int, "everything random")
    cache_dir: str | None = option(None, optional(lambda x: None if isinstance(x, str)
                                                  else "be a path"),
                                   "cache folder (default $SELFSUP_VISION3D_CACHE or "
                                   "~/.cache/selfsup-vision3d)")


def _scene_mesh(o3d: Any, *meshes: g.Mesh) -> Any:
    scene = o3d.t.geometry.RaycastingScene()
    for v, f in meshes:
        scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)),
                            o3d.core.Tensor(f.astype(np.uint32)))
    return scene


def render_scene(category: int, domain: str, config: PoseConfig, rng: np.random.Generator,
                 o3d: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: observed points ``[n_points, 3]``, label ``[15]``, model ``[n_model, 3]``."""
    name = CATEGORIES[category]
    params = draw_params(name, domain, rng)
    (verts, faces), extents = canonical(MESHES[name](params))
    diag = params["diag"]
    size = extents * diag
    model = g.sample_surface((verts, faces), config.n_model, rng)
    # object pose: upright on the table, any azimuth; the camera above at an elevation
    yaw = rng.uniform(0, 2 * np.pi)
    elev = np.deg2rad(rng.uniform(15, 60))
    dist = rng.uniform(0.5, 0.9)
    # world: table z = 0, object box centre at (dx, dy, size_z / 2)
    centre_w = np.asarray([*rng.uniform(-0.05, 0.05, 2), size[2] / 2])
    r_obj_w = _rot_z(yaw)
    # the camera looks at the table origin from elevation elev; camera frame: x right,
    # y down, z forward
    se, ce = np.sin(elev), np.cos(elev)
    r_cam = np.asarray([[1.0, 0, 0], [0, -se, -ce], [0, ce, -se]])  # rows: camera axes
    eye = np.asarray([0.0, -dist * np.cos(elev), dist * np.sin(elev)])
    rotation = r_cam @ r_obj_w
    translation = r_cam @ (centre_w - eye)
    if SYMMETRIC[category]:
        rotation = canonical_symmetric(rotation, translation)
    obj_cam = ((verts * diag) @ rotation.T + translation, faces)
    # the table: a square 2 m wide, in the camera frame
    table = g.transform(g.box((2.0, 2.0, 0.01)), offset=(0, 0, -0.005))
    table_cam = ((table[0] - eye) @ r_cam.T, table[1])
    meshes = [obj_cam, table_cam]
    real = domain == "real"
    if real and rng.random() < 0.7:  # an occluding box between camera and object
        side = rng.uniform(0.05, 0.12, 3)
        toward = eye - centre_w
        pos = centre_w + toward * rng.uniform(0.25, 0.5)
        pos[:2] += rng.uniform(-1, 1, 2) * max(size[:2].max() * 0.6, 0.04)
        pos[2] = side[2] / 2
        occ = g.transform(g.box(tuple(side)), offset=tuple(pos))
        meshes.append(((occ[0] - eye) @ r_cam.T, occ[1]))
    scene = _scene_mesh(o3d, *meshes)
    n = config.image
    f = n / (2 * np.tan(np.deg2rad(30)))
    u, v = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
    dirs = np.stack([(u - n / 2) / f, (v - n / 2) / f, np.ones_like(u)], -1).reshape(-1, 3)
    rays = np.concatenate([np.zeros_like(dirs), dirs], 1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    depth = hit["t_hit"].numpy().reshape(n, n)  # along unnormalised dirs: = z
    geom = hit["geometry_ids"].numpy().reshape(n, n).astype(np.int64)
    valid = np.isfinite(depth)
    mask = valid & (geom == 0)
    if real:
        from scipy import ndimage

        z = depth.copy()
        sigma = 0.0015 + 0.004 * (np.where(valid, z, 0) - 0.4).clip(0) ** 2
        z = z + sigma * rng.standard_normal(z.shape)
        z = np.round(z / 0.002) * 0.002  # quantised depth
        # holes: a few blobs of missing depth and grazing-angle dropout on the object
        holes = np.zeros_like(mask)
        yy, xx = np.mgrid[:n, :n]
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.integers(0, n, 2)
            holes |= (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(2, n / 12) ** 2
        edge = mask & ~ndimage.binary_erosion(mask)
        holes |= edge & (rng.random(mask.shape) < 0.5)
        # a leaky mask: about half of the one-pixel ring of table or occluder around it
        ring = ndimage.binary_dilation(mask) & valid & ~mask
        mask = (mask | (ring & (rng.random(mask.shape) < 0.5))) & ~holes
        depth = z
    pix = np.flatnonzero(mask.reshape(-1))
    if len(pix) < 8:  # the object vanished (occluded): keep its unoccluded pixels
        pix = np.flatnonzero((valid & (geom == 0)).reshape(-1))
    if len(pix) == 0:
        raise RuntimeError("empty view")
    pts = dirs[pix] * depth.reshape(-1)[pix, None]
    pts = g.resample(pts, config.n_points, rng)
    label = np.concatenate([rotation.reshape(-1), translation, size])
    return pts.astype(np.float32), label.astype(np.float32), model.astype(np.float32)


def generate(config: PoseConfig) -> dict[str, np.ndarray]:
    """Every scene of every split, in the order train, val, unlabelled, test."""
    o3d = require_open3d(NAME)
    parts = [("train", "synthetic", config.n_train), ("val", "synthetic", config.n_val),
             ("unlabelled", "real", config.n_unlabelled), ("test", "real", config.n_test)]
    root = np.random.SeedSequence(config.seed)
    points, labels, models, cats, split = [], [], [], [], []
    for (part, domain, per), seq in zip(parts, root.spawn(len(parts)), strict=True):
        n = per * len(CATEGORIES)
        for i, s in enumerate(seq.spawn(n)):
            c = i % len(CATEGORIES)
            rng = np.random.default_rng(s)
            for _ in range(5):  # a scene whose object vanished is drawn again
                try:
                    p, y, m = render_scene(c, domain, config, rng, o3d)
                    break
                except RuntimeError:
                    continue
            else:
                raise RuntimeError(f"{NAME}: five empty views in a row for {CATEGORIES[c]}")
            points.append(p)
            labels.append(y)
            models.append(m)
            cats.append(c)
            split.append(part)
    return {"points": np.stack(points), "labels": np.stack(labels), "models": np.stack(models),
            "categories": np.asarray(cats, dtype=np.int64), "split": np.asarray(split)}


def _key(config: PoseConfig) -> str:
    fields = {k: v for k, v in asdict(config).items() if k != "cache_dir"}
    text = json.dumps({"version": VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_generate(config: PoseConfig) -> tuple[dict[str, np.ndarray], Path, bool]:
    folder = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    path = folder / f"pose-{_key(config)}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}, path, False
    arrays = generate(config)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return arrays, path, True


class _Scans(Dataset[Any]):
    """Items ``{"points", "category"}``, with labels when ``labels`` is given."""

    def __init__(self, points: torch.Tensor, categories: torch.Tensor,
                 labels: torch.Tensor | None) -> None:
        self.points, self.categories, self.y = points, categories, labels

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __getitem__(self, i: int) -> Any:
        sample = {"points": self.points[i], "category": self.categories[i]}
        return sample if self.y is None else (sample, self.y[i])


class PoseObjects(SSLDataset):
    """The scenes (see the module). ``generated``/``seconds``: whether this build
    generated the cache and how long loading took."""

    task = TaskSpec("dense")  # structured output (pose and size); core has no pose kind
    splits = ("train", "val", "test")

    def __init__(self, config: PoseConfig) -> None:
        start = time.perf_counter()
        arrays, self.cache_file, self.generated = load_or_generate(config)
        self.seconds = time.perf_counter() - start
        self.config = config
        self.categories = list(CATEGORIES)
        self.symmetric = torch.as_tensor(SYMMETRIC)
        self.points = torch.as_tensor(arrays["points"])
        self.y = torch.as_tensor(arrays["labels"])
        self.models = torch.as_tensor(arrays["models"])
        self.category = torch.as_tensor(arrays["categories"])
        self._split = arrays["split"]
        self.priors = torch.as_tensor(np.stack(
            [prior_points(c, config.n_model, config.seed + 7) for c in CATEGORIES]))

    def indices(self, part: str) -> torch.Tensor:
        """Scene indices of ``train``, ``val``, ``unlabelled`` or ``test``."""
        return torch.as_tensor(np.flatnonzero(self._split == part))

    def pretrain_set(self) -> Dataset[Any]:
        i = self.indices("unlabelled")
        return _Scans(self.points[i], self.category[i], None)

    def labelled_split(self, split: str) -> Dataset[Any] | None:
        if split not in self.splits:
            return None
        i = self.indices(split)
        return _Scans(self.points[i], self.category[i], self.y[i])

    def fingerprint(self) -> str:
        """A content hash of every scene and label (the samples are dicts)."""
        h = hashlib.sha256(f"{self.name}:{self.modality}".encode())
        for arr in (self.points, self.y, self.category):
            h.update(arr.numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {"scenes": int(self.points.shape[0]), "points": int(self.points.shape[1]),
                "categories": len(self.categories),
                **{f"n_{k}": len(self.indices(k)) for k in
                   ("train", "val", "unlabelled", "test")}}


def build(**options: Any) -> PoseObjects:
    """``vision3d.pose_objects`` factory; ``options`` are :class:`PoseConfig` fields."""
    return PoseObjects(parse_options(PoseConfig, options, NAME))
