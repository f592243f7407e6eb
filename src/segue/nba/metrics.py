"""Offline metrics of a click model, and the report folder (Markdown + PNG plots).

Every figure comes from scikit-learn (AUC, average precision, log loss, Brier score) or from
:mod:`segue.calibration` (the reliability curve and the ECE, binned by scikit-learn's
``calibration_curve``). The report bins predictions into ``N_BINS`` equal-frequency bins
(``strategy="quantile"``: edges at the quantiles of the predictions, tied predictions in one
bin): with click rates of a few per cent, equal-width bins put nearly every prediction in the
first bin and the ECE says nothing. On synthetic data the same metrics of the *true*
probabilities are the ceiling a model can reach.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segue.calibration import (
    CalibrationCurve,
    Strategy,
    calibration_curve,
    checked_probabilities,
    expected_calibration_error,
)
from segue.errors import SegueError

REPORT = "report.md"
CALIBRATION_PLOT = "calibration.png"
ROC_PLOT = "roc_pr.png"
#: the report's calibration bins: equal-frequency, twenty of them
N_BINS = 20
BINNING: Strategy = "quantile"


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
    brier: float
    ece: float
    tn: int
    fp: int
    fn: int
    tp: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def click_calibration(y_true: np.ndarray, y_prob: np.ndarray) -> CalibrationCurve:
    """The report's reliability curve: ``N_BINS`` equal-frequency bins (see the module)."""
    return calibration_curve(y_true, y_prob, n_bins=N_BINS, strategy=BINNING)


def click_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> ClickMetrics:
    """Every offline metric of predictions ``p`` for outcomes ``y`` at ``threshold`` (a click
    is predicted where ``p >= threshold``), all but the ECE from scikit-learn."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y, p = checked_probabilities(y, p)
    if len(np.unique(y)) < 2:
        raise SegueError("metrics need both clicks and non-clicks among the evaluated rows")
    predicted = (p >= threshold).astype(np.float64)
    tn, fp, fn, tp = (int(c) for c in confusion_matrix(y, predicted, labels=[0, 1]).ravel())
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=0.0
    )
    return ClickMetrics(
        n=len(y),
        base_rate=float(y.mean()),
        threshold=float(threshold),
        accuracy=float(accuracy_score(y, predicted)),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        auc_roc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
        ece=expected_calibration_error(y, p, n_bins=N_BINS, strategy=BINNING),
        tn=tn,
        fp=fp,
        fn=fn,
        tp=tp,
    )


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
    keys = (
        *("auc_roc", "pr_auc", "log_loss", "brier", "ece"),
        *("accuracy", "precision", "recall", "f1"),
    )
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
        truth = click_calibration(e.y, e.p_true)
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
