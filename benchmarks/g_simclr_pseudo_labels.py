"""What ``core.g_simclr``'s pseudo-labels are, and SimCLR beside it where a benchmark lacks it.

Two measurements behind BENCHMARKS.md, "G-SimCLR and GroCo":

``labels``: builds ``core.g_simclr`` with the benchmark's own pretext options (the
DAE and k-means run at build time, before any training) for each kind of
pseudo-label, labels the train split, and compares with the true classes: NMI,
the share of all sample pairs it drops as negatives, how many of those are truly
same-class, and the share of the remaining negatives that are same-class (false
negatives), against plain NT-Xent's. "encoder" is the first clustering, of the
random-init encoder.

    python benchmarks/g_simclr_pseudo_labels.py labels --benchmark core.digits
    python benchmarks/g_simclr_pseudo_labels.py labels --benchmark graph.pbmc68k

``simclr``: runs ``selfsup bench`` on a copy of the benchmark that adds
``core.simclr`` with exactly ``core.g_simclr``'s options (heads, temperature), so
the two rows differ only in the guidance; ``--set`` as in ``selfsup bench``.

    python benchmarks/g_simclr_pseudo_labels.py simclr --benchmark graph.pbmc68k --out OUT
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from selfsup.components import BenchmarkSpec
from selfsup.hookspecs import hookimpl
from selfsup.objectives import g_simclr
from selfsup.plugins import get_registry


def labels(benchmark: str) -> None:
    reg = get_registry()
    spec = reg.get("benchmark", benchmark)
    dataset = reg.get("dataset", spec.dataset).build(**spec.dataset_options)
    options = dict(spec.pretext_options.get("core.g_simclr", {}))
    for mode in ("dae", "encoder"):
        torch.manual_seed(0)
        encoder = reg.get("encoder", spec.encoder).build(dataset, **spec.encoder_options)
        t0 = time.perf_counter()
        task = g_simclr.build(encoder, dataset, **{**options, "pseudo_labels": mode})
        seconds = time.perf_counter() - t0
        ys, ps = [], []
        for x, y, rows in dataset.labelled_batches("train", 4096):
            p = task.pseudo_labels(x)
            ys.append(y.numpy())
            ps.append((p if rows is None else p[rows]).numpy())
        y, p = np.concatenate(ys), np.concatenate(ps)
        off = ~np.eye(len(y), dtype=bool)
        same_p, same_y = (p[:, None] == p[None, :]) & off, (y[:, None] == y[None, :]) & off
        kept = off & ~same_p
        nmi = normalized_mutual_info_score(y, p)
        print(f"{benchmark} {mode}: build {seconds:.1f} s, NMI {nmi:.3f}, "
              f"negatives dropped {same_p.sum() / off.sum():.3f}, of them same class "
              f"{(same_p & same_y).sum() / max(same_p.sum(), 1):.3f}, same-class among kept "
              f"{(kept & same_y).sum() / kept.sum():.3f} (plain NT-Xent "
              f"{same_y.sum() / off.sum():.3f})")


class _Beside:
    """A plugin registering ``check.<benchmark>``: the benchmark plus core.simclr."""

    def __init__(self, spec: BenchmarkSpec) -> None:
        self.spec = spec

    @hookimpl
    def register_benchmarks(self, register: Any) -> None:
        options = {k: dict(v) for k, v in self.spec.pretext_options.items()}
        options["core.simclr"] = dict(options.get("core.g_simclr", {}))
        register(replace(self.spec, name="check." + self.spec.name.replace(".", "_"),
                         pretexts=(*self.spec.pretexts, "core.simclr"),
                         pretext_options=options))


def simclr(benchmark: str, out: str, settings: list[str]) -> None:
    from selfsup.bench import markdown_table, run_bench

    reg = get_registry()
    reg.add_plugin(_Beside(reg.get("benchmark", benchmark)), "check")
    name = "check." + benchmark.replace(".", "_")
    result = run_bench(out, benchmarks=[name], registry=reg,
                       pretexts=["core.simclr", "core.g_simclr"], baselines=[],
                       settings=settings)
    print(markdown_table(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=("labels", "simclr"))
    parser.add_argument("--benchmark", default="core.digits")
    parser.add_argument("--out", default="g_simclr_check")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.what == "labels":
        labels(args.benchmark)
    else:
        simclr(args.benchmark, args.out, args.set)


if __name__ == "__main__":
    main()
