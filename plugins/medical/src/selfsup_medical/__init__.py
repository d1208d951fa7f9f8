"""selfsup-medical: self-supervised MRI reconstruction, CT denoising and volume pretraining.

Registers its datasets, models, pretext tasks, evaluators and benchmarks with
selfsup through the entry point ``medical`` (:mod:`selfsup_medical.plugin`).
Importing this package imports neither MONAI nor any image reader.
"""

__version__ = "0.1.0"
