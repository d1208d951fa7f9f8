"""MoLFormer-style pretraining on the MOSES corpus at a documented budget, saved for reuse.

MoLFormer (Ross et al., Nat. Mach. Intell. 2022) pretrains a linear-attention
transformer by masked language modelling on 1.1 billion SMILES; its claim is
about scale. :func:`pretrain` runs that recipe (``molecular.mlm`` on
``molecular.molformer``) on the MOSES token cache, streamed
(:class:`~selfsup_molecular.streaming.TokenStream`), for a budget counted in
*molecules seen*, and saves the encoder at the milestones of ``snapshots`` (the
learning curve) and at the end:

    <plugin cache>/pretrained/<key>/
        encoder-<molecules>.safetensors   the encoder's weights
        encoder-<molecules>.json          card: config, key, cache fingerprint,
                                          vocabulary, molecules seen, steps, loss,
                                          seconds, versions

``key`` hashes the :class:`PretrainConfig` (everything that changes the weights)
and the token cache's fingerprint, so a benchmark finds the encoder of its setting
without retraining (:func:`load`, the ``molecular.pretrained`` baseline), and a
changed setting or corpus never picks up a stale one.

Where this differs from MoLFormer: a far smaller model and corpus; the
learning-rate schedule is linear warm-up then constant (so a snapshot at N
molecules is the model a shorter run of the same setting would give, up to the
missing decay); one process unless launched under torchrun (the stream then shards
across ranks; gradients are not averaged here, use core's trainer for DDP).

Budgets (:data:`BUDGETS`): ``cpu``, sized to about 20-25 minutes on one CPU core
(measured: BENCHMARKS.md); ``gpu_train``, the full corpus for several epochs at
MoLFormer-like width, for a lent GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from selfsup.api import BaselineContext, NotApplicable, SSLDataset

from .moses import CachedSmilesDataset, collate_ids
from .streaming import TokenStream
from .token_cache import TokenCache

log = logging.getLogger(__name__)

CARD_FORMAT = "selfsup-molecular/pretrained-encoder"


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining setting. ``molecules``: how many to see in total (epochs over
    the corpus if more than it holds); ``corpus_size``: a seeded subset of the cache
    (None: all of it); ``snapshots``: molecule counts at which the encoder is saved
    besides the end."""

    encoder: dict[str, Any] = field(default_factory=lambda: {
        "embed_dim": 64, "n_layers": 2, "n_heads": 4, "ffn_dim": 128, "dropout": 0.1})
    mlm: dict[str, Any] = field(default_factory=dict)
    molecules: int = 1_000_000
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    corpus_size: int | None = None
    snapshots: tuple[int, ...] = (10_000, 100_000)

    def key(self, cache_fingerprint: str) -> str:
        """Hash of the setting (snapshots excluded) and the corpus."""
        data = dataclasses.asdict(self)
        data.pop("snapshots")
        blob = json.dumps(data, sort_keys=True) + "|" + cache_fingerprint
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: the documented settings; BENCHMARKS.md ("Molecular plugin at scale") has their
#: measured time and learning curve
BUDGETS: dict[str, PretrainConfig] = {
    # one CPU core, about 20-25 minutes: 64 wide, 2 layers, 600k molecules seen (38% of
    # the corpus, once); measured 500-600 molecules/s on a shared core, so 1M would
    # take about 30 minutes
    "cpu": PretrainConfig(molecules=600_000, snapshots=(10_000, 30_000, 100_000, 300_000)),
    # a GPU: MoLFormer's base is 768 wide x 12 layers; 256 x 6 (about 4.8M parameters)
    # over the whole corpus 10 times. Not measured: no GPU was lent to the session that
    # wrote it (BENCHMARKS.md says what is measured)
    "gpu_train": PretrainConfig(
        encoder={"embed_dim": 256, "n_layers": 6, "n_heads": 8, "ffn_dim": 1024,
                 "dropout": 0.1},
        molecules=15_846_640, batch_size=512, lr=5e-4, warmup_steps=2000,
        snapshots=(100_000, 1_000_000, 3_000_000),
    ),
}


