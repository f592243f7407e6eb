"""Daily mixes: clusters of taste, familiar/new ratio, flow rules, words, daily stability,
Focus Mode and the kids profile."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pytest

import products_world as world
from segue.errors import SegueError
from segue.jobs.products import daily_mixes, mixes_for_all_users, product_context
from segue.products.mixes import MixConfig, to_mix
from segue.store import open_store

DAY = dt.date(2024, 6, 1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("mixes") / "world.sqlite"
    store = open_store(f"sqlite:///{path}")
    world.build(store)
    trained, side = world.trained(store)
    context = product_context(store, trained, side)
    yield store, trained, context
    store.close()


def _genre(item_id: str) -> str:
    return item_id.split("-")[0]


def test_one_mix_per_taste_cluster_with_the_asked_ratio_and_length(setup) -> None:
    store, trained, ctx = setup
    mixes = daily_mixes(store, trained, "main", DAY, context=ctx)
    # main plays rock (32 plays) and jazz (8); the focus-mode pop repeat makes no pop mix
    assert [m.cluster for m in mixes] == ["rock", "jazz"]
    heard = {world.track_id(g, a, t) for g, arts in (("rock", (0, 1)), ("jazz", (0,)))
             for a in arts for t in range(4)}  # fmt: skip
    for mix in mixes:
        ids = [t.item_id for t in mix.tracks]
        assert len(ids) == 30 and len(set(ids)) == 30
        assert {_genre(i) for i in ids} == {mix.cluster}
        # familiar = played before, new = never played, and the flags say which
        assert all((t.item_id in heard) == t.familiar for t in mix.tracks)
        artists = [t.artist for t in mix.tracks]
        assert all(a != b for a, b in itertools.pairwise(artists))
        assert max(artists.count(a) for a in set(artists)) <= 3
        assert mix.tracks[0].familiar  # a favourite opens
    rock = mixes[0]
    # rock: 8 favourites played, cap 3 per artist → 6 familiar; 15 wanted
    assert rock.familiar_count == 6
    assert rock.title == "Rock mix"
    assert rock.description.startswith("Rock mix: Rock 0, Rock 1")
    assert rock.description.endswith(" and more")


def test_familiar_share_is_configurable(setup) -> None:
    store, trained, ctx = setup
    config = MixConfig(familiar_share=0.0, length=25)
    mixes = daily_mixes(store, trained, "main", DAY, config=config, context=ctx)
    assert mixes and all(m.familiar_count == 0 and len(m.tracks) == 25 for m in mixes)
    config = MixConfig(familiar_share=0.2, length=25, max_per_artist=4)
    rock = daily_mixes(store, trained, "main", DAY, config=config, context=ctx)[0]
    assert rock.familiar_count == 5  # round(25 × 0.2)


def test_stable_within_a_day_and_refreshed_the_next(setup) -> None:
    store, trained, ctx = setup
    first = daily_mixes(store, trained, "main", DAY, context=ctx)
    again = daily_mixes(store, trained, "main", DAY, context=ctx)
    tomorrow = daily_mixes(store, trained, "main", DAY + dt.timedelta(days=1), context=ctx)
    assert [m.model_dump() for m in first] == [m.model_dump() for m in again]
    ids = [[t.item_id for t in m.tracks] for m in first]
    new_ids = [[t.item_id for t in m.tracks] for m in tomorrow]
    assert ids != new_ids


def test_focus_mode_repeat_is_in_no_mix(setup) -> None:
    store, trained, ctx = setup
    for mix in daily_mixes(store, trained, "main", DAY, context=ctx):
        assert world.FOCUS_TRACK not in {t.item_id for t in mix.tracks}


def test_kids_profile_gets_no_explicit_track(setup) -> None:
    store, trained, ctx = setup
    explicit = {i.id for i in world.catalog() if i.explicit}
    played = {world.track_id("pop", a, t) for a in (0, 1) for t in range(6)}
    config = MixConfig(max_per_artist=6)  # room for all 12 favourites
    mixes = daily_mixes(store, trained, "kid", DAY, config=config, context=ctx)
    assert [m.cluster for m in mixes] == ["pop"]
    tracks = {t.item_id for t in mixes[0].tracks}
    assert not tracks & explicit
    assert {t.item_id for t in mixes[0].tracks if t.familiar} == played - explicit
    # the kid played explicit pop tracks on the account: without the profile they'd be back
    store.set_user_flags("kid", kids_profile=False)
    try:
        adult = daily_mixes(store, trained, "kid", DAY, config=config, context=ctx)
    finally:
        store.set_user_flags("kid", kids_profile=True)
    assert {t.item_id for t in adult[0].tracks if t.familiar} == played


def test_batch_matches_one_user_at_a_time(setup) -> None:
    store, trained, ctx = setup
    got: dict[str, list] = {}
    steps: list[tuple[int, int | None]] = []
    report = mixes_for_all_users(
        store, trained, DAY, context=ctx, batch_size=16,
        sink=lambda user, mixes: got.__setitem__(user, mixes),
        progress=lambda step, done, total: steps.append((done, total)),
    )  # fmt: skip
    assert report.users == len(got) == 42
    assert steps[-1] == (42, 42) and len(steps) == 3
    for user in ("main", "kid", "bg3"):
        one = daily_mixes(store, trained, user, DAY, context=ctx)
        batch = [to_mix(plan, user, DAY, ctx.pc) for plan in got[user]]
        assert [m.model_dump() for m in batch] == [m.model_dump() for m in one]
    assert report.mixes == sum(len(m) for m in got.values())


def test_new_listener_gets_discovery_mixes(setup) -> None:
    store, trained, ctx = setup
    from segue.data.model import User

    store.upsert_users([User(id="newbie", signup_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))])
    mixes = daily_mixes(store, trained, "newbie", DAY, config=MixConfig(length=25), context=ctx)
    assert mixes and all(m.familiar_count == 0 for m in mixes)
    assert all(len({_genre(t.item_id) for t in m.tracks}) == 1 for m in mixes)


def test_bad_input_is_a_clear_error(setup) -> None:
    store, trained, ctx = setup
    with pytest.raises(SegueError, match="between 25 and 50"):
        MixConfig(length=60)
    with pytest.raises(SegueError, match=r"familiar_share must be in \[0, 1\]"):
        MixConfig(familiar_share=1.5)
    with pytest.raises(SegueError, match="unknown user 'nobody'"):
        daily_mixes(store, trained, "nobody", DAY, context=ctx)


def test_same_artist_cap_shapes_every_mix(setup) -> None:
    store, trained, ctx = setup
    config = MixConfig(max_per_artist=2, length=25)
    for mix in daily_mixes(store, trained, "main", DAY, config=config, context=ctx):
        artists = [t.artist for t in mix.tracks]
        assert np.max([artists.count(a) for a in set(artists)]) <= 2


def test_a_failure_in_a_mix_worker_reaches_the_caller(setup) -> None:
    """A block that cannot be built in a worker process raises where the batch runs (not a
    hang, not a silent gap); nonsense worker counts are refused up front."""
    _, _, ctx = setup
    from segue.jobs.mix_builder import MixBuilder, MixJob

    def builder(workers: int) -> MixBuilder:
        return MixBuilder(ctx.pc, ctx.allowed_adult, ctx.allowed_kids, MixConfig(), DAY, workers)

    good = MixJob("main", False, np.zeros(0, np.int64), np.zeros(0), np.arange(40))
    broken = MixJob("x", False, np.array([10**9]), np.ones(1), np.arange(5))  # no such column
    with builder(1) as pool:
        assert [len(p) for p in pool.submit([good]).result()] == [
            len(p) for p in builder(0).submit([good]).result()
        ]
        with pytest.raises(IndexError):
            pool.submit([good, broken]).result()
    for bad in (-1, 1.5, True):
        with pytest.raises(SegueError, match="mix workers must be an integer >= 0"):
            builder(bad)  # type: ignore[arg-type]


def test_listeners_of_one_cold_segment_get_their_own_draws_from_shared_inputs(setup) -> None:
    """The builder makes a cold segment's clusters and pools once and draws each listener's
    mixes from them: each listener's plans are exactly what ``build_mixes`` makes for them
    alone, listeners of one segment differ by their draws, kids keep their own catalog."""
    _, _, ctx = setup
    from segue.jobs.mix_builder import MixBuilder, MixJob
    from segue.products.mixes import build_mixes

    popular = np.argsort(-ctx.pc.popularity, kind="stable")[:60]
    segments = [popular, popular[::-1].copy()]
    none = (np.zeros(0, np.int64), np.zeros(0))
    jobs = [
        MixJob(f"new-{n}", kids, *none, segments[n % 2].copy())
        for n, kids in zip(range(12), itertools.cycle([False, False, True]), strict=False)
    ]
    config = MixConfig(length=25)
    builder = MixBuilder(ctx.pc, ctx.allowed_adult, ctx.allowed_kids, config, DAY)
    built = builder.submit(jobs).result()
    assert len(builder._setting.cold) == 4  # two segments × (kids, not)
    for job, plans in zip(jobs, built, strict=True):
        allowed = ctx.allowed_kids if job.kids else ctx.allowed_adult
        alone = build_mixes(job.user_id, DAY, *none, job.candidates, ctx.pc, allowed, config)
        assert plans and len(plans) == len(alone)
        for got, want in zip(plans, alone, strict=True):
            assert (got.title, got.description) == (want.title, want.description)
            assert got.tracks.tolist() == want.tracks.tolist()
            assert got.familiar.tolist() == want.familiar.tolist() and not got.familiar.any()
        if job.kids:
            assert ctx.allowed_kids[np.concatenate([p.tracks for p in plans])].all()
    same_segment = [p[0].tracks.tolist() for j, p in zip(jobs, built, strict=True)
                    if j.candidates[0] == popular[0] and not j.kids]  # fmt: skip
    assert len(same_segment) >= 3 and len({tuple(t) for t in same_segment}) == len(same_segment)
