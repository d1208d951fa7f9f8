"""The conformance kit on core's own components, and on plugins that break the contract."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from selfsup import hookimpl
from selfsup.components import DatasetSpec, EncoderSpec, SSLDataset, TaskSpec
from selfsup.testing import ConformanceError, check_plugin

SMALL_HEADS = {"proj_hidden_dim": 32, "proj_out_dim": 32}


def test_core_passes_its_own_conformance_kit() -> None:
    small = {k: dict(SMALL_HEADS) for k in ("core.simclr", "core.barlow_twins", "core.vicreg",
                                             "core.simsiam", "core.directpred")}
    small["core.byol"] = {**SMALL_HEADS, "pred_hidden_dim": 32}
    reg = check_plugin("core", encoder_options={"core.mlp": {"hidden_dims": [32],
                                                             "embed_dim": 16}},
                       pretext_options=small)
    assert "core.digits" in reg.keys("benchmark")


class _Vectors(SSLDataset):
    name = "bad.vectors"
    modality = "vector"
    task = TaskSpec("classification", n_classes=2)

    def __init__(self, deterministic_views: bool = True) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(40, 6, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.input_dim = 6
        self.deterministic_views = deterministic_views

    def pretrain_set(self) -> Any:
        return self.x

    def labelled_split(self, split: str) -> Any:
        return TensorDataset(self.x, self.y) if split in self.splits else None

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.deterministic_views:
            return batch + 0.1 * torch.randn(batch.shape, generator=generator)
        return batch + 0.1 * torch.randn(batch.shape)  # ignores the generator: a bug


class _WrongDim(nn.Module):
    embed_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def _plugin(dataset_factory: Any, encoder_factory: Any, modality: str = "vector",
            faces: tuple[str, ...] = ("embedding",)) -> object:
    class Plugin:
        @hookimpl
        def register_datasets(self, register: Any) -> None:
            register(DatasetSpec("bad.vectors", dataset_factory, (modality,), "toy vectors"))

        @hookimpl
        def register_encoders(self, register: Any) -> None:
            register(EncoderSpec("bad.enc", encoder_factory, (modality,), "toy encoder",
                                 faces=faces))

    return Plugin()


def test_kit_catches_views_that_ignore_the_generator() -> None:
    plugin = _plugin(lambda: _Vectors(deterministic_views=False),
                     "selfsup.encoders.mlp:build")
    with pytest.raises(ConformanceError, match=r"bad\.vectors: augment\(\) with equal"):
        check_plugin("bad", plugin=plugin)


def test_kit_catches_an_encoder_whose_output_is_not_embed_dim() -> None:
    plugin = _plugin(_Vectors, lambda dataset: _WrongDim())
    with pytest.raises(ConformanceError, match=r"bad.enc: embed\(batch\) returned \(8, 4\), "
                                               r"expected \[B=8, 8\]"):
        check_plugin("bad", plugin=plugin)


def test_kit_passes_a_correct_toy_plugin() -> None:
    reg = check_plugin("bad", plugin=_plugin(_Vectors, "selfsup.encoders.mlp:build"))
    assert {"bad.enc", "core.mlp"} <= set(reg.keys("encoder"))


class _Denoiser(nn.Module):
    """A 'dense' model: one output per input element."""

    embed_dim = 6

    def __init__(self, collapse: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.collapse = collapse

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)[:, None, :]  # [B, 1, 6]: one channel over a 1-D "image"
        return out.mean(0, keepdim=True) if self.collapse else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


def _dense_plugin(collapse: bool) -> object:
    class Plugin:
        @hookimpl
        def register_datasets(self, register: Any) -> None:
            register(DatasetSpec("bad.vectors", _Vectors, ("vector",), "toy vectors"))

        @hookimpl
        def register_encoders(self, register: Any) -> None:
            register(EncoderSpec("bad.denoiser", lambda dataset: _Denoiser(collapse), ("vector",),
                                 "toy dense model", faces=("dense",)))

    return Plugin()


def test_kit_checks_dense_models_by_their_batch_not_embed_dim() -> None:
    check_plugin("bad", plugin=_dense_plugin(collapse=False))
    with pytest.raises(ConformanceError, match=r"bad.denoiser: dense\(batch\) must return "
                                               r"\[B=8, C, \*spatial\] or \[B, N, C\], "
                                               r"got \(1, 1, 6\)"):
        check_plugin("bad", plugin=_dense_plugin(collapse=True))
    with pytest.raises(ValueError, match="face 'Pixels!' is not a valid name"):
        EncoderSpec("bad.x", "m:f", ("vector",), "x", faces=("Pixels!",))
    with pytest.raises(TypeError, match="faces must be a non-empty tuple"):
        EncoderSpec("bad.x", "m:f", ("vector",), "x", faces="embedding")  # type: ignore[arg-type]


class _ShapeChangingViews(_Vectors):
    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch[:, :3] + torch.randn(batch[:, :3].shape, generator=generator)


class _BatchDroppingViews(_Vectors):
    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch[1:] + torch.randn(batch[1:].shape, generator=generator)


def test_kit_catches_views_that_change_the_batch() -> None:
    with pytest.raises(ConformanceError, match=r"augment\(\) changes the batch: batch is "
                                               r"torch.float32 \(8, 6\), the view's is "
                                               r"torch.float32 \(7, 6\)"):
        check_plugin("bad", plugin=_plugin(_BatchDroppingViews, "selfsup.encoders.mlp:build"))
    # a view of another length passes the structure check (sequences pad to their own
    # length) but not one training step of core's objectives through the encoder
    with pytest.raises(ConformanceError, match=r"core.simclr: one training step with encoder "
                                               r"MLPEncoder on dataset 'bad.vectors' raised "
                                               r"ValueError: core.mlp expects \[B, 6\]"):
        check_plugin("bad", plugin=_plugin(_ShapeChangingViews, "selfsup.encoders.mlp:build"))


class _ViewsThatBreakTraining(_Vectors):
    """Views of the right shape whose values make core's objectives fail (infinite)."""

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = batch + torch.randn(batch.shape, generator=generator)
        out[0, 0] = float("inf")
        return out


