"""The listener app at ``/``, end to end in Debian's chromium against a real server (open
mode: any listener id, no key): onboarding with three picks, two skips of an artist, Focus
Mode, a request in words, stations, Wrapped, settings and one's data, each page checked with
axe-core and photographed at 375 and 1280 px.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segue.config import Settings
from segue.data.model import ItemKind
from segue.store import open_store
from web_world import (
    PARAMS,
    build_world,
    check_page,
    chromium,
    needs_chromium,
    screenshot_dir,
    serve,
)

pytestmark = [needs_chromium, pytest.mark.slow]


class World:
    url: str
    store_url: str
    active: list[str]
    shots: Path
    nlu: bool


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("web-listener")
    w = World()
    w.store_url, w.active = build_world(root)
    w.shots = screenshot_dir(tmp_path_factory)
    w.nlu = _small_language_model(root / "nlu" / "joint")
    with serve(Settings(data_dir=root, database_url=w.store_url)) as url:
        w.url = url
        yield w


def _small_language_model(out: Path) -> bool:
    """The request model of tests/test_api_fuzz.py (one MiniLM layer, one epoch, seconds): it
    parses roughly, so a request either plays or asks. False without the nlu extra."""
    try:
        from test_api_fuzz import _train_small_language_model

        _train_small_language_model(out)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()


def _open(page: Any, world: World) -> None:
    page.goto(world.url + "/")
    page.wait_for_selector("body[data-ready='1']")


def _sign_in(page: Any, world: World, user: str) -> None:
    _open(page, world)
    page.get_by_label("Listener id", exact=True).fill(user)
    page.get_by_role("button", name="Listen", exact=True).click()
    _home_loaded(page)


def _home_loaded(page: Any, after: str | None = None) -> None:
    page.wait_for_function(
        "prev => document.body.dataset.homeLoaded && document.body.dataset.homeLoaded !== prev",
        arg=after,
    )


def _row(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#recs > li[data-item-id]",
        "els => els.map(e => ({id: e.dataset.itemId, artist: e.dataset.artist, "
        "title: e.querySelector('strong').textContent, "
        "reason: (e.querySelector('.reason') || {}).textContent || ''}))",
    )


def _releases(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#releases > li[data-item-id]",
        "els => els.map(e => ({id: e.dataset.itemId, "
        "reason: (e.querySelector('.reason') || {}).textContent || ''}))",
    )


def _recs_version(page: Any) -> str:
    return page.eval_on_selector("#recs", "e => e.dataset.loads || '0'")


def _wait_row_refreshed(page: Any, before: str) -> None:
    page.wait_for_function(
        "prev => (document.querySelector('#recs').dataset.loads || '0') !== prev", arg=before
    )


def test_a_new_listener_onboards_with_three_picks_and_the_lists_follow_them(
    page: Any, world: World
) -> None:
    _open(page, world)
    check_page(page, world.shots, "signin")
    with open_store(world.store_url) as store:  # three tracks the world knows
        tracks = list(store.iter_items(ItemKind.TRACK))[:3]
    page.get_by_label("Choose a listener id").fill("web-newcomer")
    for t in tracks:
        page.get_by_label("Find tracks or artists you love").fill(t.title)
        page.get_by_role("button", name="Find", exact=True).click()
        page.wait_for_selector("#onboard-results li")
        found = page.locator(f"#onboard-results li[data-item-id='{t.id}'] button")
        if not found.count():  # a title several tracks share: the id finds it
            page.get_by_label("Find tracks or artists you love").fill(t.id)
            page.get_by_role("button", name="Find", exact=True).click()
        found.click()
    assert page.locator("#pick-count").inner_text() == "3"
    page.get_by_role("button", name="Start listening", exact=True).click()
    _home_loaded(page)
    row = _row(page)
    assert len(row) == 10
    assert {r["reason"] for r in row} == {"matches what you picked"}
    assert not {r["id"] for r in row} & {t.id for t in tracks}, "picks are not recommended back"
    releases = _releases(page)
    assert releases, "the new releases row is drawn"
    with open_store(world.store_url) as store:  # each one dated, and shown with its date
        dated = {i.id: i.release_date for i in store.iter_items(ItemKind.TRACK)}
    for r in releases:
        assert dated[r["id"]] is not None and str(dated[r["id"]]) in r["reason"]
    check_page(page, world.shots, "home")


def test_two_skips_of_an_artist_take_it_out_of_the_next_row(page: Any, world: World) -> None:
    _sign_in(page, world, world.active[1])
    row = _row(page)
    artist = row[0]["artist"]
    assert artist and len(row) == 10
    for _ in range(2):
        before = _recs_version(page)
        shown = page.locator(f"#recs > li[data-artist='{artist}'] button").first
        if shown.count():
            shown.click()
        else:  # already out of Home's row: play it from a search, as a listener would
            page.get_by_role("button", name="Search & ask", exact=True).click()
            page.get_by_label("Search the catalog").fill(f"{row[0]['title']} {artist}")
            page.get_by_role("button", name="Search", exact=True).click()
            page.locator(f"#search-results > li[data-artist='{artist}'] button").first.click()
            page.get_by_role("button", name="Home", exact=True).click()
            _wait_row_refreshed(page, before)
            before = _recs_version(page)
        assert page.locator("#now-artist").inner_text() == f"by {artist}"
        page.get_by_role("button", name="Skip", exact=True).click()
        _wait_row_refreshed(page, before)
    after = _row(page)
    assert len(after) == 10
    assert artist not in {r["artist"] for r in after}, "the skipped artist is gone, no reload"
    assert page.locator("#notice").inner_text().startswith(f"You skipped {artist} twice")


def test_focus_mode_leaves_home_unchanged_after_plays(page: Any, world: World) -> None:
    _sign_in(page, world, world.active[2])
    page.get_by_role("button", name="Settings", exact=True).click()
    page.wait_for_function("document.querySelector('#settings-status').textContent === ''")
    check_page(page, world.shots, "settings")
    page.get_by_label("Focus Mode", exact=False).check()
    page.wait_for_function("document.querySelector('#settings-status').textContent === 'Saved.'")
    assert page.locator("#focus-badge").is_visible()
    marker = page.evaluate("document.body.dataset.homeLoaded")
    page.get_by_role("button", name="Home", exact=True).click()
    _home_loaded(page, marker)
    before, releases = _row(page), _releases(page)
    page.locator("#recs > li button").first.click()
    for control in ("Skip", "Skip", "Next", "Dislike"):
        version = _recs_version(page)
        page.get_by_role("button", name=control, exact=True).click()
        _wait_row_refreshed(page, version)
    assert _row(page) == before, "Focus Mode: plays change nothing"
    marker = page.evaluate("document.body.dataset.homeLoaded")
    page.get_by_role("button", name="Home", exact=True).click()
    _home_loaded(page, marker)
    assert _row(page) == before and _releases(page) == releases, "nor Home drawn again"
    page.get_by_role("button", name="Settings", exact=True).click()
    page.get_by_label("Focus Mode", exact=False).uncheck()
    page.wait_for_function("document.querySelector('#settings-status').textContent === 'Saved.'")


def test_a_request_in_words_plays_the_linked_track_or_asks(page: Any, world: World) -> None:
    """The small request model parses roughly, so each request is followed down the branch
    it takes; on the development machine the first is refused (a name heard as an unknown
    genre: 422, said in the page) and the second asks which artist or genre (a dialog)."""
    _sign_in(page, world, world.active[3])
    page.get_by_role("button", name="Search & ask", exact=True).click()
    _ask(page, world, f"play {_row_titles(world)}")  # each answer checked down its branch
    _ask(page, world, "start a radio station")
    check_page(page, world.shots, "search")


def _ask(page: Any, world: World, text: str) -> str:
    """Ask in words; check what the page does with the answer; which branch it was."""
    page.get_by_label("Ask for music in words").fill(text)
    page.get_by_role("button", name="Ask", exact=True).click()
    page.wait_for_function("!document.querySelector('#ask-answer').textContent.includes('Think')")
    if not world.nlu:  # without the nlu extra the API says which extra to install
        assert "nlu" in page.locator("#ask-answer").inner_text()
        return "no model"
    answer = page.locator("#ask-answer")
    assert not page.locator("#ask-answer [role=alert]").count(), answer.inner_text()
    page.wait_for_function(
        "document.querySelector('#ask-dialog').open || document.querySelector('#ask-call')"
        " || document.querySelector('#ask-refused')"
    )
    dialog = page.locator("#ask-dialog")
    if dialog.evaluate("d => d.open"):  # it asks: the question in a dialog
        assert page.locator("#ask-question").inner_text().strip()
        assert page.locator("#ask-call").inner_text().strip()  # the parsed call, behind it
        check_page(page, world.shots, "ask-dialog")
        playing = page.locator("#player").get_attribute("data-item-id")
        if page.locator("#ask-ok").inner_text() == "Yes, go ahead":  # confirmed: its queue plays
            with page.expect_response(
                lambda r: (
                    r.url.endswith("/v1/query")
                    and r.request.post_data_json.get("confirmed") is True
                )
            ):  # the queue is the API's to build, and only after the yes
                page.locator("#ask-ok").click()
            page.wait_for_function(
                "!document.querySelector('#ask-answer').textContent.includes('Think')"
            )
            branch = "asked"
            if page.locator("#ask-queue > li").count():
                queued = page.locator("#ask-queue > li").first.get_attribute("data-item-id")
                assert page.locator("#player").get_attribute("data-item-id") == queued
                branch = "played"
        else:  # a clarification, not answered: nothing new plays
            assert page.get_by_label("Your answer").is_visible()
            page.get_by_role("button", name="Cancel", exact=True).click()
            assert page.locator("#player").get_attribute("data-item-id") == playing
            branch = "asked"
        assert not dialog.evaluate("d => d.open")
        return branch
    if page.locator("#ask-refused").count():  # the call was refused, and why is said
        assert "I could not do that: " in page.locator("#ask-refused").inner_text()
        return "refused"
    assert page.locator("#ask-call").inner_text().strip()  # understood: the call, the queue
    if page.locator("#ask-queue > li").count():
        queued = page.locator("#ask-queue > li").first.get_attribute("data-item-id")
        assert page.locator("#player").get_attribute("data-item-id") == queued
        return "played"
    return "understood"


def _row_titles(world: World) -> str:
    with open_store(world.store_url) as store:
        item = next(iter(store.iter_items(ItemKind.TRACK)))
        artist = store.get_item(item.artist_id) if item.artist_id else None
    return f"{item.title} by {artist.title}" if artist else item.title


def _play_by_search(page: Any, item_id: str) -> None:
    page.get_by_role("button", name="Search & ask", exact=True).click()
    page.get_by_label("Search the catalog").fill(item_id)  # an item id finds its item
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(f"#search-results > li[data-item-id='{item_id}'] button").click()
    assert page.locator("#player").get_attribute("data-item-id") == item_id


def _sing_at(page: Any, ms: int) -> tuple[str, str]:
    """Move Sing's position to ``ms`` (the slider's step is 10 ms): (the highlighted line's
    words, the word being sung)."""
    page.locator("#sing-at").fill(str(ms))
    line = page.locator("#sing-lines li[aria-current='true']")
    return " ".join(line.inner_text().split()), page.locator("#sing-lines .singing").inner_text()


def test_sing_follows_the_words_and_sets_the_lead_vocal(
    page: Any, world: World, tmp_path: Path
) -> None:
    from segue.jobs.sing import import_audio, import_lyrics, track_lyrics, write_songs

    with open_store(world.store_url) as store:  # one track gets a song with its own LRC
        (sung,) = write_songs(store, tmp_path, 1, seconds=8.0)
        import_audio(store, tmp_path)
        import_lyrics(store, tmp_path)
        lyrics = track_lyrics(store, sung)
        plain = next(
            i.id for i in store.iter_items(ItemKind.TRACK) if i.id != sung
        )  # synthetic lyrics, no audio
        plain_lyrics = track_lyrics(store, plain)
    assert lyrics is not None and plain_lyrics is not None

    _sign_in(page, world, world.active[4])
    _play_by_search(page, plain)
    page.get_by_role("button", name="Sing along", exact=True).click()
    page.wait_for_function("document.querySelector('#sing-controls').dataset.source === 'clock'")
    assert page.locator("#sing-lines > li").count() == len(plain_lyrics.lines)
    line = plain_lyrics.lines[2]
    word = line.words[1]
    assert _sing_at(page, (word.start_ms + word.end_ms) // 2) == (
        " ".join(line.text.split()),
        word.text,
    )
    page.get_by_role("button", name="Play", exact=True).first.click()  # the clock runs
    page.wait_for_timeout(1_200)
    assert int(page.locator("#sing-at").input_value()) >= word.start_ms + 1_000
    page.locator("#sing-play").click()
    check_page(page, world.shots, "sing")

    _play_by_search(page, sung)
    page.get_by_role("button", name="Sing along", exact=True).click()
    page.wait_for_function("document.querySelector('#sing-controls').dataset.source === 'original'")
    line = lyrics.lines[-1]
    word = line.words[len(line.words) // 2]
    shown = _sing_at(page, (word.start_ms + word.end_ms) // 2)
    assert shown == (" ".join(w.text for w in line.words), word.text)  # background parts too
    background = [w.text for w in line.words if w.singer == "bg"]
    assert page.locator("#sing-lines li[aria-current='true'] .bg").all_inner_texts() == background
    # the level acts live at once, then the server's render (asked once, for 0.2) replaces it
    with page.expect_request(lambda r: "/audio?vocals=0.2" in r.url):
        page.locator("#sing-vocals").fill("0.2")
        assert page.eval_on_selector("#sing-vocals", "e => e.dataset.live") == "0.2"
    page.wait_for_function(
        "document.querySelector('#sing-controls').dataset.source === 'render:0.2'"
    )
    assert page.eval_on_selector("#sing-vocals", "e => e.dataset.live") == "1"
    assert page.locator("#sing-vocals-out").inner_text() == "20 %"


def test_stations_wrapped_and_my_data(page: Any, world: World) -> None:
    user = world.active[0]
    _sign_in(page, world, user)
    page.get_by_role("button", name="Stations", exact=True).click()
    page.get_by_label("Start from").select_option("mood")
    page.get_by_label("Name", exact=True).fill("chill")
    page.get_by_role("button", name="Start station", exact=True).click()
    page.wait_for_selector("#station-tracks > li[data-item-id]")
    assert page.locator("#player").get_attribute("data-item-id")
    check_page(page, world.shots, "stations")

    page.get_by_role("button", name="Wrapped", exact=True).click()
    page.get_by_label("Year").fill(str(PARAMS.start_date.year))  # the world's year
    page.get_by_role("button", name="Show", exact=True).click()
    card = page.locator("img.wrapped-card")
    card.wait_for()
    page.wait_for_function("document.querySelector('img.wrapped-card').naturalWidth > 0")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the card", exact=True).click()
    assert download.value.suggested_filename.endswith(".png")
    check_page(page, world.shots, "wrapped")

    page.get_by_role("button", name="Settings", exact=True).click()
    with page.expect_download() as exported:
        page.get_by_role("button", name="Export my data", exact=True).click()
    assert exported.value.suggested_filename == f"segue-{user}.json"
    page.get_by_role("button", name="Delete my data", exact=True).click()
    page.get_by_role("button", name="Cancel", exact=True).click()  # asked first: nothing erased
    with open_store(world.store_url) as store:
        assert store.get_user(user) is not None


def test_the_listener_app_shows_no_admin_actions(page: Any, world: World) -> None:
    _sign_in(page, world, world.active[4])
    for view in ("Home", "Search & ask", "Stations", "Wrapped", "Settings"):
        page.get_by_role("button", name=view, exact=True).click()
        for word in ("Promote", "Roll back", "Replay", "Drop"):
            assert not page.get_by_role("button", name=word, exact=True).count()


def test_the_app_works_by_keyboard_with_the_focus_visible(page: Any, world: World) -> None:
    _open(page, world)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    _tab_to(page, "document.activeElement.id === 'signin-user'")
    page.keyboard.type(world.active[5])
    page.keyboard.press("Enter")  # the form submits
    _home_loaded(page)
    _tab_to(page, "document.activeElement.closest('#recs') !== null")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    item = page.evaluate("document.activeElement.closest('li').dataset.itemId")
    page.keyboard.press("Enter")
    assert page.locator("#player").get_attribute("data-item-id") == item
    _tab_to(page, "document.activeElement.id === 'p-skip'")
    before = _recs_version(page)
    page.keyboard.press("Enter")
    _wait_row_refreshed(page, before)
    assert page.locator("#player").get_attribute("data-item-id") != item


def _tab_to(page: Any, condition: str, most: int = 60) -> None:
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate(condition):
            return
    raise AssertionError(f"Tab never reached: {condition}")


def test_a_kids_profile_hears_nothing_explicit_and_a_listener_can_erase_themselves(
    page: Any, world: World
) -> None:
    user = world.active[6]
    with open_store(world.store_url) as store:
        explicit = {i.id for i in store.iter_items(ItemKind.TRACK) if i.explicit}
    assert explicit
    _sign_in(page, world, user)
    page.get_by_role("button", name="Settings", exact=True).click()
    page.wait_for_function("document.querySelector('#settings-status').textContent === ''")
    page.get_by_label("Kids profile", exact=False).check()
    page.wait_for_function("document.querySelector('#settings-status').textContent === 'Saved.'")
    assert page.locator("#kids-badge").is_visible()
    marker = page.evaluate("document.body.dataset.homeLoaded")
    page.get_by_role("button", name="Home", exact=True).click()
    _home_loaded(page, marker)
    shown = {r["id"] for r in _row(page)}
    shown |= set(page.eval_on_selector_all("#discovery > li", "e => e.map(x => x.dataset.itemId)"))
    shown |= {r["id"] for r in _releases(page)}
    assert len(shown) >= 10 and not shown & explicit

    page.get_by_role("button", name="Settings", exact=True).click()
    page.get_by_role("button", name="Delete my data", exact=True).click()
    page.locator("#confirm").get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_selector("#view-signin:not([hidden])")
    assert page.locator("#notice").inner_text() == "Your data was erased."
    with open_store(world.store_url) as store:
        assert store.get_user(user) is None
