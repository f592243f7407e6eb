"""Strict conversions from file cells to record fields, with messages a user can act on.

Every converter raises :class:`BadValue` with a reason ("expected an integer, got 'abc'"); the
caller knows the file, line and column and turns it into a :class:`~segue.errors.RowError`.
The rules are deliberately narrower than Python's own (``int('1_000')`` is 1000, ``' 7'`` is
7): an id column that holds ``1_000`` is more likely a broken export than a number.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum

from pydantic import ValidationError

from segue.data.model import AgeBand, EventType, Gender, ItemKind
from segue.errors import RowError


class BadValue(ValueError):
    """A cell that cannot be converted; the message is the reason shown to the user."""


Converter = Callable[[object], object]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_LABEL_SEPARATOR = "|"

#: Epoch numbers are read by magnitude: below 1e11 they are seconds (1e11 s is the year 5138),
#: below 1e14 milliseconds, below 1e17 microseconds, above that nanoseconds. So milliseconds
#: before 1973-03-03 would be read as seconds; no listening log reaches back that far.
#: Each entry is (upper limit, microseconds per unit).
_EPOCH_UNITS: tuple[tuple[float, int], ...] = ((1e11, 1_000_000), (1e14, 1_000), (1e17, 1))


def non_negative_int(text: str) -> int:
    """An ASCII-digits-only integer, the form of every id and count in Last.fm's files."""
    if text.isascii() and text.isdigit():
        return int(text)
    raise BadValue(f"expected a non-negative integer, got {text!r}")


def to_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadValue(f"invalid UTF-8 bytes {value[:40]!r}") from None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an integer id column that a NaN turned into floats
    if isinstance(value, bool):
        raise BadValue(f"expected text, got {value!r}")
    return str(value).strip()


def to_int(value: object) -> int:
    if isinstance(value, bool):
        raise BadValue(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        if math.isfinite(value) and value == int(value):
            return int(value)
        raise BadValue(f"expected an integer, got {value!r}")
    text = to_text(value)
    if _INTEGER.fullmatch(text):
        return int(text)
    raise BadValue(f"expected an integer, got {text!r}")


def to_float(value: object) -> float:
    if isinstance(value, bool):
        raise BadValue(f"expected a number, got {value!r}")
    if isinstance(value, int | float | Decimal):
        return float(value)
    text = to_text(value)
    if _NUMBER.fullmatch(text):
        return float(text)
    raise BadValue(f"expected a number, got {text!r}")


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = to_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadValue(f"expected true or false (or 1/0, yes/no), got {to_text(value)!r}")


def to_timestamp(value: object) -> dt.datetime:
    """ISO 8601 text or epoch seconds/milliseconds (see ``_EPOCH_UNITS``) as aware UTC.

    A timestamp without an offset is UTC, as everywhere in segue (:mod:`segue.data.model`).
    """
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, bool):
        raise _bad_timestamp(value)
    if isinstance(value, int | float | Decimal):
        return _from_epoch(value, value)
    text = to_text(value)
    if _NUMBER.fullmatch(text):
        number = int(text) if _INTEGER.fullmatch(text) else float(text)
        return _from_epoch(number, text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        named = _day_month_name(text)
        if named is None:
            raise _bad_timestamp(text) from None
        return dt.datetime(named.year, named.month, named.day, tzinfo=dt.UTC)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
#: ``01-Jan-1995``, ``1 Jan 1995``, ``01/January/1995``, ``Jan 1, 1995``, ``January 01 1995``:
#: a month by name cannot be misread, unlike ``01/02/1995`` (January 2nd or February 1st?),
#: which is read only with an explicit date format.
_DAY_MONTH_YEAR = re.compile(r"([0-9]{1,2})[-/ .]([A-Za-z]{3,9})\.?[-/ .,]+([0-9]{4})")
_MONTH_DAY_YEAR = re.compile(r"([A-Za-z]{3,9})\.?[-/ ]([0-9]{1,2}),?[-/ ]+([0-9]{4})")


def _day_month_name(text: str) -> dt.date | None:
    """A date written with the month's English name, or None when ``text`` is not one."""
    match = _DAY_MONTH_YEAR.fullmatch(text)
    if match:
        day, month, year = match.groups()
    else:
        match = _MONTH_DAY_YEAR.fullmatch(text)
        if not match:
            return None
        month, day, year = match.groups()
    number = _MONTHS.get(month.lower())
    if number is None:
        return None
    try:
        return dt.date(int(year), number, int(day))
    except ValueError:
        return None


def formatted_converter(date_format: str, *, as_date: bool) -> Converter:
    """Dates and times in one explicit ``strptime`` format (``--date-format %d/%m/%Y``).

    Ambiguous forms such as ``01/02/1995`` are read only this way: whoever knows the file
    says which number is the day. Values already typed (Parquet timestamps) pass through.
    """

    def convert(value: object) -> object:
        if isinstance(value, dt.datetime | dt.date) or not isinstance(value, str):
            return to_date(value) if as_date else to_timestamp(value)
        text = to_text(value)
        try:
            parsed = dt.datetime.strptime(text, date_format)
        except ValueError:
            raise BadValue(f"{text!r} does not match the date format {date_format!r}") from None
        if as_date:
            return parsed.date()
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)

    return convert


