"""SCGC: simple contrastive graph clustering, adapted to train a GNN encoder.

Yue Liu, Xihong Yang, Sihang Zhou & Xinwang Liu, "Simple Contrastive Graph
Clustering", arXiv:2205.07865 (2022); IEEE Transactions on Neural Networks and
Learning Systems, 2023. The paper (and the authors' code, yueliu1999/SCGC):

1. low-pass denoising: ``X~ = (I - L~)^t X = A_hat^t X`` with
   ``A_hat = D~^{-1/2} (A + I) D~^{-1/2}`` (the renormalised adjacency, self loops
   added), ``t`` = ``smoothing_steps`` (3 in the authors' code); computed once;
2. two MLP encoders with unshared parameters (a single linear layer each in the
   authors' code) embed ``X~``; rows are L2-normalised: ``Z1, Z2 [N, D]``;
   augmentation is Gaussian noise added to ``Z2`` (``sigma = 0.01``), no graph
   augmentation;
3. the cross-view structural consistency loss pulls the cross-view cosine
   similarity matrix ``S = Z1 Z2^T`` ``[N, N]`` towards the self-looped adjacency:
   ``L_nc = 1/N^2 ||S - (A + I)||_F^2`` (``F.mse_loss(S, A + I)`` in the code), so a
   node's positives are itself and its neighbours in the other view;
4. clusters come from k-means on ``(Z1 + Z2) / 2`` after training.

**Adaptation.** In selfsup the exported module is the given GNN encoder, so it must
be the one that learns. View 1 is ``Z1 = normalize(H)``, ``H`` the node states of the
encoder's ``tokens`` face (``encoder.tokens(graph).flat()``; selfsup 0.1 called
``encoder.node_states``, with the same values):
the GNN's message passing on the raw graph takes the place of the paper's MLP on
``X~`` (both are low-pass filters of the features, and a GNN trained on ``X~``
through an edgeless graph would be evaluated on an input it never saw). View 2 is
the paper's: one linear layer on the precomputed ``X~`` ``[N, F]``, normalised, plus
``N(0, sigma^2)`` noise drawn with the trainer's generator. The loss ``L_nc`` is the
paper's; it is computed exactly without forming ``S``:
``||S - T||^2 = sum((Z1^T Z1) * (Z2^T Z2)) - 2 sum_{(i,j): T_ij = 1} <z1_i, z2_j> + nnz(T)``,
``O(N D^2 + E D)`` time and ``O(N D + E)`` memory, so graphs of any size fit (the
paper's dense ``S`` is ``N^2``). The graph is taken as undirected.

**Soft cluster assignments** (:meth:`SCGC.cluster_assignments`, ``[N, n_clusters]``)
replace the paper's post-hoc k-means with a DEC head (Xie, Girshick & Farhadi,
"Unsupervised Deep Embedding for Clustering Analysis", ICML 2016), the
self-training of deep graph clustering methods such as SDCN and DFCN and of the
*other* SCGC (Kulatilleke, Portmann & Chandra, "SCGC: Self-Supervised Contrastive
Graph Clustering", arXiv:2204.12656, 2022, whose "influence-augmented" contrastive
loss is not this paper's loss):

- the fused embedding ``z = normalize((z1 + z2_clean) / 2)`` ``[N, D]`` (the
  paper's fusion, noise-free) against ``n_clusters`` centres ``mu`` ``[K, D]``;
- ``q_ik = softmax_k(cos(z_i, mu_k) / temperature)``: the embeddings lie on the unit
  sphere, where DEC's Student-t kernel is nearly flat, so a cosine kernel with a
  temperature takes its place;
- DEC's sharpened target ``p_ik ∝ q_ik^2 / sum_i q_ik`` (detached) and
  ``L_cl = KL(P || Q)`` (mean over nodes) train the centres and both views;
- the centres are initialised by k-means on ``z`` at the first step (seeded from the
  trainer's generator), as in DEC.

Because ``P`` is recomputed every step, ``L_cl`` is not a fixed objective: it can
rise while the assignments sharpen, so watch ``contrastive_loss`` for convergence.

``loss = L_nc + cluster_weight * L_cl``. Node-level only (``graph.node``; a batch is
the whole graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    GRAPH_NODE,
    PretextTask,
    SSLDataset,
    encoder_dim,
    non_negative,
    non_negative_int,
    option,
    parse_options,
    positive,
)

if TYPE_CHECKING:
    from torch_geometric.data import Data

NAME = "graph.scgc"


def _at_least_two(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 2
    return None if ok else "be an int >= 2"


@dataclass(frozen=True)
class SCGCConfig:
    """Options of :func:`build` (``graph.scgc``)."""

    n_clusters: int = option(10, _at_least_two, "clusters of the soft assignments")
    temperature: float = option(0.5, positive, "temperature of the assignments' cosine kernel")
    smoothing_steps: int = option(
        3, non_negative_int,
        "t, powers of the low-pass filter applied to the features (the paper's 3; 0: raw)",
    )
    sigma: float = option(0.01, non_negative, "std of view 2's Gaussian noise (the paper's 0.01)")
    cluster_weight: float = option(
        0.1, non_negative,
        "weight of the DEC term L_cl (0: the paper's loss alone; the centres then stay at "
        "their k-means initialisation)",
    )


# -- precomputation -------------------------------------------------------------------------


def self_looped_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The nonzeros ``[2, nnz]`` of ``A + I`` (undirected, binary, each entry once)."""
    from torch_geometric.utils import coalesce, to_undirected

    ei = edge_index.detach().cpu()
    ei = ei[:, ei[0] != ei[1]]
    ei = to_undirected(ei, num_nodes=num_nodes)
    loops = torch.arange(num_nodes).repeat(2, 1)
    return coalesce(torch.cat([ei, loops], dim=1), num_nodes=num_nodes)


