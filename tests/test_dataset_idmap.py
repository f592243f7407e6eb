"""IdMap: contiguous indices for string ids, lookups both ways, persistence, equality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segue.dataset import IdMap, UnknownIdError
from segue.errors import DatasetError, SegueError


def test_indices_follow_the_given_order_and_map_back() -> None:
    users = IdMap(["carol", "alice", "bob"], name="user")
    assert len(users) == 3
    assert users.to_index("carol") == 0
    assert users.to_index("bob") == 2
    got = users.to_index(np.array(["bob", "bob", "carol", "alice"], dtype=object))
    assert got.dtype == np.int64
    assert got.tolist() == [2, 2, 0, 1]
    assert users.to_index(["alice"]).tolist() == [1]  # any iterable, not just arrays
    assert users.to_ids([1, 0]).tolist() == ["alice", "carol"]
    assert users.to_ids(2) == "bob"
    assert users.to_ids(np.array([], dtype=np.int64)).tolist() == []
    assert list(users) == ["carol", "alice", "bob"]
    assert "alice" in users and "dave" not in users and 3 not in users


def test_unknown_ids_raise_a_keyerror_like_segue_error_naming_them() -> None:
    items = IdMap(["a", "b"], name="item")
    with pytest.raises(UnknownIdError) as caught:
        items.to_index(["a", "zz", "yy", "zz"])
    error = caught.value
    assert isinstance(error, DatasetError) and isinstance(error, SegueError)
    assert isinstance(error, KeyError)
    assert error.unknown == ["zz", "yy"]
    message = str(error)
    assert "unknown item id(s) 'zz', 'yy'" in message
    assert "2 distinct of 4 looked up" in message
    assert not message.startswith('"')  # not KeyError's quoted repr
    with pytest.raises(KeyError, match="'nope'"):
        items.to_index("nope")


def test_many_unknown_ids_are_summarised() -> None:
    items = IdMap(["a"], name="item")
    with pytest.raises(UnknownIdError, match=r"and 5 more \(10 distinct of 10"):
        items.to_index([f"x{i}" for i in range(10)])


def test_allow_unknown_gives_minus_one() -> None:
    items = IdMap(["a", "b"], name="item")
    assert items.to_index(["b", "zz", "a"], allow_unknown=True).tolist() == [1, -1, 0]
    assert items.to_index("zz", allow_unknown=True) == -1


@pytest.mark.parametrize("bad", [[-1], [2], [0, 5, -3]])
def test_out_of_range_indices_raise(bad: list[int]) -> None:
    items = IdMap(["a", "b"], name="item")
    with pytest.raises(DatasetError, match=r"item index .* out of range.*valid indices 0\.\.1"):
        items.to_ids(bad)
    with pytest.raises(DatasetError, match="out of range"):
        items.to_ids(next(b for b in bad if not 0 <= b < 2))


def test_duplicate_and_empty_ids_are_rejected() -> None:
    with pytest.raises(DatasetError, match=r"user id 'x' appears twice \(positions 0 and 2\)"):
        IdMap(["x", "y", "x"], name="user")
    with pytest.raises(DatasetError, match="position 1 holds ''"):
        IdMap(["x", ""], name="user")
    with pytest.raises(DatasetError, match="position 0 holds 7"):
        IdMap([7])  # type: ignore[list-item]


def test_equality_is_by_ids_and_order() -> None:
    assert IdMap(["a", "b"], name="user") == IdMap(["a", "b"], name="other")
    assert IdMap(["a", "b"]) != IdMap(["b", "a"])
    assert IdMap(["a", "b"]) != IdMap(["a", "b", "c"])
    assert IdMap(["a"]) != ["a"]
    assert IdMap([]) == IdMap([])


def test_ids_array_is_read_only() -> None:
    users = IdMap(["a", "b"])
    with pytest.raises(ValueError):
        users.ids[0] = "z"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ids = ["plain", "Ünïcödé ♫", "with space", "42"]
    original = IdMap(ids, name="item")
    path = original.save(tmp_path / "deep" / "items.json")
    loaded = IdMap.load(path)
    assert loaded == original
    assert loaded.name == "item"
    assert loaded.to_index("Ünïcödé ♫") == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["items.json"]  # no temp files left
    # Saving again replaces the file whole.
    IdMap(["only"], name="item").save(path)
    assert list(IdMap.load(path)) == ["only"]


def test_loading_bad_files_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(DatasetError, match=r"nope\.json does not exist"):
        IdMap.load(missing)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"garbage\.json cannot be read as JSON"):
        IdMap.load(garbage)
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"ids": ["a"]}), encoding="utf-8")
    with pytest.raises(DatasetError, match="is not a segue id map"):
        IdMap.load(foreign)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format": "segue.idmap", "version": 99, "ids": []}))
    with pytest.raises(DatasetError, match="version 99"):
        IdMap.load(future)
    duplicated = tmp_path / "dup.json"
    duplicated.write_text(json.dumps({"format": "segue.idmap", "version": 1, "ids": ["a", "a"]}))
    with pytest.raises(DatasetError, match=r"dup\.json: id 'a' appears twice"):
        IdMap.load(duplicated)