def _from_epoch(number: float | Decimal, shown: object) -> dt.datetime:
    if not math.isfinite(number):
        raise _bad_timestamp(shown)
    magnitude = abs(number)
    micros_per_unit = next((m for limit, m in _EPOCH_UNITS if magnitude < limit), None)
    micros = number / 1000 if micros_per_unit is None else number * micros_per_unit
    try:
        return _EPOCH + dt.timedelta(microseconds=int(micros))
    except OverflowError:
        raise _bad_timestamp(shown) from None


def _bad_timestamp(value: object) -> BadValue:
    return BadValue(
        f"bad timestamp {value!r} (expected ISO 8601 such as 2024-05-01T12:00:00Z, "
        "epoch seconds or milliseconds, or a month by name such as 01-Jan-1995; other forms "
        "with --date-format)"
    )


def to_date(value: object) -> dt.date:
    """ISO date; ``YYYY`` and ``YYYY-MM`` mean the first day (catalogs often know only a year)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = to_text(value)
    padded = {4: "-01-01", 7: "-01"}.get(len(text), "")
    try:
        return dt.date.fromisoformat(text + padded)
    except ValueError:
        named = _day_month_name(text)
        if named is not None:
            return named
        raise BadValue(
            f"bad date {text!r} (expected YYYY-MM-DD, YYYY-MM, YYYY or a month by name such "
            "as 01-Jan-1995; other forms with --date-format)"
        ) from None


def to_labels(value: object) -> tuple[str, ...]:
    """A list column, or text with labels separated by ``|`` (``rock|indie``); empties dropped."""
    if isinstance(value, list | tuple):
        parts = [to_text(v) for v in value if v is not None]
    else:
        parts = to_text(value).split(_LABEL_SEPARATOR)
    return tuple(p.strip() for p in parts if p.strip())


_ENUM_NAMES: dict[type[Enum], str] = {
    EventType: "event type",
    ItemKind: "item kind",
    AgeBand: "age band",
    Gender: "gender",
}


def enum_converter(enum: type[Enum]) -> Converter:
    """Case-insensitive lookup by value, listing the known values when it fails."""
    by_value = {str(member.value).lower(): member for member in enum}
    known = ", ".join(str(member.value) for member in enum)
    what = _ENUM_NAMES.get(enum, enum.__name__)

    def convert(value: object) -> object:
        text = to_text(value)
        member = by_value.get(text.lower())
        if member is None:
            raise BadValue(f"unknown {what} {text!r} (known: {known})")
        return member

    return convert


def is_missing(value: object) -> bool:
    """Empty cells and nulls mean "not given": the field takes its default."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def row_error_from_validation(
    exc: ValidationError,
    file: str,
    line: int,
    columns: Mapping[str, str | None],
    *,
    error: type[RowError] = RowError,
) -> RowError:
    """The first pydantic complaint as a :class:`RowError` at the column the field came from."""
    first = exc.errors(include_url=False)[0]
    loc = first.get("loc") or ()
    field = str(loc[0]) if loc else None
    column = columns.get(field) if field else None
    reason = first.get("msg", "invalid value")
    if "input" in first and not isinstance(first["input"], dict):
        reason += f", got {first['input']!r}"
    if field and column != field:
        reason += f" (field {field})"
    return error(file, line, column, reason)
