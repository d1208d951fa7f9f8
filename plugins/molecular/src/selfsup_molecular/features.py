"""Fixed molecular features, the baselines a learned encoder must beat.

- :class:`MorganFingerprint` (baseline ``molecular.morgan``): Morgan / ECFP4-like
  bit vectors, radius 2, 2048 bits (Rogers & Hahn, "Extended-Connectivity
  Fingerprints", J. Chem. Inf. Model. 50, 742-754, 2010), from RDKit's
  ``rdFingerprintGenerator``.
- :class:`RDKitDescriptors` (baseline ``molecular.rdkit_descriptors``): RDKit's 2D
  descriptors (``rdkit.Chem.Descriptors.descList``, 217 in RDKit 2026.09: weights,
  logP, TPSA, counts, topological and E-state indices), the same list that
  :mod:`selfsup_molecular.pretexts.mtr` regresses. Non-finite values become 0.

Neither has trainable parameters. Each is a module offering the ``embedding`` face
(``embed(batch)``, also ``forward``), built by :mod:`selfsup_molecular.baselines`
and probed by the same evaluators as the pretrained encoders (changed in 0.2: they
were registered as encoders and named ``encoder:<key>`` in benchmarks). Both read
the batch's ``"smiles"`` list, so they work on any ``smiles`` dataset, and both
keep a per-process cache from SMILES string to feature row: the evaluators embed
the same splits once per seed and per epoch, and a descriptor row costs about
6 to 11 ms of RDKit time (descriptor rows are also kept on disk, see
:func:`descriptor_cache_file`). Descriptors are z-scored on the dataset's training molecules
(see :class:`RDKitDescriptors`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import SSLDataset, check_value, non_negative_int, positive_int

log = logging.getLogger(__name__)

_DESCRIPTOR_CACHE: dict[str, np.ndarray] = {}
_MORGAN_CACHE: dict[tuple[str, int, int], np.ndarray] = {}
#: entries kept per cache before it is cleared (a bound on memory, not a tuning knob)
CACHE_LIMIT = 200_000


def descriptor_names() -> tuple[str, ...]:
    """Names of RDKit's 2D descriptors (``Descriptors.descList``), in RDKit's order."""
    from rdkit.Chem import Descriptors

    return tuple(name for name, _ in Descriptors.descList)


def _mols(smiles: Sequence[str]) -> list[Any]:
    """Molecules of ``smiles`` (None where RDKit cannot parse one), parsed quietly."""
    from rdkit import Chem

    from selfsup_molecular.chem import quiet_rdkit

    with quiet_rdkit():
        return [Chem.MolFromSmiles(s) if isinstance(s, str) and s else None for s in smiles]


def compute_descriptors(smiles: Sequence[str]) -> np.ndarray:
    """RDKit 2D descriptors ``[N, len(descriptor_names())]`` as float64.

    A descriptor RDKit cannot compute is NaN, and so is every column of a SMILES
    it cannot parse. Rows are cached per SMILES string for the life of the process
    and on disk (:func:`descriptor_cache_file`), so a corpus is computed once per
    RDKit version rather than once per run.
    """
    from rdkit.Chem import Descriptors

    names = descriptor_names()
    _load_disk_cache()
    missing = [s for s in dict.fromkeys(smiles) if s not in _DESCRIPTOR_CACHE]
    if missing:
        if len(_DESCRIPTOR_CACHE) + len(missing) > CACHE_LIMIT:
            _DESCRIPTOR_CACHE.clear()
        for s, mol in zip(missing, _mols(missing)):
            row = np.full(len(names), np.nan)
            if mol is not None:
                values = Descriptors.CalcMolDescriptors(mol, missingVal=np.nan)
                row[:] = [_finite_or_nan(values.get(n, np.nan)) for n in names]
            _DESCRIPTOR_CACHE[s] = row
        if len(missing) >= DISK_CACHE_MIN_NEW:
            _save_disk_cache()
    if not smiles:
        return np.zeros((0, len(names)))
    return np.stack([_DESCRIPTOR_CACHE[s] for s in smiles])


# -- the descriptor cache on disk ----------------------------------------------------------
#: rows computed in one call before the disk cache is rewritten (a batch of a few
#: unseen molecules is not worth rewriting a file of thousands)
DISK_CACHE_MIN_NEW = 64
_DISK_FORMAT = 1
_disk_loaded: set[Path] = set()


def descriptor_cache_file() -> Path | None:
    """Where computed descriptors are kept between runs, or None when caching is off.

    ``SELFSUP_MOLECULAR_CACHE``: the cache folder, or ``off`` for no disk cache;
    default ``$XDG_CACHE_HOME/selfsup-molecular`` (``~/.cache/selfsup-molecular``),
    the folder the corpus reader caches in. The file name holds a hash of the RDKit
    version and the descriptor list, so another RDKit never reads stale values.
    """
    import rdkit

    from .corpus import cache_folder

    folder = cache_folder()
    if folder is None:
        return None
    key = hashlib.sha256(
        f"{_DISK_FORMAT}|{rdkit.__version__}|{','.join(descriptor_names())}".encode()
    ).hexdigest()[:16]
    return folder / f"descriptors-{key}.npz"


def _load_disk_cache() -> None:
    """Merge the disk cache into the process cache, once per process and file."""
    path = descriptor_cache_file()
    if path is None or path in _disk_loaded:
        return
    _disk_loaded.add(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            smiles, values = data["smiles"], data["values"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError) as exc:
        log.debug("ignoring unreadable descriptor cache %s: %s", path, exc)
        return
    if values.ndim != 2 or values.shape != (len(smiles), len(descriptor_names())):
        log.debug("ignoring descriptor cache %s of shape %s", path, values.shape)
        return
    for s, row in zip(smiles.tolist(), values):
        _DESCRIPTOR_CACHE.setdefault(str(s), row)


def _save_disk_cache() -> None:
    """Write the process cache to disk atomically (a reader sees the old or the new file)."""
    path = descriptor_cache_file()
    if path is None or not _DESCRIPTOR_CACHE:
        return
    smiles = np.asarray(list(_DESCRIPTOR_CACHE), dtype=str)
    values = np.stack(list(_DESCRIPTOR_CACHE.values()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, smiles=smiles, values=values)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("could not cache descriptors at %s: %s", path, exc)


def _finite_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def morgan_bits(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan fingerprint bits ``[N, n_bits]`` (uint8); zeros for an unparseable SMILES."""
    from rdkit.Chem import rdFingerprintGenerator

    missing = [s for s in dict.fromkeys(smiles) if (s, radius, n_bits) not in _MORGAN_CACHE]
    if missing:
        if len(_MORGAN_CACHE) + len(missing) > CACHE_LIMIT:
            _MORGAN_CACHE.clear()
        generator: Any = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
        for s, mol in zip(missing, _mols(missing)):
            bits = np.zeros(n_bits, dtype=np.uint8)
            if mol is not None:
                bits[:] = generator.GetFingerprintAsNumPy(mol)
            _MORGAN_CACHE[(s, radius, n_bits)] = bits
    if not smiles:
        return np.zeros((0, n_bits), dtype=np.uint8)
    return np.stack([_MORGAN_CACHE[(s, radius, n_bits)] for s in smiles])


