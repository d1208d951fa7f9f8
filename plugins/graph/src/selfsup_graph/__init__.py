"""selfsup-graph: self-supervised learning on graphs and single-cell data.

Registers its datasets, encoders, pretext tasks, evaluators, baselines and benchmarks
with selfsup through the entry point ``graph`` (:mod:`selfsup_graph.plugin`).
Importing this package imports neither torch-geometric nor scanpy.
"""

__version__ = "0.1.0"
