"""The progress callback protocol jobs accept; faces adapt it to a bar or a log."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: int | None) -> None:
        """Report that ``done`` of ``total`` units of ``step`` are finished."""


def no_progress(step: str, done: int, total: int | None) -> None:
    """The silent default."""
