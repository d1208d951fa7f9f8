"""Readers of the field's point-cloud and mesh files, in numpy (no open3d needed).

=========  ==========================================================================
``.ply``   ascii and binary (little/big endian) PLY: ``vertex`` x/y/z, and ``face``
           lists when present (then the mesh is sampled)
``.pcd``   PCL's PCD, ``DATA ascii`` and ``binary`` (not ``binary_compressed``)
``.off``   OFF meshes (ModelNet's format; the ``OFF`` word glued to the counts too)
``.obj``   Wavefront OBJ ``v``/``f`` lines (polygons fanned into triangles)
``.stl``   ascii and binary STL
``.xyz``   whitespace- or comma-separated columns, the first three are x, y, z
           (also ``.txt``/``.pts``, ModelNet40's resampled ``.txt`` files included)
``.npy``   an array ``[N, >=3]``
``.bin``   ScanObjectNN's ``object_dataset`` files (float32: a count, then 11 per point)
``.wrl``   VRML 2.0 / 97 ``IndexedFaceSet`` shapes (KiCad's 3D models): every
           ``coord Coordinate { point [...] }`` with its ``coordIndex [...]``, shapes
           concatenated; transforms, reused (``USE``) coordinates and primitives
           (``Box``, ``Sphere``) are not read
=========  ==========================================================================

A mesh (faces present) is sampled area-weighted with the caller's generator; a cloud
keeps its points. Anything unreadable, empty, non-finite or degenerate raises
:class:`BadFile` with the reason; the folder dataset skips and reports those.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import sample_surface, triangle_areas

SUFFIXES = (".ply", ".pcd", ".off", ".obj", ".stl", ".xyz", ".txt", ".pts", ".npy", ".bin",
            ".wrl")


class BadFile(ValueError):
    """A file that gives no usable cloud; the message says why."""


Geometry = tuple[np.ndarray, np.ndarray | None]  # points [N, 3], faces [F, 3] or None

_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2",
              "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
              "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
              "double": "f8", "float64": "f8"}


def _fan(polys: list[list[int]]) -> np.ndarray:
    tris = [(p[0], p[i], p[i + 1]) for p in polys for i in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def read_ply(path: Path) -> Geometry:
    raw = path.read_bytes()
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise BadFile("not a PLY file (no 'ply' magic or no end_header)")
    header = raw[:end].decode("ascii", "replace").splitlines()
    body = raw[raw.index(b"\n", end) + 1:]
    fmt = next((ln.split()[1] for ln in header if ln.startswith("format")), "")
    elements: list[tuple[str, int, list[tuple[str, ...]]]] = []
    for ln in header:
        w = ln.split()
        if w and w[0] == "element":
            elements.append((w[1], int(w[2]), []))
        elif w and w[0] == "property" and elements:
            elements[-1][2].append(tuple(w[1:]))
    verts: np.ndarray | None = None
    faces: np.ndarray | None = None
    if fmt == "ascii":
        tokens = body.decode("ascii", "replace").split()
        pos = 0
        for name, count, props in elements:
            rows = []
            for _ in range(count):
                row: list[float] = []
                for p in props:
                    if p[0] == "list":
                        k = int(float(tokens[pos]))
                        row.append(k)
                        row += [float(t) for t in tokens[pos + 1: pos + 1 + k]]
                        pos += 1 + k
                    else:
                        row.append(float(tokens[pos]))
                        pos += 1
                rows.append(row)
            if name == "vertex":
                names = [p[-1] for p in props]
                cols = [names.index(a) for a in ("x", "y", "z")]
                verts = np.asarray([[r[c] for c in cols] for r in rows], dtype=np.float64)
            elif name == "face" and rows:
                faces = _fan([[int(v) for v in r[1: 1 + int(r[0])]] for r in rows])
    elif fmt in ("binary_little_endian", "binary_big_endian"):
        order = "<" if fmt.endswith("little_endian") else ">"
        pos = 0
        for name, count, props in elements:
            if any(p[0] == "list" for p in props):
                if name != "face":
                    break  # a list element we do not read: stop (vertices come first)
                count_t, index_t = _PLY_TYPES[props[0][1]], _PLY_TYPES[props[0][2]]
                polys = []
                for _ in range(count):
                    k = int(np.frombuffer(body, order + count_t, 1, pos)[0])
                    pos += np.dtype(count_t).itemsize
                    polys.append(np.frombuffer(body, order + index_t, k, pos).tolist())
                    pos += k * np.dtype(index_t).itemsize
                faces = _fan(polys)
                continue
            dtype = np.dtype([(p[-1], order + _PLY_TYPES[p[0]]) for p in props])
            data = np.frombuffer(body, dtype, count, pos)
            pos += count * dtype.itemsize
            if name == "vertex":
                verts = np.stack([data[a].astype(np.float64) for a in ("x", "y", "z")], 1)
    else:
        raise BadFile(f"unknown PLY format {fmt!r}")
    if verts is None:
        raise BadFile("PLY has no vertex element with x, y, z")
    return verts, faces


def read_pcd(path: Path) -> Geometry:
    raw = path.read_bytes()
    m = re.search(rb"^DATA\s+(\S+)[^\n]*\n", raw, re.M)
    if m is None:
        raise BadFile("not a PCD file (no DATA line)")
    head = {}
    for ln in raw[: m.start()].decode("ascii", "replace").splitlines():
        w = ln.split()
        if w and not w[0].startswith("#"):
            head[w[0].upper()] = w[1:]
    fields = head.get("FIELDS", [])
    if not all(a in fields for a in ("x", "y", "z")):
        raise BadFile("PCD has no x, y, z fields")
    kind = m.group(1).decode()
    n = int(head.get("POINTS", head.get("WIDTH", ["0"]))[0])
    body = raw[m.end():]
    if kind == "ascii":
        data = np.loadtxt(body.decode().splitlines(), ndmin=2)
        cols = [fields.index(a) for a in ("x", "y", "z")]
        return data[:, cols], None
    if kind != "binary":
        raise BadFile(f"PCD DATA {kind} is not read (save as ascii or binary)")
    sizes = [int(s) for s in head["SIZE"]]
    types = head["TYPE"]
    counts = [int(c) for c in head.get("COUNT", ["1"] * len(fields))]
    dtype = np.dtype([(f, f"<{t.lower()}{s}", (c,) if c > 1 else ())
                      for f, s, t, c in zip(fields, sizes, types, counts, strict=True)])
    rec: Any = np.frombuffer(body, dtype, n)
    return np.stack([rec[a].astype(np.float64) for a in ("x", "y", "z")], 1), None


def read_off(path: Path) -> Geometry:
    lines = [ln for ln in path.read_text(errors="replace").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines or not lines[0].strip().startswith("OFF"):
        raise BadFile("not an OFF file (no OFF header)")
    first = lines[0].strip()[3:].split()  # ModelNet writes 'OFF490 518 0' on one line
    if first:
        counts, rest = first, lines[1:]
    else:
        counts, rest = lines[1].split(), lines[2:]
    nv, nf = int(counts[0]), int(counts[1])
    verts = np.asarray([[float(t) for t in ln.split()[:3]] for ln in rest[:nv]])
    polys = [[int(t) for t in ln.split()[1: 1 + int(ln.split()[0])]] for ln in rest[nv: nv + nf]]
    return verts.reshape(-1, 3), (_fan(polys) if polys else None)


def read_obj(path: Path) -> Geometry:
    verts, polys = [], []
    for ln in path.read_text(errors="replace").splitlines():
        w = ln.split()
        if not w:
            continue
        if w[0] == "v":
            verts.append([float(t) for t in w[1:4]])
        elif w[0] == "f":
            idx = [int(t.split("/")[0]) for t in w[1:]]
            polys.append([i - 1 if i > 0 else len(verts) + i for i in idx])
    return np.asarray(verts, dtype=np.float64).reshape(-1, 3), (_fan(polys) if polys else None)


def read_stl(path: Path) -> Geometry:
    raw = path.read_bytes()
    if len(raw) >= 84:
        n = struct.unpack("<I", raw[80:84])[0]
        if 84 + 50 * n == len(raw):  # binary: the size matches the triangle count
            rec = np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            tri = np.frombuffer(raw, rec, n, 84)["v"].astype(np.float64)
            return tri.reshape(-1, 3), np.arange(3 * n).reshape(-1, 3)
    text = raw.decode("ascii", "replace")
    if not text.lstrip().startswith("solid"):
        raise BadFile("not an STL file")
    v = [[float(t) for t in ln.split()[1:4]] for ln in text.splitlines()
         if ln.strip().startswith("vertex")]
    verts = np.asarray(v, dtype=np.float64).reshape(-1, 3)
    return verts, np.arange(len(verts) - len(verts) % 3).reshape(-1, 3)


def read_xyz(path: Path) -> Geometry:
    rows = []
    for ln in path.read_text(errors="replace").splitlines():
        w = ln.replace(",", " ").split()
        if len(w) >= 3:
            try:
                rows.append([float(t) for t in w[:3]])
            except ValueError:
                continue  # a header line
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3), None


def read_npy(path: Path) -> Geometry:
    a = np.load(path, allow_pickle=False)
    if a.ndim != 2 or a.shape[1] < 3:
        raise BadFile(f"array of shape {a.shape}; expected [N, >=3]")
    return a[:, :3].astype(np.float64), None


def read_scanobjectnn_bin(path: Path) -> Geometry:
    a = np.fromfile(path, dtype=np.float32)
    if len(a) < 12 or (len(a) - 1) % 11:
        raise BadFile("not a ScanObjectNN .bin (a count, then 11 floats per point)")
    return a[1:].reshape(-1, 11)[:, :3].astype(np.float64), None


_VRML_POINTS = re.compile(r"coord\s+(?:DEF\s+\S+\s+)?Coordinate\s*\{\s*point\s*\[([^\]]*)\]")
_VRML_INDEX = re.compile(r"coordIndex\s*\[([^\]]*)\]")


def read_wrl(path: Path) -> Geometry:
    """Every ``IndexedFaceSet`` of a VRML 2.0 file, in file order (see the module)."""
    text = path.read_text(errors="replace")
    if not text.startswith("#VRML"):
        raise BadFile("not a VRML file (no '#VRML' header)")
    text = re.sub(r"#[^\n]*", " ", text)  # comments (the header included)
    verts: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    offset = 0
    for shape in re.split(r"\bIndexedFaceSet\b", text)[1:]:
        points, index = _VRML_POINTS.search(shape), _VRML_INDEX.search(shape)
        if points is None or index is None:
            continue  # a USE'd coordinate node or a set without faces
        v = np.asarray(points.group(1).replace(",", " ").split(), dtype=np.float64)
        if len(v) % 3:
            raise BadFile(f"a Coordinate of {len(v)} numbers, not x y z triples")
        idx = [int(t) for t in index.group(1).replace(",", " ").split()]
        polys, poly = [], []
        for i in [*idx, -1]:
            if i >= 0:
                poly.append(i)
            elif poly:
                polys.append(poly)
                poly = []
        verts.append(v.reshape(-1, 3))
        if polys:
            faces.append(_fan(polys) + offset)
        offset += len(v) // 3
    if not verts:
        raise BadFile("no IndexedFaceSet with coordinates")
    return np.concatenate(verts), (np.concatenate(faces) if faces else None)


READERS = {".ply": read_ply, ".pcd": read_pcd, ".off": read_off, ".obj": read_obj,
           ".stl": read_stl, ".xyz": read_xyz, ".txt": read_xyz, ".pts": read_xyz,
           ".npy": read_npy, ".bin": read_scanobjectnn_bin, ".wrl": read_wrl}


def read_geometry(path: str | Path) -> Geometry:
    """Points and faces (None for a cloud) of one file; :class:`BadFile` on failure."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise BadFile(f"unknown suffix {path.suffix!r}; read: {', '.join(SUFFIXES)}")
    try:
        return reader(path)
    except BadFile:
        raise
    except (ValueError, IndexError, KeyError, OSError, struct.error, UnicodeError) as err:
        raise BadFile(f"unreadable {path.suffix} file: {err}") from err


def read_cloud(path: str | Path, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_points, 3]`` float32 of one file: a mesh sampled on its surface, a cloud
    subsampled (or repeated); non-finite points dropped; :class:`BadFile` when nothing
    usable is left."""
    from .geometry import normalise, resample

    verts, faces = read_geometry(path)
    if faces is not None and len(faces):
        if (faces < 0).any() or (faces >= len(verts)).any():
            raise BadFile("face indices out of range")
        if not np.isfinite(verts).all():
            raise BadFile("mesh has non-finite vertices")
        if triangle_areas(verts, faces).sum() <= 0:
            raise BadFile("degenerate mesh (zero surface area)")
        pts = sample_surface((verts, faces), n_points, rng)
    else:
        pts = verts[np.isfinite(verts).all(1)]
        if len(pts) == 0:
            raise BadFile("no finite points" if len(verts) else "empty cloud")
        pts = resample(pts, n_points, rng)
    if np.ptp(pts, axis=0).max() <= 0:
        raise BadFile("all points coincide")
    return normalise(pts).astype(np.float32)
