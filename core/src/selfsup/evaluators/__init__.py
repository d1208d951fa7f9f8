"""Core's generic evaluators, which work for every modality.

Each module holds one evaluation protocol and a ``build(**options)`` factory that
returns an :data:`selfsup.components.Evaluator`: ``linear_probe``, ``knn``,
``kmeans`` and ``cka`` score frozen embeddings (see ``embeddings``), ``finetune``
trains a copy of the encoder on a fraction of the labels. Metric keys are
``"<evaluator>.<metric>"``, with ``"@10%"`` for a label fraction and ``"_std"``
for the spread over ``EvalContext.seeds``.
"""
