"""Adversarial-example detection by the consistency of an input with its views (BEYOND).

After He, Yang, Chen, Xu & Ho, "Be Your Own Neighborhood: Detecting Adversarial
Examples by the Neighborhood Relations Built on Self-Supervised Learning" (BEYOND),
ICML 2024, arXiv 2209.00005 (first posted as "... Detecting Adversarial Example
..."). An adversarial example sits just across a decision boundary; its augmented
versions (its *neighbours*) fall back to the true class and away from it in
representation space, while a clean input agrees with its neighbours. BEYOND
scores each input by two neighbourhood relations, computed with a
self-supervised encoder and a linear classifier on its representation:

- *representation similarity*: the cosine similarity between the input's
  representation and its neighbours' (here the mean over ``neighbours`` views);
- *label consistency*: the share of neighbours whose predicted label equals the
  input's own predicted label.

The protocol here, per seed:

1. A multinomial logistic regression (in torch, so the model is differentiable
   end to end) is fitted on the frozen embeddings of the labelled ``train``
   split, standardised; ``l2`` is its fixed penalty (no validation search: the
   detector only needs a reasonable classifier). It is deterministic, so it is
   fitted once for all seeds.
2. The ``split`` samples (all, or ``max_samples`` of them drawn per seed) are
   attacked with untargeted L-infinity PGD (Madry et al., "Towards Deep Learning
   Models Resistant to Adversarial Attacks", ICLR 2018) on encoder + linear head,
   gradients through the frozen encoder, one attack per strength in ``eps``. The
   ball is per feature: ``|x' - x| <= eps * std`` with ``std`` each input
   feature's standard deviation over the train split, so ``eps`` means the same
   on pixels in [0, 1] and on standardised intensities (a feature that never
   varies is never perturbed); ``steps`` steps of ``step_size * eps * std`` from
   a uniform random start, and with ``clip`` the attacked input is kept in the
   train split's per-feature range (the ball wins where a test input lies
   outside that range).
3. Each clean and attacked input gets ``neighbours`` views drawn with the
   dataset's own ``augment`` (a seeded generator; every set of inputs gets the
   same draws) and the two scores above; ``combined`` is
   ``alpha * label + (1 - alpha) * similarity``, the weighted sum of the
   authors' code (``detect_cifar10.py``, ``alpha=0.8``).
4. As in the paper, negatives are the clean inputs the model classifies
   correctly, positives the *successful* adversarial examples made from them
   (misclassified after the attack); an attack that flips nothing gives no
   positives and its AUROCs are NaN. AUROC takes the adversarial examples as the
   positive class and lower consistency as more adversarial (0.5 is chance).

Where this differs from the paper, and why:

- The paper attacks a separate supervised target classifier and detects with
  an SSL model the attacker does not see (gray box). Here the attacked model is
  the detector's own encoder + linear head (the only classifier an evaluator of
  a frozen encoder has); the attack knows the classifier but not the detector
  (not adaptive), the paper's default threat model.
- The paper's representation is the SSL *projector*'s output; only the frozen
  encoder reaches an evaluator, so its embedding is used, centred (SimSiam's
  projector, the paper's, ends in a batch norm, so its
  outputs are centred too, on running statistics of augmented batches): cosines
  are taken around the mean embedding of one view of each train input.
- The paper's label score is the count of agreeing neighbours, its official code
  the cosine between the input label's one-hot and the neighbours' logits,
  weighted with the representation score and read at the K-th largest
  neighbour (K=20 of 50); here both scores are means over the neighbours. The
  paper thresholds the two scores; AUROC needs one number, hence ``combined``.
- Views are the dataset's default SSL views, not the paper's SimSiam image
  augmentations; PGD is the only attack (no FGSM, C&W, AutoAttack or adaptive
  attack).

Applies to datasets whose batches are one floating-point tensor of independent
samples and which register views; anything else (PyG graphs, SMILES strings,
complex k-space, one graph's nodes) raises :class:`~selfsup.errors.NotApplicable`,
as does an encoder whose embedding carries no gradient to its input (a constant).

Metric keys: ``beyond.clean_accuracy`` (of the linear head on the evaluated
samples) and, per strength ``e`` in ``eps``, ``beyond.attacked_accuracy@eps<e>``
(accuracy under attack), ``beyond.attack_success@eps<e>`` (share of the correctly
classified inputs whose attack succeeded) and
``beyond.{similarity,label,combined}_auroc@eps<e>``; ``_std`` over seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.errors import NotApplicable
from selfsup.evaluators.embeddings import (
    class_labels,
    extract_embeddings,
    require_seeds,
    require_task,
    summarise_seeds,
)
from selfsup.options import (
    boolean,
    non_negative,
    option,
    optional,
    parse_options,
    positive,
    positive_int,
    split_name,
    unit_interval,
)

NAME = "beyond"
SCORES = ("similarity", "label", "combined")


def _strengths(x: Any) -> str | None:
    items = (x,) if isinstance(x, (int, float)) and not isinstance(x, bool) else x
    ok = (isinstance(items, Sequence) and not isinstance(items, str) and len(items) > 0
          and all(non_negative(e) is None for e in items) and len(set(items)) == len(items))
    return None if ok else "be a non-empty list of distinct numbers >= 0, e.g. [0.1, 0.5]"


@dataclass(frozen=True)
class BeyondConfig:
    """Options of :func:`build`."""

    eps: tuple[float, ...] = option(
        (0.25, 1.0), _strengths,
        "attack strengths: L-inf radius in units of each input feature's train std")
    steps: int = option(10, positive_int, "PGD steps")
    step_size: float = option(0.25, positive, "PGD step, as a fraction of the radius")
    random_start: bool = option(True, boolean, "start PGD at a uniform point of the ball")
    clip: bool = option(True, boolean, "keep attacked inputs in the train split's range")
    neighbours: int = option(50, positive_int, "views drawn per input (the paper's 50)")
    alpha: float = option(0.8, unit_interval,
                          "weight of label consistency in the combined score (official code)")
    l2: float = option(1e-3, positive, "L2 penalty of the logistic regression head")
    max_samples: int | None = option(
        None, optional(positive_int), "evaluate this many samples of the split, drawn per seed")
    split: str = option("test", split_name, "the labelled split to attack")


def build(**options: Any) -> Evaluator:
    """The BEYOND evaluator; options are the fields of :class:`BeyondConfig`."""
    config = parse_options(BeyondConfig, options, NAME)
    if isinstance(config.eps, (int, float)):
        config = dataclasses.replace(config, eps=(float(config.eps),))

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return beyond_detection(encoder, dataset, ctx, config)

    return evaluate


# -- the model under attack ----------------------------------------------------------------


class LinearHead(nn.Module):
    """Logits of standardised embeddings: ``W ((z - mean) / scale) + b``."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.linear = nn.Linear(mean.shape[0], n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear((z - self.mean) / self.scale)  # type: ignore[no-any-return]


