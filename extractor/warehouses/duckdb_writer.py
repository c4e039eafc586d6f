"""Raw tables in the identified DuckDB file (the embedded default)."""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from extractor.warehouses.base import BatchResult, FileRef, HarvestRun, WarehouseInUse, text_location, with_stat
from extractor.warehouses.schema import ADDED_COLUMNS, PRIMARY_KEYS, RAW_TABLES, SERIES_INSTANCE_STATISTICS, to_arrow
from extractor.warehouses.series_sql import (
    PRUNE_ROOT_COLUMNS,
    PRUNE_SKIPPED_COLUMNS,
    UNREBUILT_TABLE,
    copies_of_sql,
    duplicate_sop_rows_sql,
    missing_locations_sql,
    new_series_rows_sql,
    orphaned_copies_sql,
    prune_rows,
    series_counts_sql,
    series_without_header_sql,
    unbuilt_series_sql,
)

DUCKDB_TYPES = {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "TIMESTAMP": "TIMESTAMP"}
# What keeps the harvest's memory from growing with the archive:
# - DuckDB caches the blocks it reads and writes up to its memory limit (80% of RAM by default),
#   so the limit is fixed: 64 MB holds a series rebuild (at most a few megabytes of headers, see
#   the pipeline), also of an archive of one-file series; with 128 MB a 20,000-file harvest
#   peaked 15 MB higher than with 64, for 0-5% of its time;
# - a checkpoint rewrites the table's last, partly filled row group, so row groups are small:
#   the default, 122,880 rows, would make each checkpoint cost memory up to that many rows, and
#   the series table's rows carry a header each (an archive of one-file series took a third
#   longer with 8,192); a batch of 6,144 rows (config.HARVEST_BATCH_SIZE) fills three;
# - a transaction's appended rows are written to the file a row group at a time, instead of
#   five (DuckDB's default) held in memory until they are: 5 MB less at a 6,144-row batch;
# - a primary key is an index held in memory, so only the run table declares one: the harvest
#   itself keeps locations unique (select_changed, then the replacement of changed files);
# - a checkpoint does not vacuum: each connection and each checkpoint starts the series table on
#   a new row group, and merging those (with their headers) cost a checkpoint +30 to +60 MB, more
#   the larger the archive; DuckDB reclaims deleted rows at the next checkpoint of a connection
#   that vacuums (the dbt build's), and the harvest deletes few (rows of files harvested again);
# - a write's look-up of the UID hashes, which reads the whole table, caches little (see
#   LOOKUP_MEMORY_BYTES).
# Its queries are small: one thread leaves the cores to the header readers.
HARVEST_CONFIG = {"memory_limit": "64MB", "threads": 1, "write_buffer_row_group_count": 1, "max_vacuum_tasks": 0}
# DuckDB keeps the blocks a query reads cached up to its memory limit; each write looks its UIDs
# up in the whole UID hash table, so the blocks that left cached grew with the archive (+20 MB at
# 600,000 files). With at most this much memory beyond what it holds, DuckDB drops them as it
# reads. The look-up itself needs about 5 MB (measured: 4 failed, at batches of 2,048 to 49,152
# rows 8 fit); should it run out, the write is retried with the fallback limit, as any step. The
# exact check it may call for needs more, and is not capped. (Capping a rebuild's look-ups in the
# series table too saved 3-5 MB at 600,000 files, but they needed up to 7 MB, which grows with
# the series rows not yet checkpointed: too close.)
LOOKUP_MEMORY_BYTES = 8 * 2**20
ROW_GROUP_SIZE = 2048
DECLARED_KEYS = {"raw_harvest_run"}
# Blocks cached between slices beyond this are dropped (see _drop_cached_blocks). Since writes
# fill whole row groups, none is worth keeping: reading a slice's blocks again from the page cache
# cost no measurable time at 200,000 files, and keeping 8 MB raised the peak by 2 MB at 20,000.
CACHE_KEPT_BYTES = 0
# DuckDB keeps, for as long as a database stays attached, about 70 bytes of metadata (outside its
# memory limit) for every row it has written: 14 MB after 200,000 files, and it would go on
# growing with the archive. Opening the file again drops it (see _reconnect_if_due).
ROWS_PER_CONNECTION = 50_000
# The locations a pruning run found: a table of the file (not a temporary one), so that the writer
# can open the file again during the run; dropped once used, or by the next run after a crash.
FOUND_TABLE = "_harvest_found"
# The locations earlier runs harvested (instance and error rows), in location order, with their
# size and mtime: built at a run's first look-up, once per run, and dropped when its walk is over.
# The walk finds files in location order, so each slice's look-up reads only the rows between its
# first and last location, found from every KNOWN_STEP-th location (kept in memory), instead of
# the whole of both tables (which made a re-run's look-ups grow with the square of the archive).
KNOWN_TABLE = "_harvest_known"
KNOWN_STEP = ROW_GROUP_SIZE
# The SOP Instance UIDs harvested, as DuckDB's 64-bit hashes, with the batch number of their row,
# in a narrow table of their own: the duplicate check looks up each batch in it, not in the
# instance table, whose UID column DuckDB stores in blocks it shares with the other columns (so
# that look-up read most of the table, and cached it). Hashes of rows since replaced or removed
# are deleted with them; a hash found only makes the exact check run. DuckDB's hash() is 15 times
# quicker than MD5 but may change with its version, so the table also holds the hash of a fixed
# value (batch number -1): when that no longer matches, the table is built again.
UID_HASH_TABLE = "_sop_uid_hash"
UID_HASH = "hash(sop_instance_uid)"
UID_HASH_CANARY = ("imgomop uid-hash canary", -1)  # (a value no UID can be, its batch number)
# An archive the cap does not fit (headers far larger than usual) must not abort the harvest:
# the step that ran out is rolled back and run again with the next of these, for the rest of the run.
FALLBACK_MEMORY_LIMITS = ("256MB", "2GB")