def smooth_features(x: torch.Tensor, edge_index: torch.Tensor, steps: int) -> torch.Tensor:
    """``A_hat^steps x`` with ``A_hat = D~^{-1/2} (A + I) D~^{-1/2}`` ``[N, F]`` (float32)."""
    import scipy.sparse as sp

    n = x.shape[0]
    ei = self_looped_edges(edge_index, n).numpy()
    a = sp.csr_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(n, n))
    d = np.asarray(a.sum(axis=1)).ravel() ** -0.5  # >= 1 with the self loop
    a_hat = sp.diags(d) @ a @ sp.diags(d)
    out = x.detach().cpu().double().numpy()
    for _ in range(steps):
        out = a_hat @ out
    return torch.from_numpy(np.asarray(out, dtype=np.float32))


# -- losses ---------------------------------------------------------------------------------


def neighbour_contrastive_loss(
    z1: torch.Tensor, z2: torch.Tensor, target: torch.Tensor, num_nodes: int
) -> torch.Tensor:
    """``F.mse_loss(z1 @ z2.T, T)`` for the binary ``T`` with ones at ``target [2, nnz]``
    (distinct entries), without forming the ``[N, N]`` matrices.

    ``||S - T||^2 = ||S||^2 - 2 sum_T S + nnz`` and ``||Z1 Z2^T||^2 = sum((Z1^T Z1) * (Z2^T Z2))``.
    """
    squares = ((z1.T @ z1) * (z2.T @ z2)).sum()
    hits = (z1[target[0]] * z2[target[1]]).sum()
    return (squares - 2 * hits + target.shape[1]) / float(num_nodes) ** 2


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's target ``p_ik = (q_ik^2 / f_k) / sum_k' (q_ik'^2 / f_k')``, ``f_k = sum_i q_ik``."""
    weight = q.pow(2) / q.sum(dim=0).clamp(min=1e-12)
    return weight / weight.sum(dim=1, keepdim=True)


# -- the task -------------------------------------------------------------------------------


class SCGC(nn.Module, PretextTask):
    """The SCGC pretext task (adapted); see the module docstring.

    ``forward(data, generator)`` returns ``{"loss", "embedding", "contrastive_loss",
    "cluster_loss"}``; ``embedding`` is the node states ``[N, D]``, detached.
    :meth:`cluster_assignments` gives the soft assignments ``[N, n_clusters]``.
    """

    x_smooth: torch.Tensor
    target: torch.Tensor
    centres_ready: torch.Tensor

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: SCGCConfig) -> None:
        super().__init__()
        data = _node_graph(dataset)
        self.encoder = encoder
        self.config = config
        self.num_nodes = n = int(data.num_nodes)
        if n < config.n_clusters:
            raise ValueError(
                f"{NAME}: n_clusters={config.n_clusters} is more than the {n} nodes of "
                f"{dataset.name!r}; use a smaller n_clusters"
            )
        dim = encoder_dim(encoder, NAME)
        # Derived from the dataset: not persistent, rebuilt with the task.
        self.register_buffer(
            "x_smooth",
            smooth_features(data.x, data.edge_index, config.smoothing_steps),
            persistent=False,
        )
        self.register_buffer("target", self_looped_edges(data.edge_index, n), persistent=False)
        # View 2's encoder: the paper's single linear layer.
        self.view2 = nn.Linear(int(data.x.shape[1]), dim)
        self.centres = nn.Parameter(torch.zeros(config.n_clusters, dim))
        self.register_buffer("centres_ready", torch.zeros((), dtype=torch.bool))

    # -- the two views ------------------------------------------------------------------
    def views(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(h [N, D], z1 [N, D], z2 [N, D])``: node states, their normalised rows and
        the noise-free normalised view 2."""
        if getattr(batch, "num_nodes", None) != self.num_nodes:
            raise ValueError(
                f"{NAME} precomputed its smoothed features for the dataset's graph of "
                f"{self.num_nodes} nodes but got a batch with "
                f"{getattr(batch, 'num_nodes', None)} nodes; train on the dataset's own graph"
            )
        h = self.encoder.tokens(batch).flat()
        return h, F.normalize(h, dim=1), F.normalize(self.view2(self.x_smooth), dim=1)

    @staticmethod
    def fuse(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The paper's fusion ``(z1 + z2) / 2``, renormalised for the cosine kernel."""
        return F.normalize((z1 + z2) / 2, dim=1)

    def log_assignments(self, z: torch.Tensor) -> torch.Tensor:
        """``log q`` ``[N, K]``: log-softmax of ``cos(z_i, mu_k) / temperature``."""
        logits = z @ F.normalize(self.centres, dim=1).T / self.config.temperature
        return F.log_softmax(logits, dim=1)

    @torch.no_grad()
    def init_centres(self, z: torch.Tensor, generator: torch.Generator) -> None:
        """k-means (seeded from ``generator``) on the fused embeddings ``z [N, D]``."""
        from sklearn.cluster import KMeans

        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
        km = KMeans(n_clusters=self.config.n_clusters, n_init=10, random_state=seed)
        km.fit(z.detach().cpu().double().numpy())
        centres = torch.from_numpy(km.cluster_centers_).to(self.centres)
        self.centres.copy_(F.normalize(centres, dim=1))
        self.centres_ready.fill_(True)

    @torch.no_grad()
    def cluster_assignments(
        self, batch: Any, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Soft cluster assignments ``q`` ``[N, n_clusters]`` (rows sum to 1).

        Before the first training step the centres are initialised here, with
        ``generator`` (default: seed 0).
        """
        _, z1, z2 = self.views(batch)
        z = self.fuse(z1, z2)
        if not bool(self.centres_ready):
            self.init_centres(z, generator or torch.Generator().manual_seed(0))
        return self.log_assignments(z).exp()

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        h, z1, z2_clean = self.views(batch)
        noise = torch.randn(z2_clean.shape, generator=generator, device=generator.device)
        z2 = z2_clean + self.config.sigma * noise.to(z2_clean)
        l_nc = neighbour_contrastive_loss(z1, z2, self.target, self.num_nodes)
        z = self.fuse(z1, z2_clean)
        if not bool(self.centres_ready):
            self.init_centres(z, generator)
        log_q = self.log_assignments(z)
        p = target_distribution(log_q.detach().exp())
        l_cl = F.kl_div(log_q, p, reduction="batchmean")
        loss = l_nc + self.config.cluster_weight * l_cl
        return {
            "loss": loss,
            "embedding": h.detach(),
            "contrastive_loss": l_nc.detach(),
            "cluster_loss": l_cl.detach(),
        }


def _node_graph(dataset: SSLDataset) -> Data:
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{NAME} clusters the nodes of one graph: it needs a 'graph.node' dataset, but "
            f"{dataset.name!r} has modality {dataset.modality!r}; for a set of graphs use a "
            "graph-level pretext such as graph.dsla or graph.graphcl"
        )
    pre = dataset.pretrain_set()
    if len(pre) != 1:  # type: ignore[arg-type]
        raise ValueError(
            f"{NAME} precomputes smoothed features of the dataset's graph, so the pretraining "
            f"set must be that one graph; {dataset.name!r} has {len(pre)} items"  # type: ignore[arg-type]
        )
    return pre[0]


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> SCGC:
    """``graph.scgc`` factory; ``options`` are :class:`SCGCConfig` fields."""
    return SCGC(encoder, dataset, parse_options(SCGCConfig, options, NAME))
