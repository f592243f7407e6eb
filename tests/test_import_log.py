"""Every ``segue import`` leaves a line in ``<data dir>/imports.jsonl`` — imported with its
counts, refused with the error the user saw, or a dry run — and the admin console's data
section (``GET /v1/admin/stats``) shows them, newest first."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from segue.jobs.import_log import FILE, recent_imports
from segue.store import open_store
from test_readme_promises import SMALL_WORLD, one_line_error, segue


def test_every_import_is_recorded_and_the_console_shows_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert segue(data, "synth", *SMALL_WORLD).returncode == 0
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        user = next(iter(store.iter_users())).id
        items = [i.id for i in store.iter_items()][:3]
    good = tmp_path / "plays.csv"
    good.write_text(
        "user_id,item_id,type,timestamp\n"
        + "".join(f"{user},{i},play,2024-03-0{n + 1}T12:00:00Z\n" for n, i in enumerate(items))
    )
    bad = tmp_path / "bad.csv"
    at = "2024-03-01T12:00:00Z"
    bad.write_text(
        f"user_id,item_id,type,timestamp\n{user},{items[0]},play,{at}\n"
        f"{user},{items[1]},teleport,{at}\n"
    )

    assert segue(data, "import", "csv", str(good), "--kind", "events").returncode == 0
    refused = one_line_error(segue(data, "import", "csv", str(bad), "--kind", "events"))
    dry = segue(data, "import", "csv", str(good), "--kind", "events", "--dry-run")
    assert dry.returncode == 0

    newest, failed, imported = recent_imports(data)
    assert (newest.status, failed.status, imported.status) == ("dry run", "failed", "imported")
    assert imported.command == "import csv" and imported.kind == "events"
    assert imported.source == str(good) and imported.rows == 3
    assert imported.inserted.get("events") == 3
    assert failed.error is not None and failed.error in refused, "the error the user saw"
    assert "bad.csv" in failed.error and "teleport" in failed.error
    assert not failed.inserted and newest.inserted == {}

    # a damaged line (a hand edit, a disk that filled up) is skipped, not fatal
    with (data / FILE).open("a") as log:
        log.write('{"started_at": "2026-01-0\n')
    assert [r.status for r in recent_imports(data)] == ["dry run", "failed", "imported"]
    assert len(recent_imports(data, limit=2)) == 2

    from segue.api import create_app
    from segue.config import Settings

    settings = Settings(data_dir=data, api_keys="boss=admin,fan=read")
    with TestClient(create_app(settings, model="popularity", watch_s=None)) as client:
        assert client.get("/v1/admin/stats", headers={"X-API-Key": "fan"}).status_code == 403
        shown = client.get("/v1/admin/stats", headers={"X-API-Key": "boss"}).json()
    assert [i["status"] for i in shown["imports"]] == ["dry run", "failed", "imported"]
    assert shown["imports"][1]["error"] == failed.error
    assert shown["tables"]["events"] >= 3
