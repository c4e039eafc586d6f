"""Raw tables in the identified DuckDB file (the embedded default)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from extractor.warehouses.base import BatchResult, FileRef, HarvestRun
from extractor.warehouses.schema import PRIMARY_KEYS, RAW_TABLES, to_arrow
from extractor.warehouses.series_sql import duplicate_sop_rows_sql, new_series_rows_sql, series_counts_sql

DUCKDB_TYPES = {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "TIMESTAMP": "TIMESTAMP"}
STAGE_ROWS = 50_000
PAGE_ROWS = 10_000  # pending files fetched per query
# DuckDB caches table blocks up to its memory limit (80% of RAM by default); the harvest needs
# little, and a fixed cap keeps its memory from growing with the archive.
MEMORY_LIMIT = "256MB"


class DuckDBRawWarehouse:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = duckdb.connect(str(path), config={"memory_limit": MEMORY_LIMIT})
        self._replaces_rows = True  # until select_changed knows better

    # --- schema ---------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        for table, columns in RAW_TABLES.items():
            body = ", ".join(f"{name} {DUCKDB_TYPES[kind]}" for name, kind in columns)
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body}, PRIMARY KEY ({PRIMARY_KEYS[table]}))")

    # --- incremental selection ------------------------------------------------------------

    def select_changed(self, files: Iterable[FileRef]) -> tuple[int, int]:
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _candidates (location VARCHAR, file_size BIGINT, file_mtime_ns BIGINT)"
        )
        batch: list[FileRef] = []
        for ref in files:
            batch.append(ref)
            if len(batch) >= STAGE_ROWS:
                self._stage(batch)
                batch = []
        self._stage(batch)
        # The rows already held for these locations. Inner joins, so DuckDB builds its hash table
        # on the candidates and streams the raw tables past it: memory follows the slice, not the archive.
        self.con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _known AS
            SELECT k.location, k.file_size, k.file_mtime_ns
            FROM raw_dicom_instance AS k JOIN (SELECT DISTINCT location FROM _candidates) AS c ON k.location = c.location
            UNION ALL
            SELECT k.location, k.file_size, k.file_mtime_ns
            FROM raw_harvest_error AS k JOIN (SELECT DISTINCT location FROM _candidates) AS c ON k.location = c.location
            """
        )
        self.con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _pending AS
            SELECT c.*, ROW_NUMBER() OVER (ORDER BY c.location) AS rn
            FROM (SELECT DISTINCT * FROM _candidates) AS c
            WHERE NOT EXISTS (
                SELECT 1 FROM _known k
                WHERE k.location = c.location AND k.file_size = c.file_size AND k.file_mtime_ns = c.file_mtime_ns)
            """
        )
        # Whether any pending file replaces a row: if none does, batches skip the replacement queries.
        self._replaces_rows = self.con.execute(
            "SELECT EXISTS (SELECT 1 FROM _pending p WHERE p.location IN (SELECT location FROM _known))"
        ).fetchall()[0][0]
        total = self.con.execute("SELECT COUNT(DISTINCT location) FROM _candidates").fetchone()[0]
        changed = self.con.execute("SELECT COUNT(*) FROM _pending").fetchone()[0]
        return changed, total - changed

    def _stage(self, batch: list[FileRef]) -> None:
        if not batch:
            return
        table = pa.table(
            {
                "location": [f.location for f in batch],
                "file_size": pa.array([f.file_size for f in batch], pa.int64()),
                "file_mtime_ns": pa.array([f.file_mtime_ns for f in batch], pa.int64()),
            }
        )
        self.con.register("_stage_batch", table)
        self.con.execute("INSERT INTO _candidates SELECT * FROM _stage_batch")
        self.con.unregister("_stage_batch")

    def changed_files(self, chunk_size: int) -> Iterator[list[FileRef]]:
        """The pending files in chunks, read a page of PAGE_ROWS at a time (memory stays bounded)."""
        start = 0
        while True:
            rows = self.con.execute(
                "SELECT location, file_size, file_mtime_ns FROM _pending WHERE rn > ? AND rn <= ? ORDER BY rn",
                [start, start + PAGE_ROWS],
            ).fetchall()
            if not rows:
                return
            for i in range(0, len(rows), chunk_size):
                yield [FileRef(*row) for row in rows[i : i + chunk_size]]
            start += PAGE_ROWS

    # --- writes ---------------------------------------------------------------------------

    def write_batch(self, run_id: str, instances: pa.Table, errors: pa.Table) -> BatchResult:
        result = BatchResult()
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_instances", instances)
            con.register("_errors", errors)
            if self._replaces_rows:
                self._remove_replaced_rows(result)
            duplicates = self._duplicate_sop_instances(run_id)
            written = con.execute(
                "SELECT DISTINCT series_instance_uid FROM _instances WHERE location NOT IN (SELECT location FROM _duplicates)"
            ).fetchall()
            result.touched_series |= {row[0] for row in written}
            con.execute(
                "INSERT INTO raw_harvest_error BY NAME "
                "SELECT * FROM _errors UNION ALL BY NAME SELECT * FROM _duplicates"
            )
            con.execute(
                "INSERT INTO raw_dicom_instance BY NAME SELECT * FROM _instances "
                "WHERE location NOT IN (SELECT location FROM _duplicates)"
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            for view in ("_instances", "_errors"):
                con.unregister(view)
        result.errors = errors.num_rows + duplicates
        result.instances_added = instances.num_rows - duplicates - result.instances_updated
        return result

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
        result.instances_updated = con.execute(
            "SELECT COUNT(*) FROM raw_dicom_instance WHERE location IN (SELECT location FROM _instances)"
        ).fetchone()[0]
        con.execute("DELETE FROM raw_dicom_instance WHERE location IN (SELECT location FROM _locations)")
        con.execute("DELETE FROM raw_harvest_error WHERE location IN (SELECT location FROM _locations)")

    def _duplicate_sop_instances(self, run_id: str) -> int:
        """A SOP Instance UID already harvested from another file (or twice in this batch) is an error row."""
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _duplicates AS "
            + duplicate_sop_rows_sql("_instances", "raw_dicom_instance", "$run_id"),
            {"run_id": run_id},
        )
        return self.con.execute("SELECT COUNT(*) FROM _duplicates").fetchone()[0]

    def refresh_series(self, run_id: str, touched_series: set[str]) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _touched AS SELECT unnest(?::VARCHAR[]) AS series_instance_uid",
                [sorted(touched_series)],
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _new_series AS "
                + new_series_rows_sql("raw_dicom_instance", "raw_dicom_series", "_touched", "$run_id"),
                {"run_id": run_id},
            )
            con.execute("DELETE FROM raw_dicom_series WHERE series_instance_uid IN (SELECT series_instance_uid FROM _touched)")
            con.execute("INSERT INTO raw_dicom_series SELECT * FROM _new_series")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise

    def series_counts(self, run_id: str) -> tuple[int, int]:
        added, updated = self.con.execute(series_counts_sql("raw_dicom_series", "$run_id"), {"run_id": run_id}).fetchall()[0]
        return added, updated

    def series_without_header(self) -> list[tuple[str, str]]:
        return self.con.execute(
            "SELECT series_instance_uid, representative_location FROM raw_dicom_series "
            "WHERE representative_header_json IS NULL ORDER BY 1"
        ).fetchall()

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

    def record_run(self, run: HarvestRun) -> None:
        self.con.register("_run", to_arrow([run.as_row()], RAW_TABLES["raw_harvest_run"]))
        self.con.execute("INSERT OR REPLACE INTO raw_harvest_run BY NAME SELECT * FROM _run")
        self.con.unregister("_run")

    def close(self) -> None:
        self.con.close()
