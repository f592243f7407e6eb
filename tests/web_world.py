"""What the browser tests of the web app share (not a test module): a small seeded world with
a trained model, the real app on a loopback port (uvicorn in a thread, as
``tests/test_api_fuzz.py`` serves it), Debian's chromium through Playwright, axe-core, and
screenshots at both widths.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn

from private_redis import free_port
from segue.api import create_app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.ingest import load_synthetic_world
from segue.registry.trained import train_models
from segue.store import open_store

CHROMIUM = Path("/usr/bin/chromium")
PARAMS = SynthParams(
    seed=11, n_users=150, n_tracks=400, n_events=9000, n_podcast_shows=2, n_podcast_episodes=12
)
WIDTHS = (375, 1280)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="the browser tests drive Debian's chromium: apt install chromium"
)


def build_world(root: Path) -> tuple[str, list[str]]:
    """The world in SQLite under ``root``, ALS trained into ``root/models``; the store's URL
    and listener ids, most active first."""
    url = f"sqlite:///{root / 'segue.sqlite'}"
    with open_store(url) as store:
        load_synthetic_world(store, PARAMS)
        data = load_interactions(store)
        train_models(data, ["als"], root / "models", side=load_side_info(store, data))
    counts = np.diff(data.matrix().indptr)
    active = [str(u) for u in data.users.to_ids(np.argsort(-counts, kind="stable"))]
    return url, active


@contextmanager
def serve(settings: Settings, model: str = "als") -> Iterator[str]:
    """The whole app (API and pages) on a free loopback port, until the block ends."""
    app = create_app(settings, model=model, watch_s=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$SEGUE_SCREENSHOTS`` if set, else a temporary folder of the run (never committed)."""
    chosen = os.environ.get("SEGUE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_page(page: Any, folder: Path, name: str) -> None:
    """No serious or critical axe-core violation in light and in dark mode, and screenshots at
    each width (light) and at the wide one in dark."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    size = page.viewport_size
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        results = axe.run(page)
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"{name} ({scheme}): " + "\n".join(bad)
        for width in WIDTHS if scheme == "light" else WIDTHS[-1:]:
            page.set_viewport_size({"width": width, "height": 900})
            suffix = "" if scheme == "light" else "-dark"
            page.screenshot(path=str(folder / f"{name}-{width}{suffix}.png"), full_page=True)
        page.set_viewport_size(size)
    page.emulate_media(color_scheme="light")
