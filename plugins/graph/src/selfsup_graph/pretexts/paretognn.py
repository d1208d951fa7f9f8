"""ParetoGNN: several graph pretexts trained at once, combined by MGDA.

Ju, Fan, Chen, Wang, Liu, Chawla, "Multi-task Self-supervised Graph Neural
Networks Enable Stronger Task Generalization", ICLR 2023. One encoder is shared
by several pretext tasks, each with its own heads; every step the task losses
are combined with the multiple-gradient-descent weights (the min-norm point of
the task gradients on the shared parameters, ``selfsup.api.mgda_combine``), so the
update does not favour one pretext at the others' expense and the encoder moves
towards the Pareto front of the tasks.

``tasks``: registered pretext keys (default GRACE, DGI and GraphMAE: a
contrastive, a mutual-information and a reconstruction task, in the spirit of the
paper's mix of pretexts); each is built with its own default options on the
shared encoder. ``normalization``: how task gradients are scaled before the
min-norm solve; as in Sener and Koltun's and the ParetoGNN authors' code, the
weights found multiply the raw losses. The default, ``"none"``, is MGDA as
Désidéri defines it (and LibMTL's default): the min-norm point of the raw task
gradients, a direction along which every task loss falls at the same first-order
rate, so a task whose gradient is small (a slow structural pretext beside a fast
feature one) is not drowned. Each step logs every task's loss and MGDA weight
(``loss/<task>``, ``weight/<task>``).

Where this differs from the authors: their default is ``--grad_norm l2``
(``src/options.py``). With the weights applied to the raw losses, ``"l2"`` gives
two tasks 0.5 each whatever their gradients (a plain average, dominated by the
task with the larger raw gradient), and until issue 16 our default was Sener and
Koltun's ``"loss+"``, under which a normalised gradient has norm ``1 / loss`` and
the task with the largest loss takes the weight: GRACE's InfoNCE (about 5.5,
against 0.2-0.7 for DGI and GraphMAE) got 0.94-0.99 and ParetoGNN was GRACE. On
``graph.two_factor`` (label ``2b + a``, ``b`` only in the edges, ``a`` only in
the features) ParetoGNN of node clustering and pairwise distance beats either task
alone with ``"none"`` and ``"loss"``, not with ``"l2"`` or ``"loss+"``
(BENCHMARKS.md, "Sanity settings and the rows below their input (issue 16)").

Faces: ParetoGNN declares the ``tokens`` face, the one its default tasks train,
and every task it combines must train that face too (the runner checks only
ParetoGNN's own face against the encoder). Before selfsup 0.2 any task of the
dataset's modality was accepted, e.g. ``core.barlow_twins`` (``embedding``) beside
GRACE on a GCN; such a mix is now refused at build time, since nothing guarantees
that the encoder offers a second face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from selfsup.api import (
    MGDA_NORMALIZATIONS,
    TOKENS,
    IncompatibleError,
    PretextTask,
    SSLDataset,
    get_registry,
    mgda_combine,
    one_of,
    option,
    parse_options,
)

NAME = "graph.paretognn"


def _task_keys(value: Any) -> str | None:
    tasks = (value,) if isinstance(value, str) else value
    ok = (
        isinstance(tasks, Sequence)
        and all(isinstance(t, str) for t in tasks)
        and len(tasks) >= 2
        and len(set(tasks)) == len(tasks)
        and NAME not in tasks
    )
    if ok:
        return None
    return (f"name at least two different pretexts, not {NAME} itself; e.g. "
            "tasks=['graph.grace', 'graph.dgi']")


@dataclass(frozen=True)
class ParetoGNNConfig:
    """Options of :func:`build` (``graph.paretognn``)."""

    tasks: Sequence[str] = option(
        ("graph.grace", "graph.dgi", "graph.graphmae"), _task_keys,
        "registered pretext keys, each built with its own defaults on the shared encoder; "
        "each must train the tokens face",
    )
    normalization: str = option(
        "none", one_of(*MGDA_NORMALIZATIONS),
        "how task gradients are scaled before the min-norm solve: none (plain MGDA), l2 "
        "(the authors'; two tasks get 0.5 each), loss, loss+ (leans to the largest loss)",
    )


class ParetoGNN(nn.Module, PretextTask):
    """The shared encoder, one sub-task per pretext, and the MGDA combination."""

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: ParetoGNNConfig) -> None:
        super().__init__()
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
            if spec.face != TOKENS:  # the runner guaranteed the tokens face, and only it
                fitting = [s.name for s in registry.specs("pretext") if s.face == TOKENS
                           and s.accepts(dataset.modality) and s.name != NAME]
                raise IncompatibleError(
                    f"{NAME} trains the encoder's {TOKENS!r} face, and task {key!r} trains "
                    f"{spec.face!r}; combine tasks that train {TOKENS!r}: {', '.join(fitting)}"
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
            cast(PretextTask, task).on_train_step_end(step, total_steps)


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> ParetoGNN:
    """``graph.paretognn`` factory; ``options`` are :class:`ParetoGNNConfig` fields."""
    return ParetoGNN(encoder, dataset, parse_options(ParetoGNNConfig, options, NAME))
