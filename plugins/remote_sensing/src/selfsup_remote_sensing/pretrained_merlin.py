"""The MERLIN authors' trained networks as an optional baseline (merlin_pretrained).

The ``deepdespeckling`` wheel (MIT, Emanuele Dalsasso and the deepdespeckling team;
32 MB) ships the weights MERLIN's authors trained on TerraSAR-X spotlight and stripmap
and on Sentinel-1 TOPS images (``deepdespeckling/merlin/saved_models/*.pth``). This
plugin never imports deepdespeckling (its opencv-python dependency is not needed):
install it with ``pip install --no-deps deepdespeckling``; the weights are found through
``importlib.metadata`` and loaded with ``torch.load(weights_only=True)`` into this
plugin's :class:`..encoders.MerlinUNet` (the same Noise2Noise U-Net, 48 channels, 5
levels; the layer names are mapped one to one). Without the wheel the baseline is
``NotApplicable``.

How the authors' network reads an SLC (their ``merlin/training/model.py``): the input
is ``(log(a^2) - 2m) / (2(M - m))`` for a part ``a``, the output ``y`` gives
``log R^ = 2(M - m) y + 2m``, and the estimates from the real and the imaginary part are
averaged in intensity; ``M, m`` = 10.089, -1.429 (TerraSAR-X) or 12.385, 6.908
(Sentinel-1). Their networks were trained on sensor amplitudes (digital numbers in the
hundreds), the simulated pictures here have amplitudes in [0.02, 1]: the amplitude
``gain`` applied before the network (and undone after) is chosen on the validation
split like the filters' strengths. Their spectral symmetrisation for real sensor data is
not applied (the simulated speckle is white). The authors' networks met TerraSAR-X /
Sentinel-1 speckle, whose spatial correlation differs from this white simulation: this
row measures transfer, not MERLIN's training.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.api import BaselineContext, NotApplicable, SSLDataset

from .encoders import MerlinUNet

NAME = "remote_sensing.merlin_pretrained"
#: model -> (weights file, M, m) as in deepdespeckling/utils/constants.py
MODELS: dict[str, tuple[str, float, float]] = {
    "stripmap": ("stripmap.pth", 10.089038980848645, -1.429329123112601),
    "spotlight": ("spotlight.pth", 10.089038980848645, -1.429329123112601),
    "sentinel_tops": ("sentinel_tops.pth", 12.385, -math.log(0.001)),
}
#: amplitude gains tried on val: half decades from 1 to 10^4
GAINS = tuple(float(10 ** (k / 2)) for k in range(9))
INSTALL = "pip install --no-deps deepdespeckling  (MIT, 32 MB: the MERLIN authors' weights)"


def weights_file(model: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution("deepdespeckling")
    except importlib.metadata.PackageNotFoundError:
        return None
    want = "merlin/saved_models/" + MODELS[model][0]
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(want):
            path = Path(str(dist.locate_file(f)))
            return path if path.is_file() else None
    return None


def _rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' layer names -> :class:`MerlinUNet`'s (width 48, depth 5)."""
    names = {"enc0": "enc0.0", "enc1": "enc0.1", "dec1a": "head.0", "dec1b": "head.1",
             "dec1": "out"}
    names.update({f"enc{i}": f"enc.{i - 2}" for i in range(2, 7)})
    for k, level in enumerate((5, 4, 3, 2)):
        names[f"dec{level}"], names[f"dec{level}b"] = f"dec.{k}.0", f"dec.{k}.1"
    out = {}
    for key, value in state.items():
        layer, _, param = key.rpartition(".")
        out[f"{names[layer]}.{param}"] = value
    return out


class PretrainedMerlin(MerlinUNet):
    """The authors' network in :class:`MerlinUNet`, reading the real and imaginary parts,
    with an amplitude ``gain`` (module docstring)."""

    def __init__(self, model: str, gain: float) -> None:
        _, big, small = MODELS[model]
        # MerlinUNet reads log(2 a^2); the authors' input is (log(a^2) - 2m) / (2(M - m))
        super().__init__(width=48, depth=5, log_min=2 * small + math.log(2.0),
                         log_max=2 * big + math.log(2.0))
        self.gain = float(gain)
        self.chosen: dict[str, Any] = {"model": model, "gain": gain, "selected_on": "given"}
        self.set_input(parts=True, recenter=False)

    def dense(self, slc: torch.Tensor) -> torch.Tensor:
        # the restore() output carries the log 2 of the input convention: remove it
        out = super().dense(slc * self.gain) - math.log(2.0)
        return out - 2 * math.log(self.gain)


def build(dataset: SSLDataset, context: BaselineContext | None = None, *,
          model: str = "stripmap", gain: float | None = None) -> PretrainedMerlin:
    """``remote_sensing.merlin_pretrained``; ``gain`` None: chosen on the val split."""
    from .evaluators.despeckling import psnr

    if model not in MODELS:
        raise ValueError(f"{NAME}: model must be one of {sorted(MODELS)}, got {model!r}")
    path = weights_file(model)
    if path is None:
        raise NotApplicable(f"the MERLIN authors' weights are not installed: {INSTALL}")
    state = _rename(torch.load(path, map_location="cpu", weights_only=True))

    def make(g: float) -> PretrainedMerlin:
        net = PretrainedMerlin(model, g)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"reads_parts", "recenter", "blind_grid"}:
            raise ValueError(f"{NAME}: {path} does not match MERLIN's U-Net (missing "
                             f"{missing}, unexpected {unexpected})")
        return net.eval()

    if gain is not None:
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
            raise ValueError(f"{NAME}: gain must be a number > 0 (or None), got {gain!r}")
        return make(float(gain))
    items = dataset.labelled_split("val") if "val" in dataset.splits else None
    if not items:
        raise ValueError(f"{NAME}: gain=None chooses it on the 'val' split, which dataset "
                         f"{dataset.name!r} lacks; pass gain=<value> (e.g. one of {GAINS})")
    pairs = list(items)  # type: ignore[call-overload]
    scores = {}
    for g in GAINS:
        net = make(g)
        with torch.no_grad():
            scores[str(g)] = float(np.mean([
                psnr(np.exp(net.dense(s[None])[0, 0].double().numpy() / 2),
                     np.exp(c[0].double().numpy() / 2), 1.0) for s, c in pairs]))
    best = max(GAINS, key=lambda g: scores[str(g)])
    net = make(best)
    net.chosen = {"model": model, "gain": best, "val_psnr": scores, "selected_on": "val"}
    return net
