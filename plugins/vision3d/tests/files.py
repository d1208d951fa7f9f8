"""Real files of every format the readers take, written by open3d where it writes the
format (PLY, PCD, OFF, OBJ, STL) and by numpy otherwise (XYZ, NPY, ScanObjectNN BIN)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d


def box_mesh(w: float = 1.0, h: float = 0.5, d: float = 0.3) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_box(w, h, d)
    mesh.compute_triangle_normals()  # STL needs them
    return mesh


def cloud(n: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3))


def write_pcd_cloud(path: Path, points: np.ndarray, ascii: bool) -> None:
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    assert o3d.io.write_point_cloud(str(path), pcd, write_ascii=ascii)


def write_mesh(path: Path, mesh: o3d.geometry.TriangleMesh, ascii: bool = False) -> None:
    if ascii and path.suffix == ".stl":  # open3d writes binary STL only
        v, f = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        facets = "".join("facet normal 0 0 0\nouter loop\n" + "".join(
            f"vertex {a} {b} {c}\n" for a, b, c in v[t]) + "endloop\nendfacet\n" for t in f)
        path.write_text(f"solid m\n{facets}endsolid m\n")
        return
    assert o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=ascii)


def write_class_folder(root: Path) -> Path:
    """Two classes (boxes, spheres) in every format, plus three bad files."""
    boxes, balls = root / "box", root / "sphere"
    boxes.mkdir()
    balls.mkdir()
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.7)
    sphere.compute_triangle_normals()
    for folder, mesh in ((boxes, box_mesh()), (balls, sphere)):
        write_mesh(folder / "a.ply", mesh, ascii=True)
        write_mesh(folder / "b.ply", mesh)
        write_mesh(folder / "c.off", mesh)
        write_mesh(folder / "d.obj", mesh)
        write_mesh(folder / "e.stl", mesh)
        pts = np.asarray(mesh.sample_points_uniformly(300).points)
        write_pcd_cloud(folder / "f.pcd", pts, ascii=True)
        write_pcd_cloud(folder / "g.pcd", pts, ascii=False)
        np.savetxt(folder / "h.xyz", pts)
        np.save(folder / "i.npy", pts)
        bin_ = np.concatenate([[len(pts)], np.hstack([pts, np.zeros((len(pts), 8))]).ravel()])
        bin_.astype(np.float32).tofile(folder / "j.bin")
    (boxes / "empty.xyz").write_text("")
    (boxes / "broken.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\n")
    np.save(balls / "nan.npy", np.full((10, 3), np.nan))
    return root
