"""The ``selfsup`` command line.

``--help`` and ``selfsup plugins`` import neither torch nor any domain library:
commands import what they need when they run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfsup import __version__
from selfsup.errors import SelfsupError

KINDS = ("dataset", "encoder", "pretext", "evaluator", "baseline", "benchmark")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="selfsup",
        description="Cross-domain self-supervised learning: pretrain, evaluate, benchmark.",
    )
    p.add_argument("--version", action="version", version=f"selfsup {__version__}")
    p.add_argument("--plugins", metavar="A,B",
                   help="load only these plugins (also: SELFSUP_PLUGINS)")
    p.add_argument("--no-autoload", action="store_true",
                   help="load no plugin entry points but --plugins "
                        "(also: SELFSUP_DISABLE_PLUGIN_AUTOLOAD=1)")
    p.add_argument("--strict", action="store_true",
                   help="any plugin load error is fatal (also: SELFSUP_STRICT_PLUGINS=1)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("plugins", help="installed plugins, versions, what they registered, errors")

    ls = sub.add_parser("list", help="registered components of one kind")
    ls.add_argument("kind", choices=KINDS)
    ls.add_argument("--verbose", "-v", action="store_true",
                    help="also each component's options, faces and task kinds")

    show = sub.add_parser("show", help="one component: what it is, its options and defaults")
    show.add_argument("key", help="registry key, e.g. core.simclr")

    def experiment_args(sp: argparse.ArgumentParser, config_required: bool) -> None:
        sp.add_argument("config", nargs=None if config_required else "?", type=Path,
                        help="experiment TOML file")
        sp.add_argument("--dataset", help="dataset key, e.g. core.digits")
        sp.add_argument("--encoder", help="encoder key, e.g. core.mlp")
        sp.add_argument("--pretext", help="pretext task key, e.g. core.barlow_twins")
        sp.add_argument("--evaluator", action="append", default=[],
                        help="evaluator key (repeatable)")
        sp.add_argument("--steps", type=int, help="training steps (training.steps)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key, e.g. --set training.lr=0.01")
        sp.add_argument("--run-dir", type=Path,
                        help="run folder (default: runs/<name>-<time>); an existing one resumes")

    experiment_args(sub.add_parser("run", help="pretrain and evaluate an experiment TOML"), True)
    experiment_args(sub.add_parser("pretrain", help="pretrain and export an encoder"), False)

    ev = sub.add_parser("evaluate", help="evaluate an exported encoder (a run folder)")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--evaluator", action="append", default=[],
                    help="evaluator key (repeatable; default: the run's own evaluators)")
    ev.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")

    cmp = sub.add_parser("compare", help="representational alignment (CKA, RSA) of two "
                         "exported encoders on the same inputs, with permutation p-values; "
                         "--layers: stage by stage")
    cmp.add_argument("run_a", type=Path)
    cmp.add_argument("run_b", type=Path, nargs="?",
                     help="the second run (optional with --layers: A's stages against A's)")
    cmp.add_argument("--layers", action="store_true",
                     help="the L_A x L_B linear CKA matrix between the stages of A and B "
                          "(encoders offering the stages face)")
    cmp.add_argument("--rsa", action="store_true", help="with --layers: an RSA matrix too")
    cmp.add_argument("--split", default="test", help="labelled split to embed (default test)")
    cmp.add_argument("--permutations", type=int, default=200, help="re-pairings for p-values")
    cmp.add_argument("--max-samples", type=int, default=500,
                     help="a seeded subset of the split of at most this size (RBF CKA and "
                          "RSA cost N^2 memory)")
    cmp.add_argument("--seed", type=int, default=0)

    b = sub.add_parser(
        "bench", help="every installed plugin's default benchmark, one table",
        description="Pretrain every pretext of each installed plugin's default benchmark, "
        "evaluate it beside the benchmark's baselines, and write results.{json,md,png}, "
        "summary.md and report.html to --out. --quick: each benchmark's headline methods "
        "with fewer steps and one seed, about 15 minutes for every plugin on 2 CPU cores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--benchmark", action="append", default=[],
                   help="benchmark key (repeatable; default: all plugins', else core.digits)")
    b.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder")
    b.add_argument("--quick", action="store_true",
                   help="headline pretexts and baselines, fewer steps (trained baselines "
                        "capped at them), seed 0 (labelled quick in the report)")
    b.add_argument("--budget", type=float, metavar="MINUTES",
                   help="with --quick: scale the pretraining steps so the run takes about this "
                        "long (implies --quick)")
    b.add_argument("--steps", type=int,
                   help="override the training steps of every pretext (and cap the "
                        "trained baselines')")
    b.add_argument("--seeds", default=None,
                   help="comma-separated evaluation seeds (default 0,1,2; 0 with --quick)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training.<field>=V for every pretext, or <key>.<option>=V for one "
                        "pretext, evaluator or baseline, e.g. core.simclr.temperature=0.5")
    b.add_argument("--no-report", action="store_true",
                   help="skip summary.md and report.html (they take seconds to a minute)")
    b.add_argument("--pretext", action="append", default=[],
                   help="only these pretexts ('none': no pretext, baselines only)")
    b.add_argument("--baseline", action="append", default=[],
                   help="only these baselines ('none': no baseline)")
    b.add_argument("--evaluator", action="append", default=[], help="only these evaluators")
    b.add_argument("--gpu", action="store_true", help="use the benchmarks' larger GPU setting")
    b.add_argument("--sanity", action="store_true",
                   help="run the sanity benchmarks instead (settings where each method's "
                        "assumption holds, so its effect must show; seed 0 unless --seeds): "
                        "print PASS/FAIL per condition and exit 1 on a FAIL")

    rp = sub.add_parser("report", help="one page from a bench folder (report.html, "
                        "summary.md); with two folders, what changed from A to B")
    rp.add_argument("bench_dir", type=Path, help="a 'selfsup bench --out' folder")
    rp.add_argument("other", type=Path, nargs="?",
                    help="a second bench folder: compare it against the first")
    rp.add_argument("--out", type=Path, help="where the comparison goes (default: the second "
                    "folder)")
    return p


def _registry(args: argparse.Namespace) -> Any:
    from selfsup.plugins import Registry, set_registry

    plugins = [s.strip() for s in args.plugins.split(",") if s.strip()] if args.plugins else None
    reg = Registry(
        plugins=plugins,
        autoload=False if args.no_autoload else None,
        strict=True if args.strict else None,
    )
    set_registry(reg)
    return reg.load()


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SelfsupError(f"--seeds {text!r}: expected integers like 0,1,2") from None


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = _registry(args)
    from selfsup.plugins import KNOWN_PLUGINS

    for r in reg.reports:
        status = "ok" if r.ok else "FAILED"
        print(f"{r.name}  {r.distribution} {r.version}  [{status}]")
        for kind, keys in r.registered.items():
            print(f"    {kind}: {', '.join(keys)}")
        for err in r.errors:
            print(f"    error: {err}")
    loaded = {r.name for r in reg.reports if r.ok}
    missing = [d for n, d in KNOWN_PLUGINS.items() if n not in loaded]
    if missing:
        print(f"not installed: {', '.join(missing)}")
    return 0 if all(r.ok for r in reg.reports) else 1


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    for spec in reg.specs(args.kind):
        mods = ",".join(getattr(spec, "modalities", ())) or spec.dataset
        print(f"{spec.name:28s} [{mods}] {spec.summary}")
        if args.verbose:
            for line in describe(spec):
                print(f"    {line}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    reg = _registry(args)
    found = [(kind, reg.get(kind, args.key)) for kind in KINDS if args.key in reg.keys(kind)]
    if not found:
        from selfsup.errors import UnknownKeyError

        everything = sorted(k for kind in KINDS for k in reg.keys(kind))
        import difflib

        close = difflib.get_close_matches(args.key, everything, n=3)
        raise UnknownKeyError(f"no component is registered as {args.key!r}"
                              + (f"; did you mean {', '.join(close)}?" if close else "")
                              + " ('selfsup list KIND' lists them)")
    for kind, spec in found:
        owner = reg.owner(kind, spec.name)
        print(f"{spec.name}  ({kind}, from {owner.distribution} {owner.version})")
        print(f"    {spec.summary}")
        for line in describe(spec):
            print(f"    {line}")
    return 0


def describe(spec: Any) -> list[str]:
    """Lines describing a spec's faces, task kinds and options (with defaults)."""
    from dataclasses import asdict, is_dataclass

    lines = []
    for attr in ("modality", "faces", "face", "needs_views", "task_kinds", "offline"):
        if hasattr(spec, attr):
            lines.append(f"{attr}: {getattr(spec, attr)}")
    if getattr(spec, "views", None):
        lines.append(f"views: {dict(spec.views)}  (set in [dataset.views])")
    options = dict(getattr(spec, "options", {}) or {})
    documented = _documented_options(spec)
    for name, default, _ in documented:
        options.setdefault(name, default)
    docs = {name: doc for name, _, doc in documented}
    for name, value in options.items():
        lines.append(f"option {name} = {value!r}" + (f"  # {docs[name]}" if docs.get(name) else ""))
    if is_dataclass(spec) and not isinstance(spec, type) and not hasattr(spec, "factory"):
        for key, value in asdict(spec).items():
            if key not in ("name", "summary"):
                lines.append(f"{key}: {value}")
    return lines


