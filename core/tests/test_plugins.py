"""Plugin discovery, guarded loading, strict mode and the registry's errors."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from selfsup.errors import DuplicateKeyError, PluginLoadError, UnknownKeyError
from selfsup.plugins import Registry

GOOD = """
from selfsup import hookimpl
from selfsup.components import DatasetSpec, EncoderSpec, PretextSpec, EvaluatorSpec
from selfsup.components import BenchmarkSpec

@hookimpl
def register_datasets(register):
    register(DatasetSpec("{ns}.toy", "selfsup.datasets.digits:build", ("vector",), "toy data"))

@hookimpl
def register_encoders(register):
    register(EncoderSpec("{ns}.enc", "selfsup.encoders.mlp:build", ("vector",), "toy encoder"))

@hookimpl
def register_pretext_tasks(register):
    register(PretextSpec("{ns}.task", "selfsup.objectives.vicreg:build", ("vector",), "toy task"))

@hookimpl
def register_evaluators(register):
    register(EvaluatorSpec("{ns}.eval", "selfsup.evaluators.knn:build", ("*",), "toy eval"))

@hookimpl
def register_benchmarks(register):
    register(BenchmarkSpec(name="{ns}.bench", dataset="{ns}.toy", encoder="{ns}.enc",
                           pretexts=("{ns}.task",), evaluators=("{ns}.eval",),
                           summary="toy", train={{"steps": 5}}))
"""


MakeDist = Callable[..., Path]  # the make_dist fixture of conftest.py


def good(ns: str) -> str:
    return GOOD.format(ns=ns)


def test_register_datasets_from_entry_point(make_dist: MakeDist) -> None:
    make_dist("selfsup-toy", "toy_plugin", good("toy"), "toy")
    reg = Registry(strict=True).load()
    assert "toy.toy" in reg.keys("dataset")
    assert reg.owner("dataset", "toy.toy").distribution == "selfsup-toy"
    assert "core.digits" in reg.keys("dataset")  # core registers through the same hooks


def test_register_encoders_and_pretext_tasks_and_evaluators(make_dist: MakeDist) -> None:
    make_dist("selfsup-toy", "toy_plugin", good("toy"), "toy")
    reg = Registry(strict=True).load()
    assert "toy.enc" in reg.keys("encoder")
    assert "toy.task" in reg.keys("pretext")
    assert "toy.eval" in reg.keys("evaluator")
    report = next(r for r in reg.reports if r.name == "toy")
    assert report.registered == {
        "dataset": ["toy.toy"], "encoder": ["toy.enc"], "pretext": ["toy.task"],
        "evaluator": ["toy.eval"], "benchmark": ["toy.bench"],
    }


def test_register_pretext_tasks_rejects_wrong_spec_type(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl
from selfsup.components import DatasetSpec

@hookimpl
def register_pretext_tasks(register):
    register(DatasetSpec("bad.x", "m:f", ("vector",), "wrong kind"))
"""
    make_dist("selfsup-bad", "bad_plugin", src, "bad")
    reg = Registry().load()
    report = next(r for r in reg.reports if r.name == "bad")
    assert "takes a PretextSpec, got DatasetSpec" in report.errors[0]


