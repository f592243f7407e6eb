"""Offline evaluation: metrics, protocols, the runner, tuning on validation, reports.

``evaluate(data, candidates, protocol, seeds=...)`` runs every model on the identical split of
each seed; ``tune`` searches a grid on the validation part only; ``write_report`` turns an
:class:`Evaluation` into Markdown and PNG plots.
"""

from segue.eval.protocols import (
    PROTOCOLS,
    ColdItemsProtocol,
    ColdUsersProtocol,
    Holdout,
    Protocol,
    RandomProtocol,
    TemporalProtocol,
    make_protocol,
)
from segue.eval.runner import (
    Candidate,
    Evaluation,
    ModelSummary,
    RunResult,
    evaluate,
    registry_candidates,
)
from segue.eval.tuning import TuningData, TuningResult, TuningRow, tune, tune_on

__all__ = [
    "PROTOCOLS",
    "Candidate",
    "ColdItemsProtocol",
    "ColdUsersProtocol",
    "Evaluation",
    "Holdout",
    "ModelSummary",
    "Protocol",
    "RandomProtocol",
    "RunResult",
    "TemporalProtocol",
    "TuningData",
    "TuningResult",
    "TuningRow",
    "evaluate",
    "make_protocol",
    "registry_candidates",
    "tune",
    "tune_on",
]