def _documented_options(spec: Any) -> list[tuple[str, Any, str]]:
    """The options dataclass of a component's factory module (``*Config``), if it has one."""
    factory = getattr(spec, "factory", None)
    if not isinstance(factory, str):
        return []
    import dataclasses
    import importlib

    from selfsup.options import describe_options

    try:
        module = importlib.import_module(factory.partition(":")[0])
    except ImportError:
        return []
    configs = [obj for name, obj in vars(module).items() if name.endswith("Config")
               and isinstance(obj, type) and dataclasses.is_dataclass(obj)
               and obj.__module__ == module.__name__]
    return describe_options(configs[0]) if len(configs) == 1 else []


def _experiment(args: argparse.Namespace, require_pretext: bool) -> Any:
    from selfsup.config import apply_overrides, load_toml, parse_experiment

    raw: dict[str, Any] = load_toml(args.config) if args.config else {}
    for key in ("dataset", "encoder", "pretext"):
        value = getattr(args, key)
        if value:
            section = raw.get(key)
            raw[key] = {**section, "name": value} if isinstance(section, dict) else {"name": value}
    if args.evaluator:
        raw["evaluators"] = list(args.evaluator)
    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"training.steps={args.steps}")
    raw = apply_overrides(raw, overrides)
    if args.config is None and "name" not in raw:
        # named after the pretext as finally set (--pretext or --set pretext.name=...)
        pretext = raw.get("pretext")
        pretext_name = pretext.get("name") if isinstance(pretext, dict) else pretext
        raw["name"] = str(pretext_name).split(".")[-1] if pretext_name else "experiment"
    return parse_experiment(raw, require_pretext=require_pretext)


