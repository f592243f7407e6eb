"""The web app's speed on the demo world (``segue demo``'s defaults: 5,000 listeners, 10,000
tracks, 500,000 events, seed 7; ALS serving), served as ``segue serve`` serves it.

Bars (issue 21): server time per page p95 <= 50 ms; first load of Home <= 1 s in headless
chromium on 2 cores.

1. Server time: each page's HTML (``/``, ``/admin``) and every request the pages make to
   draw Home (the listener's profile, recommendations with reasons, daily mixes, new
   releases, the Discovery Station, podcasts and audiobooks) and the admin console (health,
   registry, runs, campaigns, dead letters, data), for ``--listeners`` listeners in turn, timed
   by the server itself: its own latency histogram is not fine enough, so the figure is the time
   from the request's first byte sent to the last byte received on loopback, one at a time
   (an upper bound of the server's time). Home's figure is also given as the sum of its
   requests per listener (the browser sends them together, so the sum bounds the wait).
2. First load of Home: a fresh browser context per listener (nothing cached) with the
   listener already chosen, from navigation to every row of Home drawn (the page sets
   ``data-home-loaded``), in Debian's chromium.

    .venv/bin/python benchmarks/bench_web.py
    .venv/bin/python benchmarks/bench_web.py --users 300 --tracks 600 --events 20000   # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

CACHE = Path("/tmp/segue-bench-web")
CHROMIUM = "/usr/bin/chromium"
SPOKEN = ["podcast_episode", "audiobook"]
#: The listener app keeps the chosen listener in the tab's session storage.
CHOSEN = "sessionStorage.setItem('segue.listener', JSON.stringify({{user: '{}', key: null}}))"


def build(args: argparse.Namespace) -> tuple[Path, str]:
    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.jobs.ingest import load_synthetic_world
    from segue.registry.trained import train_models
    from segue.store import open_store

    root = CACHE / f"s{args.seed}-u{args.users}-t{args.tracks}-e{args.events}"
    url = f"sqlite:///{root / 'segue.sqlite'}"
    if (root / "models" / "als" / "params.json").exists():
        return root, url
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    params = SynthParams(
        seed=args.seed, n_users=args.users, n_tracks=args.tracks, n_events=args.events
    )
    with open_store(url) as store:
        load_synthetic_world(store, params)
        data = load_interactions(store)
        train_models(data, ["als"], root / "models", side=load_side_info(store, data))
    print(f"built the world and trained ALS in {time.perf_counter() - started:.0f} s")
    return root, url


def listeners(url: str, n: int, seed: int) -> list[str]:
    from segue.store import open_store

    with open_store(url) as store:
        ids = [u.id for u in store.iter_users()]
    rng = np.random.default_rng(seed)
    return [str(u) for u in rng.choice(ids, size=min(n, len(ids)), replace=False)]


def serve(root: Path, url: str) -> tuple[uvicorn.Server, str]:
    from segue.api import create_app
    from segue.config import Settings

    app = create_app(Settings(data_dir=root, database_url=url), watch_s=None)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", http="httptools",
                            loop="uvloop")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _ms(client: httpx.Client, path: str, **params: object) -> float:
    started = time.perf_counter()
    r = client.get(path, params=params)  # type: ignore[arg-type]
    elapsed = (time.perf_counter() - started) * 1000
    if r.status_code >= 500:
        raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
    return elapsed


def server_times(base: str, users: list[str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per request, by what the pages ask for."""
    times: dict[str, list[float]] = {}

    def add(name: str, ms: float) -> None:
        times.setdefault(name, []).append(ms)

    with httpx.Client(base_url=base, timeout=30) as c:
        for user in users[:3]:  # warm up: first loads of the products and names
            _ms(c, f"/v1/users/{user}/mixes")
            _ms(c, f"/v1/users/{user}/station", seed="discovery", k=8)
            _ms(c, f"/v1/users/{user}/new-releases", k=6)  # the catalog's name index
        for _ in range(rounds):
            add("page /", _ms(c, "/"))
            add("page /admin", _ms(c, "/admin"))
            for name, path in (("health", "health"), ("registry", "registry"),
                               ("runs", "runs"), ("campaigns", "campaigns"),
                               ("dead letters", "dead-letters"), ("data", "stats")):  # fmt: skip
                add(f"admin: {name}", _ms(c, f"/v1/admin/{path}"))
        for user in users:
            home = [
                _ms(c, f"/v1/users/{user}"),
                _ms(c, f"/v1/users/{user}/recommendations", k=10, explain="true"),
                _ms(c, f"/v1/users/{user}/mixes"),
                _ms(c, f"/v1/users/{user}/new-releases", k=6),
                _ms(c, f"/v1/users/{user}/station", seed="discovery", k=8),
                _ms(c, f"/v1/users/{user}/recommendations", k=5, kinds=SPOKEN),
            ]
            names = ("profile", "recommendations", "mixes", "new releases", "discovery", "spoken")
            for name, ms in zip(names, home, strict=True):
                add(f"home: {name}", ms)
            add("home: all six, summed", sum(home))
    return times


def first_loads(base: str, users: list[str]) -> list[float]:
    """Milliseconds from navigation to Home drawn, a fresh context (empty cache) each."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        warm = browser.new_page()  # the browser process itself, started once
        warm.goto(base + "/v1/health")
        for user in users:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(CHOSEN.format(user))
            page = context.new_page()
            started = time.perf_counter()
            page.goto(base + "/")
            page.wait_for_selector("body[data-home-loaded]", timeout=30_000)
            out.append((time.perf_counter() - started) * 1000)
            context.close()
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--listeners", type=int, default=100, help="for server times")
    parser.add_argument("--rounds", type=int, default=100, help="page and admin requests")
    parser.add_argument("--loads", type=int, default=10, help="first loads in chromium")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root, url = build(args)
    users = listeners(url, max(args.listeners, args.loads), args.seed)
    server, base = serve(root, url)
    try:
        times = server_times(base, users[: args.listeners], args.rounds)
        loads = first_loads(base, users[: args.loads]) if Path(CHROMIUM).exists() else []
    finally:
        server.should_exit = True
    print(f"\nweb app on {args.users:,} users × {args.tracks:,} tracks, {args.events:,} events; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    print("\n| request | n | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|---:|")
    for name, ms in times.items():
        a = np.asarray(ms)
        print(f"| {name} | {len(a)} | {np.percentile(a, 50):.1f} | {np.percentile(a, 95):.1f} "
              f"| {a.max():.1f} |")  # fmt: skip
    if loads:
        a = np.asarray(loads)
        print(f"\nfirst load of Home in headless chromium, {len(a)} listeners (fresh context "
              f"each): median {np.median(a):.0f} ms, p95 {np.percentile(a, 95):.0f} ms, "
              f"max {a.max():.0f} ms")  # fmt: skip
    else:
        print(f"\nno {CHROMIUM}: first loads not measured")


if __name__ == "__main__":
    main()
