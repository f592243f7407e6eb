"""What one import brings: records plus where each came from, for error messages.

Parsers (``segue.data.sources``) fill a :class:`RecordBatch`; the store writes it in one
transaction and, when an event names a user or item that exists neither in the store nor in the
batch, reports the file, line and column recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segue.data.model import Event, Friendship, Item, Tag, TagAssignment, User


@dataclass(frozen=True)
class Origin:
    """Where a record came from: file, 1-based line, and the columns holding its references.

    A friendship's second reference (the friend) is reported in ``item_column``.
    """

    file: str
    line: int
    user_column: str | None = None
    item_column: str | None = None


@dataclass
class RecordBatch:
    """Records of one import. ``*_origins`` run parallel to their record lists (or are empty)."""

    items: list[Item] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    event_origins: list[Origin] = field(default_factory=list)
    friendships: list[Friendship] = field(default_factory=list)
    friendship_origins: list[Origin] = field(default_factory=list)
    tag_assignments: list[TagAssignment] = field(default_factory=list)
    tag_assignment_origins: list[Origin] = field(default_factory=list)

    def extend(self, other: RecordBatch) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def counts(self) -> dict[str, int]:
        return {
            name: len(getattr(self, name))
            for name in ("items", "users", "tags", "events", "friendships", "tag_assignments")
        }
