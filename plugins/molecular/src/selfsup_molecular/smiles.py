"""The base of every molecular dataset: molecules as SMILES strings.

A sample is a canonical SMILES string. :meth:`SmilesDataset.collate` turns a list of
them into a batch dict::

    {"input_ids": LongTensor [B, L],       # <bos> tokens <eos>, padded with <pad>
     "attention_mask": BoolTensor [B, L],  # True on real tokens (incl. <bos>/<eos>)
     "smiles": list[str]}                  # the strings that were tokenized

``L`` is the longest sequence in the batch (at most ``max_length``). A labelled
item is ``(smiles, y)``, ``y`` a float32 scalar tensor (regression) or a long one
(classification).

Views (:meth:`SmilesDataset.augment`): each molecule is rewritten as a randomized
SMILES, re-tokenized, and each ordinary token is replaced by ``<mask>`` with
probability ``mask_prob``; the options are :class:`~selfsup_molecular.views.SmilesViews`,
given as the dataset's ``views`` table (see :mod:`selfsup_molecular.views`).

Bad input never stops a dataset from building: rows with an invalid SMILES
(unparseable, bad valence, empty), a molecule longer than ``max_length`` tokens,
or a missing label are skipped and recorded in ``dataset.skipped`` as
:class:`Skipped` records; :meth:`SmilesDataset.skip_summary` says how many, which
and why, and is logged once as a warning.

:func:`labelled_dataset` splits cleaned rows into train/val/test with
:mod:`selfsup_molecular.splits` (Bemis-Murcko scaffold or seeded random).

``name``, ``modality`` (``smiles``) and ``offline`` are declared on each
dataset's :class:`~selfsup.api.DatasetSpec` and stamped onto the built dataset by
the registry (0.2); ``name`` is also a constructor argument because the
constructor's error messages and skip report name the dataset.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from selfsup.api import SSLDataset, TaskSpec, parse_options

from . import chem
from .cleaning import (
    DEFAULT_MAX_LENGTH,
    EMPTY_SMILES,
    INVALID_LABEL,
    INVALID_SMILES,
    MISSING_LABEL,
    TOO_LONG,
    CleanRows,
    Skipped,
    clean_rows,
    n_tokens,
    summarize_skipped,
)
from .tokenizer import SmilesTokenizer, tokenize
from .views import SmilesViews

if TYPE_CHECKING:
    from rdkit import Chem

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_LENGTH", "EMPTY_SMILES", "INVALID_LABEL", "INVALID_SMILES", "MISSING_LABEL",
    "TOO_LONG", "CleanRows", "LabelledSmiles", "Skipped", "SmilesDataset", "SmilesList",
    "clean_rows", "n_tokens", "summarize_skipped",
]

# -- torch datasets -------------------------------------------------------------------------
class SmilesList(Dataset[str]):
    """Unlabelled SMILES strings."""

    def __init__(self, smiles: Sequence[str]) -> None:
        self.smiles = list(smiles)

    def __len__(self) -> int:
        return len(self.smiles)

    def __getitem__(self, i: int) -> str:
        return self.smiles[i]


class LabelledSmiles(Dataset[tuple[str, torch.Tensor]]):
    """``(smiles, y)`` items; ``y`` a scalar tensor."""

    def __init__(self, smiles: Sequence[str], y: torch.Tensor) -> None:
        if len(smiles) != len(y):
            raise ValueError(f"{len(smiles)} SMILES but {len(y)} labels")
        self.smiles, self.y = list(smiles), y

    def __len__(self) -> int:
        return len(self.smiles)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        return self.smiles[i], self.y[i]


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it (a benchmark
    builds the same dataset once per method)."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


# -- the dataset ----------------------------------------------------------------------------
class SmilesDataset(SSLDataset):
    """Molecules as SMILES: pretraining strings, labelled splits, tokenizer, views.

    ``pretrain_smiles`` should be canonical (see :func:`clean_rows`); exact duplicates
    are dropped and molecules longer than ``max_length`` tokens (with ``<bos>`` and
    ``<eos>``) are skipped and recorded. ``labelled`` maps a split name to
    ``(smiles, labels)``; its molecules must fit ``max_length`` (run them through
    :func:`clean_rows`). ``tokenizer``: built on the pretraining SMILES when not given.
    ``skipped``: rows the reader already left out, reported with the dataset's own.
    ``notes``: lines for :meth:`describe` (e.g. how many molecules were deduplicated).
    ``warn_skipped``: log the skipped rows as a warning (once per process), else as
    info (for shipped data whose few bad rows are known). ``views``: the options of
    :class:`~selfsup_molecular.views.SmilesViews` (default: its defaults).
    """

    def __init__(
        self,
        pretrain_smiles: Sequence[str],
        *,
        labelled: Mapping[str, tuple[Sequence[str], Sequence[float] | np.ndarray]] | None = None,
        task: TaskSpec | None = None,
        tokenizer: SmilesTokenizer | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        views: Mapping[str, Any] | None = None,
        name: str = "molecular.smiles",
        skipped: Sequence[Skipped] = (),
        notes: Sequence[str] = (),
        source: str = "",
        warn_skipped: bool = True,
    ) -> None:
        if not isinstance(max_length, int) or max_length < 3:
            raise ValueError(f"{name}: max_length={max_length!r} must be an int >= 3")
        self.views = parse_options(SmilesViews, views or {}, f"{name} views")
        self.name = name
        self.max_length = max_length
        self.source = source or name
        self.notes = list(notes)
        self.skipped: list[Skipped] = list(skipped)

        kept: list[str] = []
        kept_tokens: list[list[str]] = []
        seen: set[str] = set()
        self._lengths: list[int] = []
        for i, s in enumerate(pretrain_smiles):
            if not isinstance(s, str) or not s.strip():
                self.skipped.append(Skipped(f"pretrain {i}", str(s or ""), EMPTY_SMILES))
                continue
            if s in seen:
                continue
            seen.add(s)
            try:
                toks = tokenize(s)
            except ValueError as exc:
                self.skipped.append(Skipped(f"pretrain {i}", s, INVALID_SMILES, str(exc)))
                continue
            length = len(toks) + 2
            if length > max_length:
                detail = f"{length} tokens > max_length {max_length}"
                self.skipped.append(Skipped(f"pretrain {i}", s, TOO_LONG, detail))
                continue
            kept.append(s)
            kept_tokens.append(toks)
            self._lengths.append(length)
        self._pretrain = kept
        self.tokenizer = (
            tokenizer if tokenizer is not None else SmilesTokenizer.from_token_lists(kept_tokens)
        )

        labelled = dict(labelled or {})
        self.task = task if task is not None else TaskSpec("none")
        if labelled and self.task.kind not in ("classification", "regression"):
            raise ValueError(
                f"{name}: labelled splits need task kind 'classification' or 'regression', "
                f"got {self.task.kind!r}"
            )
        if not labelled and self.task.kind != "none":
            raise ValueError(f"{name}: task {self.task.kind!r} given without labelled splits")
        self.splits = tuple(labelled)
        self._labelled: dict[str, LabelledSmiles] = {}
        for split, (smiles, labels) in labelled.items():
            too_long = [s for s in smiles if n_tokens(s) > max_length]
            if too_long:
                raise ValueError(
                    f"{name}: {len(too_long)} molecule(s) of split {split!r} are longer than "
                    f"max_length={max_length} tokens (e.g. {too_long[0]!r}); "
                    "filter them with clean_rows() or raise max_length"
                )
            arr = np.asarray(labels, dtype=np.float64)
            if self.task.kind == "classification":
                y = torch.as_tensor(arr.astype(np.int64), dtype=torch.long)
            else:
                y = torch.as_tensor(arr, dtype=torch.float32)
            self._labelled[split] = LabelledSmiles(smiles, y)

        #: set by :func:`labelled_dataset`: pretraining molecules dropped because they
        #: are labelled ones, the split method and each split's source rows
        self.overlap_removed = 0
        self.split_method: str | None = None
        self.split_rows: dict[str, list[int | str]] = {}
        self._mols: dict[str, Chem.Mol] = {}
        self._fps: dict[str, np.ndarray] = {}
        if self.skipped and warn_skipped:
            _warn_once(f"{name}: {self.skip_summary()}")
        elif self.skipped:
            log.info("%s: %s", name, self.skip_summary())

    # -- SSLDataset ---------------------------------------------------------------------
    def pretrain_set(self) -> SmilesList:
        return SmilesList(self._pretrain)

    @property
    def pretrain_smiles(self) -> list[str]:
        return self.first_pretrain_smiles(None)

    def first_pretrain_smiles(self, n: int | None) -> list[str]:
        """The first ``n`` pretraining molecules as SMILES (all when None)."""
        return list(self._pretrain[:n])

    def labelled_split(self, split: str) -> LabelledSmiles | None:
        return self._labelled.get(split)

    def labelled_smiles(self, split: str) -> list[str]:
        return list(self._require_labelled(split).smiles)

    def labels(self, split: str) -> np.ndarray:
        return self._require_labelled(split).y.numpy()

    def _require_labelled(self, split: str) -> LabelledSmiles:
        ds = self._require_split(split)
        assert isinstance(ds, LabelledSmiles)
        return ds

    def sample_lengths(self) -> list[int]:
        """Token counts of the pretraining samples, ``<bos>`` and ``<eos>`` included."""
        return list(self._lengths)

    def collate(self, samples: Iterable[str]) -> dict[str, Any]:
        samples = list(samples)
        if samples and not isinstance(samples[0], str):
            raise TypeError(
                f"{self.name}: collate() takes SMILES strings, got {type(samples[0]).__name__}; "
                "labelled items (smiles, y) are collated by labelled_batches()"
            )
        return self.encode_batch(samples)

    def encode_batch(self, smiles: Sequence[str]) -> dict[str, Any]:
        """Tokenize and pad ``smiles`` into a batch dict (see the module docstring)."""
        ids = [self.tokenizer.encode(s, self.max_length) for s in smiles]
        return self._pad(ids, list(smiles))

    def _pad(self, ids: Sequence[Sequence[int]], smiles: list[str]) -> dict[str, Any]:
        width = max((len(x) for x in ids), default=0)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.bool)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.as_tensor(x, dtype=torch.long)
            mask[i, : len(x)] = True
        return {"input_ids": input_ids, "attention_mask": mask, "smiles": smiles}

    def augment(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """A view of each molecule: a randomized SMILES (``views.randomize``) with
        ``views.mask_prob`` token masking (:mod:`selfsup_molecular.views`)."""
        if not isinstance(batch, Mapping) or "smiles" not in batch:
            raise TypeError(
                f"{self.name}: augment() expects a batch dict from collate() with a 'smiles' "
                f"list, got {type(batch).__name__}"
            )
        gen_device = generator.device
        seed = int(torch.randint(2**62, (1,), generator=generator, device=gen_device))
        rng = random.Random(seed)
        views: list[str] = []
        ids: list[list[int]] = []
        for s in batch["smiles"]:
            view = chem.randomized(self._mol(s), rng) if self.views.randomize else s
            toks = tokenize(view)
            if len(toks) + 2 > self.max_length:
                view, toks = s, tokenize(s)
            views.append(view)
            ids.append([self.tokenizer.bos_id, *self.tokenizer.encode_tokens(toks),
                        self.tokenizer.eos_id])
        out = self._pad(ids, views)
        out["input_ids"], _ = self.mask_tokens(out["input_ids"], generator)
        device = batch["input_ids"].device if "input_ids" in batch else torch.device("cpu")
        out["input_ids"] = out["input_ids"].to(device)
        out["attention_mask"] = out["attention_mask"].to(device)
        return out

    def mask_tokens(
        self, input_ids: torch.Tensor, generator: torch.Generator, prob: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace each ordinary token (not pad/unk/bos/eos/mask) by ``<mask>`` with
        probability ``prob`` (default ``views.mask_prob``). Returns ``(masked_ids,
        masked)``, ``masked`` a BoolTensor of the replaced positions. Draws on ``generator``."""
        p = self.views.mask_prob if prob is None else float(prob)
        draw = torch.rand(input_ids.shape, generator=generator, device=generator.device)
        ordinary = input_ids >= self.tokenizer.n_special
        masked = (draw.to(input_ids.device) < p) & ordinary
        return input_ids.masked_fill(masked, self.tokenizer.mask_id), masked

    def _mol(self, smiles: str) -> Chem.Mol:
        mol = self._mols.get(smiles)
        if mol is None:
            mol = chem.to_mol(smiles)
            if mol is None:
                raise ValueError(f"{self.name}: cannot make a view of invalid SMILES {smiles!r}")
            if len(self._mols) < 200_000:  # parsed once per molecule, not once per step
                self._mols[smiles] = mol
        return mol

    def input_features(self, batch: dict[str, Any]) -> torch.Tensor:
        """Morgan fingerprints (radius 2, 2048 bits) of the batch's molecules: the
        'input features' baseline of molecular property prediction."""
        missing = [s for s in batch["smiles"] if s not in self._fps]
        if missing:
            for s, fp in zip(missing, chem.morgan_fingerprints(missing)):
                self._fps[s] = fp
        feats = np.stack([self._fps[s] for s in batch["smiles"]])
        return torch.as_tensor(feats, device=batch["input_ids"].device)

    def fingerprint(self) -> str:
        """Hash of the name, the canonical SMILES of every set, labels and the vocabulary."""
        h = hashlib.sha256(f"{self.name}:{self.modality}:{self.max_length}".encode())
        h.update("\n".join(self._pretrain).encode())
        for split, ds in self._labelled.items():
            h.update(f"\n#{split}\n".encode())
            h.update("\n".join(ds.smiles).encode())
            h.update(ds.y.numpy().tobytes())
        h.update("\n".join(self.tokenizer.tokens).encode())
        return h.hexdigest()[:16]

    # -- reporting ----------------------------------------------------------------------
    def skip_summary(self) -> str:
        return summarize_skipped(self.skipped, self.source)

    def describe(self) -> str:
        """A few lines: sizes, task, vocabulary, notes and skipped rows."""
        parts = [f"{len(self._pretrain)} pretraining molecules"]
        parts += [f"{split} {len(ds)}" for split, ds in self._labelled.items()]
        lines = [
            f"{self.name} ({self.task.kind}): " + ", ".join(parts),
            f"vocabulary {self.tokenizer.vocab_size} tokens, max_length {self.max_length}",
            *self.notes,
        ]
        if self.skipped:
            lines.append(self.skip_summary())
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(d)}" for s, d in self._labelled.items())
        return (f"{type(self).__name__}(name={self.name!r}, pretrain={len(self._pretrain)}"
                + (f", {sizes}" if sizes else "") + ")")