def pretrained_folder(root: Path | None = None) -> Path:
    from .corpus import cache_folder

    if root is not None:
        return Path(root)
    base = cache_folder()
    if base is None:
        raise ValueError("pretrained encoders need a folder, and SELFSUP_MOLECULAR_CACHE is "
                         "off; set it to a folder or pass folder=")
    return base / "pretrained"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_snapshot(encoder: torch.nn.Module, folder: Path, card: dict[str, Any]) -> Path:
    """Write ``encoder-<molecules>.safetensors`` and its JSON card; returns the weights."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"encoder-{int(card['molecules_seen'])}"
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    _atomic_write(folder / f"{stem}.safetensors", save(state))
    _atomic_write(folder / f"{stem}.json", (json.dumps(card, indent=1) + "\n").encode())
    return folder / f"{stem}.safetensors"


def snapshots(folder: Path) -> list[tuple[int, Path]]:
    """``(molecules seen, weights path)`` of every snapshot in ``folder``, ascending."""
    out = []
    for card in folder.glob("encoder-*.json"):
        weights = card.with_suffix(".safetensors")
        if weights.is_file():
            out.append((int(card.stem.split("-")[1]), weights))
    return sorted(out)


def load(weights: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The encoder saved at ``weights`` (eval mode) and its card."""
    from safetensors.torch import load_file

    from .molformer import MolFormerConfig, MolFormerEncoder
    from .tokenizer import SmilesTokenizer

    card = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{weights}: its card is not a {CARD_FORMAT} card")
    tok = SmilesTokenizer.from_dict(card["tokenizer"])
    cfg = MolFormerConfig(**card["config"]["encoder"])
    encoder = MolFormerEncoder(tok.vocab_size, tok.pad_id, cfg, tok.mask_id)
    encoder.load_state_dict(load_file(str(weights)))
    return encoder.eval(), card


