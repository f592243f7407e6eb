"""The report folder: Markdown tables with a row per model and bucket, two PNG plots, and an
atomic replacement that leaves the old report whole when writing fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from segue.errors import SegueError
from segue.eval import Evaluation, evaluate, registry_candidates
from segue.eval.report import BUCKET_PLOT, NDCG_PLOT, REPORT, bucket_table, main_table, write_report
from test_eval_data import synthetic_interactions, synthetic_side

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    data = synthetic_interactions()
    candidates = registry_candidates(["popularity", "itemknn"])
    return evaluate(data, candidates, "random", seeds=[0, 1], side=synthetic_side(data))


def _table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """Cells of the Markdown table whose header row starts with ``header_start``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_report_has_the_tables_and_plots(evaluation: Evaluation, tmp_path: Path) -> None:
    folder = write_report(evaluation, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == sorted([REPORT, NDCG_PLOT, BUCKET_PLOT])
    for plot in (NDCG_PLOT, BUCKET_PLOT):
        assert (folder / plot).read_bytes()[:8] == PNG_MAGIC
    text = (folder / REPORT).read_text(encoding="utf-8")
    assert "Split seeds: 0, 1" in text and "catalog genres and tags" in text

    main = _table_rows(text, "| model | P@10")
    assert [row[0] for row in main] == ["popularity", "itemknn"]
    knn = evaluation.summary("itemknn")
    ndcg_column = main_table(evaluation)[0].index("NDCG@10")
    assert main[1][ndcg_column] == f"{knn.mean['ndcg']:.4f} ± {knn.std['ndcg']:.4f}"

    buckets = _table_rows(text, "| model | train pairs")
    expected = [
        (s.model, label)
        for s in evaluation.summaries
        for label in evaluation.buckets
        if s.by_bucket[label]["users"] > 0
    ]
    assert [(row[0], row[1]) for row in buckets] == expected
    assert len(expected) >= 6  # both models over at least three activity buckets
    assert len(buckets) == len(bucket_table(evaluation)[1])

    curve = _table_rows(text, "| model | NDCG@1 ")
    assert [row[0] for row in curve] == ["popularity", "itemknn"]
    assert len(curve[0]) == 1 + len(evaluation.ks)
    splits = _table_rows(text, "| seed |")
    assert [row[0] for row in splits] == ["0", "1"]


def test_a_report_replaces_the_old_one_whole(evaluation: Evaluation, tmp_path: Path) -> None:
    target = tmp_path / "report"
    write_report(evaluation, target)
    (target / "stale.txt").write_text("from an older run")
    write_report(evaluation, target)
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temp folders left


def test_a_failed_write_keeps_the_old_report(evaluation: Evaluation, tmp_path: Path) -> None:
    target = tmp_path / "report"
    write_report(evaluation, target)
    before = (target / REPORT).read_text(encoding="utf-8")
    broken_summary = replace(evaluation.summaries[0], curves={})  # the NDCG table cannot be made
    broken = replace(evaluation, summaries=[broken_summary])
    with pytest.raises(KeyError):
        write_report(broken, target)
    assert (target / REPORT).read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_file_in_the_way_is_refused(evaluation: Evaluation, tmp_path: Path) -> None:
    in_the_way = tmp_path / "report.md"
    in_the_way.write_text("mine")
    with pytest.raises(SegueError, match="is a file"):
        write_report(evaluation, in_the_way)
    assert in_the_way.read_text() == "mine"
