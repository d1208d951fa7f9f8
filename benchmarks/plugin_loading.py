"""How long `selfsup plugins` and `selfsup --help` take, and what they import.

Target (issue: core): `selfsup plugins` with every plugin installed returns in
under 2 s on the 2-core CPU machine, importing neither torch nor a domain library.

    python benchmarks/plugin_loading.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "numpy", "sklearn", "matplotlib", "monai", "torch_geometric", "scanpy",
         "rdkit", "torchaudio", "open3d")
PROBE = """
import json, sys
import selfsup.cli as c
try:
    c.main({argv!r})
except SystemExit:  # --help exits
    pass
print('IMPORTED', json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr)
"""


def time_command(argv: list[str], repeats: int) -> tuple[float, list[str]]:
    times = []
    imported: list[str] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
            capture_output=True, text=True, check=False,
        )
        times.append(time.perf_counter() - t0)
        line = [x for x in out.stderr.splitlines() if x.startswith("IMPORTED")]
        imported = json.loads(line[-1].split(" ", 1)[1]) if line else ["<probe failed>"]
    return statistics.median(times), imported


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print("| command | median wall time (s) | heavy modules imported |")
    print("| --- | --- | --- |")
    for argv in (["--help"], ["plugins"], ["list", "pretext"]):
        median, imported = time_command(argv, args.repeats)
        print(f"| selfsup {' '.join(argv)} | {median:.2f} | {', '.join(imported) or 'none'} |")


if __name__ == "__main__":
    main()