def _smiles_of(batch: Any, owner: str) -> list[str]:
    if isinstance(batch, Mapping) and "smiles" in batch:
        return list(batch["smiles"])
    if isinstance(batch, (list, tuple)) and all(isinstance(s, str) for s in batch):
        return list(batch)
    raise TypeError(
        f"{owner} reads SMILES strings: pass a collated SMILES batch (a dict with a "
        f"'smiles' list) or a list of str; got {type(batch).__name__}"
    )


def _device_of(batch: Any) -> torch.device:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return value.device
    return torch.device("cpu")


class MorganFingerprint(nn.Module):
    """Morgan fingerprint bits as a float ``[B, n_bits]`` "embedding" (no parameters)."""

    def __init__(self, radius: int = 2, n_bits: int = 2048) -> None:
        super().__init__()
        check_value("molecular.morgan", "radius", radius, non_negative_int)
        check_value("molecular.morgan", "n_bits", n_bits, positive_int)
        self.radius = radius
        self.n_bits = n_bits
        self.embed_dim: int = n_bits

    def embed(self, batch: Any) -> torch.Tensor:
        bits = morgan_bits(_smiles_of(batch, "molecular.morgan"), self.radius, self.n_bits)
        return torch.from_numpy(bits.astype(np.float32)).to(_device_of(batch))

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