def _run_dir(args: argparse.Namespace, name: str) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return Path("runs") / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_run(args: argparse.Namespace) -> int:
    exp = _experiment(args, require_pretext=True)
    if args.command == "pretrain" and not args.evaluator:
        exp.evaluators = []  # pretrain exports the encoder; evaluate it later
    reg = _registry(args)
    from selfsup.runner import run_experiment

    run_dir = _run_dir(args, exp.name)
    result = run_experiment(exp, run_dir, reg)
    from selfsup.distributed import is_main_process

    if not is_main_process():  # under torchrun rank 0 reports
        return 0
    print(f"run folder: {run_dir}")
    _print_metrics(result["metrics"], indent="  ")
    for note in result.get("notes", []):
        print(f"  note: {note}")
    return 0


def _print_metrics(metrics: dict[str, float], indent: str = "") -> None:
    from selfsup.bench import is_count

    for key, value in sorted(metrics.items()):
        shown = (str(int(value)) if is_count(key) and float(value).is_integer()
                 else f"{value:.4f}")
        print(f"{indent}{key}: {shown}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    reg = _registry(args)
    from selfsup.config import Component
    from selfsup.rundir import append_eval
    from selfsup.runner import eval_context, evaluate, load_exported, resolve_device

    chosen = [Component(e) for e in args.evaluator] if args.evaluator else None
    exp, built = load_exported(args.run_dir, reg, evaluators=chosen)
    exp.evaluation["seeds"] = _seeds(args.seeds)
    device = resolve_device(str(exp.training.get("device", "auto")))
    notes: list[str] = []
    metrics = evaluate(built.encoder.to(device), built, eval_context(exp, built, device), notes)
    append_eval(args.run_dir, metrics, evaluators=list(built.evaluators),
                seeds=exp.evaluation["seeds"])
    _print_metrics(metrics)
    for note in notes:
        print(f"note: {note}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    reg = _registry(args)
    import numpy as np

    from selfsup.components import EvalContext
    from selfsup.errors import ConfigError
    from selfsup.evaluators.alignment import compare_representations
    from selfsup.evaluators.embeddings import extract_embeddings
    from selfsup.runner import load_exported

    if args.permutations < 1 or args.max_samples < 4:
        raise ConfigError("--permutations must be >= 1 and --max-samples >= 4")
    if args.layers:
        return _compare_layers(args, reg)
    if args.run_b is None:
        raise ConfigError("compare needs two runs (RUN_A RUN_B), or --layers for the stages "
                          "of one")
    (exp_a, built_a), (exp_b, built_b) = (load_exported(r, reg, evaluators=[])
                                          for r in (args.run_a, args.run_b))
    if exp_a.dataset.to_dict() != exp_b.dataset.to_dict():
        raise ConfigError(
            f"the two runs embed different data ({exp_a.dataset.to_dict()} vs "
            f"{exp_b.dataset.to_dict()}); compare encoders of the same dataset and options")
    ctx = EvalContext(device="cpu")
    z_a, _ = extract_embeddings(built_a.encoder, built_a.dataset, args.split, ctx)
    z_b, _ = extract_embeddings(built_b.encoder, built_b.dataset, args.split, ctx)
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.permutation(len(z_a))[: args.max_samples])
    results = compare_representations(z_a[rows], z_b[rows], permutations=args.permutations,
                                      seed=args.seed)
    print(f"A: {args.run_a} ({exp_a.encoder.name}, {z_a.shape[1]}-d)")
    print(f"B: {args.run_b} ({exp_b.encoder.name}, {z_b.shape[1]}-d)")
    print(f"{len(rows)} {args.split} samples of {exp_a.dataset.name}, "
          f"{args.permutations} permutations")
    print("| measure | A vs B | p-value |")
    print("| --- | --- | --- |")
    for r in results:
        print(f"| {r.measure} | {r.value:.4f} | {r.p_value:.4f} |")
    return 0


def _compare_layers(args: argparse.Namespace, reg: Any) -> int:
    """``compare --layers``: the stage-by-stage matrix of A against B (or against A)."""
    import numpy as np

    from selfsup.components import STAGES, EvalContext
    from selfsup.errors import ConfigError
    from selfsup.evaluators.alignment import Measure, extract_stages, layer_matrix, rsa
    from selfsup.evaluators.cka import linear_cka
    from selfsup.runner import load_exported

    runs = [args.run_a] if args.run_b is None else [args.run_a, args.run_b]
    loaded = [load_exported(r, reg, evaluators=[]) for r in runs]
    for run, (exp, _) in zip(runs, loaded, strict=True):
        if not reg.get("encoder", exp.encoder.name).offers(STAGES):
            offering = [e.name for e in reg.specs("encoder") if e.offers(STAGES)]
            raise ConfigError(
                f"{run}: encoder {exp.encoder.name!r} does not offer the 'stages' face that "
                f"--layers reads; encoders that do: {', '.join(offering) or '(none)'}")
    if loaded[0][0].dataset.to_dict() != loaded[-1][0].dataset.to_dict():
        raise ConfigError(
            f"the two runs embed different data ({loaded[0][0].dataset.to_dict()} vs "
            f"{loaded[-1][0].dataset.to_dict()}); compare encoders of the same dataset")
    ctx = EvalContext(device="cpu")
    stages = [extract_stages(built.encoder, built.dataset, args.split, ctx)
              for _, built in loaded]
    rows = np.sort(np.random.default_rng(args.seed).permutation(len(stages[0][0]))
                   [: args.max_samples])
    xs, ys = [s[rows] for s in stages[0]], [s[rows] for s in stages[-1]]
    tags = ["A", "A" if len(runs) == 1 else "B"]
    for tag, run, (exp, _), found in zip(("A", "B"), runs, loaded, stages, strict=False):
        widths = ", ".join(str(s.shape[1]) for s in found)
        print(f"{tag}: {run} ({exp.encoder.name}, {len(found)} stages: {widths})")
    print(f"{len(rows)} {args.split} samples of {loaded[0][0].dataset.name}; rows: stages of "
          f"A, columns: stages of {tags[1]}, shallow to deep")
    measures: dict[str, Measure] = {"linear CKA": linear_cka}
    if args.rsa:
        measures["RSA"] = rsa
    for name, measure in measures.items():
        matrix = layer_matrix(xs, ys, measure)
        print(f"\n{name}\n")
        print("| | " + " | ".join(f"{tags[1]}{j + 1}" for j in range(len(ys))) + " |")
        print("| --- " * (len(ys) + 1) + "|")
        for i, values in enumerate(matrix):
            print(f"| A{i + 1} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    return 0


def _selection(keys: list[str]) -> list[str] | None:
    """``--pretext``/``--baseline`` values: None for all, [] for 'none'."""
    if keys == ["none"]:
        return []
    return keys or None


def cmd_bench(args: argparse.Namespace) -> int:
    reg = _registry(args)
    from selfsup.bench import markdown_table, run_bench

    quick = args.quick or args.budget is not None
    one_seed = quick or args.sanity
    seeds = _seeds(args.seeds if args.seeds is not None else "0" if one_seed else "0,1,2")
    result = run_bench(
        args.out, benchmarks=args.benchmark or None, registry=reg, steps=args.steps,
        seeds=seeds, gpu=args.gpu, pretexts=_selection(args.pretext),
        baselines=_selection(args.baseline), evaluators=args.evaluator or None,
        quick=quick, budget_minutes=args.budget, settings=args.set,
        command=["selfsup", *sys.argv[1:]], sanity=args.sanity,
    )
    print(markdown_table(result))
    print(f"results: {args.out / 'results.json'}, {args.out / 'results.md'}, "
          f"{args.out / 'results.png'}")
    if not args.no_report:
        from selfsup.report import verdict_table, verdicts, write_report

        _, page = write_report(args.out)
        rows = verdict_table(verdicts(result), result)
        if len(rows) > 1:
            print("\nWhere pretraining beats the best baseline:")
            for row in rows[1:]:
                print(f"  {row[0]} [{row[2]} labels]: {row[6]}: {row[3]} vs {row[4]}, "
                      f"difference {row[5]}")
        print(f"report: {page}, {args.out / 'summary.md'}")
    for check in result.sanity:
        print(f"{'PASS' if check['passed'] else 'FAIL'}  {check['benchmark']}: "
              f"{check['condition']}: {check['detail']}")
    if not result.ok:
        print(f"selfsup: error: {len(result.failed)} row(s) failed (listed under 'Failed' in "
              f"{args.out / 'results.md'})", file=sys.stderr)
        return 1
    if result.sanity_failed:
        print(f"selfsup: error: {len(result.sanity_failed)} of {len(result.sanity)} sanity "
              "condition(s) failed: a method does not show its effect where its assumption "
              "holds; a bug until shown otherwise", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.other is None:
        from selfsup.report import write_report

        md, page = write_report(args.bench_dir)
        print(md.read_text(encoding="utf-8").split("\n## Tables", 1)[0].rstrip())
        print(f"\nreport: {page}, {md}")
        return 0
    from selfsup.report import write_comparison

    md, page, _ = write_comparison(args.bench_dir, args.other, args.out)
    print(md.read_text(encoding="utf-8").rstrip())
    print(f"\ncomparison: {page}, {md}")
    return 0


COMMANDS = {
    "plugins": cmd_plugins,
    "list": cmd_list,
    "show": cmd_show,
    "run": cmd_run,
    "pretrain": cmd_run,
    "evaluate": cmd_evaluate,
    "compare": cmd_compare,
    "bench": cmd_bench,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.debug:
        os.environ.setdefault("SELFSUP_DEBUG", "1")
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (``selfsup plugins | head``): stop writing, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        print("selfsup: output closed by the reader (broken pipe); nothing else was lost",
              file=sys.stderr)
        return 2
    except SelfsupError as exc:
        if args.debug:
            raise
        print(f"selfsup: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"selfsup: error: {type(exc).__name__}: {exc} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selfsup: interrupted; an existing run folder resumes from its last checkpoint",
              file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The error on one line (a multi-line message is joined with '; ')."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
