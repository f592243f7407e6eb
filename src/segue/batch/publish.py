"""The daily run's lists for every user, from Parquet to the store, the online state and serving.

Three kinds of list come out of a daily run, each a Parquet file published with the registry
version that made it (so that a rollback brings back exactly the lists that served before):

* ``top``: every user's top-k (:func:`segue.batch.lists.batch_recommend`);
* ``mix``: every user's daily mixes for the day (:func:`batch_mixes`, one row per track);
* ``nba``: the campaign inputs, per user the message a campaign would send and the other
  allowed actions with click probability, expected value and channel (:func:`batch_campaign`,
  skipped with a note while no click model has been trained).

:func:`publish_version` loads a version's files into the store (one row per user and kind,
see :mod:`segue.store.published`) and, for the version about to be promoted, the top lists into
the online state. Serving then reads the production version's rows (:func:`published_mixes`,
:func:`published_top`), so what a listener sees all day is what the batch computed, and after
``segue models rollback`` what the previous version computed.

Personalisation consent (:mod:`segue.data.consent`): the run writes the non-personal list of
their context and editorial mixes for users without it (``batch.lists``, ``jobs.products``),
and because consent may be withdrawn after the run, serving checks it again at request time:
:func:`published_mixes` serves no published mixes to a user without consent (they get the
editorial mixes computed online, the same as the run's) and ``serving.live.batch_answer`` no
published top list.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segue.batch.lifecycle import CAMPAIGN, MIXES, RECOMMENDATIONS
from segue.batch.lists import ListWriter
from segue.config import Settings
from segue.data.consent import personalised
from segue.dataset import SideInfo
from segue.errors import SegueError
from segue.jobs.products import (
    ListSink,
    MixBatchReport,
    ProductContext,
    mixes_for_all_users,
    product_context,
)
from segue.nba.artifacts import click_model_path
from segue.nba.campaign import CampaignInputs, campaign_inputs
from segue.online.state import BatchList, OnlineState, StateUnavailable
from segue.products.catalog_view import ProductCatalog
from segue.products.mixes import Mix, MixConfig, MixPlan, to_mix
from segue.progress import Progress, no_progress
from segue.registry import ModelRegistry, ModelVersion, default_registry_root
from segue.registry.trained import TrainedModel
from segue.store import PublishedList, Store

TOP, MIX, NBA = "top", "mix", "nba"
#: Registry artifact of each kind.
ARTIFACTS = {TOP: RECOMMENDATIONS, MIX: MIXES, NBA: CAMPAIGN}
#: Rows buffered before a Parquet row group is written (bounded memory for any user count).
BLOCK_ROWS = 200_000
#: Rows read per batch when loading a Parquet file into the store.
READ_ROWS = 262_144

MIX_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("date", pa.date32()),
        ("mix", pa.int16()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("cluster", pa.string()),
        ("position", pa.int16()),
        ("item_id", pa.string()),
        ("familiar", pa.bool_()),
    ]
)


def output_path(data_dir: Path, kind: str, date: dt.date, name: str) -> Path:
    """Where a day's lists of ``kind`` go, beside ``batch/`` (top lists): ``mixes/`` and
    ``campaigns/``, each a Hive-style ``date=`` dataset of its own for analysts."""
    folders = {MIX: "mixes", NBA: "campaigns"}
    if kind not in folders:
        raise SegueError(f"no output folder for list kind {kind!r}; expected one of {folders}")
    return data_dir / folders[kind] / f"date={date.isoformat()}" / f"{name}.parquet"


# -- computing the lists ----------------------------------------------------------------------
class _MixWriter:
    """The sink of :func:`mixes_for_all_users`: plans to Parquet rows, a row group at a time.

    Per plan it keeps only references; a row group's string columns are Arrow ``take``s of
    each user's id, each plan's words and the catalog's item ids. Filling object arrays per
    plan and converting them was a fifth of the 1M-listener batch's scoring process.
    """

    def __init__(self, writer: pq.ParquetWriter, pc: ProductCatalog, date: dt.date) -> None:
        self.writer, self.date = writer, np.datetime64(date, "D")
        self.item_ids = pa.array(pc.catalog.items.ids, type=pa.string())
        self.rows = 0
        self._start()

    def _start(self) -> None:
        self.users: list[str] = []
        self.plans: list[tuple[int, MixPlan]] = []  # (user's position in users, plan)
        self.buffered = 0

    def __call__(self, user_id: str, plans: list[MixPlan]) -> None:
        if not plans:
            return
        self.users.append(user_id)
        at = len(self.users) - 1
        for plan in plans:
            self.plans.append((at, plan))
            self.buffered += len(plan.tracks)
        if self.buffered >= BLOCK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.buffered:
            return
        plans = [plan for _, plan in self.plans]
        lengths = np.fromiter((len(p.tracks) for p in plans), dtype=np.int64, count=len(plans))
        plan_of_row = np.repeat(np.arange(len(plans)), lengths)
        first_row = np.cumsum(lengths) - lengths
        rows = pa.array(plan_of_row)

        def words(values: list[str]) -> pa.Array:
            return pa.array(values, type=pa.string()).take(rows)

        owner = np.fromiter((u for u, _ in self.plans), dtype=np.int64, count=len(plans))
        columns = {
            "user_id": pa.array(self.users, type=pa.string()).take(pa.array(owner[plan_of_row])),
            "date": np.full(self.buffered, self.date),
            "mix": np.fromiter((p.number for p in plans), np.int16, len(plans))[plan_of_row],
            "title": words([p.title for p in plans]),
            "description": words([p.description for p in plans]),
            "cluster": words([p.cluster for p in plans]),
            "position": (np.arange(self.buffered) - first_row[plan_of_row] + 1).astype(np.int16),
            "item_id": self.item_ids.take(
                pa.array(np.concatenate([np.asarray(p.tracks, dtype=np.int64) for p in plans]))
            ),
            "familiar": np.concatenate([np.asarray(p.familiar, dtype=bool) for p in plans]),
        }
        self.writer.write_table(pa.table(columns, schema=MIX_SCHEMA))
        self.rows += self.buffered
        self._start()


@dataclass(frozen=True)
class MixesWritten:
    rows: int
    report: MixBatchReport


def batch_mixes(
    trained: TrainedModel,
    path: Path,
    date: dt.date,
    *,
    store: Store | None = None,
    side: SideInfo | None = None,
    context: ProductContext | None = None,
    config: MixConfig = MixConfig(),
    lists: ListSink | None = None,
    workers: int = 0,
    batch_size: int = 2048,
    progress: Progress = no_progress,
) -> MixesWritten:
    """Every user's daily mixes for ``date`` as Parquet (:data:`MIX_SCHEMA`, one row per
    track in play order); the same mixes ``GET /v1/users/{id}/mixes`` computes for the day.
    ``lists``: the top lists too, from the same scoring (see :func:`batch_lists_and_mixes`);
    ``workers``: processes building the mixes beside the scoring (0: none, all built here).

    Written to ``path.tmp`` and renamed: readers see the previous file or the complete one.
    """
    ctx = context or product_context(store, trained, side)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with pq.ParquetWriter(tmp, MIX_SCHEMA) as writer:
            sink = _MixWriter(writer, ctx.pc, date)
            report = mixes_for_all_users(
                store, trained, date, config=config, context=ctx, sink=sink, lists=lists,
                workers=workers, batch_size=batch_size, progress=progress,
            )  # fmt: skip
            sink.flush()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return MixesWritten(sink.rows, report)


def mix_workers() -> int:
    """Processes to build the daily mixes in beside the scoring: half the cores (at least
    one). On the 2-core machine one worker built the 1M world's mixes in 75 % of the time of
    none, two in 82 %: the scoring process needs its core too."""
    return max(1, (os.cpu_count() or 2) // 2)


def batch_lists_and_mixes(
    trained: TrainedModel,
    lists_path: Path,
    mixes_path: Path,
    date: dt.date,
    *,
    k: int,
    side: SideInfo,
    config: MixConfig = MixConfig(),
    workers: int = 0,
    batch_size: int = 2048,
    progress: Progress = no_progress,
) -> tuple[int, MixesWritten]:
    """The day's top-``k`` lists (as :func:`segue.batch.lists.batch_recommend` writes them)
    and mixes (as :func:`batch_mixes`), each listener scored once for both; returns (list
    rows, mixes). On the 1M-listener world a staged model's scoring was half the batch step's
    time when each file scored every listener again. ``workers``, ``batch_size`` (listeners
    per block): as :func:`batch_mixes`."""
    with ListWriter(trained, lists_path, k=k, date=date, side=side) as lists:
        mixes = batch_mixes(trained, mixes_path, date, side=side, config=config, lists=lists,
                            workers=workers, batch_size=batch_size,
                            progress=progress)  # fmt: skip
    return lists.written, mixes


@dataclass(frozen=True)
class CampaignStep:
    """The campaign inputs written, or why there are none (``skipped``)."""

    inputs: CampaignInputs | None
    skipped: str | None = None


def batch_campaign(
    store: Store,
    model_dir: Path,
    path: Path,
    date: dt.date,
    *,
    campaign: str = "daily",
    now_ms: int | None = None,
    cf_name: str = "als",
    per_user: int = 4,
    progress: Progress = no_progress,
) -> CampaignStep:
    """The NBA campaign inputs of the day (:func:`segue.nba.campaign.campaign_inputs`, the
    ``segue nba run`` decisions without queuing), or a note when no click model exists yet.

    ``now_ms`` defaults to the end of ``date`` or now, whichever is earlier, so a recomputed
    past day decides as of that day.
    """
    if not click_model_path(model_dir).is_file():
        return CampaignStep(
            None,
            f"no click model at {click_model_path(model_dir)}; campaign inputs skipped "
            "(train one with `segue nba train`)",
        )
    if now_ms is None:
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), dt.UTC)
        now_ms = min(int(time.time() * 1000), int(end.timestamp() * 1000) - 1)
    inputs = campaign_inputs(
        store,
        model_dir,
        campaign,
        path,
        date,
        now_ms,
        per_user=per_user,
        cf_name=cf_name,
        progress=progress,
    )
    return CampaignStep(inputs)


# -- Parquet to store and online state --------------------------------------------------------
def _batches(path: Path, columns: list[str], order: list[str]) -> Iterator[pa.Table]:
    """A list file's rows in batches, each user's rows together. A file written by this
    package keeps them together already and is streamed; a Spark folder is read and sorted."""
    if Path(path).is_dir():
        table = pq.read_table(path, columns=columns)
        yield table.sort_by([(c, "ascending") for c in order])
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=columns):
        yield pa.Table.from_batches([batch])


def _whole_users(
    path: Path, columns: list[str], order: list[str]
) -> Iterator[tuple[np.ndarray, pa.Table]]:
    """(user ids, rows) in chunks that never split a user's rows, across batch boundaries."""
    carry: pa.Table | None = None
    carry_users = np.zeros(0, dtype=object)
    for table in _batches(path, ["user_id", *columns], ["user_id", *order]):
        users = table.column("user_id").to_numpy(zero_copy_only=False)
        if carry is not None:
            table, users = pa.concat_tables([carry, table]), np.concatenate([carry_users, users])
        if len(users) == 0:
            continue
        changes = np.flatnonzero(users[1:] != users[:-1]) + 1
        last = int(changes[-1]) if len(changes) else 0  # the last user may go on
        if last:
            yield users[:last], table.slice(0, last)
        carry, carry_users = table.slice(last), users[last:]
    if carry is not None and len(carry_users):
        yield carry_users, carry