@dataclass(frozen=True)
class DescriptorScaling:
    """Which descriptor columns to keep and how to z-score them (fitted on a SMILES set).

    ``columns``: indices into :func:`descriptor_names`; ``mean``, ``std``: per kept
    column; ``clip``: z-scores are clipped to ``[-clip, clip]`` (a few descriptors,
    such as ``Ipc``, have tails many orders of magnitude long). Non-finite values
    become 0, the fitted mean.
    """

    columns: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    clip: float

    @property
    def names(self) -> tuple[str, ...]:
        all_names = descriptor_names()
        return tuple(all_names[int(i)] for i in self.columns)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw descriptors ``[N, n_all]`` (from :func:`compute_descriptors`) to ``[N, n_kept]``."""
        with np.errstate(invalid="ignore", over="ignore"):
            z = (raw[:, self.columns] - self.mean) / self.std
        z = np.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip)
        return np.clip(z, -self.clip, self.clip)


def fit_descriptor_scaling(
    raw: np.ndarray, *, drop_nonfinite: bool, clip: float = 6.0
) -> DescriptorScaling:
    """Fit :class:`DescriptorScaling` on raw descriptors ``[N, n_all]``.

    Rows that are NaN throughout (SMILES RDKit could not parse) are ignored. With
    ``drop_nonfinite``, a column with any non-finite value on the remaining rows is
    dropped, and so is one of zero variance (a constant target teaches nothing);
    without it every column is kept, its statistics taken over its finite values
    and a zero spread replaced by 1.
    """
    if not clip > 0:
        raise ValueError(f"descriptor clip must be > 0, got {clip!r}")
    valid_rows = ~np.isnan(raw).all(axis=1)
    data = raw[valid_rows]
    if len(data) == 0:
        raise ValueError("no parseable molecule to fit descriptor statistics on")
    finite = np.isfinite(data)
    with np.errstate(invalid="ignore", over="ignore"):
        masked = np.where(finite, data, np.nan)
        mean = np.nan_to_num(np.nanmean(masked, axis=0), nan=0.0)
        std = np.nan_to_num(np.nanstd(masked, axis=0), nan=0.0)
    std = np.where(np.isfinite(std), std, 0.0)
    if drop_nonfinite:
        keep = finite.all(axis=0) & (std > 1e-12)
        if not keep.any():
            raise ValueError(
                f"every descriptor is non-finite or constant on these {len(data)} molecules; "
                "fit on a larger, more varied set"
            )
    else:
        keep = np.ones(raw.shape[1], dtype=bool)
    columns = np.flatnonzero(keep)
    spread = np.where(std[columns] > 1e-12, std[columns], 1.0)
    return DescriptorScaling(columns, mean[columns], spread, float(clip))


class RDKitDescriptors(nn.Module):
    """RDKit 2D descriptors as a float ``[B, n_descriptors]`` "embedding" (no parameters).

    Every descriptor of :func:`descriptor_names` is kept (so ``embed_dim`` does not
    depend on the data), z-scored with statistics of the dataset's training
    molecules and clipped to ``[-clip, clip]``; non-finite values become 0. The
    scaling is affine per column, so the linear probe (which standardises) and the
    random forest see the same information as in the raw values; it is there so
    that fine-tuning a linear head on descriptors starts from sane input scales.
    """

    def __init__(self, scaling: DescriptorScaling | None = None) -> None:
        super().__init__()
        self.names = descriptor_names()
        n = len(self.names)
        self.scaling = scaling or DescriptorScaling(
            np.arange(n), np.zeros(n), np.ones(n), float(np.finfo(np.float32).max) / 1e3
        )
        if len(self.scaling.columns) != n:
            raise ValueError(f"molecular.rdkit_descriptors keeps all {n} descriptors; "
                             "fit its scaling with drop_nonfinite=False")
        self.embed_dim: int = n

    def embed(self, batch: Any) -> torch.Tensor:
        raw = compute_descriptors(_smiles_of(batch, "molecular.rdkit_descriptors"))
        z = self.scaling.transform(raw)
        return torch.from_numpy(z.astype(np.float32)).to(_device_of(batch))

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


def fit_smiles(dataset: SSLDataset, limit: int = 5000) -> list[str]:
    """SMILES to fit feature statistics on: the labelled ``train`` split, else the
    pretraining set (its first ``limit`` molecules)."""
    train = dataset.labelled_split("train") if "train" in dataset.splits else None
    if train is not None:
        return [str(train[i][0]) for i in range(len(train))]  # type: ignore[arg-type]
    first = getattr(dataset, "first_pretrain_smiles", None)
    if first is not None:  # a token cache's items are ids: let the dataset decode them
        return list(first(limit))
    pre = dataset.pretrain_set()
    return [str(pre[i]) for i in range(min(limit, len(pre)))]  # type: ignore[arg-type]