def fit_linear_head(z: np.ndarray, y: np.ndarray, n_classes: int, l2: float,
                    max_iter: int = 200) -> LinearHead:
    """Multinomial logistic regression on standardised ``z`` (full-batch L-BFGS).

    Minimises the mean cross-entropy plus ``l2 / 2 * ||W||^2``; convex, so the
    result does not depend on a seed (the weights start at zero).
    """
    zt = torch.as_tensor(z, dtype=torch.float64)
    mean = zt.mean(dim=0)
    scale = zt.std(dim=0, unbiased=False)
    scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
    x = (zt - mean) / scale
    target = torch.as_tensor(y, dtype=torch.long)
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, target) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    head = LinearHead(mean.float(), scale.float(), n_classes)
    with torch.no_grad():
        head.linear.weight.copy_(weight.detach())
        head.linear.bias.copy_(bias.detach())
    return head


class Attacked(nn.Module):
    """Encoder + linear head: the end-to-end classifier that PGD attacks."""

    def __init__(self, encoder: nn.Module, head: LinearHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(x)  # type: ignore[operator,no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # type: ignore[no-any-return]


# -- the attack -------------------------------------------------------------------------


def project(x_adv: torch.Tensor, x: torch.Tensor, radius: torch.Tensor,
            low: torch.Tensor | None = None, high: torch.Tensor | None = None) -> torch.Tensor:
    """Into the data range ``[low, high]`` (if given), then into the ball around ``x``.

    The ball is applied last, so ``|x' - x| <= radius`` holds even for an ``x``
    outside the range. ``radius``, ``low``, ``high`` broadcast against ``x``.
    """
    if low is not None and high is not None:
        x_adv = torch.maximum(torch.minimum(x_adv, high), low)
    return torch.maximum(torch.minimum(x_adv, x + radius), x - radius)


def pgd_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, radius: torch.Tensor, *,
    steps: int, step_size: float, generator: torch.Generator | None = None,
    low: torch.Tensor | None = None, high: torch.Tensor | None = None,
) -> torch.Tensor:
    """Untargeted L-infinity PGD: ascend the cross-entropy of ``model(x')`` at ``y``.

    Each step moves ``step_size * radius`` along the sign of the gradient and
    projects back (:func:`project`); with a ``generator``, the start is a uniform
    point of the ball (Madry et al. 2018), else ``x`` itself. Returns the last
    iterate, detached. The model's parameters get no gradient.
    """
    if generator is not None:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = project(x + (2 * noise - 1) * radius, x, radius, low, high)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        if not loss.requires_grad:
            raise NotApplicable(
                f"{NAME}: the encoder's embedding carries no gradient to its input "
                f"({type(model).__name__}); PGD needs a differentiable encoder")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = project(x_adv.detach() + step_size * radius * grad.sign(), x, radius, low, high)
    return x_adv.detach()


