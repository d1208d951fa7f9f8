"""Geometry shared by the datasets, views, encoders and baselines.

numpy side (data generation and readers): triangle meshes of primitives, area-weighted
surface sampling with a seeded generator (open3d's samplers take no seed), hidden
point removal for one-view visibility, random rotations. torch side (models): batched
farthest-point sampling and k-nearest neighbours written in plain torch, so no
pointnet2/KNN CUDA extension is needed.
"""

from __future__ import annotations

import numpy as np
import torch

Mesh = tuple[np.ndarray, np.ndarray]  # vertices [V, 3] float, faces [F, 3] int


# -- meshes ----------------------------------------------------------------------------
def _grid_faces(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """Two triangles per cell of a ``rows x cols`` vertex grid (columns wrap if asked)."""
    faces = []
    last = cols if wrap else cols - 1
    for r in range(rows - 1):
        for c in range(last):
            a, b = r * cols + c, r * cols + (c + 1) % cols
            d, e = a + cols, b + cols
            faces += [(a, b, e), (a, e, d)]
    return np.asarray(faces, dtype=np.int64)


def surface_of_revolution(profile: np.ndarray, segments: int = 32) -> Mesh:
    """Revolve a profile of ``(radius, z)`` points about the z axis (open at both ends
    unless the profile starts or ends at radius 0)."""
    theta = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    r, z = profile[:, :1], profile[:, 1:]
    verts = np.stack([r * np.cos(theta), r * np.sin(theta), np.repeat(z, segments, 1)], -1)
    return verts.reshape(-1, 3), _grid_faces(len(profile), segments, wrap=True)


def sphere(segments: int = 24) -> Mesh:
    phi = np.linspace(0, np.pi, segments // 2 + 1)
    return surface_of_revolution(np.stack([np.sin(phi), -np.cos(phi)], 1), segments)


def hemisphere_shell(segments: int = 24) -> Mesh:
    """The lower half of the unit sphere, open at the top (a bowl)."""
    phi = np.linspace(0, np.pi / 2, segments // 4 + 1)
    return surface_of_revolution(np.stack([np.sin(phi), -np.cos(phi)], 1), segments)


def cylinder(radius: float = 1.0, height: float = 2.0, caps: bool = True,
             segments: int = 32) -> Mesh:
    h = height / 2
    pts = [(radius, -h), (radius, h)]
    if caps:
        pts = [(0.0, -h), *pts, (0.0, h)]
    return surface_of_revolution(np.asarray(pts), segments)


def cone(radius: float = 1.0, height: float = 2.0, segments: int = 32) -> Mesh:
    h = height / 2
    return surface_of_revolution(np.asarray([(0.0, -h), (radius, -h), (0.0, h)]), segments)


def torus(major: float = 1.0, minor: float = 0.3, segments: int = 32, rings: int = 16) -> Mesh:
    u = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    v = np.linspace(0, 2 * np.pi, rings, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    rad = major + minor * np.cos(vv)
    verts = np.stack([rad * np.cos(uu), rad * np.sin(uu), minor * np.sin(vv)], -1)
    faces = []
    for i in range(segments):
        for j in range(rings):
            a = i * rings + j
            b = ((i + 1) % segments) * rings + j
            c = ((i + 1) % segments) * rings + (j + 1) % rings
            d = i * rings + (j + 1) % rings
            faces += [(a, b, c), (a, c, d)]
    return verts.reshape(-1, 3), np.asarray(faces, dtype=np.int64)


def box(size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Mesh:
    s = np.asarray(size) / 2
    corners = np.asarray([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * s
    faces = np.asarray([
        (0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
        (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)], dtype=np.int64)
    return corners.astype(float), faces


def pyramid(base: float = 2.0, height: float = 1.5) -> Mesh:
    b = base / 2
    verts = np.asarray([[-b, -b, 0], [b, -b, 0], [b, b, 0], [-b, b, 0], [0, 0, height]], float)
    faces = np.asarray([(0, 2, 1), (0, 3, 2), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)])
    return verts, faces


def transform(mesh: Mesh, scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
              offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
              rotation: np.ndarray | None = None) -> Mesh:
    v = mesh[0] * np.asarray(scale)
    if rotation is not None:
        v = v @ rotation.T
    return v + np.asarray(offset), mesh[1]


def merge(*meshes: Mesh) -> Mesh:
    verts, faces, start = [], [], 0
    for v, f in meshes:
        verts.append(v)
        faces.append(f + start)
        start += len(v)
    return np.concatenate(verts), np.concatenate(faces)


def triangle_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sample_surface(mesh: Mesh, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniformly on the surface: triangles drawn by area, then uniform
    barycentric coordinates (the square-root trick). Raises ValueError on a mesh of
    zero area."""
    verts, faces = mesh
    area = triangle_areas(verts, faces)
    total = float(area.sum())
    if not np.isfinite(total) or total <= 0:
        raise ValueError("mesh has zero surface area")
    tri = rng.choice(len(faces), size=n, p=area / total)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    corners = verts[faces[tri]]  # [n, 3, 3]
    return np.einsum("nk,nkd->nd", w, corners)


# -- rotations -------------------------------------------------------------------------
def random_rotation_np(rng: np.random.Generator) -> np.ndarray:
    """A rotation uniform on SO(3) (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_rotations(b: int, generator: torch.Generator, mode: str = "so3",
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``[b, 3, 3]`` rotations: uniform on SO(3) (``"so3"``, from uniform unit
    quaternions), about the z (up) axis (``"up"``), or identities (``"none"``)."""
    if mode == "none":
        return torch.eye(3, device=device).expand(b, 3, 3).clone()
    if mode == "up":
        t = 2 * torch.pi * torch.rand(b, generator=generator, device=generator.device)
        t = t.to(device)
        c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
        return torch.stack([c, -s, z, s, c, z, z, z, o], 1).view(b, 3, 3)
    q = torch.randn(b, 4, generator=generator, device=generator.device).to(device)
    return quaternion_to_matrix(q / q.norm(dim=1, keepdim=True))


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[b, 4]`` (w, x, y, z) to rotation matrices ``[b, 3, 3]``."""
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], 1).view(-1, 3, 3)


# -- visibility ------------------------------------------------------------------------
def visible_from(points: np.ndarray, direction: np.ndarray, distance: float = 3.0,
                 radius_factor: float = 100.0) -> np.ndarray:
    """Indices of the points a camera at ``distance * direction`` sees: hidden point
    removal by spherical flipping and a convex hull (Katz, Tal & Basri, SIGGRAPH 2007;
    open3d's ``hidden_point_removal``), computed with scipy."""
    from scipy.spatial import ConvexHull

    camera = distance * direction / np.linalg.norm(direction)
    p = points - camera
    norm = np.linalg.norm(p, axis=1, keepdims=True).clip(1e-9)
    radius = norm.max() * radius_factor
    flipped = p + 2 * (radius - norm) * p / norm
    hull = ConvexHull(np.concatenate([flipped, np.zeros((1, 3))]))
    idx = hull.vertices
    return np.sort(idx[idx < len(points)])


def normalise(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale into the unit sphere (ModelNet's convention)."""
    p = points - points.mean(0)
    r = float(np.linalg.norm(p, axis=1).max())
    return p / r if r > 0 else p


def resample(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``n`` points: a subset without replacement, or all points plus repeats."""
    m = len(points)
    if m >= n:
        return points[rng.choice(m, n, replace=False)]
    extra = rng.choice(m, n - m, replace=True)
    return np.concatenate([points, points[extra]])


# -- torch: sampling and neighbourhoods ------------------------------------------------
def farthest_point_sample(points: torch.Tensor, n: int) -> torch.Tensor:
    """Indices ``[B, n]`` of farthest-point sampling of ``points`` ``[B, N, 3]``, starting
    from point 0 (deterministic, so a cloud always gives the same patches)."""
    b, m, _ = points.shape
    idx = torch.zeros(b, n, dtype=torch.long, device=points.device)
    dist = torch.full((b, m), float("inf"), device=points.device)
    rows = torch.arange(b, device=points.device)
    last = torch.zeros(b, dtype=torch.long, device=points.device)
    for i in range(n):
        idx[:, i] = last
        d = ((points - points[rows, last][:, None]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        last = dist.argmax(1)
    return idx


def knn(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[B, Q, k]`` of the ``k`` points of ``points`` ``[B, N, C]`` nearest each
    query ``[B, Q, C]`` (nearest first)."""
    d = torch.cdist(query, points)
    return d.topk(k, dim=-1, largest=False).indices


def gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``points`` ``[B, N, C]`` at ``idx`` ``[B, ...]``: ``[B, ..., C]``."""
    b = points.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(points, 1, flat[..., None].expand(-1, -1, points.shape[-1]))
    return out.view(*idx.shape, points.shape[-1])


def chamfer_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Chamfer distance between point sets ``a`` ``[M, P, 3]`` and ``b`` ``[M, Q, 3]``:
    the mean squared distance to the nearest point, a to b plus b to a (Point-MAE's
    ``ChamferDistanceL2``), averaged over the M pairs."""
    d = torch.cdist(a, b) ** 2
    return d.min(2).values.mean() + d.min(1).values.mean()


def render_depth(points: torch.Tensor, rotations: torch.Tensor, size: int = 64,
                 splat: int = 3) -> torch.Tensor:
    """Depth views ``[B, V, size, size]`` of clouds ``[B, N, 3]`` (in the unit sphere) seen
    along ``V`` rotations ``[B, V, 3, 3]``: orthographic projection on the rotated x-y
    plane, a z-buffer keeping the nearest point of each pixel (the camera on +z),
    intensity ``(z + 1) / 2`` (1 nearest, 0 empty), and a ``splat x splat`` max filter
    that closes the holes between points (nearer points win, as in a z-buffer)."""
    b, v = rotations.shape[:2]
    p = torch.einsum("bnd,bved->bvne", points.float(), rotations.float())  # x R^T
    ij = ((p[..., :2].clamp(-1, 1) + 1) / 2 * (size - 1)).round().long()
    flat = (ij[..., 1] * size + ij[..., 0]).flatten(2)  # [B, V, N]
    depth = ((p[..., 2].clamp(-1, 1) + 1) / 2).flatten(2)
    img = torch.zeros(b, v, size * size, dtype=depth.dtype, device=depth.device)
    img = img.scatter_reduce(2, flat, depth, reduce="amax", include_self=True)
    img = img.view(b * v, 1, size, size)
    if splat > 1:
        img = torch.nn.functional.max_pool2d(img, splat, stride=1, padding=splat // 2)
    return img.view(b, v, size, size)
