"""C-BSN's blind branch at the pixel-shuffle level, and its sanity setting.

C-BSN trained on the correlated sanity setting (1-pixel blurred Gaussian noise on
64x64 CT slices) with the authors' blind stride ``s_b = 5`` ends below its input;
with ``s_b = 3`` it passes it by 2 dB (BENCHMARKS.md, Medical plugin, "C-BSN").
No defect was found: the blind loss at pixel ``p`` only sees pixels a multiple of
``s_b`` away, and on 64x64 slices pixels 5 apart carry too little of the image.
These tests pin the first half of that (what the blind loss sees) and the sanity
benchmark's stride.
"""

from __future__ import annotations

import pytest
import torch

from selfsup.api import get_registry
from selfsup_medical.pretexts import cbsn


@pytest.mark.parametrize("stride", [2, 3, 5])
def test_blind_loss_at_p_sees_only_its_own_lattice_without_p(stride: int) -> None:
    """``B2S(f(S2B(y, s); on))`` at ``p`` depends on ``y_q`` only for ``q != p`` with
    ``q - p`` a multiple of ``s`` in both axes: never on ``p`` or the pixels within
    ``s - 1`` of it, whose noise correlates with ``p``'s. The default-depth network
    reaches across the whole sub-image, so every such ``q`` is seen."""
    torch.manual_seed(0)
    net = cbsn.CBSNNet(1)  # default width and depth: the receptive field of the benchmark
    size = 6 * stride
    i, j = 3 * stride + 1, 2 * stride + 2
    y = torch.randn(1, 1, size, size, requires_grad=True)
    out = cbsn.batch_to_space(net.core(cbsn.space_to_batch(y, stride), blind=True), stride)
    out[0, 0, i, j].backward()
    assert y.grad is not None
    seen = y.grad[0, 0] != 0
    lattice = torch.zeros(size, size, dtype=torch.bool)
    lattice[i % stride :: stride, j % stride :: stride] = True
    lattice[i, j] = False
    assert torch.equal(seen, lattice)


def test_unblinded_network_sees_the_centre_and_its_neighbours() -> None:
    torch.manual_seed(0)
    net = cbsn.CBSNNet(1)
    y = torch.randn(1, 1, 16, 16, requires_grad=True)
    net.core(y, blind=False)[0, 0, 8, 8].backward()
    assert y.grad is not None
    grad = y.grad[0, 0].abs()
    assert grad[8, 8] > 0 and grad[8, 9] > 0 and grad[7, 8] > 0


def test_sanity_benchmark_uses_a_stride_the_slices_survive() -> None:
    spec = get_registry().get("benchmark", "medical.sanity_cbsn")
    assert spec.dataset_options["noise"] == "correlated"
    assert spec.pretext_options["medical.cbsn"]["blind_stride"] == 3
    assert {(e.method, e.beats) for e in spec.sanity} == {
        ("medical.cbsn", "medical.blind_spot"),
        ("medical.cbsn", "baseline:medical.identity"),
    }
