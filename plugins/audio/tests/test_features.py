"""Features against references: torchaudio's own Kaldi code, numpy loops."""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup_audio import features
from selfsup_audio.io.audio import resample


def _torchaudio_kaldi() -> types.ModuleType | None:
    """torchaudio's ``compliance/kaldi.py`` (pure torch), loaded from its source file.

    Loaded under a stub parent package, so the reference works even where
    ``import torchaudio`` fails (a CUDA build of torchaudio beside a CPU torch).
    """
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "compliance" / "kaldi.py"
    if not path.is_file():
        return None
    saved = sys.modules.get("torchaudio")
    stub = types.ModuleType("torchaudio")
    stub.__path__ = []  # type: ignore[attr-defined]
    sys.modules["torchaudio"] = saved if features.torchaudio_usable() else stub
    try:
        ref = importlib.util.spec_from_file_location("_reference_kaldi", path)
        assert ref is not None and ref.loader is not None
        module = importlib.util.module_from_spec(ref)
        ref.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("torchaudio", None)
        else:
            sys.modules["torchaudio"] = saved
    return module


def _waves(n: int = 3, length: int = 16000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length) / 16000
    tone = torch.sin(2 * math.pi * 440 * t) * 0.3
    return tone + 0.05 * torch.randn(n, length, generator=g)


def test_kaldi_fbank_matches_torchaudio_compliance_kaldi() -> None:
    kaldi = _torchaudio_kaldi()
    if kaldi is None:
        pytest.skip("torchaudio is not installed")
    x = _waves()
    # SSAST's call: htk_compat, hanning, no energy, no dither, 10 ms shift
    want = torch.stack([kaldi.fbank(w[None], htk_compat=True, sample_frequency=16000,
                                    use_energy=False, window_type="hanning", num_mel_bins=64,
                                    dither=0.0, frame_shift=10) for w in x]).transpose(1, 2)
    got = features.kaldi_fbank(x, 16000, 64)
    assert got.shape == want.shape == (3, 64, 98)
    assert torch.allclose(got, want, atol=1e-3)


def test_kaldi_fbank_matches_a_numpy_loop() -> None:
    x = _waves(1)[0].double().numpy()
    size, shift, padded = 400, 160, 512
    banks = features.kaldi_mel_banks(23, padded, 16000).double().numpy()
    rows = []
    for start in range(0, len(x) - size + 1, shift):
        frame = x[start:start + size].copy()
        frame -= frame.mean()
        frame = frame - 0.97 * np.concatenate([frame[:1], frame[:-1]])
        n = np.arange(size)
        frame *= 0.5 - 0.5 * np.cos(2 * np.pi * n / (size - 1))  # symmetric Hann
        power = np.abs(np.fft.rfft(frame, padded)) ** 2
        rows.append(np.log(np.maximum(banks @ power, np.finfo(np.float32).eps)))
    want = np.stack(rows, axis=1)
    got = features.kaldi_fbank(torch.from_numpy(x).float(), 16000, 23)[0].double().numpy()
    assert np.allclose(got, want, atol=2e-3)


def test_mel_filterbank_matches_the_htk_formula() -> None:
    fb = features.mel_filterbank(201, 40, 16000).double().numpy()
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = inv(np.linspace(mel(0), mel(8000), 42))
    freqs = np.linspace(0, 8000, 201)
    want = np.zeros((201, 40))
    for m in range(40):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for i, f in enumerate(freqs):
            want[i, m] = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c)))
    assert np.allclose(fb, want, atol=1e-5)


def test_log_mel_matches_a_numpy_stft() -> None:
    x = _waves(1)[0]
    got = features.log_mel(x, 16000, 40, n_fft=400, hop_length=160)[0].double().numpy()
    sig = np.pad(x.double().numpy(), 200, mode="reflect")
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    frames = [sig[i:i + 400] * win for i in range(0, len(sig) - 400 + 1, 160)]
    power = np.abs(np.fft.rfft(np.stack(frames), axis=1)) ** 2
    want = np.log(power @ features.mel_filterbank(201, 40, 16000).double().numpy() + 1e-6).T
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-3)


def test_mfcc_is_an_orthonormal_dct_and_deltas_of_a_ramp_are_its_slope() -> None:
    basis = features.dct_matrix(40, 40).double()
    assert torch.allclose(basis.T @ basis, torch.eye(40, dtype=torch.float64), atol=1e-6)
    lm = torch.randn(2, 40, 50)
    assert features.mfcc(lm, 13).shape == (2, 13, 50)
    ramp = torch.arange(20.0).repeat(1, 3, 1)
    assert torch.allclose(features.deltas(ramp)[..., 2:-2], torch.ones(1, 3, 16))


def test_torchaudio_transforms_agree_where_they_import() -> None:
    if not features.torchaudio_usable():
        pytest.skip("import torchaudio fails here (a CUDA build beside a CPU torch)")
    import torchaudio

    x = _waves(2)
    want = torch.log(torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160,
                                                          n_mels=40)(x) + 1e-6)
    assert torch.allclose(features.log_mel(x, 16000, 40), want, atol=1e-3)
    assert torch.allclose(resample(x, 22050, 16000),
                          torchaudio.functional.resample(x, 22050, 16000), atol=1e-4)


def test_resample_keeps_a_tone() -> None:
    t = torch.arange(22050) / 22050
    y = resample(torch.sin(2 * math.pi * 440 * t), 22050, 16000)
    ref = torch.sin(2 * math.pi * 440 * torch.arange(16000) / 16000)
    assert y.shape == (16000,)
    assert (y - ref)[200:-200].abs().max() < 2e-3
