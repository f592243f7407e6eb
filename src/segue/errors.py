"""Errors that a user can act on.

Every error a user can cause derives from :class:`SegueError`; the CLI prints its message
(without a traceback) and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SegueError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class ConfigError(SegueError):
    """A setting is missing or malformed."""


class StoreError(SegueError):
    """The store cannot be opened or used (wrong URL, server down, schema too new)."""


class RowError(SegueError):
    """A row of an input file is invalid; nothing from that file was written.

    Carries the location so that a user can open the file at the offending cell.
    """

    def __init__(self, file: str, line: int, column: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason
        where = f"{file}, line {line}" + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {reason}")


class DatasetError(SegueError):
    """The interactions cannot be turned into what was asked (e.g. too few events to split)."""


class NameNotResolved(SegueError):
    """A name a person typed (a station seed, an onboarding pick, an item to find similar
    ones for) names no catalog item, or several equally well.

    ``suggestions`` are the closest items as plain dicts (``id``, ``kind``, ``title``,
    ``artist``), so every face can show them: the CLI in its one line, the API as an
    extension member of the problem details. ``ambiguous`` is False when nothing matched.
    """

    def __init__(
        self, message: str, suggestions: list[dict[str, str | None]], *, ambiguous: bool
    ) -> None:
        self.suggestions = suggestions
        self.ambiguous = ambiguous
        super().__init__(message)
