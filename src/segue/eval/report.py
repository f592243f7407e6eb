"""An evaluation as a folder: ``report.md`` with the tables, and PNG plots beside it.

The folder is written under a temporary name next to the target and renamed into place only
when complete, so a reader never finds half a report and a failed run leaves the old one.
Tables are built here once and shared with the command line (``main_table``/``bucket_table``).
Plots use Matplotlib's Agg canvas directly, never pyplot, so no display or global backend is
touched.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segue.errors import SegueError
from segue.eval.runner import Evaluation

if TYPE_CHECKING:  # matplotlib is the reports extra: imported where a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT = "report.md"
NDCG_PLOT = "ndcg_at_k.png"
BUCKET_PLOT = "buckets.png"

# (metric key, header; "@" marks metrics at k)
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("precision", "P@"),
    ("recall", "R@"),
    ("ndcg", "NDCG@"),
    ("hit_rate", "HR@"),
    ("map", "MAP@"),
    ("mrr", "MRR@"),
    ("auc", "AUC"),
    ("coverage", "coverage"),
    ("novelty", "novelty"),
    ("diversity", "ILD"),
    ("arp", "ARP"),
    ("pop_percentile", "pop pct"),
    ("gini", "Gini"),
)
_BUCKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("precision", "P@"),
    ("recall", "R@"),
    ("ndcg", "NDCG@"),
    ("hit_rate", "HR@"),
)


def _number(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.{digits}f}"


def _header(label: str, k: int) -> str:
    return f"{label}{k}" if label.endswith("@") else label


def main_table(
    evaluation: Evaluation,
    digits: int = 4,
    *,
    columns: Sequence[str] | None = None,
    plus_minus: str = " ± ",
) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: per model, mean ± std of each metric, then mean seconds.

    ``columns`` picks metric keys (default: every one measured); a terminal wants fewer.
    """
    wanted = set(columns) if columns is not None else None
    present = [
        (key, label)
        for key, label in _COLUMNS
        if any(key in s.mean for s in evaluation.summaries) and (wanted is None or key in wanted)
    ]
    several = len(evaluation.seeds) > 1
    headers = ["model", *(_header(label, evaluation.k) for _, label in present)]
    headers += ["fit s", "rec s"]
    rows = []
    for s in evaluation.summaries:
        cells = [s.model]
        for key, _ in present:
            mean = s.mean.get(key, math.nan)
            cell = _number(mean, digits)
            if several and not math.isnan(mean):
                cell += f"{plus_minus}{_number(s.std.get(key, math.nan), digits)}"
            cells.append(cell)
        cells += [f"{s.fit_seconds:.2f}", f"{s.recommend_seconds:.2f}"]
        rows.append(cells)
    return headers, rows


def bucket_table(evaluation: Evaluation, digits: int = 4) -> tuple[list[str], list[list[str]]]:
    """Per model and non-empty activity bucket: mean users and mean metrics at k over seeds."""
    headers = ["model", "train pairs", "users"]
    headers += [_header(label, evaluation.k) for _, label in _BUCKET_COLUMNS]
    rows = []
    for s in evaluation.summaries:
        for label in evaluation.buckets:
            row = s.by_bucket[label]
            if not row["users"] > 0:
                continue
            cells = [s.model, label, f"{row['users']:.0f}"]
            cells += [_number(row[key], digits) for key, _ in _BUCKET_COLUMNS]
            rows.append(cells)
    return headers, rows


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(evaluation: Evaluation) -> str:
    e = evaluation
    seeds = ", ".join(str(s) for s in e.seeds)
    spread = "mean ± sample std over seeds" if len(e.seeds) > 1 else "one seed"
    parts = [
        f"# Offline evaluation: {e.protocol}",
        "",
        f"Protocol: {e.description}. Split seeds: {seeds} ({spread}). Lists of k = {e.k}.",
        "",
        "Popularity (novelty, ARP, percentile) counts training listeners per item; coverage and"
        " Gini are over the whole catalog"
        + (f"; intra-list diversity (ILD) uses {e.diversity_basis}." if e.diversity_basis else "."),
        "",
        "## Models",
        "",
        _markdown(*main_table(e)),
        "",
        "## By user activity",
        "",
        f"Users grouped by their training pairs; metrics at {e.k}, means over seeds.",
        "",
        _markdown(*bucket_table(e)),
        "",
        f"![NDCG@{e.k} per activity bucket]({BUCKET_PLOT})",
        "",
        "## NDCG at each cut-off",
        "",
        _markdown(
            ["model", *(f"NDCG@{c}" for c in e.ks)],
            [[s.model, *(_number(s.curves["ndcg"][c]) for c in e.ks)] for s in e.summaries],
        ),
        "",
        f"![NDCG at k]({NDCG_PLOT})",
        "",
        "## Splits",
        "",
        _markdown(
            ["seed", "train pairs", "valid pairs", "test pairs"],
            [[str(seed), *(f"{n:,}" for n in size)] for seed, size in e.split_sizes.items()],
        ),
        "",
    ]
    return "\n".join(parts)


def _legend_outside(ax: Axes) -> None:
    """The legend to the right of the axes, never over the lines or bars it names (with ten
    models a legend inside covers a third of the plot)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def ndcg_figure(evaluation: Evaluation) -> Figure:
    """NDCG at each cut-off per model (log x), legend outside the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.0), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for s in evaluation.summaries:
        cuts = list(evaluation.ks)
        ax.plot(cuts, [s.curves["ndcg"][c] for c in cuts], marker="o", label=s.model)
    ax.set_xscale("log")
    ax.set_xticks(list(evaluation.ks), labels=[str(c) for c in evaluation.ks])
    ax.set_xlabel("k (list length)")
    ax.set_ylabel("NDCG@k")
    ax.set_title(f"NDCG@k, {evaluation.protocol} protocol")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    figure.tight_layout()
    return figure


def bucket_figure(evaluation: Evaluation) -> Figure:
    """NDCG per user-activity bucket, a bar per model, legend outside the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [
        b
        for b in evaluation.buckets
        if any(s.by_bucket[b]["users"] > 0 for s in evaluation.summaries)
    ]
    figure = Figure(figsize=(8.0, 4.0), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    width = 0.8 / max(len(evaluation.summaries), 1)
    for i, s in enumerate(evaluation.summaries):
        values = [s.by_bucket[b]["ndcg"] for b in labels]
        values = [0.0 if math.isnan(v) else v for v in values]
        ax.bar([j + i * width for j in range(len(labels))], values, width, label=s.model)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels=labels)
    ax.set_xlabel("training pairs per user")
    ax.set_ylabel(f"NDCG@{evaluation.k}")
    ax.set_title("NDCG by user activity")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(ax)
    figure.tight_layout()
    return figure


def write_report(evaluation: Evaluation, path: str | Path) -> Path:
    """Write ``report.md``, ``ndcg_at_k.png`` and ``buckets.png`` into folder ``path``.

    An existing folder at ``path`` is replaced as a whole; an existing *file* there is an error.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise SegueError(f"report path {final} is a file; give a folder for the report")
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = final.with_name(f".{final.name}.tmp-{token}")
    old = final.with_name(f".{final.name}.old-{token}")
    tmp.mkdir()
    try:
        (tmp / REPORT).write_text(render_markdown(evaluation), encoding="utf-8")
        for figure, name in ((ndcg_figure(evaluation), NDCG_PLOT),
                             (bucket_figure(evaluation), BUCKET_PLOT)):  # fmt: skip
            figure.savefig(tmp / name, bbox_inches="tight")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final
