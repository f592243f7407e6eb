"""Importers: files in, a :class:`~segue.data.batch.RecordBatch` out, nothing written.

Each reader validates every row and raises :class:`~segue.errors.RowError` at the first bad
one, naming file, line and column; writing the batch (and checking that events name known
users and items) is the store's job, in one transaction.
"""

from segue.data.sources._tables import ParquetRowError
from segue.data.sources.lastfm import read_lastfm_2k
from segue.data.sources.tabular import parse_mapping, read_table

__all__ = ["ParquetRowError", "parse_mapping", "read_lastfm_2k", "read_table"]
