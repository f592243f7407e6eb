"""Persistence of the catalog, users and events behind one small interface.

``open_store(url)`` returns a :class:`~segue.store.base.Store`; SQLite (the default, a file in
the data directory) and PostgreSQL differ only in the SQL dialect, chosen from the URL.
"""

from segue.store.base import IngestReport, Store
from segue.store.engine import masked
from segue.store.media import AudioFile, StoredLyrics
from segue.store.published import PublishedList
from segue.store.sql import open_store

__all__ = [
    "AudioFile",
    "IngestReport",
    "PublishedList",
    "Store",
    "StoredLyrics",
    "masked",
    "open_store",
]