def pretrain(
    config: PretrainConfig,
    cache: TokenCache,
    *,
    folder: Path | None = None,
    device: str = "cpu",
    num_workers: int = 0,
    reuse: bool = True,
    log_every: int = 50,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Pretrain ``config`` on ``cache``; returns the folder of its snapshots.

    With ``reuse`` and a finished run of the same key in ``folder``, nothing is
    trained. ``on_log`` receives a dict per ``log_every`` steps (step, molecules,
    loss, molecules/s, tokens/s).
    """
    from .molformer import build as build_encoder
    from .moses import subset
    from .pretexts.mlm import build as build_mlm

    key = config.key(cache.fingerprint)
    out = pretrained_folder(folder) / key
    final = out / f"encoder-{config.molecules}.safetensors"
    if reuse and final.is_file():
        log.info("reusing %s", final)
        return out
    torch.manual_seed(config.seed)
    indices = subset(len(cache), config.corpus_size, config.seed)
    dataset = CachedSmilesDataset(cache, indices, name="molecular.moses",
                                  max_length=int(cache.manifest["max_length"]))
    encoder = build_encoder(dataset, **config.encoder)
    task = build_mlm(encoder, dataset, **config.mlm).to(device).train()
    decay = [p for n, p in task.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in task.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    warm = max(1, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    stream = TokenStream(cache, indices=indices, seed=config.seed)
    tokenizer = cache.tokenizer
    gen = torch.Generator(device=device).manual_seed(config.seed)
    milestones = sorted({m for m in config.snapshots if m < config.molecules}
                        | {config.molecules})
    card_base = {
        "format": CARD_FORMAT, "key": key, "config": dataclasses.asdict(config),
        "cache_fingerprint": cache.fingerprint, "corpus_molecules": len(indices),
        "tokenizer": tokenizer.to_dict(), "versions": _versions(), "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    seen = step = epoch = 0
    t0 = time.perf_counter()
    window_t, window_mols, window_toks, loss_sum = t0, 0, 0, 0.0
    while seen < config.molecules:
        stream.set_epoch(epoch)
        # items one by one (sharded by rank and worker), batched here by length:
        # pools of 50 batches sorted by token count, so a batch pads little
        items = DataLoader(stream, batch_size=None, num_workers=num_workers)
        for batch in _bucketed(items, config.batch_size, tokenizer, config.seed + epoch):
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            loss = task(batch, gen)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            n = int(batch["input_ids"].shape[0])
            seen += n
            window_mols += n
            window_toks += int(batch["attention_mask"].sum())
            loss_sum += float(loss.detach())
            if step % log_every == 0:
                now = time.perf_counter()
                record = {"step": step, "molecules": seen, "epoch": epoch,
                          "loss": loss_sum / log_every, "seconds": now - t0,
                          "molecules_per_s": window_mols / (now - window_t),
                          "tokens_per_s": window_toks / (now - window_t)}
                (on_log or (lambda r: log.info("%s", r)))(record)
                window_t, window_mols, window_toks, loss_sum = now, 0, 0, 0.0
            while milestones and seen >= milestones[0]:
                card = {**card_base, "molecules_seen": milestones[0], "molecules_trained": seen,
                        "steps": step, "epoch": epoch, "seconds": time.perf_counter() - t0,
                        "last_loss": float(loss.detach())}
                save_snapshot(encoder, out, card)
                milestones.pop(0)
            if seen >= config.molecules:
                break
        epoch += 1
    return out


def _bucketed(items: Iterable[np.ndarray], batch_size: int, tokenizer: Any,
              seed: int, pool_batches: int = 50) -> Iterator[dict[str, Any]]:
    """Batches of ``items``: each pool of ``pool_batches`` batches is sorted by length,
    cut into batches, and the batches are yielded in a seeded random order."""
    rng = np.random.default_rng(seed)
    pool: list[np.ndarray] = []

    def drain() -> Iterator[dict[str, Any]]:
        pool.sort(key=len)
        batches = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        for k in rng.permutation(len(batches)):
            yield collate_ids(batches[k], tokenizer)
        pool.clear()

    for item in items:
        pool.append(item)
        if len(pool) == batch_size * pool_batches:
            yield from drain()
    if pool:
        yield from drain()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("selfsup", "selfsup-molecular", "torch", "rdkit"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# -- the baseline -----------------------------------------------------------------------------
def build_baseline(dataset: SSLDataset, context: BaselineContext, *, budget: str = "cpu",
                   molecules: int | None = None, folder: str | None = None,
                   corpus: str | None = None) -> torch.nn.Module:
    """``molecular.pretrained``: the encoder :func:`pretrain` saved for ``budget`` on
    the MOSES corpus (``corpus``: another MOSES-format file; default the installed
    training set), ``molecules``: a snapshot (default the end), loaded, not trained.

    NotApplicable when the encoder has not been trained yet (the reason names the
    command that trains it) or the dataset encodes SMILES with another vocabulary
    (use ``pretrain_on="moses"``)."""
    from .moses import corpus_fingerprint

    if budget not in BUDGETS:
        raise ValueError(f"molecular.pretrained: budget={budget!r} is unknown; use one of "
                         f"{sorted(BUDGETS)}")
    config = BUDGETS[budget]
    try:
        fp = corpus_fingerprint(None if corpus is None else Path(corpus))
    except FileNotFoundError as exc:
        raise NotApplicable(str(exc)) from None
    out = pretrained_folder(Path(folder) if folder else None) / config.key(fp)
    target = molecules or config.molecules
    weights = out / f"encoder-{target}.safetensors"
    if not weights.is_file():
        raise NotApplicable(
            f"no encoder pretrained at budget {budget!r} ({target} molecules) in {out}; "
            f"train it once with `python benchmarks/molecular_scale.py pretrain --budget {budget}`"
        )
    encoder, card = load(weights)
    tokens = getattr(getattr(dataset, "tokenizer", None), "tokens", None)
    if card["tokenizer"]["tokens"] != tokens:
        raise NotApplicable(f"{weights} was trained with the MOSES vocabulary and "
                            f"{dataset.name} encodes with another; build it with "
                            "pretrain_on='moses'")
    return encoder


__all__ = ["BUDGETS", "PretrainConfig", "build_baseline", "load", "pretrain", "save_snapshot",
           "snapshots"]