def _user_groups(path: Path, columns: list[str], order: list[str]) -> Iterator[dict[str, Any]]:
    """Each user's rows as NumPy columns (``user_id`` a str)."""
    for users, table in _whole_users(path, columns, order):
        starts = [0, *(np.flatnonzero(users[1:] != users[:-1]) + 1).tolist(), len(users)]
        data = {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}
        for lo, hi in pairwise(starts):
            yield {"user_id": str(users[lo]), **{c: v[lo:hi] for c, v in data.items()}}


def _day(value: Any) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def top_lists(path: Path) -> Iterator[tuple[PublishedList, list[str], list[float]]]:
    """Each user's top list of a ``top`` file: the store row, the items and the scores."""
    for g in _user_groups(path, ["rank", "item_id", "score", "date"], ["rank"]):
        order = np.argsort(g["rank"], kind="stable")
        items = g["item_id"][order].tolist()
        scores = [round(x, 6) for x in g["score"][order].astype(np.float64).tolist()]
        body = _dumps({"items": items, "scores": scores})
        yield PublishedList(g["user_id"], _day(g["date"][0]), body), items, scores


def mix_lists(path: Path) -> Iterator[PublishedList]:
    """Each user's mixes of a ``mix`` file as one store row (tracks in play order).

    Vectorised per chunk of rows: the words of a mix are read once per mix, not per track
    (100,000 users with 9M track rows take seconds).
    """
    words = ["mix", "title", "description", "cluster", "date"]
    for users, table in _whole_users(path, [*words, "item_id", "familiar"], ["mix", "position"]):
        n = len(users)
        number = table.column("mix").to_numpy()
        new_user = np.ones(n, dtype=bool)
        new_user[1:] = users[1:] != users[:-1]
        new_mix = new_user.copy()
        new_mix[1:] |= number[1:] != number[:-1]
        starts = np.flatnonzero(new_mix)
        heads = table.select(words).take(pa.array(starts)).to_pydict()
        bounds = [*starts.tolist(), n]
        items = table.column("item_id").to_numpy(zero_copy_only=False).tolist()
        familiar = table.column("familiar").to_numpy(zero_copy_only=False).astype(np.int8).tolist()
        first_mix = [*np.flatnonzero(new_user[starts]).tolist(), len(starts)]
        for a, b in pairwise(first_mix):  # one user: mixes a..b-1
            mixes = [
                {
                    "number": heads["mix"][j],
                    "title": heads["title"][j],
                    "description": heads["description"][j],
                    "cluster": heads["cluster"][j],
                    "items": items[bounds[j] : bounds[j + 1]],
                    "familiar": familiar[bounds[j] : bounds[j + 1]],
                }
                for j in range(a, b)
            ]
            yield PublishedList(str(users[bounds[a]]), heads["date"][a], _dumps(mixes))


