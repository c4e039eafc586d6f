"""The harvest loop: discover files, skip unchanged ones, read headers in parallel, write in batches.

Per-file work (`harvest_chunk`) is a pure function of file references, run in a process pool.
The loop takes the files found a slice at a time and holds at most a bounded number of chunks,
one batch of rows and a few megabytes of series headers, so its own memory does not depend on the
size of the archive.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from extractor.config import HARVEST_BATCH_SIZE
from extractor.parallel import run_chunks, worker_pool
from extractor.harvest.discover import NotAFileError, check_sources, discover_files, is_under, open_found_file
from extractor.harvest.header_json import header_json
from extractor.harvest.reader import HarvestError, read_instance
from extractor.warehouses.base import FileRef, HarvestRun, RawWarehouse, text_location, with_stat
from extractor.warehouses.schema import RAW_DICOM_INSTANCE, RAW_HARVEST_ERROR, to_arrow

CHUNK_FILES = 256  # files per task sent to a worker
SLICE_FILES = 6_144  # files found, selected and written before their series are rebuilt (at least a batch)
FIRST_SLICE_FILES = 2 * CHUNK_FILES  # a small first slice: reading starts before the walk has found a whole slice
HEADER_CHUNK = 8  # series per task when reading representative headers as DICOM JSON
HEADER_WRITE_BATCH = 500  # series headers per warehouse update
HEADER_BYTES_PER_REBUILD = 8_000_000  # header JSON held before a series rebuild (archives of one-file series reach it)
UNDECODABLE_NAME = (
    "the file name is not valid UTF-8 (its location shows the undecodable bytes as \\xNN); locations are "
    "kept as text, so the file is not harvested: rename it (for example with convmv) and harvest again"
)


@dataclass
class ChunkResult:
    """Rows of one chunk as Arrow tables, built in the worker so the parent only concatenates.

    `headers` holds the DICOM JSON of each series' first file in the chunk (location -> JSON):
    a series' representative is its lowest location, so it is one of these whenever this run
    read it, and the parent rarely has to open a file again for it.
    """

    instances: pa.Table
    errors: pa.Table
    headers: dict[str, str | None]

    @property
    def files(self) -> int:
        return self.instances.num_rows + self.errors.num_rows

    def __reduce__(self) -> tuple[Any, ...]:
        # Each table as one Arrow IPC buffer: a few times quicker to pickle and load than its
        # arrays one by one, and left out of the pickle itself (see extractor.parallel).
        return _chunk_result_from_ipc, (pickle.PickleBuffer(_ipc(self.instances)), pickle.PickleBuffer(_ipc(self.errors)), self.headers)


def _ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(ipc: Any) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(ipc)).read_all()


def _chunk_result_from_ipc(instances: Any, errors: Any, headers: dict[str, str | None]) -> ChunkResult:
    return ChunkResult(_from_ipc(instances), _from_ipc(errors), headers)


def harvest_chunk(files: list[FileRef], run_id: str) -> ChunkResult:
    """Read each file's header into an instance row or an error row (never raises for bad input)."""
    instances: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    first_of_series: dict[str, str] = {}  # series UID -> lowest location in the chunk
    now = _utcnow()
    warnings.filterwarnings("ignore", module="pydicom")  # bad input is recorded as error rows, not warned about
    for ref in files:
        name = text_location(ref.location)
        if name != ref.location:
            stat = with_stat(ref.location)
            errors.append(_error_row(stat._replace(location=name), "UndecodableFileName", UNDECODABLE_NAME, run_id, now))
            continue
        try:
            fp, stat = open_found_file(ref.location)
            with fp:
                ref = FileRef(ref.location, stat.st_size, stat.st_mtime_ns)  # as read, not as found
                row = read_instance(fp, ref.file_size)
        except HarvestError as exc:
            errors.append(_error_row(ref, exc.error_class, exc.message, run_id, now))
            continue
        except NotAFileError as exc:
            errors.append(_error_row(with_stat(ref.location), "NotAFile", str(exc), run_id, now))
            continue
        except OSError as exc:
            errors.append(_error_row(with_stat(ref.location), "ReadError", f"{type(exc).__name__}: {exc}", run_id, now))
            continue
        row.update(location=ref.location, file_size=ref.file_size, file_mtime_ns=ref.file_mtime_ns, run_id=run_id, harvested_at=now)
        instances.append(row)
        series_uid = row.get("series_instance_uid")
        if series_uid is not None:
            first_of_series[series_uid] = min(ref.location, first_of_series.get(series_uid, ref.location))
    headers = read_header_jsons(list(first_of_series.values()))
    return ChunkResult(to_arrow(instances, RAW_DICOM_INSTANCE), to_arrow(errors, RAW_HARVEST_ERROR), headers)


