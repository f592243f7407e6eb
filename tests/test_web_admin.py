"""The admin console at ``/admin``, end to end in Debian's chromium, against a real server
with API keys and Redis (a key prefix of this module's own): an admin promotes a registry
version and rolls it back, each after a confirmation, and the listener's Home follows; a
listener key sees no admin action, on ``/admin`` or on ``/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import REDIS_URL
from segue.config import Settings
from segue.dataset.from_store import load_interactions
from segue.models.mf import ALSRecommender
from segue.registry import ModelRegistry
from segue.registry.trained import TrainedModel, save_trained
from segue.store import open_store
from web_world import build_world, check_page, chromium, needs_chromium, screenshot_dir, serve

pytestmark = [needs_chromium, pytest.mark.slow]

ADMIN_KEY = "web-admin-key"
LISTENER_KEY = "web-listener-key"


class World:
    url: str
    store_url: str
    active: list[str]
    shots: Path
    first: str
    second: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two registry versions of "daily" (ALS trained twice, differently), the first serving."""
    root = tmp_path_factory.mktemp("web-admin")
    w = World()
    w.store_url, w.active = build_world(root)
    store_url = w.store_url
    registry = ModelRegistry(root / "registry")
    first = registry.publish(
        "daily", root / "models" / "als", {"model_type": "als", "metrics": {"ndcg@10": 0.10}}
    )
    with open_store(store_url) as store:
        data = load_interactions(store)
    other = ALSRecommender(factors=8, iterations=3, random_state=1).fit(data.matrix())
    save_trained(TrainedModel("als", other, data.users, data.items), root / "other")
    second = registry.publish(
        "daily", root / "other", {"model_type": "als", "metrics": {"ndcg@10": 0.11}}
    )
    registry.promote("daily", first.version)
    w.first, w.second = first.version, second.version
    w.shots = screenshot_dir(tmp_path_factory)
    prefix = f"segue-test:{uuid.uuid4().hex[:12]}:"
    settings = Settings(
        data_dir=root,
        database_url=store_url,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        api_keys=f"{ADMIN_KEY}=admin,{LISTENER_KEY}=read+ingest",
    )
    try:
        with serve(settings, model="daily") as url:
            w.url = url
            yield w
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    c = browser.new_context(viewport={"width": 1280, "height": 900})
    c.set_default_timeout(10_000)
    yield c
    c.close()


def _admin(context: Any, world: World, key: str) -> Any:
    page = context.new_page()
    page.goto(world.url + "/admin")
    page.wait_for_selector("body[data-ready='1']")
    page.get_by_label("Admin API key").fill(key)
    page.evaluate("delete document.body.dataset.ready")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_selector("body[data-ready='1']")
    return page