# -- the detector ------------------------------------------------------------------------


def neighbour_consistency(
    z: torch.Tensor, z_views: torch.Tensor, label: torch.Tensor, view_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """BEYOND's two scores of each input; higher means more consistent (clean-like).

    ``z`` ``[B, D]``: the inputs' representations; ``z_views`` ``[B, N, D]``: their
    neighbours'; ``label`` ``[B]`` and ``view_labels`` ``[B, N]``: predicted labels.
    Returns the mean cosine similarity of each input to its neighbours and the
    share of neighbours predicted with the input's label, both ``[B]``.
    """
    similarity = F.cosine_similarity(z[:, None, :], z_views, dim=2, eps=1e-12).mean(dim=1)
    agreement = (view_labels == label[:, None]).float().mean(dim=1)
    return similarity, agreement


def detection_auroc(clean: np.ndarray, adversarial: np.ndarray) -> float:
    """AUROC of flagging adversarial inputs by *low* consistency (ties count a half).

    ``clean`` and ``adversarial`` are consistency scores (higher: more clean-like);
    NaN when either set is empty (an attack that flipped nothing).
    """
    if len(clean) == 0 or len(adversarial) == 0:
        return float("nan")
    from selfsup.evaluators.ood import auroc

    return auroc(-np.asarray(adversarial, dtype=np.float64),
                 -np.asarray(clean, dtype=np.float64))


def _neighbourhood(
    model: Attacked, dataset: SSLDataset, x: torch.Tensor, centre: torch.Tensor,
    neighbours: int, generator: torch.Generator, chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity and label consistency of each row of ``x`` with its views."""
    similarity, agreement = [], []
    with torch.no_grad():
        z = model.embed(x)
        label = model.head(z).argmax(dim=1)
        per_chunk = max(1, chunk // neighbours)
        for start in range(0, x.shape[0], per_chunk):
            part = x[start : start + per_chunk]
            views = dataset.augment(part.repeat_interleave(neighbours, dim=0), generator)
            zv = model.embed(views)
            lv = model.head(zv).argmax(dim=1).view(part.shape[0], neighbours)
            zv = zv.view(part.shape[0], neighbours, -1)
            s, a = neighbour_consistency(z[start : start + per_chunk] - centre, zv - centre,
                                         label[start : start + per_chunk], lv)
            similarity.append(s)
            agreement.append(a)
    return torch.cat(similarity), torch.cat(agreement)


# -- the evaluator -----------------------------------------------------------------------


def beyond_detection(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, config: BeyondConfig
) -> dict[str, float]:
    require_task(dataset, NAME, ("classification",))
    seeds = require_seeds(ctx, NAME)
    _require_float_views(dataset)
    device = torch.device(ctx.device)
    z_train, y_train = extract_embeddings(encoder, dataset, "train", ctx)
    classes = np.unique(class_labels(y_train))
    if len(classes) < 2:
        raise ValueError(f"{NAME}: dataset {dataset.name!r} has one class in 'train'")
    head = fit_linear_head(z_train, np.searchsorted(classes, class_labels(y_train)),
                           len(classes), config.l2)
    model = Attacked(encoder, head).to(device)
    std, low, high = (t.to(device) for t in _feature_stats(dataset, ctx.batch_size))
    clip = (low, high) if config.clip else (None, None)
    n_split = dataset.n_labelled(config.split)
    was_training = encoder.training
    model.eval()
    per_seed = []
    try:
        centre = _view_centre(model, dataset, ctx)
        for seed in seeds:
            indices = None
            if config.max_samples is not None and config.max_samples < n_split:
                rng = np.random.default_rng([seed, 17])
                indices = np.sort(rng.choice(n_split, config.max_samples, replace=False)).tolist()
            per_seed.append(_one_seed(model, dataset, ctx, config, seed, indices, classes,
                                      centre, std, clip))
    finally:
        encoder.train(was_training)
    return summarise_seeds(per_seed)


def _one_seed(
    model: Attacked, dataset: SSLDataset, ctx: EvalContext, config: BeyondConfig, seed: int,
    indices: list[int] | None, classes: np.ndarray, centre: torch.Tensor, std: torch.Tensor,
    clip: tuple[torch.Tensor | None, torch.Tensor | None],
) -> dict[str, float]:
    device = torch.device(ctx.device)
    attack_gen = torch.Generator(device=device).manual_seed(seed)
    # one generator per set of inputs, all seeded alike: clean and attacked inputs get the
    # same view draws, so their scores differ by the input, not by the luck of the views
    view_gens = {s: torch.Generator(device=device).manual_seed(10_000 + seed)
                 for s in ("clean", *config.eps)}
    y_all, clean_pred = [], []
    adv_pred: dict[float, list[torch.Tensor]] = {e: [] for e in config.eps}
    scores: dict[Any, list[tuple[torch.Tensor, torch.Tensor]]] = {s: [] for s in view_gens}
    for x, y in _labelled_tensors(dataset, config.split, ctx.batch_size, indices):
        x = x.to(device)
        known = np.isin(y, classes)  # a test class absent from train can never be right
        target = torch.as_tensor(np.searchsorted(classes, y).clip(0, len(classes) - 1),
                                 device=device)
        target[torch.as_tensor(~known, device=device)] = -1
        with torch.no_grad():
            clean_pred.append(model(x).argmax(dim=1))
        y_all.append(target)
        scores["clean"].append(_neighbourhood(model, dataset, x, centre, config.neighbours,
                                              view_gens["clean"], ctx.batch_size))
        for eps in config.eps:
            x_adv = x
            if eps > 0:
                x_adv = pgd_attack(model, x, target.clamp(min=0), eps * std, steps=config.steps,
                                   step_size=config.step_size,
                                   generator=attack_gen if config.random_start else None,
                                   low=clip[0], high=clip[1])
            with torch.no_grad():
                adv_pred[eps].append(model(x_adv).argmax(dim=1))
            scores[eps].append(_neighbourhood(model, dataset, x_adv, centre, config.neighbours,
                                              view_gens[eps], ctx.batch_size))
    y_t = torch.cat(y_all)
    correct = (torch.cat(clean_pred) == y_t).cpu().numpy()
    clean_scores = _score_table(scores["clean"], config.alpha)
    result = {f"{NAME}.clean_accuracy": float(correct.mean())}
    for eps in config.eps:
        suffix = f"@eps{eps:g}"
        adv_correct = (torch.cat(adv_pred[eps]) == y_t).cpu().numpy()
        flipped = correct & ~adv_correct
        adv_scores = _score_table(scores[eps], config.alpha)
        result[f"{NAME}.attacked_accuracy{suffix}"] = float(adv_correct.mean())
        result[f"{NAME}.attack_success{suffix}"] = (
            float(flipped.sum() / correct.sum()) if correct.any() else float("nan"))
        for name in SCORES:
            result[f"{NAME}.{name}_auroc{suffix}"] = detection_auroc(
                clean_scores[name][correct], adv_scores[name][flipped])
    return result


def _score_table(parts: list[tuple[torch.Tensor, torch.Tensor]], alpha: float
                 ) -> dict[str, np.ndarray]:
    similarity = torch.cat([p[0] for p in parts]).double().cpu().numpy()
    label = torch.cat([p[1] for p in parts]).double().cpu().numpy()
    return {"similarity": similarity, "label": label,
            "combined": alpha * label + (1 - alpha) * similarity}


def _view_centre(model: Attacked, dataset: SSLDataset, ctx: EvalContext) -> torch.Tensor:
    """The mean embedding of one view of each train input (a fixed seed).

    Stands in for the batch norm that ends SimSiam's projector, whose running
    statistics come from augmented training batches: cosines are taken around it.
    """
    device = torch.device(ctx.device)
    generator = torch.Generator(device=device).manual_seed(12_345)
    total, n = None, 0
    with torch.no_grad():
        for x, _ in _labelled_tensors(dataset, "train", ctx.batch_size):
            z = model.embed(dataset.augment(x.to(device), generator)).double().sum(0)
            total = z if total is None else total + z
            n += x.shape[0]
    assert total is not None
    return (total / n).float()


# -- data access -------------------------------------------------------------------------


def _require_float_views(dataset: SSLDataset) -> None:
    if type(dataset).augment is SSLDataset.augment:
        raise NotApplicable(f"{NAME}: dataset {dataset.name!r} registers no views, and BEYOND's "
                            "neighbours are views of the input")
    batch, _, rows = next(dataset.labelled_batches(dataset.splits[0], 2))
    if not isinstance(batch, torch.Tensor) or not torch.is_floating_point(batch):
        kind = (f"a {batch.dtype} tensor" if isinstance(batch, torch.Tensor)
                else f"a {type(batch).__name__}")
        raise NotApplicable(f"{NAME}: dataset {dataset.name!r} gives {kind} per batch; an "
                            "L-inf attack needs one real floating-point tensor of inputs")
    if rows is not None:
        raise NotApplicable(f"{NAME}: dataset {dataset.name!r} labels rows of one shared "
                            "input (nodes of a graph), not independent samples to attack")


def _labelled_tensors(dataset: SSLDataset, split: str, batch_size: int,
                      indices: Sequence[int] | None = None
                      ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    for batch, y, _ in dataset.labelled_batches(split, batch_size, indices=indices):
        yield batch.float(), class_labels(torch.as_tensor(y).cpu().numpy())


def _feature_stats(dataset: SSLDataset, batch_size: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-feature std, minimum and maximum of the train split's inputs (streamed)."""
    n, total, squares = 0, None, None
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None
    for x, _ in _labelled_tensors(dataset, "train", batch_size):
        x64 = x.double()
        n += x.shape[0]
        total = x64.sum(0) if total is None else total + x64.sum(0)
        squares = x64.pow(2).sum(0) if squares is None else squares + x64.pow(2).sum(0)
        low = x.amin(0) if low is None else torch.minimum(low, x.amin(0))
        high = x.amax(0) if high is None else torch.maximum(high, x.amax(0))
    assert total is not None and squares is not None and low is not None and high is not None
    mean = total / n
    std = (squares / n - mean.pow(2)).clamp(min=0).sqrt().float()
    return std, low, high
