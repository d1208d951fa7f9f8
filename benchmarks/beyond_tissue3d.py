"""``core.beyond`` (adversarial-example detection) on ``medical.tissue3d``, from the command line.

The registered ``medical.tissue3d`` benchmark runs core's probes only. This script
registers a copy of it whose one evaluator is ``core.beyond`` (a local plugin
``medical_beyond``, key ``medical_beyond.tissue3d``) with a CPU-sized protocol, and
runs it through ``selfsup bench``'s own code, so the rows are produced exactly as
the registered benchmark's are:

    python benchmarks/beyond_tissue3d.py --out bench-beyond-t3d \\
        --pretext medical.context_restoration --pretext core.simclr \\
        --baseline core.input --baseline core.random_init

The protocol is smaller than core's default: 50 of the 282 test cubes (drawn per
seed), 10 views per cube instead of 50 (each 32^3 view is a MONAI affine on the
CPU), 5 PGD steps, seed 0. Without ``--pretext``/``--baseline`` every row of the
benchmark runs; its supervised baseline alone trains for about 40 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from selfsup import hookimpl
from selfsup.bench import run_bench
from selfsup.plugins import get_registry

NAME = "medical_beyond.tissue3d"  # a local plugin registers keys under its own name
OPTIONS = {"eps": [0.05, 0.25], "steps": 5, "neighbours": 10, "max_samples": 50}


class BeyondTissue3D:
    """A local plugin with one benchmark: medical.tissue3d evaluated by core.beyond."""

    def __init__(self, spec: Any) -> None:
        self.spec = dataclasses.replace(
            spec,
            name=NAME,
            evaluators=("core.beyond",),
            evaluator_options={"core.beyond": OPTIONS},
            summary=spec.summary + "; adversarial-example detection (core.beyond)",
        )

    @hookimpl
    def register_benchmarks(self, register: Any) -> None:
        register(self.spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-beyond-t3d")
    ap.add_argument("--pretext", action="append", help="only these pretexts (repeatable)")
    ap.add_argument("--baseline", action="append", help="only these baselines (repeatable)")
    args = ap.parse_args()
    registry = get_registry()
    registry.add_plugin(BeyondTissue3D(registry.get("benchmark", "medical.tissue3d")),
                        "medical_beyond")
    run_bench(args.out, benchmarks=[NAME], registry=registry, seeds=(0,),
              pretexts=args.pretext, baselines=args.baseline)
    with open(f"{args.out}/results.md", encoding="utf-8") as fh:
        print(fh.read())


if __name__ == "__main__":
    main()