def test_register_evaluators_requires_namespaced_keys(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl
from selfsup.components import EvaluatorSpec

@hookimpl
def register_evaluators(register):
    register(EvaluatorSpec("probe", "m:f", ("*",), "no namespace"))
"""
    make_dist("selfsup-ns", "ns_plugin", src, "ns")
    reg = Registry().load()
    err = next(r for r in reg.reports if r.name == "ns").errors[0]
    assert "must be namespaced" in err and "'ns.probe'" in err


def test_register_benchmarks(make_dist: MakeDist) -> None:
    make_dist("selfsup-toy", "toy_plugin", good("toy"), "toy")
    reg = Registry(strict=True).load()
    names = [b.name for b in reg.benchmarks()]
    assert names == ["core.digits", "core.sanity_digits", "toy.bench"]
    from selfsup.bench import select_benchmarks

    # plugin benchmarks replace core's own default
    assert [b.name for b in select_benchmarks(reg, None)] == ["toy.bench"]


def test_broken_import_is_reported_and_others_still_load(make_dist: MakeDist) -> None:
    make_dist("selfsup-broken", "broken_plugin", "raise ImportError('no module named foo')",
              "broken")
    make_dist("selfsup-toy", "toy_plugin", good("toy"), "toy")
    reg = Registry().load()
    broken = next(r for r in reg.reports if r.name == "broken")
    assert not broken.ok
    assert "failed to import: ImportError: no module named foo" in broken.errors[0]
    assert broken.distribution == "selfsup-broken"
    assert "toy.toy" in reg.keys("dataset")


def test_wrong_hook_signature_is_reported(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl

@hookimpl
def register_datasets(register, extra):
    pass
"""
    make_dist("selfsup-sig", "sig_plugin", src, "sig")
    make_dist("selfsup-toy", "toy_plugin", good("toy"), "toy")
    reg = Registry().load()
    sig = next(r for r in reg.reports if r.name == "sig")
    assert "invalid hook implementation" in sig.errors[0] and "extra" in sig.errors[0]
    assert "toy.toy" in reg.keys("dataset")


def test_misspelled_hook_is_reported_with_suggestion(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl

@hookimpl
def register_dataset(register):
    pass
"""
    make_dist("selfsup-typo", "typo_plugin", src, "typo")
    reg = Registry().load()
    typo = next(r for r in reg.reports if r.name == "typo")
    assert "unknown hook 'register_dataset'" in typo.errors[0]
    assert "did you mean 'register_datasets'" in typo.errors[0]


def test_hook_that_raises_is_reported(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl

@hookimpl
def register_encoders(register):
    raise RuntimeError("boom")
"""
    make_dist("selfsup-raise", "raise_plugin", src, "raise")
    reg = Registry().load()
    err = next(r for r in reg.reports if r.name == "raise").errors[0]
    assert "register_encoders raised: RuntimeError: boom" in err


def test_strict_mode_turns_reports_into_errors(make_dist: MakeDist,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist("selfsup-broken", "broken_plugin", "1/0", "broken")
    with pytest.raises(PluginLoadError, match=r"plugin 'broken' \(selfsup-broken 1.0\)"):
        Registry(strict=True).load()
    monkeypatch.setenv("SELFSUP_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="ZeroDivisionError"):
        Registry().load()


def test_duplicate_key_across_plugins(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl
from selfsup.components import DatasetSpec

@hookimpl
def register_datasets(register):
    register(DatasetSpec("same.toy", "m:f", ("vector",), "x"))
"""
    make_dist("selfsup-same-a", "same_a", src, "same", version="1.0")
    reg = Registry()
    reg.load()
    with pytest.raises(DuplicateKeyError, match=r"selfsup-same-a 1.0 and <local> 0"):
        reg.add_plugin(__import__("same_a"), "same")


def test_same_plugin_name_from_two_distributions_is_an_error(make_dist: MakeDist) -> None:
    make_dist("selfsup-first", "first_plugin", good("twin"), "twin", version="1.0")
    make_dist("selfsup-second", "second_plugin", good("twin"), "twin", version="2.0")
    with pytest.raises(DuplicateKeyError) as info:
        Registry().load()
    msg = str(info.value)
    assert "selfsup-first 1.0" in msg and "selfsup-second 2.0" in msg and "uninstall" in msg


def test_duplicate_key_within_one_plugin(make_dist: MakeDist) -> None:
    src = """
from selfsup import hookimpl
from selfsup.components import DatasetSpec

@hookimpl
def register_datasets(register):
    register(DatasetSpec("twice.toy", "m:f", ("vector",), "x"))
    register(DatasetSpec("twice.toy", "m:f", ("vector",), "x"))
"""
    make_dist("selfsup-twice", "twice_plugin", src, "twice", version="0.3")
    with pytest.raises(DuplicateKeyError, match=re.escape(
            "'twice.toy' is registered twice: by selfsup-twice 0.3 and by selfsup-twice 0.3")):
        Registry().load()


def test_unknown_key_suggests_and_lists(make_dist: MakeDist) -> None:
    reg = Registry().load()
    with pytest.raises(UnknownKeyError) as info:
        reg.get("pretext", "core.barlowtwins")
    msg = str(info.value)
    assert "Did you mean 'core.barlow_twins'?" in msg and "core.vicreg" in msg
    with pytest.raises(UnknownKeyError, match="install it"):
        reg.get("dataset", "molecular.chembl")
    with pytest.raises(UnknownKeyError, match="selfsup-molecular"):
        reg.get("dataset", "molecular.chembl")


def test_explicit_list_and_disabled_autoload(make_dist: MakeDist,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist("selfsup-a", "a_plugin", good("a"), "a")
    make_dist("selfsup-b", "b_plugin", good("b"), "b")
    assert {"a.toy", "b.toy"} <= set(Registry().load().keys("dataset"))
    assert Registry(plugins=["a"]).load().keys("dataset") == ["a.toy", "core.digits"]
    monkeypatch.setenv("SELFSUP_PLUGINS", "b")
    assert Registry().load().keys("dataset") == ["b.toy", "core.digits"]
    monkeypatch.delenv("SELFSUP_PLUGINS")
    monkeypatch.setenv("SELFSUP_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert Registry().load().keys("dataset") == ["core.digits"]
    reg = Registry(plugins=["nope"]).load()
    assert "no installed plugin is named 'nope'" in reg.reports[-1].errors[0]


def test_loading_is_lazy_and_idempotent(make_dist: MakeDist) -> None:
    make_dist("selfsup-toy", "toy_plugin", good("toy"), "toy")
    reg = Registry()
    assert "toy_plugin" not in sys.modules  # nothing at construction
    reg.load()
    n = len(reg.reports)
    reg.load()
    assert len(reg.reports) == n


def test_import_selfsup_imports_no_torch_and_plugins_command_is_light() -> None:
    code = (
        "import sys, selfsup, selfsup.cli; selfsup.cli.main(['plugins']);"
        "heavy=[m for m in ('torch','sklearn','numpy','matplotlib') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