#: The columns of a campaign file kept per action in the store (all but user_id and date).
_NBA_FIELDS = [
    "rank",
    "chosen",
    "action_type",
    "item_id",
    "title",
    "reason",
    "channel",
    "p_click",
    "expected_value",
    "send_at_ms",
]


def campaign_lists(path: Path) -> Iterator[PublishedList]:
    """Each user's ranked actions of an ``nba`` file as one store row."""
    for g in _user_groups(path, [*_NBA_FIELDS, "date"], ["rank"]):
        rows = [
            {f: _plain(g[f][i]) for f in _NBA_FIELDS} for i in np.argsort(g["rank"], kind="stable")
        ]
        yield PublishedList(g["user_id"], _day(g["date"][0]), _dumps(rows))


def _plain(value: Any) -> Any:
    if isinstance(value, np.floating):
        return round(float(value), 6)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class PublishReport:
    """Rows loaded into the store per kind, users written to the online state, and notes."""

    name: str
    version: str
    stored: dict[str, int] = field(default_factory=dict)
    online: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def publish_version(
    store: Store,
    version: ModelVersion,
    state: OnlineState | None = None,
    *,
    progress: Progress = no_progress,
) -> PublishReport:
    """Load a registry version's list files into the store, and its top lists into ``state``.

    Call it *before* promoting the version: each kind is replaced in one transaction, so a
    failure leaves the version's previous rows (and the production version's, which are other
    rows) untouched, and the caller does not promote. ``state`` is for the version that is
    about to serve; an unreachable online state is noted, not fatal (serving then reads the
    store).
    """
    started = time.perf_counter()
    report = PublishReport(version.name, version.version)
    tops: list[tuple[str, list[str], list[float]]] = []
    loaders: dict[str, Callable[[Path], Iterator[PublishedList]]] = {
        MIX: mix_lists,
        NBA: campaign_lists,
    }
    for kind, artifact in ARTIFACTS.items():
        path = version.artifacts / artifact
        if not path.exists():
            continue
        progress(f"publishing {kind} lists", 0, None)
        if kind == TOP:
            lists: Iterator[PublishedList] = _keep_tops(top_lists(path), tops, state is not None)
        else:
            lists = loaders[kind](path)
        try:
            with store.transaction():
                report.stored[kind] = store.publish_lists(
                    version.name, version.version, kind, lists
                )
        except (OSError, pa.ArrowException) as exc:  # nothing of this kind was kept
            raise SegueError(
                f"cannot publish the {kind} lists of {version.name} {version.version} "
                f"from {path}: {exc}"
            ) from exc
    if state is not None and tops:
        try:
            report.online = state.set_batch_lists(version.name, version.version, tops)
        except StateUnavailable as exc:
            report.notes.append(f"online state not updated ({exc}); serving reads the store")
    report.seconds = time.perf_counter() - started
    return report


