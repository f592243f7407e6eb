"""Wrapped as a web page (Jinja2, one self-contained HTML file) and a shareable PNG card.

Both are drawn from the :class:`~segue.products.wrapped.Wrapped` result alone, so the API, the
CLI and the demo show the same numbers. The PNG is a 1080×1920 story card (the format listeners
post); the page needs no network: styles inline, charts as CSS bars.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import numpy as np

from segue.products.catalog_view import genre_label
from segue.products.wrapped import Wrapped

if TYPE_CHECKING:  # matplotlib is the reports extra: imported where the card is drawn
    from matplotlib.figure import Figure

#: Card colours: a deep background, two accents and soft text.
BACKGROUND = ("#1b1035", "#3a1464")
ACCENT = "#1ed760"
ACCENT_2 = "#ff6ec7"
TEXT = "#f5f3ff"
MUTED = "#b9aed6"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ w.year }} Wrapped · {{ w.user_id }}</title>
<style>
 :root { --bg1: {{ bg[0] }}; --bg2: {{ bg[1] }}; --accent: {{ accent }}; --accent2: {{ accent2 }};
         --text: {{ text }}; --muted: {{ muted }}; }
 * { box-sizing: border-box; }
 body { margin: 0; font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
        color: var(--text); background: linear-gradient(160deg, var(--bg1), var(--bg2));
        min-height: 100vh; }
 main { max-width: 880px; margin: 0 auto; padding: 48px 24px 64px; }
 h1 { font-size: 56px; line-height: 1; margin: 0 0 8px; letter-spacing: -1px; }
 h1 span { color: var(--accent); }
 h2 { font-size: 15px; text-transform: uppercase; letter-spacing: 2px; color: var(--muted);
      margin: 0 0 16px; }
 .sub { color: var(--muted); margin: 0 0 32px; }
 .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 20px; }
 .card { background: rgba(255,255,255,0.07); border-radius: 20px; padding: 24px; }
 .big { font-size: 52px; font-weight: 800; color: var(--accent); line-height: 1; }
 .big small { font-size: 18px; color: var(--muted); font-weight: 400; }
 ol { margin: 0; padding: 0; list-style: none; counter-reset: n; }
 ol li { counter-increment: n; display: flex; gap: 14px; align-items: baseline; padding: 7px 0;
         border-bottom: 1px solid rgba(255,255,255,0.08); }
 ol li:last-child { border-bottom: 0; }
 ol li::before { content: counter(n); font-weight: 800; color: var(--accent2); width: 18px; }
 .name { font-weight: 600; } .meta { color: var(--muted); font-size: 14px; margin-left: auto;
 white-space: nowrap; } .by { color: var(--muted); font-size: 14px; }
 .persona { background: linear-gradient(120deg, var(--accent2), #7b5cff); color: #fff; }
 .persona .title { font-size: 34px; font-weight: 800; margin-bottom: 6px; }
 .bars { display: flex; align-items: flex-end; gap: 4px; height: 120px; }
 .bars div { flex: 1; background: var(--accent); border-radius: 4px 4px 0 0; min-height: 2px; }
 .labels { display: flex; gap: 4px; font-size: 11px; color: var(--muted); margin-top: 6px; }
 .labels span { flex: 1; text-align: center; }
 .genre { margin: 8px 0; } .genre .bar { height: 10px; border-radius: 5px;
 background: var(--accent2); margin-top: 4px; }
 footer { color: var(--muted); font-size: 13px; margin-top: 32px; }
</style></head>
<body><main>
<h1>Your <span>{{ w.year }}</span> Wrapped</h1>
<p class="sub">{{ w.user_id }} · {{ "{:,}".format(w.streams) }} plays ·
 {{ w.distinct_artists }} artists · times in {{ w.timezone }}</p>
<div class="grid">
 <div class="card"><h2>Minutes listened</h2>
  <div class="big">{{ "{:,}".format(w.minutes_listened | round | int) }}</div></div>
 <div class="card"><h2>Top song, on repeat</h2>
  <div class="big">{{ w.top_song_plays }} <small>plays of
   {{ w.top_tracks[0].name if w.top_tracks else "—" }}</small></div></div>
 <div class="card"><h2>New to you</h2>
  {% if w.first_year %}<div class="big">{{ w.distinct_artists }} <small>artists discovered in
   your first year</small></div>{% else %}
  <div class="big">{{ (100 * w.discovery_share) | round | int }}% <small>of your tracks ·
   {{ w.new_artists }} new artists</small></div>{% endif %}</div>
 <div class="card persona"><h2 style="color:#fff">Your listening personality</h2>
  <div class="title">{{ w.personality.name }}</div><div>{{ w.personality.description }}</div>
 </div>
 <div class="card"><h2>Top songs</h2><ol>
 {% for t in w.top_tracks %}<li><span><span class="name">{{ t.name }}</span>
  {% if t.subtitle %}<br><span class="by">{{ t.subtitle }}</span>{% endif %}</span>
  <span class="meta">{{ t.plays }} plays</span></li>{% endfor %}</ol></div>
 <div class="card"><h2>Top artists</h2><ol>
 {% for a in w.top_artists %}<li><span class="name">{{ a.name }}</span>
  <span class="meta">{{ a.plays }} plays</span></li>{% endfor %}</ol></div>
 <div class="card"><h2>Top genres</h2>
 {% for g in w.top_genres %}<div class="genre">{{ g.name | genre }}
  <span class="meta" style="float:right">{{ (100 * g.share) | round | int }}%</span>
  <div class="bar" style="width: {{ (100 * g.share / top_share) | round(1) }}%"></div></div>
 {% endfor %}</div>
 {% if w.top_podcasts %}<div class="card"><h2>Top podcasts</h2><ol>
 {% for p in w.top_podcasts %}<li><span class="name">{{ p.name }}</span>
  <span class="meta">{{ p.minutes | round | int }} min</span></li>{% endfor %}</ol></div>
 {% endif %}
 <div class="card" style="grid-column: 1 / -1"><h2>When you listened (minutes by hour)</h2>
  <div class="bars">{% for v in w.minutes_by_hour %}<div title="{{ loop.index0 }}:00 ·
   {{ v | round | int }} min" style="height: {{ (100 * v / max_hour) | round(1) }}%"></div>
  {% endfor %}</div>
  <div class="labels">{% for h in range(24) %}<span>{{ h if h % 3 == 0 else "" }}</span>
  {% endfor %}</div></div>
 <div class="card" style="grid-column: 1 / -1"><h2>Your year (minutes by month)</h2>
  <div class="bars">{% for v in w.minutes_by_month %}<div title="{{ months[loop.index0] }} ·
   {{ v | round | int }} min" style="height: {{ (100 * v / max_month) | round(1) }}%"></div>
  {% endfor %}</div>
  <div class="labels">{% for m in months %}<span>{{ m }}</span>{% endfor %}</div></div>
</div>
<footer>Made by segue. Focus-Mode listening ({{ w.focus_plays_excluded }} plays) and overnight
 loops ({{ w.loop_plays_excluded }} plays) are not counted.</footer>
</main></body></html>
"""


