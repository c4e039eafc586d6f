"""The interface every raw-table writer implements (DuckDB by default, BigQuery in production).

The harvest loop only talks to this interface; the SQL that both writers share lives in
`series_sql.py` so the rule that builds a series row is written once.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import pyarrow as pa

from extractor.warehouses.schema import RAW_TABLES, Column


class FileRef(NamedTuple):
    """A file to harvest: where it is, and the size and mtime that tell whether it changed.

    The walk does not stat the files it finds (`stat` is a third of its time), so size and mtime
    are None until something needs them: the reader takes them from the file it opened, and
    `select_changed` from the files a run harvested before (the only ones that can be unchanged).
    A named tuple: chunks of them travel to worker processes, and tuples pickle cheaply.
    """

    location: str
    file_size: int | None = None
    file_mtime_ns: int | None = None


class WarehouseInUse(RuntimeError):
    """The warehouse file is open for writing in another process; the message names it."""


def text_location(location: str) -> str:
    """The location as the warehouse stores it (as text, UTF-8).

    On Linux a file name is bytes and need not be valid UTF-8 (say, Latin-1 names copied from an
    old share); Python then holds the undecodable bytes as lone surrogates, which no text column
    takes. Such a location is stored with those bytes written as `\\xNN`: the file cannot be opened
    by that text, so the harvest records it as an error row (see `harvest_chunk`).
    """
    try:
        location.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(location).decode("utf-8", "backslashreplace")
    return location


def with_stat(location: str) -> FileRef:
    """The file with its size and mtime now (None for both when it cannot be stat'ed)."""
    try:
        stat = os.stat(location)
    except OSError:
        return FileRef(location)
    return FileRef(location, stat.st_size, stat.st_mtime_ns)


@dataclass
class HarvestRun:
    run_id: str
    started_at: datetime
    sources: str
    ended_at: datetime | None = None
    status: str = "running"
    files_seen: int = 0
    files_unchanged: int = 0
    instances_added: int = 0
    instances_updated: int = 0
    errors: int = 0
    series_added: int = 0
    series_updated: int = 0
    files_removed: int = 0  # rows of files no longer found under the sources (harvest --prune)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchResult:
    instances_added: int = 0
    instances_updated: int = 0
    errors: int = 0
    touched_series: set[str] = field(default_factory=set)  # series that gained, changed or lost an instance
    files_removed: int = 0
    # duplicate-SOP error rows naming a file whose row this batch replaced (see release_orphaned_copies)
    copies_to_check: list[str] = field(default_factory=list)


class RawWarehouse(Protocol):
    """Where harvested rows go. Implementations: DuckDBRawWarehouse, BigQueryRawWarehouse."""

    # Instance rows written at once, short of the end of a walk, are a multiple of this (1: any number).
    write_alignment: int

    def ensure_tables(self) -> None:
        """Create the raw tables when missing (idempotent)."""

    def select_changed(self, run_id: str, files: list[FileRef]) -> list[FileRef]:
        """The files (of one slice) that are new or changed since an earlier run harvested them, in
        location order (a run finds each location once)."""

    def end_walk(self, run_id: str) -> None:
        """The walk of the sources is over (files looked up after it are copies read again)."""

    def write_batch(self, run_id: str, instances: pa.Table, errors: pa.Table) -> BatchResult:
        """Replace the rows of these locations; a SOP instance already harvested elsewhere becomes an error.

        The copies whose error rows name a replaced file as the holder of their instance come back
        in `copies_to_check`."""

    def refresh_series(self, run_id: str, touched_series: set[str], headers: dict[str, str]) -> None:
        """Rebuild the raw_dicom_series rows of these series from their instances (a series left
        without instances loses its row): every series written to since the last rebuild. `headers`
        (location -> DICOM JSON) are headers the run read: a series whose representative is among
        them takes its header from there."""

    def unbuilt_series(self) -> set[str]:
        """Series a run that stopped between a write and its series rebuild left stale: those written
        to after its last rebuild, and those with instance rows but no series row. The next run
        rebuilds them first."""

    def series_counts(self, run_id: str) -> tuple[int, int]:
        """(added, updated): the series rows this run created, and those it rebuilt."""

    def series_without_header(self) -> list[tuple[str, str]]:
        """(series UID, representative location) of series that have no header JSON yet."""

    def set_series_headers(self, headers: dict[str, str | None]) -> None:
        """Store the representative header JSON of these series."""

    def record_run(self, run: HarvestRun) -> None:
        """Insert or update the run's row in raw_harvest_run."""

    def remember_found(self, run_id: str, files: list[FileRef]) -> None:
        """Note files found by this run (all of them, changed or not), for `remove_missing`."""

    def remove_missing(self, run_id: str, roots: list[str], unreadable: list[str]) -> BatchResult:
        """Delete the instance and error rows under the roots (folders, or files) of locations this
        run did not find, except under folders it could not list; return how many and their series."""

    def release_orphaned_copies(self, locations: list[str] | None) -> list[tuple[str, str]]:
        """Of these copies (duplicate-SOP error rows; None: every one), delete the rows of those
        whose kept file no longer holds their SOP instance, and return their (location, run_id):
        the harvest reads them again, and the first then holds the instance."""

    def close(self) -> None: ...


def table_columns(table: str) -> list[Column]:
    return RAW_TABLES[table]
