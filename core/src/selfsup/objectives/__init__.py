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
- :mod:`selfsup.objectives.g_simclr`: G-SimCLR, SimCLR without same-pseudo-class
  negatives (Chakraborty et al., ICDM Workshops 2020)
- :mod:`selfsup.objectives.groco`: GroCo, learning by sorting (Shvetsova et al., ICCV 2023)
- :mod:`selfsup.objectives.gedi`: GEDI, clustering joined with an energy-based model
  (Sansone & Manhaeve)
- :mod:`selfsup.objectives.jepa`: JEPA self-distillation on masked tokens (Assran et al.,
  CVPR 2023; Littwin et al., NeurIPS 2024)
- :mod:`selfsup.objectives.lsskd`: layered self-supervised knowledge distillation between
  an encoder's stages (Dahri et al. 2025, with HSAKD's losses)

:mod:`selfsup.objectives.projection` holds the MLP head they share and the
option handling of ``build``. Nothing is imported here, so importing the package
does not import torch.
"""