def render_html(wrapped: Wrapped) -> str:
    """The Wrapped page as one self-contained HTML document (escaped: titles are user data)."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["genre"] = genre_label
    template = env.from_string(_PAGE)
    return template.render(
        w=wrapped,
        bg=BACKGROUND,
        accent=ACCENT,
        accent2=ACCENT_2,
        text=TEXT,
        muted=MUTED,
        months=MONTHS,
        max_hour=max(max(wrapped.minutes_by_hour), 1e-9),
        max_month=max(max(wrapped.minutes_by_month), 1e-9),
        top_share=max((g.share for g in wrapped.top_genres), default=1.0) or 1.0,
    )


def write_html(wrapped: Wrapped, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(wrapped), encoding="utf-8")
    return path


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def render_png(wrapped: Wrapped) -> bytes:
    """A 1080×1920 story card: headline numbers, top songs and artists, personality, hours."""
    fig = card_figure(wrapped)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=200)
    return buffer.getvalue()


def card_figure(wrapped: Wrapped) -> Figure:
    """The card as a Matplotlib figure (its own Agg canvas, no pyplot state): panels from the
    top down, the hour chart in a panel of its own at the bottom with room for its caption
    and hour labels (squeezed under the personality panel, it read as a smudge)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, FancyBboxPatch

    w = wrapped
    fig = Figure(figsize=(5.4, 9.6), dpi=200)
    FigureCanvasAgg(fig)
    bg = fig.add_axes((0, 0, 1, 1))
    bg.axis("off")
    gradient = LinearSegmentedColormap.from_list("wrapped", [BACKGROUND[0], BACKGROUND[1]])
    ramp = np.linspace(0.0, 1.0, 256).reshape(-1, 1)
    bg.imshow(ramp, aspect="auto", cmap=gradient, extent=(0, 1, 0, 1), origin="lower")
    for x, y, r, color in ((0.95, 0.93, 0.22, ACCENT_2), (0.02, 0.30, 0.16, ACCENT)):
        circle = Ellipse((x, y), 2 * r, 2 * r * 5.4 / 9.6, color=color, alpha=0.10)
        bg.add_patch(circle)  # an ellipse in axes units is a circle on the 9:16 card
    bg.set_xlim(0, 1)
    bg.set_ylim(0, 1)

    def text(x: float, y: float, s: str, size: float, **kw: object) -> None:
        kw.setdefault("color", TEXT)
        bg.text(x, y, s, fontsize=size, transform=bg.transAxes, va="top", **kw)

    def panel(y0: float, height: float, color: str = "white", alpha: float = 0.08) -> None:
        bg.add_patch(
            FancyBboxPatch(
                (0.06, y0), 0.88, height, boxstyle="round,pad=0,rounding_size=0.025",
                facecolor=color, alpha=alpha, edgecolor="none", transform=bg.transAxes,
            )
        )  # fmt: skip

    text(0.07, 0.972, "segue", 11, color=ACCENT, fontweight="bold")
    text(0.07, 0.950, f"Your {w.year}", 28, fontweight="bold")
    text(0.07, 0.903, "Wrapped", 28, fontweight="bold", color=ACCENT)

    panel(0.715, 0.135)
    text(0.10, 0.835, "MINUTES LISTENED", 7.5, color=MUTED)
    text(0.10, 0.815, f"{round(w.minutes_listened):,}", 26, fontweight="bold", color=ACCENT)
    if w.first_year:  # everything is new in a first year: count artists instead
        text(0.56, 0.835, "ARTISTS DISCOVERED", 7.5, color=MUTED)
        text(0.56, 0.815, f"{w.distinct_artists:,}", 26, fontweight="bold", color=ACCENT_2)
    else:
        text(0.56, 0.835, "NEW TO YOU", 7.5, color=MUTED)
        text(0.56, 0.815, f"{round(100 * w.discovery_share)}%", 26, fontweight="bold",
             color=ACCENT_2)  # fmt: skip
    facts = f"{w.streams:,} plays · {w.distinct_tracks:,} songs"
    facts += f" · {w.new_artists} new artists" if not w.first_year else ""
    if w.top_podcasts:
        facts += f" · top podcast: {_short(w.top_podcasts[0].name, 24)}"
    text(0.10, 0.757, facts, 7.5, color=MUTED)

    panel(0.445, 0.255)
    text(0.10, 0.685, "TOP SONGS", 7.5, color=MUTED)
    for rank, t in enumerate(w.top_tracks[:5]):
        y = 0.66 - rank * 0.045
        text(0.10, y, str(rank + 1), 12, fontweight="bold", color=ACCENT_2)
        text(0.16, y, _short(t.name, 30), 10, fontweight="bold")
        text(0.16, y - 0.019, _short(t.subtitle or "", 34), 7, color=MUTED)
        text(0.90, y, f"{t.plays}×", 9, color=MUTED, ha="right")
    if not w.top_tracks:
        text(0.10, 0.66, "No plays this year yet.", 10, color=MUTED)

    panel(0.26, 0.17)
    text(0.10, 0.418, "TOP ARTISTS", 7.5, color=MUTED)
    for rank, a in enumerate(w.top_artists[:5]):
        text(0.10, 0.396 - rank * 0.0265, f"{rank + 1}  {_short(a.name, 26)}", 9.5)
    text(0.56, 0.418, "TOP GENRES", 7.5, color=MUTED)
    for rank, g in enumerate(w.top_genres[:5]):
        label = _short(genre_label(g.name), 18)
        text(0.56, 0.396 - rank * 0.0265, f"{label}  {round(100 * g.share)}%", 9.5)

    panel(0.145, 0.1, color=ACCENT_2, alpha=0.85)
    text(0.10, 0.235, "YOUR LISTENING PERSONALITY", 7, color="white")
    text(0.10, 0.217, w.personality.name, 15, fontweight="bold", color="white")
    desc = w.personality.description
    lines = _wrap(desc, 52)
    for i, line in enumerate(lines[:2]):
        text(0.10, 0.183 - i * 0.018, line, 7.5, color="white")

    panel(0.025, 0.105)
    text(0.10, 0.122, "WHEN YOU LISTENED", 7, color=MUTED)
    text(0.90, 0.122, f"top song played {w.top_song_plays} times", 6.5, color=MUTED, ha="right")
    hours = fig.add_axes((0.10, 0.052, 0.80, 0.05))
    hours.bar(range(24), w.minutes_by_hour, color=ACCENT, width=0.75)
    hours.set_xlim(-0.6, 23.6)
    hours.axis("off")
    for h in (0, 6, 12, 18, 23):
        text(0.10 + 0.80 * (h + 0.5) / 24, 0.047, f"{h}h", 6, color=MUTED, ha="center")
    return fig


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines


def write_png(wrapped: Wrapped, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_png(wrapped))
    return path
