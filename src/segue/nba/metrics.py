"""Offline metrics of a click model, and the report folder (Markdown + PNG plots).

The expected calibration error uses equal-frequency bins: with click rates of a few per cent,
equal-width bins put nearly every prediction in the first bin and the ECE says nothing. On
synthetic data the same metrics of the *true* probabilities are the ceiling a model can reach.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segue.errors import SegueError

REPORT = "report.md"
CALIBRATION_PLOT = "calibration.png"
ROC_PLOT = "roc_pr.png"
N_BINS = 20


@dataclass(frozen=True)
class ClickMetrics:
    n: int
    base_rate: float
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    auc_roc: float
    pr_auc: float
    log_loss: float
    ece: float
    tn: int
    fp: int
    fn: int
    tp: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class CalibrationCurve:
    predicted: np.ndarray  # mean prediction per bin
    observed: np.ndarray  # click rate per bin
    count: np.ndarray


def calibration_curve(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> CalibrationCurve:
    """Equal-frequency bins of the predictions, sorted by prediction."""
    y, p = _checked(y, p)
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, min(n_bins, len(p)))
    return CalibrationCurve(
        predicted=np.array([p[b].mean() for b in bins]),
        observed=np.array([y[b].mean() for b in bins]),
        count=np.array([len(b) for b in bins]),
    )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> float:
    """Σ (bin share) · |click rate − mean prediction| over equal-frequency bins."""
    curve = calibration_curve(y, p, n_bins)
    weights = curve.count / curve.count.sum()
    return float(np.sum(weights * np.abs(curve.observed - curve.predicted)))


def click_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> ClickMetrics:
    """Every offline metric of predictions ``p`` for outcomes ``y`` at ``threshold``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = _checked(y, p)
    if len(np.unique(y)) < 2:
        raise SegueError("metrics need both clicks and non-clicks among the evaluated rows")
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    return ClickMetrics(
        n=len(y),
        base_rate=float(y.mean()),
        threshold=float(threshold),
        accuracy=(tp + tn) / len(y),
        precision=precision,
        recall=recall,
        f1=f1,
        auc_roc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        log_loss=loss,
        ece=expected_calibration_error(y, p),
        tn=tn,
        fp=fp,
        fn=fn,
        tp=tp,
    )


def _checked(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if len(y) != len(p):
        raise SegueError(f"{len(y)} outcomes but {len(p)} predictions")
    if len(y) == 0:
        raise SegueError("no rows to evaluate")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise SegueError("predictions must be probabilities in [0, 1]")
    return y, p


@dataclass(frozen=True)
class ClickEvaluation:
    """Metrics of the model on held-out rows and, when known, of the true probabilities."""

    model: ClickMetrics
    ceiling: ClickMetrics | None
    curve: CalibrationCurve
    y: np.ndarray
    p: np.ndarray
    p_true: np.ndarray | None
    notes: tuple[str, ...] = ()


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def render_markdown(e: ClickEvaluation) -> str:
    keys = ("auc_roc", "pr_auc", "log_loss", "ece", "accuracy", "precision", "recall", "f1")
    header = "| metric | model |" + (" true probabilities |" if e.ceiling else "")
    lines = ["# Click model: offline evaluation", "", *e.notes, ""]
    lines += [header, "|---|---|" + ("---|" if e.ceiling else "")]
    for key in ("n", "base_rate", "threshold", *keys):
        row = f"| {key} | {_fmt(getattr(e.model, key))} |"
        if e.ceiling:
            row += f" {_fmt(getattr(e.ceiling, key))} |"
        lines.append(row)
    m = e.model
    lines += [
        "",
        f"## Confusion matrix at threshold {m.threshold:.4f}",
        "",
        "| | predicted no click | predicted click |",
        "|---|---|---|",
        f"| no click | {m.tn:,} | {m.fp:,} |",
        f"| click | {m.fn:,} | {m.tp:,} |",
        "",
        f"## Calibration ({len(e.curve.count)} equal-frequency bins)",
        "",
        f"![calibration]({CALIBRATION_PLOT})",
        "",
        "| mean prediction | click rate | rows |",
        "|---|---|---|",
    ]
    for pred, obs, count in zip(e.curve.predicted, e.curve.observed, e.curve.count, strict=True):
        lines.append(f"| {pred:.4f} | {obs:.4f} | {count:,} |")
    lines += ["", "## ROC and precision-recall", "", f"![ROC and PR]({ROC_PLOT})", ""]
    return "\n".join(lines)


def _plots(e: ClickEvaluation, folder: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    figure = Figure(figsize=(5.0, 5.0), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    top = float(max(e.curve.predicted.max(), e.curve.observed.max()) * 1.05)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect")
    ax.plot(e.curve.predicted, e.curve.observed, marker="o", label="model")
    if e.p_true is not None:
        truth = calibration_curve(e.y, e.p_true)
        ax.plot(truth.predicted, truth.observed, marker=".", alpha=0.6, label="true p")
    ax.set_xlabel("mean predicted click probability")
    ax.set_ylabel("observed click rate")
    ax.set_title(f"Calibration (ECE {e.model.ece:.4f})")
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    figure.savefig(folder / CALIBRATION_PLOT)

    figure = Figure(figsize=(9.0, 4.0), dpi=110)
    FigureCanvasAgg(figure)
    roc, pr = figure.subplots(1, 2)
    series = [("model", e.p)] + ([("true p", e.p_true)] if e.p_true is not None else [])
    for label, p in series:
        fpr, tpr, _ = roc_curve(e.y, p)
        roc.plot(fpr, tpr, label=label)
        precision, recall, _ = precision_recall_curve(e.y, p)
        pr.plot(recall, precision, label=label)
    roc.plot([0, 1], [0, 1], color="grey", linestyle="--")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.set_title(f"ROC (AUC {e.model.auc_roc:.3f})")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    pr.set_title(f"Precision-recall (AP {e.model.pr_auc:.3f})")
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(folder / ROC_PLOT)


def write_report(e: ClickEvaluation, path: str | Path) -> Path:
    """Write ``report.md`` and the plots into folder ``path``, replacing it only when done."""
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise SegueError(f"report path {final} is a file; give a folder for the report")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        (tmp / REPORT).write_text(render_markdown(e), encoding="utf-8")
        _plots(e, tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