def online_state_for_publish(settings: Settings) -> tuple[OnlineState | None, str | None]:
    """The shared online state a publish writes to, or None with a note saying why not.

    Only Redis is shared: an in-process state belongs to the serving process, which reads the
    published lists from the store instead. Redis being unreachable is a note, not a failure.
    """
    if not settings.redis_url:
        return None, "no SEGUE_REDIS_URL: the API reads the published lists from the store"
    from segue.online.redis_state import RedisState

    try:
        return RedisState(settings.redis_url, settings.redis_prefix), None
    except StateUnavailable as exc:
        return None, f"online state not updated ({exc}); serving reads the store"


def _keep_tops(
    rows: Iterator[tuple[PublishedList, list[str], list[float]]],
    into: list[tuple[str, list[str], list[float]]],
    keep: bool,
) -> Iterator[PublishedList]:
    for row, items, scores in rows:
        if keep:
            into.append((row.user_id, items, scores))
        yield row


# -- serving reads ----------------------------------------------------------------------------
def production_version(settings: Settings, name: str) -> str | None:
    """The registry's production version of ``name`` (one small file read), or None."""
    root = default_registry_root(settings)
    if not root.is_dir():
        return None
    current = ModelRegistry(root).production(name)
    return None if current is None else current.version


def published_top(
    store: Store, state: OnlineState | None, name: str, version: str, user_id: str
) -> BatchList | None:
    """The user's top list published by ``version``: from the online state when it holds
    that version's list, else from the store (Redis down, a rolled-back version, a process
    whose in-process state was never loaded)."""
    if state is not None:
        try:
            found = state.batch_list(user_id, name)
        except (StateUnavailable, NotImplementedError):
            found = None
        if found is not None and found.version == version:
            return found
    row = store.published_list(name, version, TOP, user_id)
    if row is None:
        return None
    body = json.loads(row.payload)
    return BatchList(name, version, list(body["items"]), [float(x) for x in body["scores"]])


