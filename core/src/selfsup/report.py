"""``selfsup report``: a bench folder as one page a researcher reads in a minute.

The question a cross-domain benchmark answers is *where does self-supervised
pretraining beat the best baseline, by how much, with what spread, at what
cost?* :func:`verdicts` answers it per benchmark and label regime from the
benchmark's headline metric (``BenchmarkSpec.headline`` and ``direction``):

- the best pretext and the best baseline by the headline's mean;
- a baseline trained on every train label (``core.supervised``) competes only in
  the full-label regime: with 10% of the labels it is an upper reference;
- ``difference``: pretext minus baseline, signed so that positive is better;
- ``win``/``loss`` when the difference exceeds the combined seed spread
  ``sqrt(std_p^2 + std_b^2)``, else ``tie``; where no spread was measured (one
  seed, a deterministic metric) the verdict says so.

:func:`write_report` writes ``summary.md`` and a self-contained ``report.html``
(no network access: images are inline PNGs, styles inline): the verdicts, then per
benchmark the table with the headline columns first, bars from zero, label-
efficiency curves, training curves from each run's ``metrics.jsonl`` (loss and the
collapse diagnostics: effective rank and per-dimension std, online kNN where
logged), a t-SNE map of each row's test embeddings, the benchmark's own figures
(``BenchmarkSpec.figures``), skipped and failed rows, and the run's provenance.
:func:`compare` puts two bench folders side by side, regressions in red.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfsup.bench import (
    BenchResult,
    Row,
    _fmt,
    headline_keys,
    markdown_table,
    mean_std,
    ordered_keys,
    table_keys,
)
from selfsup.errors import RunFolderError

#: Metric names (the part after the evaluator) where lower is better.
LOWER_IS_BETTER = ("rmse", "mae", "mse", "nrmse", "fpr", "error", "loss", "hd95")
#: Training-curve series read from ``metrics.jsonl`` (what the trainer logs).
CURVES = (("loss", "loss"), ("emb_rank", "effective rank"), ("emb_std", "per-dim std"),
          ("knn_accuracy", "online kNN accuracy"))


def load(bench_dir: str | Path) -> BenchResult:
    """The bench folder's ``results.json``, with a clear error when there is none."""
    path = Path(bench_dir)
    if not path.is_dir():
        raise RunFolderError(f"bench folder {path} does not exist")
    results = path / "results.json"
    if not results.is_file():
        raise RunFolderError(f"{path} holds no results.json; is it a 'selfsup bench --out' "
                             "folder?")
    try:
        return BenchResult.from_json(json.loads(results.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunFolderError(f"{results} is not a bench result ({type(exc).__name__}: {exc})"
                             ) from None


def direction_of(key: str, headline: str = "", direction: str = "higher") -> str:
    """``"higher"`` or ``"lower"``: the headline's declared direction, else by name."""
    base = key.split("@")[0]
    if headline and base == headline:
        return direction
    name = base.rsplit(".", 1)[-1]
    return "lower" if any(name == t or name.startswith(t + "_") or name.endswith("_" + t)
                          for t in LOWER_IS_BETTER) else "higher"


def judged_keys(scores: Sequence[str], headline: str) -> list[str]:
    """The headline's columns among ``scores`` (one per label regime); none declared or
    found: the first score."""
    return headline_keys(scores, headline) or list(scores[:1])


def regime(key: str) -> str:
    """The label regime of a metric key: ``"10%"`` for ``...@10%``, else ``"all"``."""
    return key.split("@", 1)[1] if "@" in key else "all"


@dataclass
class Verdict:
    benchmark: str
    metric: str
    direction: str
    pretext: str
    pretext_value: float
    pretext_std: float
    baseline: str
    baseline_value: float
    baseline_std: float
    difference: float  # positive: the pretext is better
    spread: float  # 0.0: none measured
    verdict: str  # win, tie, loss (with "no spread" where none was measured)
    seconds: float  # wall time of the best pretext's row

    @property
    def regime(self) -> str:
        return regime(self.metric)


def _value(row: Row, key: str) -> tuple[float, float] | None:
    value = row.metrics.get(key)
    if value is None or not math.isfinite(value):
        return None
    return float(value), float(row.metrics.get(key + "_std", 0.0) or 0.0)


def _best(rows: Sequence[Row], key: str, direction: str) -> tuple[Row, float, float] | None:
    scored = [(r, *v) for r in rows if (v := _value(r, key)) is not None]
    if not scored:
        return None
    pick = max if direction == "higher" else min
    return pick(scored, key=lambda t: t[1])


def verdicts(result: BenchResult) -> list[Verdict]:
    """One verdict per benchmark and label regime of its headline metric."""
    out = []
    for bench in dict.fromkeys(r.benchmark for r in result.rows):
        info = result.benchmarks.get(bench, {})
        rows = [r for r in result.rows if r.benchmark == bench]
        headline = info.get("headline", "")
        scores, _ = ordered_keys(rows, headline)
        keys = judged_keys(scores, headline)
        for key in keys:
            direction = direction_of(key, headline, info.get("direction", "higher"))
            baselines = [r for r in rows if r.kind == "baseline"
                         and not (r.uses_labels and regime(key) != "all")]
            p = _best([r for r in rows if r.kind == "pretext"], key, direction)
            b = _best(baselines, key, direction)
            if p is None or b is None:
                continue
            diff = (p[1] - b[1]) if direction == "higher" else (b[1] - p[1])
            spread = math.hypot(p[2], b[2])
            if spread > 0:
                word = "win" if diff > spread else "loss" if diff < -spread else "tie"
            else:
                word = ("win" if diff > 0 else "loss" if diff < 0 else "tie") + " (no spread)"
            out.append(Verdict(bench, key, direction, p[0].method, p[1], p[2], b[0].method,
                               b[1], b[2], diff, spread, word, p[0].seconds))
    return out


def verdict_table(items: Sequence[Verdict], result: BenchResult) -> list[list[str]]:
    """Header and rows of the cross-domain summary."""
    rows = [["benchmark", "metric", "labels", "best pretext", "best baseline", "difference",
             "verdict", "time"]]
    for v in items:
        bench_s = result.benchmarks.get(v.benchmark, {}).get("seconds")
        cost = f"{v.seconds:.0f} s" + (f" (bench {bench_s / 60:.1f} min)" if bench_s else "")
        rows.append([v.benchmark, f"{v.metric.split('@')[0]} ({v.direction} is better)",
                     v.regime, f"{v.pretext} {mean_std(v.pretext_value, v.pretext_std)}",
                     f"{v.baseline} {mean_std(v.baseline_value, v.baseline_std)}",
                     f"{v.difference:+.3f}" + (f" (spread {v.spread:.3f})" if v.spread else ""),
                     v.verdict, cost])
    return rows


def _md(rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "| --- " * len(rows[0]) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows[1:]]


def summary_markdown(result: BenchResult) -> str:
    """``summary.md``: the verdicts first, then the tables, skips and provenance."""
    items = verdicts(result)
    lines = ["# selfsup bench report", ""]
    if result.quick:
        lines += ["**Quick run**: headline methods, fewer steps, one seed; a first look, "
                  "not the benchmarks' numbers.", ""]
    lines += ["## Where pretraining beats the best baseline", ""]
    if items:
        lines += _md(verdict_table(items, result))
        lines += ["", "Difference: best pretext minus best baseline on the headline metric, "
                  "positive when the pretext is better. Win/loss: beyond the combined seed "
                  "spread; a supervised baseline trained on every label competes only with "
                  "all labels.", ""]
    else:
        lines += ["No benchmark has both a pretext and a baseline row to compare.", ""]
    lines += ["## Tables", "", markdown_table(result), "## Provenance", ""]
    lines += [f"- {k}: {_plain(v)}" for k, v in result.provenance.items()]
    for bench, info in result.benchmarks.items():
        lines.append(f"- {bench}: data fingerprint {info.get('fingerprint', '?')}, steps "
                     f"{info.get('steps')}, seeds {info.get('seeds')}")
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "(none)"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "(none)"
    return str(value)


# ---------------------------------------------------------------- figures


def _png(fig: Any) -> str:
    """A matplotlib figure as an inline ``<img>`` (base64 PNG); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(rows: Sequence[Row], keys: Sequence[str]) -> Any:
    """Horizontal bars from zero, one panel per headline regime, seed spreads as error bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.8 * len(keys) + 1.6,
                                                    0.32 * len(rows) + 1.2), squeeze=False)
    names = [r.method for r in rows]
    for ax, key in zip(axes[0], keys, strict=True):
        values = [r.metrics.get(key, math.nan) for r in rows]
        errs = [r.metrics.get(key + "_std", 0.0) for r in rows]
        colors = ["tab:blue" if r.kind == "pretext" else "tab:gray" for r in rows]
        ax.barh(names, values, xerr=errs, color=colors, capsize=2)
        for i, v in enumerate(values):
            if math.isfinite(v):
                ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
        ax.set_xlim(left=min(0.0, *[v for v in values if math.isfinite(v)]) * 1.1)
        ax.set_title(f"{key} (axis from 0)", fontsize=9)
        ax.invert_yaxis()
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    fig.tight_layout()
    return fig


