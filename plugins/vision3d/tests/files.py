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


def write_vrml_box(path: Path, size: tuple[float, float, float], pins: int = 0) -> Path:
    """A KiCad-style VRML 2.0 model: a box body (one IndexedFaceSet) and ``pins``
    thin boxes beside it (a second set, its own Coordinate), as StepUp exports them."""
    def box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> str:
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        pts = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
        quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4),
                 (1, 5, 7, 3)]
        return ("Shape { appearance Appearance { material USE BODY }\n"
                "geometry IndexedFaceSet { creaseAngle 0.5\n"
                "coordIndex [" + ",".join(",".join(map(str, q)) + ",-1" for q in quads) + "]\n"
                "coord Coordinate { point [" + ",".join(f"{x} {y} {z}" for x, y, z in pts)
                + "] } } }\n")

    sx, sy, sz = size
    text = ("#VRML V2.0 utf8\n# test model\nShape { appearance Appearance "
            "{ material DEF BODY Material { diffuseColor 0.1 0.1 0.1 } } }\n")
    text += box((0, 0, 0), (sx, sy, sz))
    for i in range(pins):
        x = sx * (i + 0.5) / pins
        text += box((x - 0.05, -0.3, 0), (x + 0.05, 0, 0.05))
    path.write_text(text)
    return path


def write_kicad_library(root: Path, per_family: int = 10) -> Path:
    """Two families of ``.3dshapes`` folders in KiCad's layout, plus one broken model
    and a family too small to keep."""
    for family in ("Resistor_SMD", "Package_DIP", "Tiny"):
        (root / f"{family}.3dshapes").mkdir(parents=True, exist_ok=True)
    for i in range(per_family):
        write_vrml_box(root / "Resistor_SMD.3dshapes" / f"R_{i:02d}.wrl",
                       (2.0 + 0.1 * i, 1.0, 0.5))
        write_vrml_box(root / "Package_DIP.3dshapes" / f"DIP-{2 * i + 4}.wrl",
                       (1.0 + 0.2 * i, 6.0, 3.0), pins=i + 2)
    (root / "Package_DIP.3dshapes" / "DIP-broken.wrl").write_text("#VRML V2.0 utf8\nShape {}")
    write_vrml_box(root / "Tiny.3dshapes" / "one.wrl", (1.0, 1.0, 1.0))
    return root
