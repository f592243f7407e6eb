"""Labelled utterances: the shared record type and the reader of the SNIPS splits.

SNIPS ships one utterance per line in three parallel files: ``seq.in`` (lower-cased words),
``seq.out`` (one BIO tag per word) and ``label`` (the intent). Only the train and valid splits
are read; the test split is a held-out benchmark and this module never looks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segue.errors import SegueError

#: Where the shared datasets live relative to the project root (see the datasets README).
DEFAULT_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "snips"
SPLITS = ("train", "valid")


@dataclass(frozen=True)
class Utterance:
    """One labelled request: words, one BIO tag per word, and the intent."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    intent: str

    def __post_init__(self) -> None:
        if len(self.words) != len(self.tags):
            raise SegueError(
                f"utterance {' '.join(self.words)!r} has {len(self.words)} words but "
                f"{len(self.tags)} tags"
            )
        if not self.words:
            raise SegueError("an utterance needs at least one word")


def split_dir(split: str, root: Path | None = None) -> Path:
    """The folder of one split; a SegueError for the test split or a missing folder."""
    if split not in SPLITS:
        raise SegueError(
            f"unknown SNIPS split {split!r}: use one of {', '.join(SPLITS)} "
            "(the test split is a held-out benchmark and is not read here)"
        )
    return (root or DEFAULT_ROOT) / split


def read_part(root: Path, part: str) -> list[Utterance]:
    """Every utterance of the part ``part`` (train, valid or test) of a SNIPS-format folder
    the caller names (``segue nlu evaluate --data DIR --part test``): for an independent
    measurement on a part this project never reads by itself."""
    if part not in ("train", "valid", "test"):
        raise SegueError(f"unknown part {part!r}: use train, valid or test")
    if not (root / part).is_dir():
        held = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise SegueError(
            f"{root} holds no {part}/ folder (it holds: {', '.join(held) or 'nothing'})"
        )
    return _read_folder(root / part, part)


def read_split(split: str, root: Path | None = None) -> list[Utterance]:
    """Every utterance of ``split``; errors name the file and line that is wrong."""
    return _read_folder(split_dir(split, root), split)


def _read_folder(folder: Path, split: str) -> list[Utterance]:
    files = {name: folder / name for name in ("seq.in", "seq.out", "label")}
    for path in files.values():
        if not path.is_file():
            raise SegueError(f"SNIPS {split} split: {path} is missing")
    texts = {name: path.read_text(encoding="utf-8").splitlines() for name, path in files.items()}
    n = len(texts["label"])
    if len(texts["seq.in"]) != n or len(texts["seq.out"]) != n:
        raise SegueError(
            f"SNIPS {split} split in {folder}: seq.in, seq.out and label have "
            f"{len(texts['seq.in'])}, {len(texts['seq.out'])} and {n} lines"
        )
    out: list[Utterance] = []
    for line, (words, tags, label) in enumerate(
        zip(texts["seq.in"], texts["seq.out"], texts["label"], strict=True), start=1
    ):
        w, t = words.split(), tags.split()
        if len(w) != len(t) or not w or not label.strip():
            raise SegueError(
                f"{folder}/seq.in line {line}: {len(w)} words, {len(t)} tags, "
                f"label {label.strip()!r}"
            )
        out.append(Utterance(tuple(w), tuple(t), label.strip()))
    return out