def test_kit_runs_core_objectives_through_a_plugins_views_and_encoders() -> None:
    plugin = _plugin(_ViewsThatBreakTraining, "selfsup.encoders.mlp:build")
    with pytest.raises(ConformanceError, match=r"core.simclr: loss must be a finite scalar"):
        check_plugin("bad", plugin=plugin)


def test_a_new_modality_needs_no_core_change() -> None:
    class _Series(_Vectors):
        pass

    reg = check_plugin("bad", plugin=_plugin(_Series, "selfsup.encoders.mlp:build",
                                              modality="bad.timeseries"))
    ds = reg.get("dataset", "bad.vectors").build()
    assert ds.modality == "bad.timeseries"  # stamped from the spec, declared once


class _ForwardIsNotTheFirstFace(_WrongDim):
    embed_dim = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x) * 2


def test_kit_checks_that_forward_is_the_first_face() -> None:
    plugin = _plugin(_Vectors, lambda dataset: _ForwardIsNotTheFirstFace())
    with pytest.raises(ConformanceError, match="forward\\(batch\\) must return the first face"):
        check_plugin("bad", plugin=plugin)


def test_kit_checks_the_tokens_face() -> None:
    from selfsup.components import Tokens

    class _TokenEncoder(nn.Module):
        embed_dim = 4

        def __init__(self, dataset: Any, bad_mask: bool = False) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 4)
            self.bad_mask = bad_mask

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.tokens(x).states.mean(1)

        def tokens(self, x: torch.Tensor) -> Tokens:
            states = self.lin(x.reshape(x.shape[0], 3, 2))  # three 2-d tokens per sample
            mask = torch.ones(states.shape[:2], dtype=torch.bool)
            return Tokens(states, mask.float() if self.bad_mask else mask)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.embed(x)

    check_plugin("bad", plugin=_plugin(_Vectors, _TokenEncoder, faces=("embedding", "tokens")))
    with pytest.raises(ConformanceError, match=r"tokens\(batch\).mask must be bool"):
        check_plugin("bad", plugin=_plugin(_Vectors, lambda ds: _TokenEncoder(ds, True),
                                           faces=("embedding", "tokens")))


def test_kit_checks_the_stages_face() -> None:
    class _Stages(nn.Module):
        embed_dim = 4

        def __init__(self, dataset: Any, last_is_embedding: bool = True) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 4)
            self.last_is_embedding = last_is_embedding

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x)))

        def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
            h = torch.relu(self.a(x))
            return [h, self.b(h)] if self.last_is_embedding else [h]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.embed(x)

    check_plugin("bad", plugin=_plugin(_Vectors, _Stages, faces=("embedding", "stages")))
    with pytest.raises(ConformanceError, match=r"the last of stages\(batch\) is \(8, 5\)"):
        check_plugin("bad", plugin=_plugin(_Vectors, lambda ds: _Stages(ds, False),
                                           faces=("embedding", "stages")))


def test_a_benchmark_needs_train_steps_only_when_a_pretext_trains() -> None:
    import pytest

    from selfsup.components import BenchmarkSpec
    from selfsup.plugins import Registry
    from selfsup.testing import ConformanceError, check_benchmark

    reg = Registry(plugins=[])
    baselines_only = BenchmarkSpec(name="toy.baselines", dataset="core.digits",
                                   encoder="core.mlp", pretexts=(),
                                   evaluators=("core.linear_probe",), summary="toy")
    check_benchmark(baselines_only, reg)  # every row a baseline: nothing to train
    with pytest.raises(ConformanceError, match="must give 'steps'"):
        check_benchmark(BenchmarkSpec(name="toy.pretext", dataset="core.digits",
                                      encoder="core.mlp", pretexts=("core.simclr",),
                                      evaluators=("core.linear_probe",), summary="toy"), reg)
