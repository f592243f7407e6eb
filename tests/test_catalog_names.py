"""Names wherever a person types an item: resolution, refusal with suggestions, search,
similar items, on the command line and in the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import products_world as world
from segue.api import create_app
from segue.cli.main import app
from segue.config import Settings
from segue.data.model import Item, ItemKind
from segue.errors import NameNotResolved, SegueError
from segue.jobs.catalog import CatalogNames
from segue.store import open_store

runner = CliRunner()


def _items() -> list[Item]:
    def item(id_: str, kind: ItemKind, title: str, **kw: object) -> Item:
        return Item(id=id_, kind=kind, title=title, **kw)

    return [
        item("a1", ItemKind.ARTIST, "Late Kingdom"),
        item("a2", ItemKind.ARTIST, "Blue Harbour"),
        item("a3", ItemKind.ARTIST, "Late Kingdoms Revival"),
        item("t1", ItemKind.TRACK, "Home", artist_id="a1"),
        item("t2", ItemKind.TRACK, "Home", artist_id="a2"),
        item("t3", ItemKind.TRACK, "Bohemian Rhapsody", artist_id="a2"),
        item("s1", ItemKind.PODCAST_SHOW, "The Signal Podcast"),
        item("e1", ItemKind.PODCAST_EPISODE, "#7: Little Circuit", show_id="s1"),
    ]


@pytest.fixture
def names() -> CatalogNames:
    return CatalogNames(_items(), {"t1": 50, "t2": 10, "a1": 100})


def test_a_name_resolves_to_its_id_quoted_misspelt_or_as_an_id(names: CatalogNames) -> None:
    assert names.resolve("Late Kingdom", ["artist"]).item_id == "a1"
    assert names.resolve('"Late Kingdom"', ["artist"]).item_id == "a1"
    assert names.resolve("late kingdon", ["artist"]).item_id == "a1"  # a typo, one clear fit
    assert names.resolve("a2", ["artist"]).item_id == "a2"  # ids keep working
    assert names.resolve("bohemain rapsody", ["track"]).item_id == "t3"
    assert names.resolve("artist:Blue Harbour").item_id == "a2"  # a kind narrows any-kind


def test_title_and_artist_tell_equal_titles_apart(names: CatalogNames) -> None:
    assert names.resolve("Home — Blue Harbour", ["track"]).item_id == "t2"
    assert names.resolve("Home - late kingdom", ["track"]).item_id == "t1"
    found = names.resolve("Home — Late Kingdom", ["track"])
    assert (found.title, found.by, found.label) == ("Home", "Late Kingdom", "Home — Late Kingdom")


def test_an_ambiguous_name_is_refused_with_every_fitting_item(names: CatalogNames) -> None:
    with pytest.raises(NameNotResolved) as caught:
        names.resolve("Home", ["track"])
    error = caught.value
    assert error.ambiguous
    assert {s["id"] for s in error.suggestions} == {"t1", "t2"}
    message = str(error)
    assert "\n" not in message
    assert "Home — Late Kingdom (t1)" in message and "Home — Blue Harbour (t2)" in message
    assert "'Title — Artist'" in message


def test_an_unknown_name_says_so_and_how_to_look(names: CatalogNames) -> None:
    with pytest.raises(NameNotResolved) as caught:
        names.resolve("Zzyzx Qwerty", ["artist"])
    assert not caught.value.ambiguous and caught.value.suggestions == []
    assert str(caught.value) == (
        'no artist named "Zzyzx Qwerty"; look it up with `segue search "Zzyzx Qwerty"`'
    )


def test_outside_the_model_is_refused(names: CatalogNames) -> None:
    with pytest.raises(SegueError, match="not in the trained model's catalog"):
        names.resolve("Bohemian Rhapsody", ["track"], within={"t1", "t2"})
    # the model's items narrow an ambiguity away
    assert names.resolve("Home", ["track"], within={"t2"}).item_id == "t2"


def test_picks_as_a_comma_list_or_repeated(names: CatalogNames) -> None:
    ids = names.resolve_all(["Late Kingdom, Bohemian Rhapsody", "e1"])
    assert ids == ["a1", "t3", "e1"]


def test_search_gives_every_kind_with_artist_or_show(names: CatalogNames) -> None:
    hits = names.search("little circuit")
    assert (hits[0].item_id, hits[0].kind, hits[0].by) == (
        "e1",
        "podcast_episode",
        "The Signal Podcast",
    )
    homes = names.search("home", kinds=["track"])
    assert [h.item_id for h in homes] == ["t1", "t2"]  # the more popular first
    assert {h.kind for h in names.search("kingdom", kinds=["artist"])} == {"artist"}
    assert names.search("t3")[0].item_id == "t3"  # an id finds its item


def test_the_linker_needs_no_torch() -> None:
    """Names resolve in the core install: the linker and this job import no torch."""
    import subprocess
    import sys

    code = "import sys; import segue.jobs.catalog, segue.nlu.linking; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# -- the command line and the API, on the small hand-made world ------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("names")
    with open_store(f"sqlite:///{folder / 'segue.sqlite'}") as store:
        world.build(store)
        store.upsert_items(
            [
                Item(id="dup-1", kind=ItemKind.TRACK, title="Same Song", artist_id="rock-a0"),
                Item(id="dup-2", kind=ItemKind.TRACK, title="Same Song", artist_id="jazz-a0"),
            ]
        )
    result = runner.invoke(app, [*_base(folder), "train", "--models", "itemknn"])
    assert result.exit_code == 0, result.output
    return folder


def _base(folder: Path) -> list[str]:
    return ["--data-dir", str(folder), "--database-url", f"sqlite:///{folder / 'segue.sqlite'}"]


def test_station_by_artist_name_equals_station_by_id(data_dir: Path) -> None:
    def page(seed: str) -> dict:
        args = [*_base(data_dir), "station", "main", "--seed", seed, "--k", "5", "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    by_name, by_id = page('artist:"Rock 3"'), page("artist:rock-a3")
    assert by_name["seed"] == "artist:rock-a3" and by_name["seed_title"] == "Rock 3"
    assert by_name["tracks"] == by_id["tracks"]
    track = page("track:rock song 3.2 — Rock 3")
    assert track["seed"] == "track:rock-a3-t2"


def test_cli_refuses_an_ambiguous_seed_in_one_line_with_suggestions(data_dir: Path) -> None:
    args = [*_base(data_dir), "station", "main", "--seed", "track:Same Song"]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, NameNotResolved)
    assert {s["id"] for s in result.exception.suggestions} == {"dup-1", "dup-2"}


def test_pick_by_name_gives_the_list_of_the_pick_by_id(data_dir: Path) -> None:
    def listed(*picks: str) -> str:
        args = [*_base(data_dir), "recommend", "newbie", "--k", "5"]
        result = runner.invoke(app, [*args, *(x for p in picks for x in ("--pick", p))],
                               env={"COLUMNS": "160"})  # fmt: skip
        assert result.exit_code == 0, result.output
        return result.output

    assert listed("jazz song 2.1", "pop song 1.0") == listed("jazz-a2-t1,pop-a1-t0")


def test_search_and_similar_commands(data_dir: Path) -> None:
    result = runner.invoke(app, [*_base(data_dir), "search", "jaz song 2.1", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits[0] == {
        "item_id": "jazz-a2-t1", "kind": "track", "title": "jazz song 2.1", "by": "Jazz 2",
        "score": hits[0]["score"],
    }  # fmt: skip
    table = runner.invoke(app, [*_base(data_dir), "search", "Rock 1", "--kind", "artist"],
                          env={"COLUMNS": "120"})  # fmt: skip
    assert "rock-a1" in table.output and "track" not in table.output.split("┃ score")[-1]
    similar = runner.invoke(app, [*_base(data_dir), "similar", "rock song 0.0", "--json"])
    assert similar.exit_code == 0, similar.output
    answer = json.loads(similar.output)
    assert answer["item"]["item_id"] == "rock-a0-t0" and answer["items"]
    assert all(s["reasons"] for s in answer["items"])
    assert any(r.endswith("played both") for s in answer["items"] for r in s["reasons"])


@pytest.fixture(scope="module")
def client(data_dir: Path):
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'segue.sqlite'}")
    with TestClient(create_app(settings, model="itemknn", watch_s=None)) as c:
        yield c


def test_api_search_and_station_seed_by_name(client: TestClient) -> None:
    found = client.get("/v1/search", params={"q": "Jazz 4", "kind": "artist"})
    assert found.status_code == 200, found.text
    assert found.json()["items"][0]["item_id"] == "jazz-a4"
    page = client.get("/v1/users/main/station", params={"seed": 'artist:"Jazz 4"', "k": 3})
    assert page.status_code == 200, page.text
    assert page.json()["seed"] == "artist:jazz-a4"


def test_api_ambiguity_is_a_problem_with_suggestions(client: TestClient) -> None:
    answer = client.get("/v1/users/main/station", params={"seed": "track:Same Song"})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["type"] == "urn:segue:problem:ambiguous-name"
    assert {s["id"] for s in body["suggestions"]} == {"dup-1", "dup-2"}
    created = client.post("/v1/users", json={"id": "fan", "picks": ["Rock 2", "jazz-a1-t1"]})
    assert created.status_code == 201, created.text
    unknown = client.post("/v1/users", json={"id": "fan2", "picks": ["Zzyzx Qwerty"]})
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "urn:segue:problem:unknown-name"
