"""What the README promises a new user, command by command, asserted on what they see:

* an events file imports with a default for a missing field (``--default type=play``), and
  events naming unknown users or items add them as bare rows (by default, or
  ``--create-missing``), or with ``--no-create-missing`` are refused in one line that names
  both ways out;
* ``segue nba train`` before any logged message says in one line what to run first;
* tags act as genres on a catalog without genres (Last.fm 2K's artists), so a new listener's
  ``--genre`` works there and an unknown one lists the known ones;
* no silent empty answer: a station, mixes and podcasts on a catalog without tracks or
  podcasts, and Wrapped of a year without plays, say why and what would fill them; Wrapped
  defaults to the listener's latest year with plays;
* a data directory that does not exist is refused unless the command makes a world or
  imports; ``segue serve`` refuses a model that is not trained unless ``--fallback popularity``.

Each runs the real ``segue`` entry point in a subprocess, as a user would.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segue.store import open_store

SEGUE = Path(sys.executable).with_name("segue")
SMALL_WORLD = ["--users", "120", "--tracks", "300", "--events", "5000", "--seed", "7"]


def segue(data_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update({"SEGUE_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return subprocess.run(
        [str(SEGUE), *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal a user sees: exit status 2, one line on stderr (a progress bar the refusal
    interrupted is taken away), no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    text = " ".join(lines)
    assert text.startswith("error:"), result.stderr
    return text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world (2024) with itemknn trained."""
    data = tmp_path_factory.mktemp("world") / "data"
    assert segue(data, "synth", *SMALL_WORLD).returncode == 0
    trained = segue(data, "train", "--models", "itemknn")
    assert trained.returncode == 0, trained.stderr
    return data


