"""The hook specifications every selfsup plugin implements.

One hook per concept. Each receives a ``register`` callback; a plugin calls it once
per component it provides, with the matching spec object from
:mod:`selfsup.components`. Every hook returns None and is called once per plugin
(not ``firstresult``); the registry calls each plugin's implementation in its own
guard, so an exception there is reported against that plugin only.

Keys are namespaced by the plugin's entry-point name (``graph.grace``,
``core.barlow_twins``); a key without that prefix, a spec of the wrong kind, or a
key registered twice is an error naming the distribution. Factories may be given
as ``"module:function"`` strings so that registering imports nothing heavy.
The plugin guide (``core/README.md``, "Writing a plugin") has worked examples.

Modality vocabulary (:data:`selfsup.components.MODALITIES`): ``vector``,
``image2d``, ``volume3d``, ``kspace``, ``graph.node``, ``graph.graph``,
``spectrogram``, ``waveform``, ``pointcloud``, ``smiles``, ``sar_slc``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("selfsup")
hookimpl = pluggy.HookimplMarker("selfsup")


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register datasets.

    Call ``register(DatasetSpec(...))`` once per dataset. A ``DatasetSpec`` names
    the dataset, its modality, whether it works offline, and a ``factory(**options)``
    that returns a :class:`selfsup.components.SSLDataset` (unlabelled pretraining
    split, labelled splits, task type, collate function, default views).

    .. versionadded:: 0.1
    """


@hookspec
def register_encoders(register: Callable[..., None]) -> None:
    """Register encoders.

    Call ``register(EncoderSpec(...))`` once per encoder. Its
    ``factory(dataset, **options)`` returns an ``nn.Module`` with an integer
    attribute ``embed_dim`` whose ``forward(batch)`` returns embeddings ``[B, D]``.

    .. versionadded:: 0.1
    """


@hookspec
def register_pretext_tasks(register: Callable[..., None]) -> None:
    """Register pretext tasks (self-supervised objectives).

    Call ``register(PretextSpec(...))`` once per task. Its
    ``factory(encoder, dataset, **options)`` returns a
    :class:`selfsup.components.PretextTask`: an ``nn.Module`` whose
    ``forward(batch, generator)`` returns a dict with a scalar ``"loss"``.

    .. versionadded:: 0.1
    """


@hookspec
def register_evaluators(register: Callable[..., None]) -> None:
    """Register evaluators.

    Call ``register(EvaluatorSpec(...))`` once per evaluator. Its
    ``factory(**options)`` returns a callable
    ``(encoder, dataset, context) -> dict[str, float]`` of named metrics.

    .. versionadded:: 0.1
    """


@hookspec
def register_benchmarks(register: Callable[..., None]) -> None:
    """Register the plugin's default benchmarks for ``selfsup bench``.

    Call ``register(BenchmarkSpec(...))`` once per benchmark: which dataset,
    encoder, pretext tasks, evaluators and baselines to run, with a CPU-sized
    training setting and a larger documented GPU setting.

    .. versionadded:: 0.1
    """
