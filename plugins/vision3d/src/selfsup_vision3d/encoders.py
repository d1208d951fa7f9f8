"""Point-cloud encoders, each declaring its faces (batches are ``[B, N, 3]``).

- ``vision3d.pointnet``: PointNet (Qi et al., CVPR 2017) without the T-nets: a shared
  per-point MLP with batch norm and a max pool. Faces ``embedding`` ``[B, D]`` and
  ``dense`` ``[B, N, D]`` (each point's feature concatenated with the global one,
  mapped back to ``D``).
- ``vision3d.dgcnn``: DGCNN (Wang et al., TOG 2019): EdgeConv layers on a kNN graph
  recomputed in feature space at every layer (pure-torch kNN), their outputs
  concatenated and mapped to ``D``; max and mean pool, concatenated and projected to
  ``D``. Faces ``embedding`` and ``dense`` ``[B, N, D]``.
- ``vision3d.point_transformer``: the point-patch transformer of Point-BERT/Point-MAE
  (Yu et al., CVPR 2022; Pang et al., ECCV 2022): ``n_patches`` centres by
  farthest-point sampling, their ``group_size`` nearest points as patches
  (coordinates relative to the centre), a mini-PointNet patch embedding, an MLP
  position embedding of the centres, pre-norm transformer blocks. Faces
  ``embedding`` (mean plus max of the token states; Point-MAE's classifier uses
  ``[cls, max]``: there is no class token here), ``tokens`` ``[B, n_patches, D]``
  (every token real) and ``masked_tokens`` (a hidden patch's embedding is swapped for
  a learned mask embedding before the blocks; its centre's position is kept, as
  Point-MAE's decoder also receives it). Unlike Point-MAE's overlapping kNN groups,
  each point joins only its nearest centre's patch (:meth:`PointTransformer.group_indices`),
  so a hidden patch's points reach no visible token (the ``masked_tokens`` contract);
  points beyond a crowded cell's ``group_size`` nearest are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from selfsup.api import SSLDataset, Tokens, option, parse_options, positive_int

from .geometry import farthest_point_sample, gather, knn


def _mlp1d(*widths: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in pairwise(widths):
        layers += [nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


# -- PointNet --------------------------------------------------------------------------
@dataclass(frozen=True)
class PointNetConfig:
    """Options of ``vision3d.pointnet``."""

    embed_dim: int = option(256, positive_int, "width D of the embedding")
    width: int = option(64, positive_int, "width of the first per-point layers")


class PointNet(nn.Module):
    def __init__(self, config: PointNetConfig) -> None:
        super().__init__()
        w, d = config.width, config.embed_dim
        self.embed_dim = d
        self.local = _mlp1d(3, w, w)
        self.deep = _mlp1d(w, 2 * w, d)
        self.seg = _mlp1d(w + d, d)

    def _features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local = self.local(batch.float().transpose(1, 2))  # [B, w, N]
        return local, self.deep(local)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self._features(batch)[1].max(dim=2).values

    def dense(self, batch: torch.Tensor) -> torch.Tensor:
        local, deep = self._features(batch)
        glob = deep.max(dim=2, keepdim=True).values.expand(-1, -1, local.shape[2])
        return self.seg(torch.cat([local, glob], 1)).transpose(1, 2)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


# -- DGCNN -----------------------------------------------------------------------------
@dataclass(frozen=True)
class DGCNNConfig:
    """Options of ``vision3d.dgcnn``."""

    embed_dim: int = option(256, positive_int, "width D of the embedding")
    k: int = option(16, positive_int, "neighbours of each point (the paper: 20)")
    width: int = option(64, positive_int, "width of the EdgeConv layers (doubling in the last)")


class EdgeConv(nn.Module):
    """``max_j h([x_i, x_j - x_i])`` over the ``k`` nearest neighbours ``j`` of ``i``."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.mlp = nn.Sequential(nn.Conv2d(2 * c_in, c_out, 1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, C] -> [B, N, C_out]
        k = min(self.k, x.shape[1])
        idx = knn(x, x, k)  # [B, N, k], the point itself first
        nb = gather(x, idx)  # [B, N, k, C]
        centre = x[:, :, None].expand_as(nb)
        edge = torch.cat([centre, nb - centre], -1).permute(0, 3, 1, 2)  # [B, 2C, N, k]
        return self.mlp(edge).max(dim=-1).values.transpose(1, 2)


class DGCNN(nn.Module):
    def __init__(self, config: DGCNNConfig) -> None:
        super().__init__()
        w, d = config.width, config.embed_dim
        self.embed_dim = d
        self.convs = nn.ModuleList([EdgeConv(3, w, config.k), EdgeConv(w, w, config.k),
                                    EdgeConv(w, 2 * w, config.k)])
        self.fuse = _mlp1d(4 * w, d)
        self.head = nn.Sequential(nn.Linear(2 * d, d), nn.LayerNorm(d))

    def dense(self, batch: torch.Tensor) -> torch.Tensor:
        x, outs = batch.float(), []
        for conv in self.convs:
            x = conv(x)
            outs.append(x)
        return self.fuse(torch.cat(outs, -1).transpose(1, 2)).transpose(1, 2)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        f = self.dense(batch)
        return self.head(torch.cat([f.max(dim=1).values, f.mean(dim=1)], -1))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