def _fraction(reg: str) -> float | None:
    if reg == "all":
        return 100.0
    try:
        return float(reg.rstrip("%"))
    except ValueError:
        return None


def label_curves(rows: Sequence[Row], keys: Sequence[str]) -> Any | None:
    """The headline against the label fraction, one line per method (two regimes or more)."""
    found = [(k, _fraction(regime(k))) for k in keys]
    points = sorted([(k, x) for k, x in found if x is not None], key=lambda t: t[1])
    if len(points) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    unit = "%" if any(k.endswith("%") for k, _ in points) else " labels"
    for r in rows:
        xs = [x for k, x in points if k in r.metrics and not (r.uses_labels and x != 100.0)]
        ks = [k for k, x in points if k in r.metrics and not (r.uses_labels and x != 100.0)]
        if len(xs) < 2:
            continue
        ax.errorbar(xs, [r.metrics[k] for k in ks],
                    yerr=[r.metrics.get(k + "_std", 0.0) for k in ks], marker="o",
                    linestyle="-" if r.kind == "pretext" else "--", capsize=2, label=r.method)
    ax.set_xscale("log")
    ticks = sorted({x for _, x in points})
    ax.set_xticks(ticks, [f"{x:g}{unit}" for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labels used (log scale)")
    ax.set_ylabel(keys[0].split("@")[0])
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by an interrupted write: the rest is still a curve
    return out


def training_curves(bench_dir: Path, rows: Sequence[Row]) -> Any | None:
    """Loss, effective rank, per-dimension std and online kNN against the step."""
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        path = bench_dir / r.folder / "metrics.jsonl"
        if r.kind == "pretext" and r.folder and path.is_file():
            series[r.method] = [e for e in _read_jsonl(path) if e.get("phase") == "train"]
    present = [(k, t) for k, t in CURVES if any(k in e for s in series.values() for e in s)]
    if not present:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present) + 1, 3.2),
                             squeeze=False)
    for ax, (key, title) in zip(axes[0], present, strict=True):
        for method, entries in series.items():
            pts = [(e["step"], e[key]) for e in entries if key in e and "step" in e]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=method,
                        marker="o" if len(pts) < 10 else None, markersize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def embedding_maps(bench_dir: Path, rows: Sequence[Row], task: str) -> Any | None:
    """A t-SNE map of each row's test embeddings, coloured by label."""
    import numpy as np

    found = []
    for r in rows:
        path = bench_dir / r.folder / "embeddings.npz"
        if r.folder and path.is_file():
            with np.load(path) as data:
                found.append((r.method, data["z"], data["y"]))
    if not found:
        return None
    from sklearn.manifold import TSNE

    plt = _pyplot()
    ncols = min(4, len(found))
    nrows = math.ceil(len(found) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(found):]:
        ax.axis("off")
    for ax, (method, z, y) in zip(axes.flat, found, strict=False):
        z = np.nan_to_num(np.asarray(z, dtype=np.float64).reshape(len(z), -1))
        if z.shape[1] > 2 and len(z) > 5 and np.ptp(z, axis=0).max() > 0:
            xy = TSNE(n_components=2, init="pca", random_state=0,
                      perplexity=min(30.0, (len(z) - 1) / 3)).fit_transform(z)
        else:  # a constant or tiny representation: plot it as it is
            xy = np.pad(z[:, :2], ((0, 0), (0, max(0, 2 - z.shape[1]))))
        labels = np.asarray(y)
        colour = labels if labels.ndim == 1 else labels.argmax(axis=1)
        ax.scatter(xy[:, 0], xy[:, 1], c=colour, s=4,
                   cmap="tab10" if task == "classification" else "viridis")
        ax.set_title(method, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("test embeddings, t-SNE, coloured by label", fontsize=9)
    fig.tight_layout()
    return fig


def plugin_figures(spec: str, bench_dir: Path, rows: Sequence[Row]) -> list[tuple[str, Any]]:
    """The benchmark's own figures (``BenchmarkSpec.figures``); errors become a note."""
    module, _, name = spec.partition(":")
    draw = getattr(importlib.import_module(module), name)
    return list(draw(bench_dir, [r.__dict__ for r in rows]))


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1200px;color:#222;line-height:1.4}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;margin:8px 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3} tr.baseline td{color:#555}
.win{background:#d9f2d9} .loss{background:#f8d4d4} .tie{background:#eee}
.worse{color:#b00000;font-weight:600} .better{color:#006400}
.quick{background:#fff3cd;border:1px solid #e0c36c;padding:6px 10px;display:inline-block}
img{max-width:100%;display:block;margin:8px 0} .wide{overflow-x:auto}
.note{color:#666;font-size:0.85em}
"""

# Reports a broken inline image to the browser's console, which the report-browser
# check fails on (an image that did not decode has naturalWidth 0).
_CHECK_IMAGES = """
window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) { console.error("broken image: " + img.alt); }
  });
});
"""


def _table(rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = []
    for i, row in enumerate(rows[1:]):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"<script>{_CHECK_IMAGES}</script></head><body>{''.join(body)}</body></html>\n")


def _benchmark_section(bench: str, result: BenchResult, bench_dir: Path) -> list[str]:
    info = result.benchmarks.get(bench, {})
    rows = [r for r in result.rows if r.benchmark == bench]
    headline = info.get("headline", "")
    keys, counts = table_keys(rows, info)
    heads = judged_keys(keys, headline)
    out = [f"<h2>{html.escape(bench)}</h2>"]
    if info.get("summary"):
        out.append(f"<p>{html.escape(info['summary'])}</p>")
    shown = headline or (heads[0] if heads else "?")
    out.append(f"<p>Headline: <b>{html.escape(shown)}</b>, "
               f"{html.escape(info.get('direction', 'higher'))} is better; seeds "
               f"{html.escape(str(info.get('seeds')))}, "
               + (f"{info['steps']} pretraining steps." if info.get("steps") else
                  "no pretraining (every row a baseline).")
               + "</p>")
    table = [["method", *keys, "time (s)"]]
    table += [[r.method, *[_fmt(r.metrics, k) for k in keys], f"{r.seconds:.1f}"] for r in rows]
    out.append('<div class="wide">'
               + _table(table, ["baseline" if r.kind == "baseline" else "" for r in rows])
               + "</div>")
    details = [["method", *counts, "note"]]
    details += [[r.method, *[_fmt(r.metrics, k) for k in counts], r.note] for r in rows]
    out.append("<details><summary>other metrics, counts and notes</summary>" + _table(details)
               + "</details>")
    figures: list[tuple[str, Any]] = []
    if heads:
        figures.append(("Headline, bars from zero (blue: pretexts, grey: baselines)",
                        bars(rows, heads)))
        curve = label_curves(rows, heads)
        if curve is not None:
            figures.append(("Label efficiency", curve))
    curves = training_curves(bench_dir, rows)
    if curves is not None:
        figures.append(("Training curves (collapse shows as a falling rank or std)", curves))
    maps = embedding_maps(bench_dir, rows, info.get("task", "classification"))
    if maps is not None:
        figures.append(("Test embeddings", maps))
    notes: list[str] = []
    if info.get("figures"):
        try:
            figures += plugin_figures(info["figures"], bench_dir, rows)
        except Exception as exc:  # a plugin's picture must not cost the report
            notes.append(f"the benchmark's own figures ({info['figures']}) failed: "
                         f"{type(exc).__name__}: {exc}")
    for title, fig in figures:
        out += [f"<h3>{html.escape(title)}</h3>", _png(fig)]
    out += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    return out


def report_html(result: BenchResult, bench_dir: Path) -> str:
    items = verdicts(result)
    body = ["<h1>selfsup bench report</h1>"]
    if result.quick:
        body.append('<p class="quick"><b>Quick run</b>: headline methods, fewer steps, one '
                    "seed: a first look, not the benchmarks' numbers.</p>")
    body.append("<h2>Where pretraining beats the best baseline</h2>")
    if items:
        body.append(_table(verdict_table(items, result),
                           [v.verdict.split()[0] for v in items]))
        body.append('<p class="note">Difference: best pretext minus best baseline on the '
                    "headline metric, positive when the pretext is better. Win/loss: beyond "
                    "the combined seed spread. A supervised baseline trained on every label "
                    "competes only with all labels.</p>")
    else:
        body.append("<p>No benchmark has both a pretext and a baseline row to compare.</p>")
    if result.sanity:
        body.append("<h2>Sanity checks</h2>")
        body.append(_table([["benchmark", "condition", "result", ""]]
                           + [[c["benchmark"], c["condition"], c["detail"],
                               "PASS" if c["passed"] else "FAIL"] for c in result.sanity],
                           ["win" if c["passed"] else "loss" for c in result.sanity]))
        body.append('<p class="note">Settings where each method\'s assumption holds by '
                    "construction, so its effect must show; a FAIL is a bug until shown "
                    "otherwise.</p>")
    for bench in dict.fromkeys(r.benchmark for r in result.rows):
        body += _benchmark_section(bench, result, bench_dir)
    if result.failed or result.skipped:
        body.append("<h2>Skipped and failed rows</h2><ul>")
        body += [f"<li><b>failed</b>: {html.escape(s)}</li>" for s in result.failed]
        body += [f"<li>skipped: {html.escape(s)}</li>" for s in result.skipped]
        body.append("</ul>")
    prov = [["what", "value"]] + [[k, _plain(v)] for k, v in result.provenance.items()]
    prov += [[f"{b} data", f"fingerprint {i.get('fingerprint')}, {i.get('steps')} steps, "
                          f"seeds {i.get('seeds')}"] for b, i in result.benchmarks.items()]
    if result.missing_plugins:
        prov.append(["plugins not installed", ", ".join(result.missing_plugins)])
    body += ["<h2>Provenance</h2>", _table(prov),
             '<p class="note">Numbers reproduce exactly with the same versions, thread '
             "count and BLAS; with another thread count or BLAS, float reductions round "
             "differently and probe scores move in the third decimal.</p>"]
    return _page("selfsup bench report", body)


def write_report(bench_dir: str | Path) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``report.html`` into the bench folder; return their paths."""
    bench_dir = Path(bench_dir)
    result = load(bench_dir)
    md, page = bench_dir / "summary.md", bench_dir / "report.html"
    md.write_text(summary_markdown(result), encoding="utf-8")
    page.write_text(report_html(result, bench_dir), encoding="utf-8")
    return md, page


