"""The hook specifications every selfsup plugin implements (contract 0.2).

One hook per concept. Each receives a ``register`` callback; a plugin calls it once
per component it provides, with the matching spec object from :mod:`selfsup.api`.
Every hook returns None and is called once per plugin (not ``firstresult``); the
registry calls each plugin's implementation in its own guard, so an exception
there is reported against that plugin only.

Keys are namespaced by the plugin's entry-point name (``graph.grace``,
``core.barlow_twins``); a key without that prefix, a spec of the wrong kind, or a
key registered twice is an error naming the distributions. Factories may be given
as ``"module:function"`` strings so that registering imports nothing heavy.
The plugin guide (``core/README.md``, "Writing a plugin") has a worked example.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("selfsup")
hookimpl = pluggy.HookimplMarker("selfsup")


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register datasets: ``register(DatasetSpec(...))`` once per dataset.

    The spec names the dataset, its one modality (a core name such as ``image2d`` or
    the plugin's own namespaced one such as ``audio.mel``), whether it works
    offline, its default view options, and ``factory(**options)`` returning an
    :class:`selfsup.api.SSLDataset` (unlabelled pretraining split, labelled
    ``train``/``val``/``test`` splits, task kind, collate function, views).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 modality, offline and views are declared on the spec only.
    """


@hookspec
def register_encoders(register: Callable[..., None]) -> None:
    """Register encoders: ``register(EncoderSpec(...))`` once per encoder.

    ``factory(dataset, **options)`` returns an ``nn.Module`` offering the spec's
    ``faces``: ``embed(batch)`` ``[B, D]``, ``tokens(batch)`` (states ``[B, T, D]``
    and a padding mask), ``dense(batch)`` (one output per input element),
    ``stages(batch)``, ``masked_tokens(batch, hide)`` (see ``EncoderSpec``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 faces replace ``output``.
    """


@hookspec
def register_pretext_tasks(register: Callable[..., None]) -> None:
    """Register pretext tasks: ``register(PretextSpec(...))`` once per task.

    ``factory(encoder, dataset, **options)`` returns a :class:`selfsup.api.PretextTask`:
    an ``nn.Module`` whose ``forward(batch, generator)`` returns a dict with a scalar
    ``"loss"``. The spec names the encoder face the task trains.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``face`` replaces ``encoder_output`` and ``encoders``.
    """


@hookspec
def register_evaluators(register: Callable[..., None]) -> None:
    """Register evaluators: ``register(EvaluatorSpec(...))`` once per evaluator.

    ``factory(**options)`` returns a callable ``(model, dataset, context) ->
    dict[str, float]`` of named metrics; the spec names the face it reads.

    .. versionadded:: 0.1
    """


@hookspec
def register_baselines(register: Callable[..., None]) -> None:
    """Register baselines: ``register(BaselineSpec(...))`` once per baseline.

    A baseline is something to beat (input features, a random-init or supervised
    encoder, a field's classical method), built by ``factory(dataset, context,
    **options)`` as a module offering faces, and measured by the same evaluators.

    .. versionadded:: 0.2
    """


@hookspec
def register_benchmarks(register: Callable[..., None]) -> None:
    """Register the plugin's default benchmarks: ``register(BenchmarkSpec(...))``.

    Which dataset, encoder, pretext tasks, evaluators and baselines ``selfsup bench``
    runs, with a CPU-sized training setting and a larger documented GPU setting.

    .. versionadded:: 0.1
    """
