"""`segue simulate --experiment ID`: one of the book's experiments run on simulated listeners
through the real service — uvicorn on loopback, assignment and variant settings per request,
the exposure log, events back through the stream, a daily retrain published and served."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from segue.cli.main import app
from segue.registry import ModelRegistry
from segue.store import open_store


def _cli(data: Path, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"SEGUE_DATA_DIR": str(data)})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_an_experiment_of_the_book_runs_on_simulated_listeners_through_serve(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _cli(data, "experiments", "create", "cap", "--variant", "control",
         "--variant", "one-each:max_per_artist=1")  # fmt: skip
    out = _cli(data, "simulate", "--experiment", "cap", "--days", "2", "--users", "150",
               "--tracks", "300", "--events", "6000")  # fmt: skip
    assert "# Experiment cap" in out and "lists served over HTTP" in out
    scratch = next((data / "simulations").iterdir())
    # the installation's own book is untouched: the draft stays a draft
    assert "draft" in _cli(data, "experiments", "list")
    with open_store(f"sqlite:///{scratch / 'segue.sqlite'}") as store:
        shown = store.exposures_between(0, 2**62)
        artist = {i.id: i.artist_id for i in store.iter_items()}
        first = min(e.ts_ms for e in shown)
        reacted = len(store.interactions(include_focus=True, start_ms=first))
    assert {e.experiments["cap"] for e in shown} == {"control", "one-each"}
    for e in shown:  # each variant's setting was served to its listeners
        artists = [artist[i] for i in e.items]
        if e.experiments["cap"] == "one-each":
            assert len(set(artists)) == len(artists)
    assert any(
        len(set(a)) < len(a)
        for a in ([artist[i] for i in e.items] for e in shown if e.experiments["cap"] == "control")
    )
    # a retrain after day 1 was published and served on day 2
    versions = [v.version for v in ModelRegistry(scratch / "registry").versions("als")]
    assert versions == ["v0001", "v0002"]
    assert {e.version for e in shown} == {"v0001", "v0002"}
    served = int(out.split(" lists served over HTTP")[0].split()[-1].replace(",", ""))
    sent = int(out.split(" events back through")[0].split()[-1].replace(",", ""))
    assert served == len(shown) and sent > 0
    assert reacted == sent  # every reaction went through the stream into the store