def _error_row(ref: FileRef, error_class: str, message: str, run_id: str, now: datetime) -> dict[str, Any]:
    return {
        "location": ref.location,
        "file_size": ref.file_size,
        "file_mtime_ns": ref.file_mtime_ns,
        "error_class": error_class,
        "message": message[:2000],
        "run_id": run_id,
        "recorded_at": now,
    }


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def show_progress() -> bool:
    """A progress bar on an interactive terminal; quiet in CI and logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def harvest(
    sources: list[str],
    warehouse: RawWarehouse,
    workers: int | None = None,
    batch_size: int = HARVEST_BATCH_SIZE,
    progress: bool | None = None,
    slice_files: int | None = None,
    prune: bool = False,
) -> HarvestRun:
    """Harvest the sources into the warehouse; return the run record (also written to raw_harvest_run).

    The files found are taken a slice at a time: select the new or changed ones, read them, write
    them in batches, rebuild the series they touched and read those series' representative
    headers. Memory depends on the slice, not on the size of the archive.

    With `prune`, once every source has been walked, the rows of files under the sources that
    the walk did not find (deleted or moved) are removed and their series rebuilt; folders that
    could not be listed are left alone.
    """
    roots = check_sources(sources)
    workers = max(1, workers or os.cpu_count() or 1)
    run = HarvestRun(run_id=new_run_id(), started_at=_utcnow(), sources=";".join(text_location(str(r)) for r in roots))
    warehouse.ensure_tables()
    warehouse.record_run(run)
    try:
        bar = tqdm(total=0, unit="file", disable=not (show_progress() if progress is None else progress))
        unreadable: list[str] = []
        with worker_pool(workers) as pool:
            size = slice_files or max(SLICE_FILES, batch_size)
            loop = _Loop(warehouse, run, workers, pool, batch_size, size, bar, remember_found=prune)
            loop.touched_series |= warehouse.unbuilt_series()  # left by a run that stopped before its rebuild
            found = discover_files(roots, unreadable, other_entries=True)
            loop.harvest(_slices(found, size, first_size=min(size, FIRST_SLICE_FILES)))
            warehouse.end_walk(run.run_id)
            stored_roots = [text_location(str(root)) for root in roots]
            if prune:
                loop.remove_missing(stored_roots, unreadable)
            loop.read_orphaned_copies(stored_roots, every_copy=prune)
        bar.close()
        run.series_added, run.series_updated = warehouse.series_counts(run.run_id)
        run.status = "completed"
    except BaseException:
        run.status, run.ended_at = "failed", _utcnow()
        with contextlib.suppress(Exception):  # the error that stopped the run is the one to report
            warehouse.record_run(run)
        raise
    run.ended_at = _utcnow()
    warehouse.record_run(run)
    return run


def _slices(files: Iterable[FileRef], size: int, first_size: int) -> Iterator[list[FileRef]]:
    """Lists of `size` files, the first of `first_size`."""
    batch: list[FileRef] = []
    limit = first_size
    for ref in files:
        batch.append(ref)
        if len(batch) >= limit:
            yield batch
            batch, limit = [], size
    if batch:
        yield batch


class _Loop:
    """The harvest of a stream of slices: one pool of readers, one writer, series rebuilt once a
    slice's worth of files is in.

    A slice is selected when the workers need its first chunk, so they read it while the
    previous slice's last rows are written and its series rebuilt.
    """

    def __init__(
        self, warehouse: RawWarehouse, run: HarvestRun, workers: int, pool, batch_size: int, slice_files: int,
        bar: tqdm, remember_found: bool = False,
    ) -> None:
        self.warehouse, self.run, self.workers, self.pool = warehouse, run, workers, pool
        self.batch_size, self.slice_files, self.bar = batch_size, slice_files, bar
        self.remember_found = remember_found  # every file found goes to the warehouse (for pruning)
        self.selected: list[int] = []  # files selected for reading, per slice
        self.received: list[int] = []  # files read back, per slice
        self.completed = 0  # slices whose rows have all come back (written by the next flush)
        self.rebuilt = 0  # slices whose series are rebuilt
        self.pending: list[ChunkResult] = []
        self.touched_series: set[str] = set()
        self.headers: dict[str, str | None] = {}  # location -> DICOM JSON read by the workers since the last rebuild
        self.header_bytes = 0
        self.copies_to_check: set[str] = set()  # copies naming a file whose row this run replaced

    def harvest(self, slices: Iterable[list[FileRef]]) -> None:
        chunks = self._selected_chunks(slices)
        for number, result in run_chunks(read_numbered_chunk, chunks, self.workers, self.run.run_id, pool=self.pool):
            self.bar.update(result.files)
            self.received[number] += result.files
            self.pending.append(result)
            self._hold_headers(result.headers)
            slice_rebuild = self._rebuild_due()  # called every time: it keeps the count of completed slices current
            if self.header_bytes >= HEADER_BYTES_PER_REBUILD:  # one-file series: their headers fill memory, not their rows
                self._write()
                self._rebuild_series()
            elif slice_rebuild:
                self._write(aligned=True)
                self._rebuild_series()  # the series of the rows written; the few held wait for the next write
            elif self._batch_due():
                self._write(aligned=True)
        self._write()
        self._rebuild_series()

    def _selected_chunks(self, slices: Iterable[list[FileRef]]) -> Iterator[tuple[int, list[FileRef]]]:
        for number, files in enumerate(slices, start=len(self.selected)):  # numbers go on across calls
            if self.remember_found:
                self.warehouse.remember_found(self.run.run_id, files)
            changed = self.warehouse.select_changed(self.run.run_id, files)
            self.run.files_seen += len(files)
            self.run.files_unchanged += len(files) - len(changed)
            self.selected.append(len(changed))
            self.received.append(0)
            self.bar.total += len(changed)
            self.bar.refresh()
            for start in range(0, len(changed), CHUNK_FILES):
                yield number, changed[start : start + CHUNK_FILES]

    def _batch_due(self) -> bool:
        """Whether a batch's worth of instance rows, or of error rows, is pending."""
        return (sum(r.instances.num_rows for r in self.pending) >= self.batch_size
                or sum(r.errors.num_rows for r in self.pending) >= self.batch_size)

    def _rebuild_due(self) -> bool:
        """Whether to rebuild series now: a slice has completed, and the slices completed since
        the last rebuild hold a slice's worth of files (so the small first slice waits for the
        next one). This holds to the end of the walk, so no rebuild covers more than about a
        slice (a rebuild's memory grows with its rows)."""
        slice_completed = self._slice_completed()
        enough = sum(self.selected[self.rebuilt : self.completed]) >= self.slice_files
        return slice_completed and enough

    def _slice_completed(self) -> bool:
        """Whether the oldest open slices now have every row back (they count as completed)."""
        before = self.completed
        while self.completed < len(self.selected) and self.received[self.completed] == self.selected[self.completed]:
            self.completed += 1
        return self.completed > before

    def _write(self, aligned: bool = False) -> None:
        """Write the pending rows; with `aligned`, the instance rows in a multiple of the
        warehouse's `write_alignment` (DuckDB: whole row groups), the rest (fewer) held for the
        next write, and every error row. Only the end of the walk, or the header cap, writes an
        unaligned number."""
        rows = sum(r.instances.num_rows for r in self.pending)
        # a batch smaller than the alignment (as tests use) aligns to itself
        alignment = min(self.warehouse.write_alignment, self.batch_size) if aligned else 1
        taken = self._take_pending(rows - rows % alignment)
        if not any(r.files for r in taken):
            return
        instances = pa.concat_tables([r.instances for r in taken])
        errors = pa.concat_tables([r.errors for r in taken])
        del taken
        written = self.warehouse.write_batch(self.run.run_id, instances, errors)
        del instances, errors
        # Arrow's allocator keeps freed memory for reuse; a batch's rows are freed now, and the
        # series rebuild that may come next would otherwise peak on top of them.
        pa.default_memory_pool().release_unused()
        self.run.instances_added += written.instances_added
        self.run.instances_updated += written.instances_updated
        self.run.errors += written.errors
        self.touched_series |= written.touched_series
        self.copies_to_check.update(written.copies_to_check)

    def _take_pending(self, instance_rows: int) -> list[ChunkResult]:
        """The pending results' first `instance_rows` instance rows and all their error rows; the
        other instance rows stay pending, each with the headers its chunk read."""
        taken: list[ChunkResult] = []
        held: list[ChunkResult] = []
        left = instance_rows
        for result in self.pending:
            count = result.instances.num_rows
            if count <= left:
                taken.append(result)
                left -= count
                continue
            taken.append(ChunkResult(result.instances.slice(0, left), result.errors, {}))
            held.append(ChunkResult(result.instances.slice(left), result.errors.slice(0, 0), result.headers))
            left = 0
        self.pending = held
        return taken

    def remove_missing(self, roots: list[str], unreadable: list[str]) -> None:
        """Remove the rows of files the walk did not find, and rebuild (or drop) their series."""
        removed = self.warehouse.remove_missing(self.run.run_id, roots, unreadable)
        self.run.files_removed = removed.files_removed
        self.touched_series |= removed.touched_series
        self._rebuild_series()

    def read_orphaned_copies(self, roots: list[str], every_copy: bool = False) -> None:
        """Read again the copies of a SOP instance (duplicate error rows) whose kept file no longer
        holds that instance: the first copy then holds it, the others are duplicates of that one.

        The copies looked at are those naming a file this run replaced, or with `every_copy` (a
        pruning run: files were removed, and an earlier run may have stopped before this step)
        all of them. Run once the walk is over, when it has passed every copy. The counts stay
        those of the walk: a copy it skipped as unchanged is read after all, and one this run had
        read is no longer an error of it unless it is one again.
        """
        released = self.warehouse.release_orphaned_copies(None if every_copy else sorted(self.copies_to_check))
        self.copies_to_check = set()
        if not released:
            return
        self.remember_found = False  # not found by the walk (again)
        self.harvest([[FileRef(location) for location, _ in released]])
        self.run.files_seen -= len(released)
        skipped = [location for location, run_id in released if run_id != self.run.run_id and is_under(location, roots)]
        self.run.files_unchanged -= len(skipped)
        self.run.errors -= sum(run_id == self.run.run_id for _, run_id in released)

    def _hold_headers(self, headers: dict[str, str | None]) -> None:
        self.headers.update(headers)
        self.header_bytes += sum(len(text) for text in headers.values() if text)

    def _rebuild_series(self) -> None:
        """Rebuild the series the written rows touched, with the headers the workers read since
        the last rebuild.

        Each representative among the rows written so far is among those headers (a chunk's first
        rows are written first). Afterwards the headers are dropped, but for those of the rows
        still waiting for a write (fewer than a row group). A series whose representative was read
        before (its files span two rebuilds, or an earlier run read it) keeps its stored header
        where the writer can (DuckDB); otherwise its representative is read again from its file.
        """
        if self.touched_series:
            read = {location: header for location, header in self.headers.items() if header is not None}
            self.warehouse.refresh_series(self.run.run_id, self.touched_series, read)
            self.touched_series = set()
            _fill_series_headers(self.warehouse, self.workers, self.pool)
        self.headers, self.header_bytes = {}, 0
        for result in self.pending:  # rows still waiting for their batch: their series come next time
            self._hold_headers(result.headers)
        self.rebuilt = self.completed


