"""``GET /v1/search``: catalog items by name, and the name index other routes resolve with.

The index (:class:`segue.jobs.catalog.CatalogNames`) covers the store's catalog, ordered by
the served model's listeners per item; it is built on first use and again when the served
version changes, as the listener products' tables are. Station seeds and onboarding picks
given by name resolve through :func:`catalog_names`, so the API and the CLI agree on what a
name means; a name that fits several items is a 422 problem whose ``suggestions`` list them.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from segue.api.problems import problem_responses
from segue.api.schemas import SearchHit, SearchResults
from segue.api.security import require
from segue.api.services import Services, ServicesDep
from segue.jobs.catalog import CatalogNames, parse_kinds

router = APIRouter(prefix="/v1", tags=["catalog"], responses=problem_responses(401, 403, 422, 503))
_lock = threading.Lock()


def catalog_names(svc: Services) -> CatalogNames:
    """The name index for the served model version (built once per version)."""
    model = svc.models.current
    cached = svc.names
    if cached is None or cached[0] is not model:
        with _lock:
            cached = svc.names
            if cached is None or cached[0] is not model:
                names = CatalogNames.from_store(svc.store, model.trained)
                cached = svc.names = (model, names)
    return cached[1]


@router.get("/search", response_model=SearchResults, dependencies=[Depends(require("read"))])
def search(
    svc: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=300, description="A name; typos are fine")],
    kind: Annotated[
        list[str], Query(description="Only these kinds (track, artist, podcast_episode, ...)")
    ] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchResults:
    """Catalog items whose names best match ``q``: tracks with their artist, podcast
    episodes with their show; an item id finds its item."""
    kinds = parse_kinds(kind)
    hits = catalog_names(svc).search(q, kinds or None, limit)
    return SearchResults(query=q, items=[SearchHit.model_validate(h) for h in hits])