@pytest.fixture(scope="module")
def artists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Last.fm-like store: artists with tags and no genres, no tracks, no podcasts, one
    aggregated play count per listener and artist; listeners created by the events import."""
    folder = tmp_path_factory.mktemp("artists")
    data = folder / "data"
    tags = {
        "a0": "indie rock|rock",
        "a1": "indie rock|indie",
        "a2": "rock|80s",
        "a3": "electronic|dance",
        "a4": "electronic|ambient",
        "a5": "pop|dance",
    }
    with (folder / "artists.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "kind", "title", "tags"])
        for item_id, labels in tags.items():
            out.writerow([item_id, "artist", f"Artist {item_id}", labels])
    with (folder / "plays.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user", "artist", "plays"])
        for u in range(30):
            for a in range(6):
                if (u + a) % 3:
                    out.writerow([f"l{u}", f"a{a}", 1 + (u * a) % 7])
    catalog = segue(data, "import", "csv", str(folder / "artists.csv"), "--kind", "items")
    assert catalog.returncode == 0 and "not read: column(s) tags" in catalog.stdout
    catalog = segue(
        data, "import", "csv", str(folder / "artists.csv"), "--kind", "items", "--auto-map"
    )
    assert catalog.returncode == 0, catalog.stderr
    imported = segue(
        data, "import", "csv", str(folder / "plays.csv"), "--kind", "events",
        "--map", "user_id=user,item_id=artist,count=plays",
        "--default", "type=play,timestamp=2011-05-01T00:00:00Z", "--create-missing",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert segue(data, "train", "--models", "itemknn").returncode == 0
    return data


# -- importing a listening log ------------------------------------------------------------------
def test_an_events_file_needs_its_type_and_takes_a_default(world: Path, tmp_path: Path) -> None:
    plays = tmp_path / "plays.csv"
    plays.write_text(
        "uid,track,ts\n"
        "usr-0000001,trk-000004,2024-12-28T08:15:00Z\n"
        "usr-0000002,trk-000005,2024-12-28T09:15:00Z\n"
    )
    mapping = ["--map", "user_id=uid,item_id=track,timestamp=ts"]
    refused = segue(world, "import", "csv", str(plays), "--kind", "events", *mapping)
    assert "--default type=VALUE" in one_line_error(refused)

    imported = segue(
        world, "import", "csv", str(plays), "--kind", "events", *mapping, "--default", "type=play"
    )
    assert imported.returncode == 0, imported.stderr
    with open_store(f"sqlite:///{world / 'segue.sqlite'}") as store:
        log = store.user_events("usr-0000002", 1735376000000, 1735380000000)
        assert [str(x) for x in log.item_ids[log.item]] == ["trk-000005"]


def test_unknown_listeners_and_items_are_refused_or_created(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = segue(data, "synth", "--users", "20", "--tracks", "40", "--events", "200")
    assert made.returncode == 0, made.stderr
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,type,timestamp\n"
        "usr-0000001,trk-000001,play,2024-03-01T10:00:00Z\n"
        "newcomer,trk-000001,play,2024-03-02T10:00:00Z\n"
        "newcomer,brand-new-song,play,2024-03-01T09:00:00Z\n"
    )
    refused = one_line_error(
        segue(data, "import", "csv", str(log), "--kind", "events", "--no-create-missing")
    )
    assert "line 3" in refused and "'newcomer'" in refused and "--kind users" in refused
    assert "--no-create-missing" in refused
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        assert store.get_user("newcomer") is None  # nothing written

    created = segue(data, "import", "csv", str(log), "--kind", "events")  # the default
    assert created.returncode == 0, created.stderr
    again = segue(data, "import", "csv", str(log), "--kind", "events", "--create-missing")
    assert again.returncode == 0 and "| events | 0 | 0 | 3 |" in again.stdout, again.stdout
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        user = store.get_user("newcomer")
        item = store.get_item("brand-new-song")
        known = store.get_item("trk-000001")
        assert user is not None and item is not None and known is not None
        assert user.signup_at == dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)  # first event
        assert item.kind.value == "track" and item.title == "brand-new-song"
        assert known.title != "trk-000001"  # existing items are not replaced by bare rows


# -- next best action ---------------------------------------------------------------------------
def test_nba_train_before_any_message_says_what_to_run(world: Path) -> None:
    refused = one_line_error(segue(world, "nba", "train"))
    assert "segue nba simulate" in refused


# -- tags as genres -----------------------------------------------------------------------------
def test_tags_act_as_genres_where_the_catalog_has_none(artists: Path) -> None:
    result = segue(artists, "recommend", "someone-new", "--genre", "Indie Rock", "--k", "3")
    assert result.returncode == 0, result.stderr
    top = result.stdout
    assert "Artist a0" in top and "Artist a1" in top  # the two "indie rock" artists lead
    unknown = one_line_error(segue(artists, "recommend", "someone-new", "--genre", "polka"))
    known = unknown.split("known genres include:")[1]
    assert "indie rock" in known and "electronic" in known


# -- no silent empty answer ---------------------------------------------------------------------
def test_a_catalog_of_artists_says_why_stations_mixes_and_podcasts_are_empty(
    artists: Path,
) -> None:
    station = segue(artists, "station", "l1")
    assert station.returncode == 0, station.stderr
    assert "stations play tracks and this catalog has none" in station.stdout
    assert "artist ×6" in station.stdout and "--kind items" in station.stdout
    mixes = segue(artists, "mixes", "l1")
    assert "mixes are made of tracks" in mixes.stdout
    podcasts = segue(artists, "recommend", "l1", "--kind", "podcast_episode")
    assert podcasts.returncode == 0, podcasts.stderr
    assert "holds no podcast_episode items" in podcasts.stdout


def test_the_api_says_why_a_list_or_a_station_is_empty(artists: Path) -> None:
    """The same reasons over HTTP, in ``why_empty``, and none on a list that has items."""
    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.config import Settings

    with TestClient(
        create_app(Settings(data_dir=artists), model="itemknn", watch_s=None)
    ) as client:
        station = client.get("/v1/users/l1/station")
        assert station.status_code == 200, station.text
        assert station.json()["tracks"] == []
        assert "stations play tracks and this catalog has none" in station.json()["why_empty"]
        podcasts = client.get("/v1/users/l1/recommendations", params={"kinds": "podcast_episode"})
        assert podcasts.status_code == 200, podcasts.text
        assert podcasts.json()["items"] == []
        assert "holds no podcast_episode items" in podcasts.json()["why_empty"]
        artists_list = client.get("/v1/users/l1/recommendations").json()
        assert artists_list["items"] and artists_list["why_empty"] is None


def test_wrapped_defaults_to_the_latest_year_with_plays(artists: Path, world: Path) -> None:
    lastfm_like = segue(artists, "wrapped", "l1")
    assert lastfm_like.returncode == 0, lastfm_like.stderr
    assert lastfm_like.stdout.startswith("2011 Wrapped · l1")
    assert "Artist a" in lastfm_like.stdout  # plays of artists count as top artists
    assert "minutes unknown" in lastfm_like.stdout  # counts without durations: not "0 minutes"
    assert "top songs" not in lastfm_like.stdout  # no empty column of songs
    synthetic = segue(world, "wrapped", "usr-0000001")
    assert synthetic.stdout.startswith("2024 Wrapped · usr-0000001")
    assert " 0 plays" not in synthetic.stdout
    empty = one_line_error(segue(world, "wrapped", "usr-0000001", "--year", "2019"))
    assert "no plays in 2019" in empty and "--year 2024" in empty


def test_a_data_dir_that_does_not_exist_is_refused_unless_the_command_creates(
    tmp_path: Path,
) -> None:
    typo = tmp_path / "segue-dta"
    for command in (["stats"], ["train"], ["recommend", "usr-0000001"], ["serve"]):
        refused = one_line_error(segue(typo, *command))
        assert "does not exist" in refused and str(typo) in refused, command
    assert not typo.exists()
    made = segue(typo, "synth", "--users", "10", "--tracks", "20", "--events", "50")
    assert made.returncode == 0 and (typo / "segue.sqlite").is_file()


def test_serve_refuses_a_model_that_is_not_trained(world: Path) -> None:
    refused = one_line_error(segue(world, "serve", "--model", "ease"))
    assert "'ease' is not trained" in refused and "--fallback popularity" in refused


def test_every_picture_and_file_the_readme_links_is_in_the_repository() -> None:
    """The screenshots (``docs/img``) and every relative link resolve in a clone."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    targets = re.findall(r'src="([^"]+)"', text) + re.findall(r"\]\(([^)#\s]+)\)", text)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/img/") for t in local), "the README shows the web app"
    missing = [t for t in local if not (root / t).exists()]
    assert not missing, missing