# ---------------------------------------------------------------- A vs B


@dataclass
class Change:
    benchmark: str
    method: str
    metric: str
    a: float
    b: float
    spread: float
    status: str  # "better", "worse", "same", "new", "gone"


def compare(a: BenchResult, b: BenchResult) -> list[Change]:
    """Every score of B against A; worse/better beyond the combined seed spread."""
    def index(result: BenchResult) -> dict[tuple[str, str, str], tuple[float, float]]:
        out = {}
        for r in result.rows:
            scores, _ = ordered_keys([r], result.benchmarks.get(r.benchmark, {})
                                     .get("headline", ""))
            for k in scores:
                v = _value(r, k)
                if v is not None:
                    out[(r.benchmark, r.method, k)] = v
        return out

    ia, ib = index(a), index(b)
    changes = []
    for key in list(dict.fromkeys([*ia, *ib])):
        bench, method, metric = key
        info = (b.benchmarks.get(bench) or a.benchmarks.get(bench) or {})
        direction = direction_of(metric, info.get("headline", ""),
                                 info.get("direction", "higher"))
        if key not in ib or key not in ia:
            changes.append(Change(bench, method, metric, ia.get(key, (math.nan, 0.0))[0],
                                  ib.get(key, (math.nan, 0.0))[0], 0.0,
                                  "gone" if key not in ib else "new"))
            continue
        (va, sa), (vb, sb) = ia[key], ib[key]
        gain = (vb - va) if direction == "higher" else (va - vb)
        spread = math.hypot(sa, sb)
        margin = max(spread, 1e-9 + 1e-6 * max(abs(va), abs(vb)))
        status = "better" if gain > margin else "worse" if gain < -margin else "same"
        changes.append(Change(bench, method, metric, va, vb, spread, status))
    return changes


