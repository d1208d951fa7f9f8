"""Generic joint-embedding objectives: one module per method, named after its paper.

Each module holds the method's loss (a small ``nn.Module``), its config dataclass
with the paper's defaults, its head factories, the pretext-task module, and a
``build(encoder, dataset, **options)`` factory that the core plugin registers:

- :mod:`selfsup.objectives.simclr`: NT-Xent (Chen et al., ICML 2020)
- :mod:`selfsup.objectives.barlow_twins`: Barlow Twins (Zbontar et al., ICML 2021)
- :mod:`selfsup.objectives.vicreg`: VICReg (Bardes et al., ICLR 2022)
- :mod:`selfsup.objectives.byol`: BYOL (Grill et al., NeurIPS 2020)
- :mod:`selfsup.objectives.simsiam`: SimSiam (Chen & He, CVPR 2021), optionally with
  the DirectPred predictor (Tian et al., ICML 2021)

:mod:`selfsup.objectives.projection` holds the MLP head they share and the
option handling of ``build``. Nothing is imported here, so importing the package
does not import torch.
"""
