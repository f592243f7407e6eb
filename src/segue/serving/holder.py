"""What a serving process holds in memory, and how it is replaced without a restart.

A request must not touch the disk or rebuild anything: everything that depends only on the
model version (the model, its id maps, the item catalog, display titles, artist and genres per
item for the live state, the cold-start priors) is built once into an immutable
:class:`ServingModel` when a version is loaded. :class:`ModelHolder` keeps the current one;
swapping is one reference assignment, so a request sees either the old version or the new one
in full, never a mix. A watcher thread polls where the production version lives (the model
registry when one has a production version, else ``segue train``'s output folder) and loads a
new version beside the old before swapping.

When no model can be loaded at all, the holder serves a popularity model fitted from the store
and says so (:attr:`ServingModel.fallback`); when a *new* version fails to load, the current one
keeps serving and the failure is counted, because a working model beats a popular-items list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from cachetools import TTLCache

from segue.config import Settings
from segue.data.model import ItemKind, User
from segue.dataset import IdMap, SideInfo
from segue.dataset.catalog import KIND_CODES
from segue.dataset.from_store import load_interactions, load_side_info
from segue.errors import DatasetError, SegueError
from segue.models.coldstart import ColdStartRecommender
from segue.models.filters import Filters
from segue.models.names import model_spec
from segue.registry import ModelRegistry
from segue.registry.trained import TrainedModel, load_trained_at
from segue.serving.session import SessionAdjuster
from segue.store import Store

log = logging.getLogger(__name__)

#: Name of the popularity model served when nothing else loads.
FALLBACK_MODEL = "popularity"


class ModelUnavailable(SegueError):
    """No model can serve yet (an empty store, no trained model): the message says what is
    missing and how to fix it. The API answers 503 with it."""


@dataclass(frozen=True)
class ModelLocation:
    """Where a model version lives: ``version`` changes whenever the files do.

    ``name`` is what is served (a registry name such as ``daily``, whose winning model may
    change from day to day), ``model_type`` the kind of model in the files (``als``, ...).
    """

    name: str
    version: str
    path: Path
    model_type: str


@dataclass(frozen=True, eq=False)
class ServingModel:
    """One loaded model version and everything derived from it that requests read."""

    trained: TrainedModel
    version: str
    side: SideInfo
    train: sp.csr_matrix
    item_ids: np.ndarray
    display_titles: list[str]
    artist_of: dict[str, str]
    genres_of: dict[str, tuple[str, ...]]
    cold: ColdStartRecommender
    adjuster: SessionAdjuster
    #: the rules of a plain request, by kids profile (False, True)
    rules: tuple[Filters, Filters]
    fallback: str | None = None
    loaded_at: float = field(default_factory=time.time)

    @cached_property
    def popularity(self) -> np.ndarray:
        """Listeners per item in the training data (the top-slot bandit's feature), counted
        on first use."""
        return np.diff(self.train.tocsc().indptr).astype(np.float64)

    @property
    def name(self) -> str:
        return self.trained.name

    @property
    def items(self) -> IdMap:
        return self.trained.items

    @property
    def users(self) -> IdMap:
        return self.trained.users

    @classmethod
    def build(
        cls,
        store: Store,
        trained: TrainedModel,
        version: str,
        *,
        fallback: str | None = None,
        side: SideInfo | None = None,
    ) -> ServingModel:
        """Derive the request-time tables from a trained model and the store's catalog
        (``side``: side information already aligned with the model's maps, if at hand)."""
        if side is None or side.catalog is None:
            side = load_side_info(store, users=trained.users, items=trained.items, friends=False)
        catalog = side.catalog
        assert catalog is not None
        item_ids = np.asarray(trained.items.ids, dtype=object)
        titles = {str(i): str(t) for i, t in zip(item_ids, catalog.titles, strict=True)}
        artist_of: dict[str, str] = {}
        genres_of: dict[str, tuple[str, ...]] = {}
        genres = catalog.genres.tocsr()
        display: list[str] = []
        for column, item_id in enumerate(item_ids):
            item_id = str(item_id)
            artist_code = int(catalog.artist[column])
            title = titles[item_id]
            if artist_code >= 0:
                artist = catalog.artist_ids[artist_code]
                artist_of[item_id] = artist
                artist_title = titles.get(artist)
                if artist_title and artist != item_id:
                    title = f"{title} — {artist_title}"
            display.append(title)
            row = genres.indices[genres.indptr[column] : genres.indptr[column + 1]]
            if len(row):
                genres_of[item_id] = tuple(catalog.genre_names[g] for g in row)
        episodes = np.flatnonzero(catalog.kind == KIND_CODES[ItemKind.PODCAST_EPISODE.value])
        if len(episodes):  # "#7: Little Circuit" alone does not say which podcast
            shows = _show_titles(store)
            for column in episodes.tolist():
                show = shows.get(str(item_ids[column]))
                if show:
                    display[column] = f"{display[column]} — {show}"
        train = trained.model._fitted()
        cold = ColdStartRecommender(trained.model, train, side)
        return cls(
            trained=trained,
            version=version,
            side=side,
            train=train,
            item_ids=item_ids,
            display_titles=display,
            artist_of=artist_of,
            genres_of=genres_of,
            cold=cold,
            rules=(Filters.build(catalog), Filters.build(catalog, no_explicit=True)),
            adjuster=SessionAdjuster(catalog),
            fallback=fallback,
        )


def _show_titles(store: Store) -> dict[str, str]:
    """Episode id -> the title of its show, in one read of the items table's columns."""
    columns = store.table_columns("items", ["id", "title", "show_id"])
    title_of = dict(zip(columns["id"].tolist(), columns["title"].tolist(), strict=True))
    return {
        str(item): str(title_of[show])
        for item, show in zip(columns["id"].tolist(), columns["show_id"].tolist(), strict=True)
        if show and show in title_of
    }


#: What an empty store lacks, and the fix (``/v1/ready`` lists these under ``missing``).
NO_ITEMS = (
    "items: the store has no catalog, so there is nothing to recommend; import one "
    "(`segue import csv items.csv --kind items`, `segue import lastfm-2k DIR` or `segue synth`)"
)
NO_EVENTS = (
    "events: the store has no listening events, so no model can be fitted; import some "
    "(`segue import csv plays.csv --kind events`, `segue import lastfm-2k DIR` or "
    "`segue synth`), then run `segue train`"
)


def popularity_from_store(store: Store, reason: str) -> ServingModel:
    """The last resort: most-listened items, fitted from the store in this process.

    Raises :class:`ModelUnavailable` naming what is missing when the store has no items or no
    listening events.
    """
    if store.count("items") == 0:
        raise ModelUnavailable(NO_ITEMS)
    spec = model_spec(FALLBACK_MODEL)
    try:
        data = load_interactions(store)
        matrix = data.matrix(spec.weighting)
    except DatasetError as exc:  # "no positive interactions"
        raise ModelUnavailable(NO_EVENTS) from exc
    if matrix.nnz == 0:
        raise ModelUnavailable(NO_EVENTS)
    model = spec.factory().fit(matrix)
    trained = TrainedModel(FALLBACK_MODEL, model, data.users, data.items)
    return ServingModel.build(store, trained, "fallback", fallback=reason)


def locate_model(settings: Settings, name: str) -> ModelLocation | None:
    """The production version of ``name``: the registry's, else ``segue train``'s folder.

    The version of a plain folder is its ``params.json`` modification time, so retraining into
    the same folder is noticed as a new version.
    """
    registered = _registry_production(settings, name)
    if registered is not None:
        return registered
    path = settings.data_dir / "models" / name
    params = path / "params.json"
    if not params.is_file():
        return None
    return ModelLocation(name, f"local-{params.stat().st_mtime_ns}", path, name)


def _registry_production(settings: Settings, name: str) -> ModelLocation | None:
    root = settings.data_dir / "registry"
    if not root.is_dir():
        return None
    current = ModelRegistry(root).production(name)
    if current is None:
        return None
    model_type = current.manifest.get("model_type", name)
    return ModelLocation(name, str(current.version), Path(current.path), str(model_type))


Loader = Callable[[ModelLocation], TrainedModel]
#: Registry versions an experiment may serve beside production, kept loaded at once.
MAX_VARIANT_VERSIONS = 4


def load_location(location: ModelLocation) -> TrainedModel:
    return load_trained_at(location.path, location.model_type)


class ModelHolder:
    """The current :class:`ServingModel`, replaced atomically when a new version appears.

    ``on_event(kind, detail)`` is told about ``"loaded"``, ``"load_failed"`` and
    ``"fallback"`` so the face can count them in its metrics.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        name: str,
        *,
        loader: Loader = load_location,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.name = name
        self._loader = loader
        self._on_event = on_event or (lambda kind, detail: None)
        self._current: ServingModel | None = None
        self._location: ModelLocation | None = None
        #: what keeps a model from serving, with the fixes (empty while one serves)
        self.missing: list[str] = []
        self._lock = threading.Lock()  # one retry of an empty start at a time
        self._swap_lock = threading.Lock()
        self._variant_lock = threading.Lock()
        self._variants: dict[str, ServingModel | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> ServingModel:
        """The serving model; :class:`ModelUnavailable` (with the fix) while there is none."""
        model = self._current
        if model is None:
            if self.missing:
                raise ModelUnavailable("no model can serve yet: " + "; ".join(self.missing))
            raise ModelUnavailable("no model loaded yet: call ModelHolder.load() first")
        return model

    @property
    def loaded(self) -> ServingModel | None:
        """The serving model, or None while there is none."""
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load(self) -> ServingModel | None:
        """Load the production version, or fall back to popularity; at startup.

        On a store without items or events nothing can serve: None, with :attr:`missing`
        saying what to do; the watcher (:meth:`refresh`) keeps trying, so the service starts
        serving once the data is imported or a model trained, without a restart.
        """
        location = locate_model(self.settings, self.name)
        if location is None:
            reason = f"no trained {self.name!r} model (run `segue train --models {self.name}`)"
            return self._fall_back(reason)
        try:
            return self._swap_to(location)
        except Exception as exc:  # any load failure: serve something rather than nothing
            log.exception("loading %s %s failed", location.name, location.version)
            self._on_event("load_failed", f"{location.name} {location.version}: {exc}")
            return self._fall_back(f"model {self.name!r} failed to load: {exc}")

    def refresh(self) -> bool:
        """Swap to the production version if it changed; True if a new one now serves.

        A version that fails to load leaves the current one serving, and is not retried until
        the production pointer changes again.
        """
        if self._current is None:  # nothing serves yet: the data or a model may be there now
            return self._retry_load()
        location = locate_model(self.settings, self.name)
        if location is None or location == self._location:
            return False
        try:
            self._swap_to(location)
        except Exception as exc:
            log.exception("loading %s failed; keeping the current model", location)
            self._location = location  # do not retry the same broken version every poll
            self._on_event("load_failed", f"{location.name} {location.version}: {exc}")
            return False
        return True

    def version(self, version: str) -> ServingModel | None:
        """A registry version of the served name other than production's — an experiment's
        variant — loaded on first use and kept (at most ``MAX_VARIANT_VERSIONS``); the
        production model when ``version`` is production's. None when it cannot be loaded
        (no such version, broken files), remembered so a bad variant costs one try."""
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._variant_lock:
            if version in self._variants:
                return self._variants[version]
            model = None
            try:
                found = ModelRegistry(self.settings.data_dir / "registry").get(self.name, version)
                location = ModelLocation(
                    self.name,
                    str(found.version),
                    Path(found.path),
                    str(found.manifest.get("model_type", self.name)),
                )
                model = ServingModel.build(self.store, self._loader(location), location.version)
                model.cold.warm_segments()
                self._on_event("loaded", f"{self.name} {version} (experiment variant)")
            except Exception as exc:
                log.warning("experiment version %s of %s not loaded: %s", version, self.name, exc)
                self._on_event("load_failed", f"{self.name} {version}: {exc}")
            if len(self._variants) >= MAX_VARIANT_VERSIONS:
                self._variants.pop(next(iter(self._variants)))
            self._variants[version] = model
            return model

    def swap(self, model: ServingModel) -> None:
        """Serve ``model`` from now on (one reference assignment: atomic for readers)."""
        self._current = model

    def watch(self, interval_s: float = 2.0) -> None:
        """Poll for new versions in a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception:  # the watcher must never die
                    log.exception("model refresh failed")

        self._thread = threading.Thread(target=loop, name="segue-model-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _swap_to(self, location: ModelLocation) -> ServingModel:
        with self._swap_lock:
            trained = self._loader(location)
            model = ServingModel.build(self.store, trained, location.version)
            model.cold.warm_segments()  # before serving, so no listener waits for a segment
            self._current = model
            self._location = location
            self.missing = []
        self._on_event("loaded", f"{location.name} {location.version}")
        return model

    def _retry_load(self) -> bool:
        with self._lock:
            if self._current is not None:
                return False
            before = list(self.missing)
            self.load()
            if self._current is None and self.missing != before:
                log.warning("still nothing to serve: %s", "; ".join(self.missing))
            return self._current is not None

    def _fall_back(self, reason: str) -> ServingModel | None:
        log.warning("serving popularity: %s", reason)
        try:
            model = popularity_from_store(self.store, reason)
        except ModelUnavailable as exc:
            self.missing = [str(exc)]
            if "segue train" in reason:
                self.missing.append(f"model: {reason}")
            if self._current is None:
                log.warning("nothing to serve yet: %s", "; ".join(self.missing))
                self._on_event("unavailable", "; ".join(self.missing))
            return None
        self.missing = [f"model: {reason}"]
        self._current = model
        self._on_event("fallback", reason)
        return model


class UserCache:
    """Users read from the store, kept for ``ttl_s`` seconds: one query per user per TTL.

    Every request needs the listener's flags (kids profile, Focus Mode, consent); reading them
    from the store each time would cost more than scoring. A change made through this process
    is seen at once (:meth:`forget`); one made through another process within ``ttl_s``.
    Missing users are cached too (as None), so a stream of requests for unknown ids does not
    become a stream of queries. At most ``max_users`` are kept: a ``cachetools.TTLCache``
    that, when full, drops expired entries and then the least recently used one, one at a time,
    so the listeners being served stay cached. ``ttl_s = 0`` caches nothing.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 2.0,
        max_users: int = 200_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_users < 1:
            raise ValueError(f"max_users must be at least 1, got {max_users}")
        self.store = store
        self.ttl_s = ttl_s
        self.max_users = max_users
        self._users: TTLCache[str, User | None] = TTLCache(max_users, ttl_s, timer=timer)
        self._lock = threading.Lock()  # TTLCache is not thread-safe; reads reorder it too

    def get(self, user_id: str) -> User | None:
        with self._lock:
            try:
                return self._users[user_id]  # KeyError when absent or expired
            except KeyError:
                pass
        user = self.store.get_user(user_id)  # outside the lock: one slow read blocks no one
        with self._lock:
            self._users[user_id] = user
        return user

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)
