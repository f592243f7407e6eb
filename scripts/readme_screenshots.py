"""Refresh the README's screenshots from the ones the browser tests write.

    SEGUE_SCREENSHOTS=/tmp/shots .venv/bin/python -m pytest -q tests/test_web_listener.py \
        tests/test_web_admin.py
    .venv/bin/python scripts/readme_screenshots.py /tmp/shots

The tests photograph every page at 375 and 1280 px (full pages, light and dark; never
committed). The README shows Home at both widths and the admin console at 1280 px, cut to
the first screenful and reduced to 128 colours so the repository stays small.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"
#: (screenshot written by the tests, height kept in px)
CHOSEN = {"home-1280.png": 1500, "home-375.png": 1400, "admin-compare-1280.png": 1300}


def main(folder: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, height in CHOSEN.items():
        image = Image.open(folder / name).convert("RGB")
        image = image.crop((0, 0, image.width, min(height, image.height)))
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT / name, optimize=True)
        print(f"{OUT / name}: {image.width}×{image.height}, {(OUT / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: readme_screenshots.py FOLDER (where SEGUE_SCREENSHOTS wrote them)")
    main(Path(sys.argv[1]))
