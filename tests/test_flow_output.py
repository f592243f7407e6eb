"""A flow's output as a person sees it: the steps and their own lines, and a failure in one
line; Metaflow's internals and tracebacks only in the log."""

from __future__ import annotations

from pathlib import Path

from segue.batch.runs import FlowOutput

REFUSED = Path(__file__).parent / "data" / "flow_gate_refused.log"


def _feed(lines: list[str]) -> tuple[FlowOutput, list[str]]:
    output = FlowOutput()
    shown = [s for s in (output.feed(line) for line in lines) if s is not None]
    return output, shown


def test_a_gate_refusal_is_read_as_such_and_its_traceback_is_not_shown() -> None:
    lines = REFUSED.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 40 and sum('File "' in line for line in lines) > 10  # the traceback
    output, shown = _feed(lines)
    assert shown[:5] == ["step start", "step dataset", "step train", "step choose", "step gate"]
    assert not any("Traceback" in s or "File " in s or "Internal error" in s for s in shown)
    assert not any("Metaflow" in s or "Workflow" in s for s in shown)
    assert output.failed_step == "gate" and output.refused_by_gate
    assert output.error == (
        "refused: ndcg@10 0.3046 vs production v0002 0.9990 (floor 0.9490 at margin 5%)"
    )


def test_a_steps_own_lines_are_shown_and_other_failures_named() -> None:
    prefix = "2026-12-03 09:39:14.608 [17/{step}/{task} (pid 20257)] "
    lines = [
        "Metaflow 2.19.39 executing DailyFlow for user:segue",
        prefix.format(step="batch", task=7) + "Task is starting.",
        prefix.format(step="batch", task=7) + "campaign: no click model; inputs skipped",
        prefix.format(step="batch", task=7) + "Task finished successfully.",
        prefix.format(step="publish", task=8) + "Task is starting.",
        prefix.format(step="publish", task=8) + "<flow DailyFlow step publish> failed:",
        prefix.format(step="publish", task=8) + "Internal error",
        prefix.format(step="publish", task=8) + "Traceback (most recent call last):",
        prefix.format(step="publish", task=8) + '  File "/src/segue/batch/flow.py", line 9, in x',
        prefix.format(step="publish", task=8) + "    raise OSError(28, 'No space left')",
        prefix.format(step="publish", task=8) + "OSError: [Errno 28] No space left on device",
        prefix.format(step="publish", task=8) + "Task failed.",
        "2026-12-03 09:39:39.514 Workflow failed.",
    ]
    output, shown = _feed(lines)
    assert shown == ["step batch", "  campaign: no click model; inputs skipped", "step publish"]
    assert output.failed_step == "publish" and not output.refused_by_gate
    assert (output.error_type, output.error) == ("OSError", "[Errno 28] No space left on device")