log = logging.getLogger(__name__)
Method = TypeVar("Method", bound=Callable[..., Any])


def _retried_with_more_memory(method: Method) -> Method:
    """Run the method again with the next of DuckDB's fallback memory limits while it runs out of memory.

    Every method it wraps is one transaction or rebuilds its temporary tables from scratch, so
    running it again after the failure writes nothing twice.
    """

    @functools.wraps(method)
    def retried(self: DuckDBRawWarehouse, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return method(self, *args, **kwargs)
            except duckdb.OutOfMemoryException:
                if not self.memory_fallbacks:
                    raise
                fallback = self.memory_fallbacks.pop(0)
                log.warning("DuckDB ran out of its harvest memory (%s) in %s; going on with %s",
                            self.memory_limit, method.__name__, fallback)
                self.con.execute(f"SET memory_limit = '{fallback}'")
                self.memory_limit = fallback

    return retried  # type: ignore[return-value]


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection, **views: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction, with Arrow tables registered as views for its length; rolled back on error."""
    for name, table in views.items():
        con.register(name, table)
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:  # an interrupted run (Ctrl-C, SIGTERM) too: the next statement would fail
        with contextlib.suppress(duckdb.Error):  # the error that stopped it is the one to report
            con.execute("ROLLBACK")
        raise
    finally:
        for name in views:
            con.unregister(name)


@functools.cache
def _jemalloc_control() -> Callable[..., int] | None:
    """jemalloc's `mallctl` inside DuckDB's compiled module: DuckDB's Linux builds link jemalloc in,
    under this prefix. None where it is not there (other systems, other builds)."""
    module = sys.modules.get("_duckdb") or sys.modules.get("duckdb.duckdb")
    try:
        control = ctypes.CDLL(module.__file__).duckdb_je_mallctl  # type: ignore[union-attr]
    except (AttributeError, OSError, TypeError):
        return None
    # int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    control.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    control.restype = ctypes.c_int
    return control


def return_freed_memory() -> bool:
    """Give the pages DuckDB has freed back to the system now; False where this cannot be done.

    DuckDB's jemalloc keeps freed pages for a second before it returns them, so the pages of a
    write's or a rebuild's working set were still resident while the next step allocated its
    own: peak memory stacked steps instead of being the largest of them, and the longer the
    harvest, the more steps fell inside that second (measured: 13 MB of the growth from 2,000 to
    20,000 files).
    """
    control = _jemalloc_control()
    if control is None:
        return False
    return control(b"arena.4096.purge", None, None, None, 0) == 0  # 4096: every arena (MALLCTL_ARENAS_ALL)


def connect_raw(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection to the identified DuckDB file, set up for the harvest (see above)."""
    con = duckdb.connect(config={**HARVEST_CONFIG, "temp_directory": f"{path}.tmp"})
    literal = str(path).replace("'", "''")
    catalog = path.stem.replace('"', '""')
    try:
        con.execute(f"ATTACH '{literal}' AS \"{catalog}\" (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
    except duckdb.IOException as exc:
        con.close()
        if "lock" not in str(exc).lower():
            raise
        holder = re.search(r"PID (\d+)", str(exc))
        raise WarehouseInUse(
            f"{path} is open in another process{f' (PID {holder[1]})' if holder else ''}; DuckDB lets one process "
            "write a file at a time: wait for it to finish (a harvest, build or scrub), then run this again"
        ) from exc
    con.execute(f'USE "{catalog}"')
    return con


def _with_first_runs_and_headers(
    rows: pa.Table, first_runs: dict[str, str], run_id: str, headers: dict[str, str]
) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Rebuilt series rows with the first_run_id of the rows they replace (this run's for a new
    series) and the header JSON of their representative where the harvest holds it; and the
    (series UID, representative) of the rows left without one."""
    uids = rows.column("series_instance_uid").to_pylist()
    locations = rows.column("representative_location").to_pylist()
    filled = {
        "first_run_id": pa.array([first_runs.get(uid, run_id) for uid in uids], pa.string()),
        "representative_header_json": pa.array([headers.get(location) for location in locations], pa.string()),
    }
    for name, column in filled.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, column)
    without_header = sorted((uid, location) for uid, location in zip(uids, locations) if location not in headers)
    return rows, without_header


def _unchanged(location: str, size: int | None, mtime_ns: int | None) -> bool:
    """Whether the file still has the size and mtime of its row (one that cannot be stat'ed has changed)."""
    now = with_stat(location)
    return now.file_size is not None and (now.file_size, now.file_mtime_ns) == (size, mtime_ns)


class DuckDBRawWarehouse:
    # A write of whole row groups writes each to the file as it fills. A part-filled one goes
    # through the log, stays in memory, and is rewritten by every checkpoint until it fills:
    # checkpoints then cost +23 MB and 0.1 s, against +1 MB and 10 ms.
    write_alignment = ROW_GROUP_SIZE

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = connect_raw(path)
        self.memory_limit = HARVEST_CONFIG["memory_limit"]
        self.memory_fallbacks = list(FALLBACK_MEMORY_LIMITS)  # the limits left to go on with
        self._replaces_rows: bool | None = None  # unknown until select_changed: look for rows to replace
        self._found_run: str | None = None  # the run whose found locations are in FOUND_TABLE
        self._write_seq: int | None = None  # the last batch number written (write_seq), read on first use
        self._seq_run: str | None = None  # the run `_seq_before_run` belongs to
        self._seq_before_run = 0  # the last batch number written before that run
        self._rows_before_run = True  # whether the raw tables held any row when that run began
        self._unrebuilt_since: int | None = None  # the first batch written since the last series rebuild
        self._rebuilt = False  # whether this writer has rebuilt series (its first rebuild scans everything)
        self._refreshed_run: str | None = None  # the run of the last series rebuild
        self._rebuilt_without_header: list[tuple[str, str]] = []  # (series UID, representative) it left without a header
        self._headers_checked_run: str | None = None  # the run for which series_without_header looked at the whole table
        self._rows_since_connect = 0  # rows written through this connection (see ROWS_PER_CONNECTION)
        self._known_run: str | None = None  # the run whose walk KNOWN_TABLE serves
        self._known_marks: list[str] | None = []  # every KNOWN_STEP-th location of KNOWN_TABLE (None: unsorted)
        self._walked_run: str | None = None  # the run whose walk is over

    # --- schema ---------------------------------------------------------------------------

    @_retried_with_more_memory
    def ensure_tables(self) -> None:
        for table, columns in RAW_TABLES.items():
            body = ", ".join(f"{name} {DUCKDB_TYPES[kind]}" for name, kind in columns)
            key = f", PRIMARY KEY ({PRIMARY_KEYS[table]})" if table in DECLARED_KEYS else ""
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body}{key})")
        for table, columns in ADDED_COLUMNS.items():
            for name, kind in columns:
                self.con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {DUCKDB_TYPES[kind]}")
        self.con.execute(f"CREATE TABLE IF NOT EXISTS {UNREBUILT_TABLE} (series_instance_uid VARCHAR)")
        for table in (FOUND_TABLE, KNOWN_TABLE):  # left by a run that stopped
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        self._add_missing_uid_hashes()

    def _add_missing_uid_hashes(self) -> None:
        """Create the UID hash table, or add to it the hashes of rows written without it: every
        row when it is new (an archive harvested before it existed), else the batches numbered
        after its last one (written by a version that did not keep it)."""
        ((exists,),) = self.con.execute(
            "SELECT COUNT(*) > 0 FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?",
            [UID_HASH_TABLE],
        ).fetchall()
        if exists and not self._uid_hashes_current():  # hashed by a DuckDB whose hash() differs
            self.con.execute(f"DROP TABLE {UID_HASH_TABLE}")
            exists = False
        if not exists:
            self.con.execute(f"CREATE TABLE {UID_HASH_TABLE} (uid_hash UBIGINT, write_seq BIGINT)")
            self.con.execute(f"INSERT INTO {UID_HASH_TABLE} VALUES (hash($1), $2)", list(UID_HASH_CANARY))
        newer = "" if not exists else f" AND write_seq > (SELECT COALESCE(MAX(write_seq), 0) FROM {UID_HASH_TABLE})"
        self.con.execute(
            f"INSERT INTO {UID_HASH_TABLE} SELECT {UID_HASH}, write_seq FROM raw_dicom_instance "
            f"WHERE sop_instance_uid IS NOT NULL{newer}"
        )

    def _uid_hashes_current(self) -> bool:
        """Whether the hash table's fixed value still has the hash this DuckDB gives it."""
        ((current,),) = self.con.execute(
            f"SELECT COUNT(*) > 0 FROM {UID_HASH_TABLE} WHERE write_seq = $2 AND uid_hash = hash($1)", list(UID_HASH_CANARY)
        ).fetchall()
        return current

    # --- incremental selection ------------------------------------------------------------

    @_retried_with_more_memory
    def select_changed(self, run_id: str, files: list[FileRef]) -> list[FileRef]:
        if not files:
            return []
        before_run = self._seq_before(run_id)
        if not self._rows_before_run:  # a first harvest: every file is new
            self._replaces_rows = bool(self._replaces_rows)
            return sorted(files)
        by_name = {text_location(f.location): f for f in files}  # as stored -> as found
        self.con.register("_candidates", pa.table({"location": list(by_name)}))
        try:
            # The rows already held for these locations. Inner joins, so DuckDB builds its hash
            # table on the candidates and streams the known rows past it: memory follows the
            # slice, not the archive. Only known locations come back, so Python keeps the rest,
            # and stats only those.
            if self._walked_run != run_id:
                rows = self._known_rows(run_id, list(by_name))
            else:  # files read again after the walk (copies): a few, looked up in the tables themselves
                rows = self.con.execute(
                    """
                    SELECT k.location, k.file_size, k.file_mtime_ns
                    FROM raw_dicom_instance AS k JOIN _candidates AS c ON k.location = c.location
                    WHERE k.write_seq <= $before_run OR k.write_seq IS NULL
                    UNION ALL
                    SELECT k.location, k.file_size, k.file_mtime_ns
                    FROM raw_harvest_error AS k JOIN _candidates AS c ON k.location = c.location
                    """,
                    {"before_run": before_run},
                ).fetchall()
        finally:
            self.con.unregister("_candidates")
        known = [(name, _unchanged(by_name[name].location, size, mtime)) for name, size, mtime in rows]
        unchanged = {name for name, same in known if same}
        # Once a selected file replaces a row, every later batch of the run looks for rows to replace.
        self._replaces_rows = bool(self._replaces_rows) or any(not same for _, same in known)
        return sorted(f for name, f in by_name.items() if name not in unchanged)  # found in about this order: quick to sort

    def _known_rows(self, run_id: str, locations: list[str]) -> list[tuple[str, int, int]]:
        """(location, size, mtime) of the `_candidates` (`locations`) that earlier runs harvested, from KNOWN_TABLE."""
        if self._known_run != run_id:
            self._index_known_files(run_id)
        first, end = self._known_range(min(locations), max(locations))
        if first >= end:
            return []
        return self.con.execute(
            f"SELECT k.location, k.file_size, k.file_mtime_ns FROM {KNOWN_TABLE} AS k "
            "JOIN _candidates AS c ON k.location = c.location WHERE k.rowid >= $first AND k.rowid < $end",
            {"first": first, "end": end},
        ).fetchall()

    def _index_known_files(self, run_id: str) -> None:
        self.con.execute(
            f"CREATE OR REPLACE TABLE {KNOWN_TABLE} AS "
            "SELECT location, file_size, file_mtime_ns FROM raw_dicom_instance "
            "UNION ALL SELECT location, file_size, file_mtime_ns FROM raw_harvest_error ORDER BY location"
        )
        marks = self.con.execute(f"SELECT location FROM {KNOWN_TABLE} WHERE rowid % {KNOWN_STEP} = 0 ORDER BY rowid")
        self._known_marks = [row[0] for row in marks.fetchall()]
        if self._known_marks != sorted(self._known_marks):  # not stored in order: every look-up reads it all
            self._known_marks = None
        self._known_run = run_id

    def _known_range(self, low: str, high: str) -> tuple[int, int]:
        """[first, end): the row ids of KNOWN_TABLE that hold every location from `low` to `high`."""
        marks = self._known_marks
        if marks is None:
            return 0, 2**62
        start = max(bisect.bisect_right(marks, low) - 1, 0)  # the block holding `low`
        stop = bisect.bisect_right(marks, high)  # blocks starting at or before `high`
        return start * KNOWN_STEP, stop * KNOWN_STEP

    def end_walk(self, run_id: str) -> None:
        """The walk is over: later look-ups (copies read again) read the tables themselves, which
        the run has changed since KNOWN_TABLE was built."""
        self._walked_run = run_id
        if self._known_run is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {KNOWN_TABLE}")
            self._known_run, self._known_marks = None, []

    # --- writes ---------------------------------------------------------------------------

    @_retried_with_more_memory
    def write_batch(self, run_id: str, instances: pa.Table, errors: pa.Table) -> BatchResult:
        self._reconnect_if_due()
        self._rows_since_connect += instances.num_rows + errors.num_rows
        result = BatchResult()
        # each series once: a row per instance took the WAL, and the checkpoint, 0.4 MB a batch
        batch_series = pa.table({"series_instance_uid": pc.unique(instances.column("series_instance_uid"))})
        self._drop_cached_blocks()  # so that the look-up below reads into an empty cache
        with _transaction(self.con, _instances=instances, _errors=errors, _batch_series=batch_series) as con:
            if self._replaces_rows is not False:
                self._remove_replaced_rows(result)
            self._remember_unrebuilt(result.touched_series)  # the series of rows replaced (rarely any)
            with self._caching_little():
                may_repeat = self._sop_uids_may_repeat(instances)
            duplicates = self._duplicate_sop_instances(run_id) if may_repeat else 0
            if duplicates:
                written = con.execute(
                    "SELECT DISTINCT series_instance_uid FROM _instances WHERE location NOT IN (SELECT location FROM _duplicates)"
                ).fetchall()
                result.touched_series |= {row[0] for row in written}
            else:
                result.touched_series |= set(batch_series.column(0).to_pylist())
            if errors.num_rows or duplicates:
                con.execute(
                    "INSERT INTO raw_harvest_error BY NAME SELECT * FROM _errors"
                    + (" UNION ALL BY NAME SELECT * FROM _duplicates" if duplicates else "")
                )
            kept = "location NOT IN (SELECT location FROM _duplicates)" if duplicates else "TRUE"
            seq = {"seq": self._next_write_seq()}
            con.execute(
                "INSERT INTO raw_dicom_instance BY NAME "
                f"SELECT * REPLACE ($seq::BIGINT AS write_seq) FROM _instances WHERE {kept}",
                seq,
            )
            con.execute(
                f"INSERT INTO {UID_HASH_TABLE} SELECT {UID_HASH}, $seq FROM _instances "
                f"WHERE sop_instance_uid IS NOT NULL AND {kept}",
                seq,
            )
            # the batch's own series (a duplicate's series too: harmless)
            con.execute(f"INSERT INTO {UNREBUILT_TABLE} SELECT series_instance_uid FROM _batch_series")
        result.errors = errors.num_rows + duplicates
        result.instances_added = instances.num_rows - duplicates - result.instances_updated
        return_freed_memory()
        return result

    @contextmanager
    def _caching_little(self) -> Iterator[None]:
        """Until the block ends, DuckDB may hold at most LOOKUP_MEMORY_BYTES more than it holds now,
        so a look-up drops the blocks it has read as it reads on. Used in a transaction, where a
        failed SET aborts it: the limit is not below what DuckDB holds, so setting it evicts nothing,
        and an error (out of memory) goes on to the rollback and the retry with a fallback limit.
        Not once a step has run out of memory and the run goes on with a fallback limit."""
        capped = self.memory_limit == HARVEST_CONFIG["memory_limit"]
        if capped:
            self.con.execute(f"SET memory_limit = '{self._memory_held() + LOOKUP_MEMORY_BYTES}B'")
        try:
            yield
        finally:
            if capped:
                with contextlib.suppress(duckdb.TransactionException):  # aborted: no SET runs
                    self._set_memory_limit(self.memory_limit)

    def _set_memory_limit(self, limit: str) -> bool:
        """Set DuckDB's memory limit, evicting cached blocks down to it; False (and the limit as it
        was) when what DuckDB holds pinned does not fit under it."""
        try:
            self.con.execute(f"SET memory_limit = '{limit}'")
        except duckdb.OutOfMemoryException:
            return False
        return True

    def _memory_held(self) -> int:
        """The bytes DuckDB holds: its cached blocks and the memory of running work."""
        ((held,),) = self.con.execute("SELECT COALESCE(SUM(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()
        return held

    def _remember_unrebuilt(self, series: set[str]) -> None:
        """In a write's transaction: these series wait for a rebuild (see UNREBUILT_TABLE)."""
        if series:
            self.con.execute(f"INSERT INTO {UNREBUILT_TABLE} SELECT unnest(?::VARCHAR[])", [sorted(series)])

    def _reconnect_if_due(self) -> None:
        """Open the file again once this connection has written ROWS_PER_CONNECTION rows.

        Called before a write: the temporary tables a rebuild leaves are read by then.
        """
        if self._rows_since_connect < ROWS_PER_CONNECTION:
            return
        self.con.close()
        self.con = connect_raw(self.path)
        if self.memory_limit != HARVEST_CONFIG["memory_limit"]:  # a fallback limit holds for the rest of the run
            self.con.execute(f"SET memory_limit = '{self.memory_limit}'")
        self._rows_since_connect = 0

    def _seq_before(self, run_id: str) -> int:
        """The highest batch number written before this run (0 for none); the first call in a run
        also notes whether the raw tables held any row at all."""
        if self._seq_run != run_id:
            self._seq_run = run_id
            self._write_seq = None  # read again: another writer may have written since
            self._seq_before_run = self._last_write_seq()
            ((self._rows_before_run,),) = self.con.execute(
                "SELECT EXISTS (SELECT 1 FROM raw_dicom_instance) OR EXISTS (SELECT 1 FROM raw_harvest_error)"
            ).fetchall()
        return self._seq_before_run

    def _last_write_seq(self) -> int:
        if self._write_seq is None:
            # fetchall, not fetchone: an unfinished result would keep the next register() from running
            ((self._write_seq,),) = self.con.execute("SELECT COALESCE(MAX(write_seq), 0) FROM raw_dicom_instance").fetchall()
        return self._write_seq

    def _next_write_seq(self) -> int:
        """Number this batch: one more than any instance row has (see new_series_rows_sql)."""
        self._write_seq = self._last_write_seq() + 1
        if self._unrebuilt_since is None:
            self._unrebuilt_since = self._write_seq
        return self._write_seq

    def _remove_replaced_rows(self, result: BatchResult) -> None:
        """Delete the rows of files this batch harvests again, noting their series as stale."""
        con = self.con
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _locations AS "
            "SELECT location FROM _instances UNION SELECT location FROM _errors"
        )
        stale = con.execute(
            "SELECT DISTINCT series_instance_uid FROM raw_dicom_instance "
            "WHERE location IN (SELECT location FROM _locations)"
        ).fetchall()
        result.touched_series = {row[0] for row in stale}
        if stale:  # instance rows are replaced: copies may name one of them as their instance's file
            copies = con.execute(copies_of_sql("raw_harvest_error", "_locations")).fetchall()
            result.copies_to_check = [row[0] for row in copies]
        result.instances_updated = con.execute(
            "SELECT COUNT(*) FROM raw_dicom_instance WHERE location IN (SELECT location FROM _instances)"
        ).fetchone()[0]
        self._forget_uid_hashes("_locations")
        con.execute("DELETE FROM raw_dicom_instance WHERE location IN (SELECT location FROM _locations)")
        con.execute("DELETE FROM raw_harvest_error WHERE location IN (SELECT location FROM _locations)")

    def _forget_uid_hashes(self, locations: str) -> None:
        """Delete the UID hashes of the instance rows at these locations (before the rows go)."""
        self.con.execute(
            f"DELETE FROM {UID_HASH_TABLE} WHERE (uid_hash, write_seq) IN ("
            f"SELECT ({UID_HASH}, write_seq) FROM raw_dicom_instance WHERE location IN (SELECT location FROM {locations}))"
        )

    def _duplicate_sop_instances(self, run_id: str) -> int:
        """A SOP Instance UID already harvested from another file (or twice in this batch) is an error
        row; their count, and the rows in the `_duplicates` table when there are any."""
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _duplicates AS "
            + duplicate_sop_rows_sql("_instances", "raw_dicom_instance", "$run_id"),
            {"run_id": run_id},
        )
        return self.con.execute("SELECT COUNT(*) FROM _duplicates").fetchone()[0]

    def _sop_uids_may_repeat(self, instances: pa.Table) -> bool:
        """Whether a SOP Instance UID of the batch is in the batch twice, or its hash in the UID
        hash table (see UID_HASH_TABLE): the full check reads every row's UID and location, so it
        runs only then."""
        uids = instances.column("sop_instance_uid")
        if pc.count_distinct(uids).as_py() < len(uids) - uids.null_count:
            return True
        ((found,),) = self.con.execute(
            f"SELECT EXISTS (SELECT 1 FROM {UID_HASH_TABLE} WHERE uid_hash IN (SELECT {UID_HASH} FROM _instances))"
        ).fetchall()
        return found

    @_retried_with_more_memory
    def refresh_series(self, run_id: str, touched_series: set[str], headers: dict[str, str]) -> None:
        """Rebuild the touched series' rows: every series touched since the last rebuild (the
        harvest passes them all), so none is left waiting (UNREBUILT_TABLE). Their first_run_id
        (from the rows replaced) and header JSON are filled in here, not joined in SQL: DuckDB
        gives each hash join of a query about 8 MB however few its rows, and those two joins were
        half of a rebuild's memory."""
        with _transaction(self.con) as con:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _touched AS SELECT unnest(?::VARCHAR[]) AS series_instance_uid",
                [sorted(touched_series)],
            )
            since = self._rebuild_bound()
            rows = con.sql(
                new_series_rows_sql("raw_dicom_instance", None, "_touched", None, "$run_id", since), params={"run_id": run_id}
            ).to_arrow_table()
            replaced = "FROM raw_dicom_series WHERE series_instance_uid IN (SELECT series_instance_uid FROM _touched)"
            # Not DELETE ... RETURNING: DuckDB then reads every column of the table, headers too.
            stored = con.execute(f"SELECT series_instance_uid, first_run_id, representative_location {replaced}").fetchall()
            first_runs = {uid: first_run for uid, first_run, _ in stored}
            rows = self._update_series_keeping_their_header(rows, stored, headers)
            con.execute(f"DELETE {replaced}")
            rows, without_header = _with_first_runs_and_headers(rows, first_runs, run_id, headers)
            con.register("_new_series", rows)
            try:
                con.execute("INSERT INTO raw_dicom_series BY NAME SELECT * FROM _new_series")
            finally:
                con.unregister("_new_series")
            con.execute(f"DELETE FROM {UNREBUILT_TABLE}")
        self._rebuilt_without_header = without_header
        self._unrebuilt_since, self._rebuilt, self._refreshed_run = None, True, run_id
        self._drop_cached_blocks()
        return_freed_memory()

    def _update_series_keeping_their_header(
        self, rows: pa.Table, stored: list[tuple[str, str, str]], headers: dict[str, str]
    ) -> pa.Table:
        """In a rebuild: update in place the rows of series whose representative is the same file,
        not read again since their row was written (their attributes and header are unchanged),
        with their new statistics; return the other rebuilt rows, to replace theirs.

        Mostly a series that spans two rebuilds, its representative read before the first. A
        replaced row would need that header back, and setting it in the table afterwards made
        DuckDB's next checkpoint rewrite the header column (about 20 MB at 200,000 files).
        """
        representatives = {uid: location for uid, _, location in stored}
        uids = rows.column("series_instance_uid").to_pylist()
        locations = rows.column("representative_location").to_pylist()
        same = [representatives.get(uid) == location and location not in headers for uid, location in zip(uids, locations)]
        if not any(same):
            return rows
        mask = pa.array(same)
        kept = rows.filter(mask).select(["series_instance_uid", *SERIES_INSTANCE_STATISTICS])
        statistics = ", ".join(f"{column} = k.{column}" for column in SERIES_INSTANCE_STATISTICS)
        self.con.register("_kept_series", kept)
        try:
            self.con.execute(
                f"UPDATE raw_dicom_series AS s SET {statistics} FROM _kept_series AS k "
                "WHERE s.series_instance_uid = k.series_instance_uid"
            )
            self.con.execute("DELETE FROM _touched WHERE series_instance_uid IN (SELECT series_instance_uid FROM _kept_series)")
        finally:
            self.con.unregister("_kept_series")
        return rows.filter(pc.invert(mask))

    def _rebuild_bound(self) -> int | None:
        """The lowest write_seq an instance row of a touched series can have; None: scan them all.

        Rows written since the last rebuild have at least `_unrebuilt_since`; older rows of a
        series that has a series row have at least its `first_write_seq` (rows are only removed
        since). The first rebuild of a writer scans everything: it also rebuilds the series a
        stopped run left without a series row (`unbuilt_series`), whose rows are older.
        """
        if not self._rebuilt:
            return None
        ((unknown, lowest),) = self.con.execute(
            "SELECT COUNT(*) - COUNT(first_write_seq), MIN(first_write_seq) FROM raw_dicom_series "
            "WHERE series_instance_uid IN (SELECT series_instance_uid FROM _touched)"
        ).fetchall()
        if unknown:  # rows written before the writers numbered their batches
            return None
        bounds = [bound for bound in (lowest, self._unrebuilt_since) if bound is not None]
        return min(bounds) if bounds else None

    def _drop_cached_blocks(self) -> None:
        """Past `CACHE_KEPT_BYTES`, evict the table blocks DuckDB keeps cached (after a slice, and
        before a write). Outside a transaction: the SET may fail.

        DuckDB keeps the blocks it has read or written up to its memory limit, so its memory would
        grow with the archive up to that limit; a moment's lower limit drops them, and the next
        step reads what it needs again from the page cache.
        """
        if self._memory_held() <= CACHE_KEPT_BYTES:
            return
        self._set_memory_limit("1MB")  # False: something is still pinned, the cache stays as it is this time
        self._set_memory_limit(self.memory_limit)

    @_retried_with_more_memory
    def unbuilt_series(self) -> set[str]:
        """Series a run that stopped left to rebuild: those its writes touched after its last
        rebuild, and any with instance rows but no series row (a warehouse from before the table)."""
        sql = unbuilt_series_sql("raw_dicom_instance", "raw_dicom_series", UNREBUILT_TABLE)
        return {row[0] for row in self.con.execute(sql).fetchall()}

    @_retried_with_more_memory
    def series_counts(self, run_id: str) -> tuple[int, int]:
        added, updated = self.con.execute(series_counts_sql("raw_dicom_series", "$run_id"), {"run_id": run_id}).fetchall()[0]
        return added, updated

    @_retried_with_more_memory
    def series_without_header(self) -> list[tuple[str, str]]:
        """Series whose header is missing. Called after each rebuild: the first time in a run it
        looks at the whole table (a stopped run can leave some), then only at the rows the last
        rebuild wrote (a test of the header column reads it whole, and it grows with the archive)."""
        if self._headers_checked_run == self._refreshed_run:
            return self._rebuilt_without_header
        self._headers_checked_run = self._refreshed_run
        return self.con.execute(series_without_header_sql("raw_dicom_series")).fetchall()

    @_retried_with_more_memory
    def set_series_headers(self, headers: dict[str, str | None]) -> None:
        if not headers:
            return
        table = pa.table({"series_instance_uid": list(headers), "header_json": pa.array(list(headers.values()), pa.string())})
        self.con.register("_headers", table)
        try:
            self.con.execute(
                "UPDATE raw_dicom_series AS s SET representative_header_json = h.header_json "
                "FROM _headers AS h WHERE s.series_instance_uid = h.series_instance_uid"
            )
        finally:
            self.con.unregister("_headers")

    @_retried_with_more_memory
    def record_run(self, run: HarvestRun) -> None:
        row = run.as_row()
        columns = [name for name, _ in RAW_TABLES["raw_harvest_run"]]
        # values, not an Arrow table: the first Arrow scan of a process costs 10 ms of imports
        sql = f"INSERT OR REPLACE INTO raw_harvest_run ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        values = [row.get(name) for name in columns]
        try:
            self.con.execute(sql, values)
        except duckdb.ConnectionException as exc:
            if "closed" not in str(exc):
                raise
            # Ctrl-C between closing and opening the file again (_reconnect_if_due): the run's end
            # is still recorded, else its row would say `running` for good.
            self.con = connect_raw(self.path)
            self.con.execute(sql, values)

    # --- files no longer found (harvest --prune) ---------------------------------------------

    @_retried_with_more_memory
    def remember_found(self, run_id: str, files: list[FileRef]) -> None:
        if self._found_run != run_id:
            self.con.execute(f"CREATE OR REPLACE TABLE {FOUND_TABLE} (location VARCHAR)")
            self._found_run = run_id
        if files:
            self.con.register("_found_batch", pa.table({"location": [text_location(f.location) for f in files]}))
            try:
                self.con.execute(f"INSERT INTO {FOUND_TABLE} SELECT location FROM _found_batch")
            finally:
                self.con.unregister("_found_batch")

    @_retried_with_more_memory
    def remove_missing(self, run_id: str, roots: list[str], unreadable: list[str]) -> BatchResult:
        if self._found_run != run_id:
            self.remember_found(run_id, [])
        result = BatchResult()
        root_rows, skipped_rows = prune_rows(roots, unreadable, os.sep)
        views = {"_roots": to_arrow(root_rows, PRUNE_ROOT_COLUMNS), "_skipped": to_arrow(skipped_rows, PRUNE_SKIPPED_COLUMNS)}
        with _transaction(self.con, **views) as con:
            missing = [missing_locations_sql(t, "_roots", "_skipped", FOUND_TABLE) for t in ("raw_dicom_instance", "raw_harvest_error")]
            con.execute(f"CREATE OR REPLACE TEMP TABLE _gone AS {missing[0]} UNION {missing[1]}")
            series = con.execute(
                "SELECT DISTINCT series_instance_uid FROM raw_dicom_instance WHERE location IN (SELECT location FROM _gone)"
            ).fetchall()
            result.touched_series = {row[0] for row in series}
            self._remember_unrebuilt(result.touched_series)
            result.files_removed = con.execute("SELECT COUNT(*) FROM _gone").fetchone()[0]
            self._forget_uid_hashes("_gone")
            con.execute("DELETE FROM raw_dicom_instance WHERE location IN (SELECT location FROM _gone)")
            con.execute("DELETE FROM raw_harvest_error WHERE location IN (SELECT location FROM _gone)")
            con.execute(f"DROP TABLE {FOUND_TABLE}")
        self._found_run = None
        return result

    @_retried_with_more_memory
    def release_orphaned_copies(self, locations: list[str] | None) -> list[tuple[str, str]]:
        if locations == []:
            return []
        views = {} if locations is None else {"_copies": pa.table({"location": pa.array(locations, pa.string())})}
        with _transaction(self.con, **views) as con:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _orphans AS "
                + orphaned_copies_sql("raw_harvest_error", "raw_dicom_instance", "_copies" if views else None)
            )
            released = con.execute("SELECT location, run_id FROM _orphans ORDER BY location").fetchall()
            con.execute("DELETE FROM raw_harvest_error WHERE location IN (SELECT location FROM _orphans)")
        return [(location, run_id) for location, run_id in released]

    def close(self) -> None:
        self.con.close()

