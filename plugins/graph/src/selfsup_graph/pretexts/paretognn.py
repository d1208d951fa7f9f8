"""ParetoGNN: several graph pretexts trained at once, combined by MGDA.

Ju, Fan, Chen, Wang, Liu, Chawla, "Multi-task Self-supervised Graph Neural
Networks Enable Stronger Task Generalization", ICLR 2023. One encoder is shared
by several pretext tasks, each with its own heads; every step the task losses
are combined with the multiple-gradient-descent weights (the min-norm point of
the task gradients on the shared parameters, :mod:`selfsup.mgda`), so the
update does not favour one pretext at the others' expense and the encoder moves
towards the Pareto front of the tasks.

``tasks``: registered pretext keys (default GRACE, DGI and GraphMAE: a
contrastive, a mutual-information and a reconstruction task, in the spirit of the
paper's mix of pretexts); each is built with its own default options on the
shared encoder. ``normalization``: how task gradients are scaled before solving
(Sener and Koltun's ``"loss+"`` by default). Each step logs every task's loss
and MGDA weight (``loss/<task>``, ``weight/<task>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.mgda import NORMALIZATIONS, mgda_combine
from selfsup.objectives.projection import config_from_options

NAME = "graph.paretognn"


@dataclass(frozen=True)
class ParetoGNNConfig:
    """Options of :func:`build` (``graph.paretognn``)."""

    tasks: Sequence[str] = field(
        default_factory=lambda: ("graph.grace", "graph.dgi", "graph.graphmae")
    )
    normalization: str = "loss+"

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks) if not isinstance(self.tasks, str) else (self.tasks,)
        object.__setattr__(self, "tasks", tasks)
        if len(tasks) < 2 or len(set(tasks)) != len(tasks):
            raise ValueError(
                f"{NAME}.tasks must name at least two different pretexts, got "
                f"{list(tasks)}; e.g. tasks=['graph.grace', 'graph.dgi']"
            )
        if NAME in tasks:
            raise ValueError(f"{NAME}.tasks cannot contain {NAME} itself")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"{NAME}.normalization must be one of {list(NORMALIZATIONS)}, got "
                f"{self.normalization!r}"
            )


class ParetoGNN(nn.Module, PretextTask):
    """The shared encoder, one sub-task per pretext, and the MGDA combination."""

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: ParetoGNNConfig) -> None:
        super().__init__()
        from selfsup.plugins import get_registry

        registry = get_registry()
        self.encoder = encoder
        self.config = config
        self.names = list(config.tasks)
        tasks = []
        for key in self.names:
            spec = registry.get("pretext", key)
            if not spec.accepts(dataset.modality):
                raise ValueError(
                    f"{NAME}: task {key!r} does not accept dataset "
                    f"{dataset.name!r} ({dataset.modality}); pick tasks that do"
                )
            tasks.append(spec.build(encoder, dataset))
        self.tasks = nn.ModuleList(tasks)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        outs = [task(batch, generator) for task in self.tasks]
        losses = [out["loss"] for out in outs]
        if torch.is_grad_enabled():
            total, weights = mgda_combine(
                losses, list(self.encoder.parameters()), normalization=self.config.normalization
            )
        else:  # no gradients to weigh (evaluation under no_grad): report the plain mean
            weights = torch.full((len(losses),), 1.0 / len(losses))
            total = sum(w * loss for w, loss in zip(weights, losses))  # type: ignore[assignment]
        result: dict[str, torch.Tensor] = {"loss": total}
        if "embedding" in outs[0]:
            result["embedding"] = outs[0]["embedding"]
        for name, loss, weight in zip(self.names, losses, weights):
            result[f"loss/{name}"] = loss.detach()
            result[f"weight/{name}"] = weight
        return result

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        for task in self.tasks:
            hook = getattr(task, "on_train_step_end", None)
            if hook is not None:
                hook(step, total_steps)


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> ParetoGNN:
    """``graph.paretognn`` factory; ``options`` are :class:`ParetoGNNConfig` fields."""
    return ParetoGNN(encoder, dataset, config_from_options(ParetoGNNConfig, options, NAME))
