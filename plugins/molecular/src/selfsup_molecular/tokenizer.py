"""A regex SMILES tokenizer with a vocabulary built from a corpus.

Tokens follow the pattern of Schwaller et al., "Molecular Transformer: A Model
for Uncertainty-Calibrated Chemical Reaction Prediction", ACS Cent. Sci. 2019:
a bracket atom (``[nH]``, ``[C@@H]``, ``[N+]``) is one token, ``Br`` and ``Cl``
are one token each, ring closures are single digits or ``%nn``, and every bond,
branch and dot symbol is its own token. ``%(nnn)`` ring closures, which RDKit
writes past 99 open rings, are one token too.

The vocabulary is saved as JSON beside an exported encoder, since token ids are
meaningless without it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

#: Schwaller et al. (2019), plus ``%(nnn)``.
SMILES_PATTERN = (
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$"
    r"|%\([0-9]+\)|%[0-9]{2}|[0-9])"
)
_REGEX = re.compile(SMILES_PATTERN)

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>")

# Always in the vocabulary, whatever the corpus: a randomized SMILES of a corpus
# molecule may open ring numbers or use bond symbols its canonical form does not.
BASE_TOKENS: tuple[str, ...] = (
    *"123456789",
    "0",
    *"()=#-+:/\\.",
    "C",
    "N",
    "O",
    "S",
    "P",
    "F",
    "Cl",
    "Br",
    "I",
    "B",
    *"cnosp",
    "b",
)

_FORMAT = "selfsup-molecular/smiles-tokenizer"
_FORMAT_VERSION = 1


def tokenize(smiles: str) -> list[str]:
    """Split ``smiles`` into tokens; ValueError if the pattern leaves a part uncovered."""
    tokens: list[str] = _REGEX.findall(smiles)
    if sum(map(len, tokens)) == len(smiles):  # matches never overlap: all covered
        return tokens
    tokens = []
    pos = 0
    for match in _REGEX.finditer(smiles):
        if match.start() != pos:
            _uncovered(smiles, pos, match.start())
        tokens.append(match.group(0))
        pos = match.end()
    if pos != len(smiles):
        _uncovered(smiles, pos, len(smiles))
    return tokens


def _uncovered(smiles: str, start: int, end: int) -> None:
    raise ValueError(
        f"SMILES {smiles!r} cannot be tokenized: {smiles[start:end]!r} at position {start} "
        "matches no SMILES token (atoms outside the organic subset need brackets, e.g. [Si])"
    )


class SmilesTokenizer:
    """Maps SMILES to token ids: ``<pad>``=0, ``<unk>``=1, ``<bos>``=2, ``<eos>``=3,
    ``<mask>``=4, then :data:`BASE_TOKENS`, then corpus tokens by falling frequency."""

    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3
    mask_id = 4
    n_special = len(SPECIAL_TOKENS)

    def __init__(self, tokens: Sequence[str] | None = None) -> None:
        tokens = list(SPECIAL_TOKENS + BASE_TOKENS) if tokens is None else list(tokens)
        if tuple(tokens[: self.n_special]) != SPECIAL_TOKENS:
            raise ValueError(
                f"a SMILES vocabulary must start with the special tokens {list(SPECIAL_TOKENS)}, "
                f"got {tokens[: self.n_special]}"
            )
        if len(set(tokens)) != len(tokens):
            dup = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"a SMILES vocabulary has duplicate tokens: {dup}")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, corpus_smiles: Iterable[str], min_freq: int = 1) -> SmilesTokenizer:
        """A vocabulary of the tokens occurring at least ``min_freq`` times in the corpus."""
        return cls.from_token_lists((tokenize(s) for s in corpus_smiles), min_freq)

    @classmethod
    def from_token_lists(
        cls, corpus_tokens: Iterable[Sequence[str]], min_freq: int = 1
    ) -> SmilesTokenizer:
        """:meth:`build` from already tokenized SMILES."""
        if min_freq < 1:
            raise ValueError(f"min_freq={min_freq!r} must be >= 1")
        counts: Counter[str] = Counter()
        for tokens in corpus_tokens:
            counts.update(tokens)
        tokens = list(SPECIAL_TOKENS + BASE_TOKENS)
        known = set(tokens)
        # ties broken by the token itself, so the same corpus gives the same ids
        for tok, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if n >= min_freq and tok not in known:
                tokens.append(tok)
                known.add(tok)
        return cls(tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SmilesTokenizer) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(tuple(self.tokens))

    def __repr__(self) -> str:
        return f"SmilesTokenizer(vocab_size={self.vocab_size})"

    # -- encoding -----------------------------------------------------------------------
    tokenize = staticmethod(tokenize)

    def encode(self, smiles: str, max_length: int | None = None) -> list[int]:
        """``<bos>`` + token ids + ``<eos>``; unknown tokens become ``<unk>``.

        ValueError when the result would be longer than ``max_length``.
        """
        ids = [self.bos_id, *self.encode_tokens(tokenize(smiles)), self.eos_id]
        if max_length is not None and len(ids) > max_length:
            raise ValueError(
                f"SMILES {smiles!r} has {len(ids)} tokens with <bos>/<eos>, more than "
                f"max_length={max_length}; raise max_length or drop the molecule"
            )
        return ids

    def encode_tokens(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_id
        return [self.index.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        """Join the tokens of ``ids``; with ``skip_special``, drop pad/bos/eos tokens."""
        drop = {self.pad_id, self.bos_id, self.eos_id} if skip_special else set()
        return "".join(self.tokens[int(i)] for i in ids if int(i) not in drop)

    # -- files --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "pattern": SMILES_PATTERN,
            "tokens": self.tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SmilesTokenizer:
        if data.get("format") != _FORMAT or not isinstance(data.get("tokens"), list):
            raise ValueError(
                f"not a SMILES tokenizer file (expected format {_FORMAT!r} with a token list)"
            )
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"SMILES tokenizer file version {data.get('version')!r} is not supported "
                f"(this selfsup-molecular reads version {_FORMAT_VERSION})"
            )
        return cls([str(t) for t in data["tokens"]])  # type: ignore[attr-defined]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> SmilesTokenizer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON SMILES tokenizer file: {exc}") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