def compare_markdown(changes: Sequence[Change], a: Path, b: Path) -> str:
    moved = [c for c in changes if c.status != "same"]
    lines = [f"# {b} against {a}", "",
             f"{sum(c.status == 'worse' for c in changes)} worse, "
             f"{sum(c.status == 'better' for c in changes)} better, "
             f"{sum(c.status == 'same' for c in changes)} within the spread, "
             f"{sum(c.status in ('new', 'gone') for c in changes)} only in one folder.", ""]
    if moved:
        lines += _md([["benchmark", "method", "metric", "A", "B", "status"]]
                     + [[c.benchmark, c.method, c.metric, f"{c.a:.3f}", f"{c.b:.3f}",
                         c.status.upper() if c.status == "worse" else c.status]
                        for c in moved])
    return "\n".join(lines) + "\n"


def write_comparison(dir_a: str | Path, dir_b: str | Path,
                     out: str | Path | None = None) -> tuple[Path, Path, list[Change]]:
    """``compare.md`` and ``compare.html`` (in ``out``, default B's folder)."""
    dir_a, dir_b = Path(dir_a), Path(dir_b)
    changes = compare(load(dir_a), load(dir_b))
    target = Path(out) if out else dir_b
    target.mkdir(parents=True, exist_ok=True)
    md, page = target / "compare.md", target / "compare.html"
    md.write_text(compare_markdown(changes, dir_a, dir_b), encoding="utf-8")
    rows = [["benchmark", "method", "metric", "A", "B", "change", "status"]]
    classes = []
    for c in changes:
        rows.append([c.benchmark, c.method, c.metric, f"{c.a:.3f}", f"{c.b:.3f}",
                     f"{c.b - c.a:+.3f}" if math.isfinite(c.b - c.a) else "–", c.status])
        classes.append({"worse": "worse", "better": "better"}.get(c.status, ""))
    body = [f"<h1>{html.escape(str(dir_b))} against {html.escape(str(dir_a))}</h1>",
            "<p>Worse or better: beyond the combined seed spread of the two runs, in the "
            "metric's direction (red: a regression).</p>", _table(rows, classes)]
    page.write_text(_page("selfsup bench comparison", body), encoding="utf-8")
    return md, page, changes