def published_mixes(
    store: Store, name: str, version: str, user_id: str, date: dt.date, pc: ProductCatalog
) -> list[Mix] | None:
    """The user's mixes for ``date`` as published by ``version``, or None when that version
    published none for the user on that day, or the user has no personalisation consent now
    (the caller then computes them: editorial mixes for them)."""
    row = store.published_list(name, version, MIX, user_id)
    if row is None or row.day != date or not personalised(store.get_user(user_id)):
        return None
    mixes = []
    for m in json.loads(row.payload):
        columns = np.asarray(pc.catalog.items.to_index(m["items"], allow_unknown=True))
        if (columns < 0).any():  # a catalog that no longer has the tracks: compute instead
            return None
        plan = MixPlan(
            number=int(m["number"]),
            cluster=m["cluster"],
            title=m["title"],
            description=m["description"],
            tracks=columns.astype(np.int64),
            familiar=np.asarray(m["familiar"], dtype=bool),
        )
        mixes.append(to_mix(plan, user_id, date, pc))
    return mixes


__all__ = [
    "ARTIFACTS",
    "MIX",
    "MIX_SCHEMA",
    "NBA",
    "TOP",
    "CampaignStep",
    "MixesWritten",
    "PublishReport",
    "batch_campaign",
    "batch_mixes",
    "campaign_lists",
    "mix_lists",
    "online_state_for_publish",
    "output_path",
    "production_version",
    "publish_version",
    "published_mixes",
    "published_top",
    "top_lists",
]
