"""Molecular evaluators: :mod:`.random_forest` (``molecular.random_forest``).

Linear probing and fine-tuning come from core (``core.linear_probe``, which
reports ROC-AUC on binary tasks, and ``core.finetune``).
"""
