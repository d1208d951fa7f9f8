"""The runner end to end on core's built-in digits benchmark, config validation, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from selfsup.cli import main
from selfsup.config import apply_overrides, parse_experiment
from selfsup.errors import ConfigError, IncompatibleError, UnknownKeyError
from selfsup.runner import build, load_exported, run_experiment

EXPERIMENT = """
name = "digits-vicreg"
seed = 3

[dataset]
name = "core.digits"

[dataset.views]
noise_std = 0.1

[encoder]
name = "core.mlp"
hidden_dims = [64]
embed_dim = 32

[pretext]
name = "core.vicreg"
proj_hidden_dim = 64
proj_out_dim = 64

[training]
steps = 12
batch_size = 64
warmup_steps = 2
checkpoint_every = 5
progress = false

[[evaluators]]
name = "core.linear_probe"

[[evaluators]]
name = "core.knn"

[evaluation]
seeds = [0]
"""


def _raw(**overrides: object) -> dict:
    import tomllib

    raw = tomllib.loads(EXPERIMENT)
    raw.update(overrides)
    return raw


def test_run_experiment_writes_the_run_folder(tmp_path: Path) -> None:
    exp = parse_experiment(_raw())
    result = run_experiment(exp, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.toml", "metrics.jsonl", "encoder.safetensors", "encoder.json",
                 "summary.md"):
        assert (run / name).is_file(), name
    card = json.loads((run / "encoder.json").read_text())
    assert card["embed_dim"] == 32
    assert card["plugin_versions"]["selfsup"] == "0.2.0"
    assert len(card["data_fingerprint"]) == 16
    assert card["metrics"] == pytest.approx(result["metrics"])
    assert result["train"]["steps"] == 12
    # the linear probe on digits is far above chance (0.1) even after 12 steps
    assert result["metrics"]["linear_probe.accuracy"] > 0.6
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["phase"] == "eval"
    assert "[training]" in (run / "config.toml").read_text()
    assert "linear_probe.accuracy" in (run / "summary.md").read_text()


def test_exported_encoder_reloads_bit_for_bit(tmp_path: Path) -> None:
    exp = parse_experiment(_raw())
    run_experiment(exp, tmp_path / "run")
    exp2, built = load_exported(tmp_path / "run")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "encoder.safetensors"))
    for name, tensor in built.encoder.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert exp2.encoder.options["embed_dim"] == 32


def test_rerun_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    exp = parse_experiment(_raw())
    run_experiment(exp, tmp_path / "run")
    again = run_experiment(exp, tmp_path / "run")
    assert again["train"]["resumed_from"] == 12


def test_a_changed_experiment_does_not_resume_another_ones_checkpoints(tmp_path: Path) -> None:
    run_experiment(parse_experiment(_raw()), tmp_path / "run")
    changed = _raw(encoder={"name": "core.mlp", "hidden_dims": [64], "embed_dim": 16})
    with pytest.raises(ConfigError, match=r"changed: encoder\.embed_dim\).*delete") as err:
        run_experiment(parse_experiment(changed), tmp_path / "run")
    assert str(tmp_path / "run" / "checkpoints") in str(err.value)
    # settings that do not change the result (and evaluation) may change on a resume
    same = _raw(training={"steps": 12, "batch_size": 64, "warmup_steps": 2,
                          "checkpoint_every": 5, "progress": False, "log_every": 3},
                evaluation={"seeds": [1]})
    assert run_experiment(parse_experiment(same), tmp_path / "run")["train"]["resumed_from"] == 12
    # a new folder, or one without checkpoints, starts from scratch
    fresh = run_experiment(parse_experiment(changed), tmp_path / "new")
    assert fresh["train"]["resumed_from"] is None


def test_unknown_keys_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"Unknown key 'trainng'.*Did you mean 'training'"):
        parse_experiment(_raw(trainng={}))
    exp = parse_experiment(_raw(training={"stepz": 3}))
    with pytest.raises(ConfigError, match=r"Unknown key 'stepz' in \[training\].*'steps'"):
        exp.train_config()
    with pytest.raises(UnknownKeyError, match=re.escape("Did you mean 'core.vicreg'")):
        build(parse_experiment(_raw(pretext={"name": "core.vicrg"})))


def test_bad_options_fail_before_training() -> None:
    with pytest.raises(ConfigError, match=re.escape("encoder 'core.mlp'")):
        build(parse_experiment(_raw(encoder={"name": "core.mlp", "depth": 3})))
    with pytest.raises(ValueError, match="option noise_std must lie in"):
        build(parse_experiment(_raw(dataset={"name": "core.digits",
                                             "views": {"noise_std": -1.0}})))
    with pytest.raises(ConfigError, match=r"unknown view option\(s\) \['noise'\]; its views "
                                          r"take noise_std, mask_prob, shift"):
        build(parse_experiment(_raw(dataset={"name": "core.digits", "views": {"noise": 1.0}})))


def test_incompatible_modality_names_the_compatible_choices() -> None:
    from selfsup import hookimpl
    from selfsup.components import EncoderSpec
    from selfsup.plugins import Registry

    class GraphOnly:
        @hookimpl
        def register_encoders(self, register):  # type: ignore[no-untyped-def]
            register(EncoderSpec("toy.gcn", "selfsup.encoders.mlp:build", ("graph.node",),
                                 "graph encoder"))

    reg = Registry(plugins=[])
    reg.add_plugin(GraphOnly(), "toy")
    exp = parse_experiment(_raw(encoder={"name": "toy.gcn"}))
    with pytest.raises(IncompatibleError, match=r"accepts \['graph.node'\].*'vector'.*core\.mlp"):
        build(exp, reg)


def test_cli_overrides_parse_toml_values() -> None:
    raw = apply_overrides(_raw(), ["training.lr=0.01", "pretext.name=core.simclr",
                                   "training.grad_clip=2"])
    assert raw["training"]["lr"] == 0.01
    assert raw["pretext"]["name"] == "core.simclr"
    raw = apply_overrides(_raw(), ["evaluators.core.linear_probe.label_fractions=[0.1]",
                                   "evaluators.core.kmeans.n_init=2"])
    assert raw["evaluators"] == [
        {"name": "core.linear_probe", "label_fractions": [0.1]},
        {"name": "core.knn"},
        {"name": "core.kmeans", "n_init": 2},
    ]
    with pytest.raises(ConfigError, match=re.escape("evaluators.<key>.<option>")):
        apply_overrides(_raw(), ["evaluators.knn=3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(_raw(), ["training.lr"])


def test_cli_run_pretrain_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(EXPERIMENT)
    assert main(["run", str(cfg), "--steps", "6", "--run-dir", str(tmp_path / "r1"),
                 "--set", "evaluation.seeds=[0]"]) == 0
    assert "linear_probe.accuracy" in capsys.readouterr().out
    assert main(["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp",
                 "--pretext", "core.simsiam", "--steps", "4", "--set", "training.progress=false",
                 "--set", "pretext.proj_hidden_dim=32", "--set", "pretext.proj_out_dim=32",
                 "--set", "training.batch_size=32", "--run-dir", str(tmp_path / "r2")]) == 0
    assert (tmp_path / "r2" / "encoder.safetensors").is_file()
    assert main(["evaluate", str(tmp_path / "r2"), "--evaluator", "core.kmeans",
                 "--seeds", "0"]) == 0
    assert "kmeans.nmi" in capsys.readouterr().out
    # without --evaluator: the run's own (EXPERIMENT's linear probe); counts print as counts
    assert main(["evaluate", str(tmp_path / "r1"), "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "linear_probe.accuracy: 0." in out
    assert re.search(r"linear_probe\.n_train: \d+\n", out)
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "run folder" in (err := capsys.readouterr().err) and "does not exist" in err


def test_cli_run_folder_is_named_after_the_pretext_as_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp",
                 "--pretext", "core.simsiam", "--set", "pretext.name=core.vicreg",
                 "--set", "pretext.proj_hidden_dim=32", "--set", "pretext.proj_out_dim=32",
                 "--set", "training.progress=false", "--steps", "2"]) == 0
    [run] = (tmp_path / "runs").iterdir()
    assert run.name.startswith("vicreg-")


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("selfsup: error:") and "does not exist" in err
    assert "Traceback" not in err
    assert main(["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp",
                 "--pretext", "core.barlow"]) == 2
    assert "Did you mean 'core.barlow_twins'" in capsys.readouterr().err


def test_cli_plugins_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "core  selfsup 0.2.0  [ok]" in out and "not installed: selfsup-medical" in out
    assert main(["list", "pretext"]) == 0
    assert "core.directpred" in capsys.readouterr().out


def test_online_knn_and_collapse_diagnostics_are_logged(tmp_path: Path) -> None:
    raw = _raw()
    raw["training"].update({"steps": 10, "online_eval_every": 5, "log_every": 5})
    run_experiment(parse_experiment(raw), tmp_path / "run")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    online = [x for x in lines if "online.knn_accuracy" in x]
    assert [x["step"] for x in online] == [5, 10]
    assert all(0.1 < x["online.knn_accuracy"] <= 1.0 for x in online)
    logged = [x for x in lines if "emb_rank" in x]
    assert logged and all(x["emb_rank"] >= 1.0 and x["emb_std"] > 0 for x in logged)


def test_torchrun_two_processes_write_one_run_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "exp.toml"
    cfg.write_text(EXPERIMENT.replace("steps = 12", "steps = 6"))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "-m", "selfsup.cli", "run", str(cfg), "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run folder:") == 1  # rank 0 reports, rank 1 stays quiet
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum('"phase": "eval"' in x for x in lines) == 1
    assert json.loads(lines[-2])["step"] == 6


def test_a_pretext_and_an_encoder_meet_through_faces() -> None:
    from selfsup import hookimpl
    from selfsup.components import EncoderSpec, PretextSpec
    from selfsup.plugins import Registry

    class Special:
        @hookimpl
        def register_encoders(self, register):  # type: ignore[no-untyped-def]
            register(EncoderSpec("toy.special_mlp", "selfsup.encoders.mlp:build", ("vector",),
                                 "an MLP with a face the pretext below needs",
                                 faces=("embedding", "toy.special")))

        @hookimpl
        def register_pretext_tasks(self, register):  # type: ignore[no-untyped-def]
            register(PretextSpec("toy.picky", "selfsup.objectives.simclr:build", ("vector",),
                                 "SimCLR that trains the toy.special face", needs_views=True,
                                 face="toy.special"))

    reg = Registry(plugins=[])
    reg.add_plugin(Special(), "toy")
    with pytest.raises(IncompatibleError, match=r"pretext 'toy.picky' trains the 'toy.special' "
                                                r"face, and encoder 'core.mlp' offers "
                                                r"\['embedding', 'stages'\]; vector encoders "
                                                r"that offer "
                                                r"'toy.special': toy.special_mlp"):
        build(parse_experiment(_raw(pretext={"name": "toy.picky"})), reg)
    built = build(parse_experiment(_raw(pretext={"name": "toy.picky"},
                                        encoder={"name": "toy.special_mlp"})), reg)
    assert built.task is not None


def test_an_objective_refuses_a_dense_model_naming_the_encoders_that_fit() -> None:
    from selfsup import hookimpl
    from selfsup.components import EncoderSpec
    from selfsup.plugins import Registry

    class Dense:
        @hookimpl
        def register_encoders(self, register):  # type: ignore[no-untyped-def]
            register(EncoderSpec("toy.denoiser", "selfsup.encoders.mlp:build", ("vector",),
                                 "a model with one output per input element", faces=("dense",)))

    reg = Registry(plugins=[])
    reg.add_plugin(Dense(), "toy")
    exp = parse_experiment(_raw(encoder={"name": "toy.denoiser"}))
    with pytest.raises(IncompatibleError, match=r"trains the 'embedding' face, and encoder "
                                                r"'toy.denoiser' offers \['dense'\]; vector "
                                                r"encoders that offer 'embedding': core.mlp"):
        build(exp, reg)