def _listener(context: Any, world: World, user: str) -> Any:
    page = context.new_page()
    page.goto(world.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.get_by_label("Listener id", exact=True).fill(user)
    page.get_by_label("Listener token (API key)").first.fill(LISTENER_KEY)
    page.get_by_role("button", name="Listen", exact=True).click()
    page.wait_for_selector("#recs > li[data-item-id]")
    return page


def _home(page: Any) -> tuple[str, list[str]]:
    """The version Home was served by and its row, read after a fresh load of Home."""
    before = page.evaluate("document.body.dataset.homeLoaded")
    page.get_by_role("button", name="Home", exact=True).click()
    page.wait_for_function("prev => document.body.dataset.homeLoaded !== prev", arg=before)
    version = page.eval_on_selector("#recs", "e => e.dataset.version")
    return version, page.eval_on_selector_all("#recs > li", "els => els.map(e => e.dataset.itemId)")


def _confirm(page: Any, button: str, ok: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    dialog = page.locator("#confirm")
    assert dialog.evaluate("d => d.open")
    page.locator("#confirm").get_by_role("button", name=ok, exact=True).click()


def test_an_admin_promotes_and_rolls_back_and_home_follows(context: Any, world: World) -> None:
    listener = _listener(context, world, world.active[0])
    version, served_first = _home(listener)
    assert version == world.first and len(served_first) == 10

    admin = _admin(context, world, ADMIN_KEY)
    assert admin.locator("#console").is_visible()
    admin.wait_for_function("document.querySelector('#health dd') !== null")
    assert admin.locator(f"tr[data-version='{world.first}'][data-serving='true']").count()
    for part in ("#runs", "#experiments", "#campaigns", "#dead", "#data"):  # each part answered
        assert admin.locator(part).inner_text().strip(), part
    with open_store(world.store_url) as store:  # the store's own counts, as the page shows them
        assert f"items\n{store.count('items'):,}" in admin.locator("#data").inner_text()
    check_page(admin, world.shots, "admin")

    # a cancelled confirmation changes nothing
    admin.get_by_role("button", name=f"Promote daily {world.second}", exact=True).click()
    admin.locator("#confirm").get_by_role("button", name="Cancel", exact=True).click()
    assert admin.locator(f"tr[data-version='{world.first}'][data-serving='true']").count()

    _confirm(admin, f"Promote daily {world.second}", "Promote")
    admin.wait_for_selector(f"tr[data-version='{world.second}'][data-serving='true']")
    assert f"{world.second} now serves here" in admin.locator("#notice").inner_text()
    version, served_second = _home(listener)
    assert version == world.second
    assert served_second != served_first, "the other version's list"

    _confirm(admin, f"Roll back to {world.first}", "Roll back")
    admin.wait_for_selector(f"tr[data-version='{world.first}'][data-serving='true']")
    version, served_again = _home(listener)
    assert version == world.first
    assert served_again == served_first, "exactly the old list again"


def test_an_admin_sees_what_a_version_changes_in_one_listeners_list(
    context: Any, world: World
) -> None:
    user = world.active[3]
    listener = _listener(context, world, user)
    version, home = _home(listener)
    assert version == world.first
    admin = _admin(context, world, ADMIN_KEY)
    admin.get_by_label("Listener id", exact=True).fill(user)
    admin.get_by_label("Version A").select_option(world.first)
    admin.get_by_label("Version B").select_option(world.second)
    admin.get_by_role("button", name="Compare", exact=True).click()
    admin.wait_for_selector("#compare-summary")
    column = "(rows, n) => rows.map(r => (r.cells[n].querySelector('span') || {dataset: {}})"
    a = admin.eval_on_selector_all("#compare-out tbody tr", column + ".dataset.itemId)", 1)
    b = admin.eval_on_selector_all("#compare-out tbody tr", column + ".dataset.itemId)", 2)
    assert a == home, "version A's column is the list the listener sees from it"
    assert a != b, "the two versions were trained differently"
    came_in = [i for i in b if i not in a]
    summary = admin.locator("#compare-summary").inner_text()
    assert summary.startswith(f"{user}: {len(came_in)} in, {len(came_in)} out")
    assert admin.locator("#compare-out .new").count() == len(came_in)
    check_page(admin, world.shots, "admin-compare")


def test_a_listener_key_never_sees_admin_actions(context: Any, world: World) -> None:
    admin = _admin(context, world, LISTENER_KEY)
    assert admin.locator("#denied").is_visible()
    assert not admin.locator("#console").is_visible()
    for word in ("Promote", "Roll back", "Replay all", "Drop all"):
        assert not admin.get_by_role("button", name=word).filter(visible=True).count()
    assert not admin.locator("#registry tr").count(), "nothing of the registry was loaded"
    check_page(admin, world.shots, "admin-denied")

    listener = _listener(context, world, world.active[1])
    for view in ("Home", "Search & ask", "Stations", "Wrapped", "Settings"):
        listener.get_by_role("button", name=view, exact=True).click()
        for word in ("Promote", "Roll back", "Replay all", "Drop all"):
            assert not listener.get_by_role("button", name=word).filter(visible=True).count()
    listener.get_by_role("button", name="Export my data", exact=True).click()
    listener.wait_for_function("document.querySelector('#data-status').textContent !== ''")
    assert "admin" in listener.locator("#data-status").inner_text()  # the API's 403, said