# -- point-patch transformer -----------------------------------------------------------
@dataclass(frozen=True)
class PointTransformerConfig:
    """Options of ``vision3d.point_transformer`` (Point-MAE: 64 patches of 32 points
    from 1024, D 384, depth 12, 6 heads; sized here for CPUs)."""

    n_patches: int = option(32, positive_int, "patch centres by farthest-point sampling")
    group_size: int = option(16, positive_int, "points per patch (nearest the centre)")
    embed_dim: int = option(128, positive_int, "token width D")
    depth: int = option(4, positive_int, "transformer blocks")
    n_heads: int = option(4, positive_int, "attention heads")
    mlp_ratio: int = option(2, positive_int, "hidden width of each block's MLP, times D")


class PatchEmbed(nn.Module):
    """Point-MAE's mini-PointNet over each patch: ``[B, G, k, 3] -> [B, G, D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Linear(3, 64), nn.LayerNorm(64), nn.GELU(),
                                   nn.Linear(64, 128))
        self.second = nn.Sequential(nn.Linear(256, 256), nn.LayerNorm(256), nn.GELU(),
                                    nn.Linear(256, dim))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        f = self.first(patches)  # [B, G, k, 128]
        glob = f.max(dim=2, keepdim=True).values.expand_as(f)
        return self.second(torch.cat([glob, f], -1)).max(dim=2).values


class PointTransformer(nn.Module):
    def __init__(self, config: PointTransformerConfig) -> None:
        super().__init__()
        if config.embed_dim % config.n_heads:
            raise ValueError(f"vision3d.point_transformer: embed_dim={config.embed_dim} is not "
                             f"divisible by n_heads={config.n_heads}")
        d = config.embed_dim
        self.config = config
        self.embed_dim = d
        self.patch_embed = PatchEmbed(d)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, d))
        self.mask_embedding = nn.Parameter(torch.zeros(d))
        nn.init.trunc_normal_(self.mask_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(d, config.n_heads, config.mlp_ratio * d, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def group(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches ``[B, G, k, 3]`` (relative to their centre) and centres ``[B, G, 3]``."""
        x = batch.float()
        g = min(self.config.n_patches, x.shape[1])
        k = min(self.config.group_size, x.shape[1])
        idx, centres = self.group_indices(x, g, k)
        patches = gather(x, idx) - centres[:, :, None]
        return patches, centres

    @torch.no_grad()
    def group_indices(self, x: torch.Tensor, g: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Point indices ``[B, G, k]`` of each patch and the centres ``[B, G, 3]``: each
        point joins its nearest centre (patches never share a point), a patch keeps its
        ``k`` points nearest the centre, a cell of fewer points repeats its centre."""
        centres = gather(x, farthest_point_sample(x, g))
        d = torch.cdist(centres, x)  # [B, G, N]
        own = d.argmin(dim=1, keepdim=True) == torch.arange(g, device=x.device)[None, :, None]
        d = d.masked_fill(~own, float("inf"))
        near = d.topk(k, dim=-1, largest=False)
        idx = torch.where(torch.isinf(near.values), near.indices[..., :1], near.indices)
        return idx, centres

    def _states(self, batch: torch.Tensor, hide: torch.Tensor | None) -> torch.Tensor:
        patches, centres = self.group(batch)
        tokens = self.patch_embed(patches)
        if hide is not None:
            tokens = torch.where(hide[..., None], self.mask_embedding.to(tokens.dtype), tokens)
        return self.norm(self.blocks(tokens + self.pos_embed(centres)))

    def tokens(self, batch: torch.Tensor) -> Tokens:
        states = self._states(batch, None)
        return Tokens(states, torch.ones(states.shape[:2], dtype=torch.bool,
                                         device=states.device))

    def masked_tokens(self, batch: torch.Tensor, hide: torch.Tensor) -> Tokens:
        states = self._states(batch, hide.to(torch.bool))
        return Tokens(states, torch.ones(states.shape[:2], dtype=torch.bool,
                                         device=states.device))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        s = self._states(batch, None)
        return s.mean(dim=1) + s.max(dim=1).values

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


def build_pointnet(dataset: SSLDataset, **options: Any) -> PointNet:
    return PointNet(parse_options(PointNetConfig, options, "vision3d.pointnet"))


def build_dgcnn(dataset: SSLDataset, **options: Any) -> DGCNN:
    return DGCNN(parse_options(DGCNNConfig, options, "vision3d.dgcnn"))


def build_point_transformer(dataset: SSLDataset, **options: Any) -> PointTransformer:
    return PointTransformer(parse_options(PointTransformerConfig, options,
                                          "vision3d.point_transformer"))


class DepthCNN(nn.Module):
    """A small 2D CNN for depth views ``[B, 1, H, W] -> [B, embed_dim]``: four
    stride-2 conv-BN-ReLU blocks and a global mean pool. The depth branch of
    ``vision3d.depth_contrast`` (not registered as an encoder: its input is an image)."""

    def __init__(self, embed_dim: int = 128, width: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        chans = [1, width, 2 * width, 4 * width, embed_dim]
        layers: list[nn.Module] = []
        for a, b in pairwise(chans):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(b),
                       nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        return self.net(depth).mean(dim=(2, 3))