def read_numbered_chunk(numbered: tuple[int, list[FileRef]], run_id: str) -> tuple[int, ChunkResult]:
    """`harvest_chunk` for a chunk tagged with its slice number (the tag comes back with the rows)."""
    number, files = numbered
    return number, harvest_chunk(files, run_id)


def read_header_jsons(locations: list[str]) -> dict[str, str | None]:
    """DICOM JSON of each file's header (location -> JSON, None when the file cannot be read)."""
    warnings.filterwarnings("ignore", module="pydicom")
    headers: dict[str, str | None] = {}
    for location in locations:
        try:
            with open(location, "rb") as fp:
                headers[location] = header_json(fp)
        except OSError:
            headers[location] = None
    return headers


def series_headers_chunk(series: list[tuple[str, str]]) -> dict[str, str | None]:
    """DICOM JSON of each series' representative file (series UID -> JSON)."""
    headers = read_header_jsons([location for _, location in series])
    return {series_uid: headers[location] for series_uid, location in series}


def _fill_series_headers(warehouse: RawWarehouse, workers: int, pool) -> None:
    """Read the header JSON of series still without one: their representative is a file this
    run did not read (or could not), so the rebuild had no header for it."""
    missing = warehouse.series_without_header()
    chunks = (missing[i : i + HEADER_CHUNK] for i in range(0, len(missing), HEADER_CHUNK))
    pending: dict[str, str | None] = {}
    for headers in run_chunks(series_headers_chunk, chunks, workers, pool=pool):
        pending.update(headers)
        if len(pending) >= HEADER_WRITE_BATCH:
            warehouse.set_series_headers(pending)
            pending = {}
    warehouse.set_series_headers(pending)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
