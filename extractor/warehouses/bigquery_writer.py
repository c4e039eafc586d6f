"""Raw tables in the identified BigQuery dataset (the production target).

Same behaviour as `DuckDBRawWarehouse` (the reference), written with google-cloud-bigquery:

- Rows reach BigQuery only through load jobs into staging tables
  (`imgomop_stage_<token>_<n>_<what>` in the identified dataset, one token per warehouse object,
  i.e. per run; each dropped right after use, leftovers in `close()`), then one MERGE per raw table moves them in. No streaming inserts.
- Load format: Parquet in production; CSV with an explicit schema when `api_endpoint` is set
  (the local emulator, crucible-emulator, loads nothing else). Both go through `_load()`; only
  the file encoding differs.
- No UPDATE/DELETE statements and no multi-statement transactions (the emulator refuses them):
  every change is one MERGE. A batch touches two tables (errors, then instances), so a crash
  between the two can leave one location in both tables; `select_changed` treats such a
  location as changed, and its re-harvest repairs both tables. The series a batch touches are
  inserted into `_harvest_unrebuilt` before its MERGEs and deleted (a MERGE) after their rebuild,
  so a crash in between leaves them for the next run to rebuild.
- BigQuery query parameters are not used (the emulator does not emulate them): the only value
  spliced into SQL is the run id, as an escaped string literal; file data only travels in loads.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery

from extractor.config import BigQueryTarget
from extractor.warehouses.base import BatchResult, FileRef, HarvestRun, text_location, with_stat
from extractor.warehouses.schema import ADDED_COLUMNS, HEADERS_READ, RAW_TABLES, Column
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

LOAD_FORMATS = ("PARQUET", "CSV")
STAGE_ROWS = 50_000  # rows per encoded block while spooling a load file
# Clustering only orders storage (no effect on results); the emulator records it, BigQuery applies it.
CLUSTER_BY = {
    "raw_dicom_instance": ("series_instance_uid", "location"),
    "raw_dicom_series": ("series_instance_uid",),
    "raw_harvest_error": ("location",),
}
CANDIDATE_COLUMNS: list[Column] = [("location", "STRING"), ("file_size", "INT64"), ("file_mtime_ns", "INT64")]
LOCATION_COLUMNS: list[Column] = [("location", "STRING")]
SERIES_UID_COLUMNS: list[Column] = [("series_instance_uid", "STRING")]
HEADER_COLUMNS: list[Column] = [("series_instance_uid", "STRING"), ("representative_header_json", "STRING")]
ARROW_TYPES = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    # UTC-adjusted, so a Parquet load lands in a TIMESTAMP column (not DATETIME)
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def make_client(target: BigQueryTarget) -> bigquery.Client:
    """A client for the target: anonymous against an emulator endpoint, default credentials otherwise."""
    if target.api_endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=target.project,
            location=target.location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=target.api_endpoint),
        )
    return bigquery.Client(project=target.project, location=target.location)


# --- load-file encoding (pure functions; the only part that differs between the two formats) ---


def bigquery_schema(columns: list[Column]) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(name, kind, mode="NULLABLE") for name, kind in columns]


def arrow_schema(columns: list[Column]) -> pa.Schema:
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in columns])


def _utc(value: datetime) -> datetime:
    """Naive datetimes are UTC throughout the harvest (as in the DuckDB tables)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def arrow_rows(rows: list[dict[str, Any]], columns: list[Column]) -> pa.Table:
    data = {
        name: [(_utc(r.get(name)) if kind == "TIMESTAMP" and r.get(name) is not None else r.get(name)) for r in rows]
        for name, kind in columns
    }
    return pa.Table.from_pydict(data, schema=arrow_schema(columns))


def csv_field(value: Any, kind: str) -> str:
    """One CSV field as BigQuery reads it: an unquoted empty field is NULL, strings always quoted."""
    if value is None:
        return ""
    if kind == "STRING":
        return '"' + str(value).replace('"', '""') + '"'
    if kind == "INT64":
        return str(int(value))
    if kind == "FLOAT64":
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return format(Decimal(repr(number)), "f")  # plain decimal digits, never 1e-05
    if kind == "TIMESTAMP":
        ts = _utc(value)
        return (
            f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d} "
            f"{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}.{ts.microsecond:06d}"
        )
    raise ValueError(f"no CSV encoding for column type {kind}")


def csv_rows(rows: list[dict[str, Any]], columns: list[Column]) -> tuple[bytes, bool]:
    """The rows as CSV (no header line), and whether a value holds a line break."""
    lines = [",".join(csv_field(r.get(name), kind) for name, kind in columns) for r in rows]
    text = "".join(line + "\n" for line in lines)
    has_newline = any("\n" in line or "\r" in line for line in lines)
    return text.encode("utf-8"), has_newline


class _LoadFile:
    """Rows spooled to a temporary file in the load format, block by block (memory stays flat)."""

    def __init__(self, columns: list[Column], load_format: str) -> None:
        self.columns = columns
        self.format = load_format
        self.file: IO[bytes] = tempfile.TemporaryFile()
        self.rows = 0
        self.quoted_newlines = False
        self._parquet: pq.ParquetWriter | None = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.rows += len(rows)
        if self.format == "CSV":
            data, newline = csv_rows(rows, self.columns)
            self.file.write(data)
            self.quoted_newlines |= newline
            return
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.file, arrow_schema(self.columns), compression="snappy")
        self._parquet.write_table(arrow_rows(rows, self.columns))

    def finish(self) -> IO[bytes]:
        if self._parquet is not None:
            self._parquet.close()
        self.file.seek(0)
        return self.file

    def job_config(self) -> bigquery.LoadJobConfig:
        config = bigquery.LoadJobConfig(
            source_format=self.format,
            schema=bigquery_schema(self.columns),
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        if self.format == "CSV" and self.quoted_newlines:
            # Only when needed: BigQuery reads quoted line breaks with this flag; the emulator refuses it.
            config.allow_quoted_newlines = True
        return config


def _literal(text: str) -> str:
    """A BigQuery string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _empty_relation(columns: list[Column]) -> str:
    body = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns)
    return f"(SELECT {body} LIMIT 0)"


class BigQueryRawWarehouse:
    """The raw tables in `target.identified_dataset`. One object serves one harvest run."""

    write_alignment = 1  # a load job takes any number of rows

    def __init__(
        self,
        target: BigQueryTarget,
        load_format: str | None = None,
        client: bigquery.Client | None = None,
    ) -> None:
        if load_format is None:
            load_format = "CSV" if target.api_endpoint else "PARQUET"
        load_format = load_format.upper()
        if load_format not in LOAD_FORMATS:
            raise ValueError(f"load_format={load_format!r}; use one of {', '.join(LOAD_FORMATS)}")
        self.target = target
        self.load_format = load_format
        self.client = client or make_client(target)
        self.dataset = f"{target.project}.{target.identified_dataset}"
        self.token = uuid.uuid4().hex[:12]
        self._staged: set[str] = set()
        self._stage_count = 0
        self._found: list[str] = []  # staging tables of the locations this run found (harvest --prune)
        self._headers_checked = False  # whether series_without_header has looked at the whole table
        self._rebuilt_without_header: list[tuple[str, str]] = []  # rows the last rebuild wrote without a header

    # --- helpers --------------------------------------------------------------------------

    def _table(self, name: str) -> str:
        return f"`{self.dataset}.{name}`"

    def _query(self, sql: str) -> bigquery.table.RowIterator:
        return self.client.query(sql).result()

    def _stage_name(self, what: str) -> str:
        """A new table per use: BigQuery's daily limit on table operations (loads, CTAS) is per table."""
        self._stage_count += 1
        return f"imgomop_stage_{self.token}_{self._stage_count}_{what}"

    def _load(self, what: str, columns: list[Column], blocks: Iterable[list[dict[str, Any]]]) -> tuple[str, int]:
        """Load the rows into a fresh staging table; return (SQL relation, row count).

        With no rows, no job runs and the relation is an empty typed subquery.
        """
        spool = _LoadFile(columns, self.load_format)
        try:
            for block in blocks:
                spool.add(block)
            if spool.rows == 0:
                return _empty_relation(columns), 0
            name = self._stage_name(what)
            self._staged.add(name)
            job = self.client.load_table_from_file(
                spool.finish(), f"{self.dataset}.{name}", job_config=spool.job_config(), rewind=True
            )
            job.result()
            return self._table(name), spool.rows
        finally:
            spool.file.close()

    def _create_stage_as(self, what: str, select_sql: str) -> str:
        """A staging table from a query; returns its name (unquoted, as `_staged` holds it)."""
        name = self._stage_name(what)
        self._staged.add(name)
        self._query(f"CREATE TABLE {self._table(name)} AS {select_sql}")
        return name

    def _drop_stages(self, names: Iterable[str]) -> None:
        for name in sorted(names):
            self._staged.discard(name)
            self.client.delete_table(f"{self.dataset}.{name}", not_found_ok=True)

    def _merge_replace_sql(self, table: str, key: str, columns: list[Column], keys_sql: str, rows_sql: str) -> str:
        """Replace the rows whose key is in `keys_sql` by those of `rows_sql` (a key with no row
        there is deleted): the DELETE + INSERT of the DuckDB writer as one MERGE."""
        names = [name for name, _ in columns]
        sets = ", ".join(f"{n} = s.{n}" for n in names if n != key)
        return f"""
MERGE {self._table(table)} AS t
USING (
    SELECT k._merge_key, r.* FROM (SELECT DISTINCT {key} AS _merge_key FROM ({keys_sql})) AS k
    LEFT JOIN ({rows_sql}) AS r ON r.{key} = k._merge_key
) AS s
ON t.{key} = s._merge_key
WHEN MATCHED AND s.{key} IS NOT NULL THEN UPDATE SET {sets}
WHEN MATCHED THEN DELETE
WHEN NOT MATCHED AND s.{key} IS NOT NULL THEN INSERT ({", ".join(names)}) VALUES ({", ".join("s." + n for n in names)})
"""

    # --- schema ---------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        dataset = bigquery.Dataset(self.dataset)
        dataset.location = self.target.location
        self.client.create_dataset(dataset, exists_ok=True)
        for table, columns in RAW_TABLES.items():
            body = ", ".join(f"{name} {kind}" for name, kind in columns)
            cluster = f" CLUSTER BY {', '.join(CLUSTER_BY[table])}" if table in CLUSTER_BY else ""
            self._query(f"CREATE TABLE IF NOT EXISTS {self._table(table)} ({body}){cluster}")
        for table, columns in ADDED_COLUMNS.items():
            added = ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in columns)
            self._query(f"ALTER TABLE {self._table(table)} {added}")
        self._query(f"CREATE TABLE IF NOT EXISTS {self._table(UNREBUILT_TABLE)} (series_instance_uid STRING)")

    # --- incremental selection ------------------------------------------------------------

    def select_changed(self, run_id: str, files: list[FileRef]) -> list[FileRef]:
        files = [with_stat(f.location) for f in files]  # the comparison runs in BigQuery
        found_as = {text_location(f.location): f.location for f in files}  # as stored -> as found
        staged_before = set(self._staged)
        candidates, _ = self._load("candidates", CANDIDATE_COLUMNS, _candidate_blocks(files))
        pending = self._create_stage_as(
            "pending",
            f"""
            SELECT c.*
            FROM (SELECT DISTINCT * FROM {candidates}) AS c
            WHERE NOT (
                (EXISTS (SELECT 1 FROM {self._table("raw_dicom_instance")} k
                         WHERE k.location = c.location AND k.file_size = c.file_size
                           AND k.file_mtime_ns = c.file_mtime_ns)
                 AND NOT EXISTS (SELECT 1 FROM {self._table("raw_harvest_error")} e WHERE e.location = c.location))
                OR
                (EXISTS (SELECT 1 FROM {self._table("raw_harvest_error")} k
                         WHERE k.location = c.location AND k.file_size = c.file_size
                           AND k.file_mtime_ns = c.file_mtime_ns)
                 AND NOT EXISTS (SELECT 1 FROM {self._table("raw_dicom_instance")} i WHERE i.location = c.location))
            )
            """,
        )
        rows = self._query(f"SELECT location, file_size, file_mtime_ns FROM {self._table(pending)} ORDER BY location")
        changed = [FileRef(found_as[row[0]], row[1], row[2]) for row in rows]
        self._drop_stages(self._staged - staged_before)
        return changed

    def end_walk(self, run_id: str) -> None:
        pass  # each look-up is one query over the tables as they are

    # --- writes ---------------------------------------------------------------------------

    def write_batch(self, run_id: str, instances_table: pa.Table, errors_table: pa.Table) -> BatchResult:
        instances, errors = instances_table.to_pylist(), errors_table.to_pylist()
        instance_columns = RAW_TABLES["raw_dicom_instance"]
        error_columns = RAW_TABLES["raw_harvest_error"]
        result = BatchResult()
        staged_before = set(self._staged)
        try:
            batch, _ = self._load("instances", instance_columns, [instances])
            batch_errors, _ = self._load("errors", error_columns, [errors])
            locations = f"SELECT location FROM {batch} UNION DISTINCT SELECT location FROM {batch_errors}"
            instance = self._table("raw_dicom_instance")
            duplicates = self._table(
                self._create_stage_as("duplicates", self._duplicates_sql(run_id, batch, locations))
            )
            result.touched_series = self._remember_unrebuilt(  # before the rows: no transaction holds both
                f"SELECT series_instance_uid FROM {instance} WHERE location IN ({locations}) UNION DISTINCT "
                f"SELECT series_instance_uid FROM {batch} WHERE location NOT IN (SELECT location FROM {duplicates})"
            )
            counts = next(
                iter(
                    self._query(
                        f"SELECT (SELECT COUNT(*) FROM {instance} WHERE location IN (SELECT location FROM {batch})) "
                        f"AS updated, (SELECT COUNT(*) FROM {duplicates}) AS duplicates, "
                        f"(SELECT COUNT(*) FROM {instance} WHERE location IN ({locations})) AS replaced"
                    )
                )
            )
            if counts["replaced"]:  # copies may name a replaced instance row as their instance's file
                copies = self._query(copies_of_sql(self._table("raw_harvest_error"), f"({locations})"))
                result.copies_to_check = [row["location"] for row in copies]
            error_names = ", ".join(name for name, _ in error_columns)
            # errors first, then instances: see the module docstring for why this order is safe
            self._query(
                self._merge_replace_sql(
                    "raw_harvest_error",
                    "location",
                    error_columns,
                    locations,
                    f"SELECT {error_names} FROM {batch_errors} UNION ALL SELECT {error_names} FROM {duplicates}",
                )
            )
            self._query(
                self._merge_replace_sql(
                    "raw_dicom_instance",
                    "location",
                    instance_columns,
                    locations,
                    f"SELECT * FROM {batch} WHERE location NOT IN (SELECT location FROM {duplicates})",
                )
            )
        finally:
            self._drop_stages(self._staged - staged_before)
        result.instances_updated = counts["updated"]
        result.errors = len(errors) + counts["duplicates"]
        result.instances_added = len(instances) - counts["duplicates"] - result.instances_updated
        return result

    def _duplicates_sql(self, run_id: str, batch: str, locations: str) -> str:
        return duplicate_sop_rows_sql(batch, self._table("raw_dicom_instance"), _literal(run_id), locations)

    def refresh_series(self, run_id: str, touched_series: set[str], headers: dict[str, str]) -> None:
        series_columns = RAW_TABLES["raw_dicom_series"]
        instance, series = self._table("raw_dicom_instance"), self._table("raw_dicom_series")
        run = _literal(run_id)
        staged_before = set(self._staged)
        try:
            touched, _ = self._load(
                "touched_series", SERIES_UID_COLUMNS, [[{"series_instance_uid": uid} for uid in sorted(touched_series)]]
            )
            headers_read, _ = self._load(
                "headers_read", HEADERS_READ, [[{"location": loc, "header_json": text} for loc, text in headers.items()]]
            )
            new_series = self._table(
                self._create_stage_as("new_series", new_series_rows_sql(instance, series, touched, headers_read, run))
            )
            self._query(
                self._merge_replace_sql(
                    "raw_dicom_series",
                    "series_instance_uid",
                    series_columns,
                    f"SELECT series_instance_uid FROM {touched}",
                    f"SELECT * FROM {new_series}",
                )
            )
            # every series written to since the last rebuild is rebuilt now (the harvest passes them all)
            self._query(f"MERGE {self._table(UNREBUILT_TABLE)} AS t USING (SELECT 1 AS one) AS s ON TRUE WHEN MATCHED THEN DELETE")
            if self._headers_checked:  # the rest of the table was looked at already (series_without_header)
                self._rebuilt_without_header = self._rows_without_header(new_series)
        finally:
            self._drop_stages(self._staged - staged_before)

    def _remember_unrebuilt(self, series_sql: str) -> set[str]:
        """These series wait for a rebuild (UNREBUILT_TABLE); returns them. Written before the rows
        that touch them, and emptied after the rebuild is written, so a run that stops anywhere in
        between leaves them to the next run (at worst a series is rebuilt once more than needed).

        The query runs once, into a staging table: it scans the instance table, which BigQuery
        bills by the bytes read."""
        series = f"SELECT series_instance_uid FROM {self._table(self._create_stage_as('touched', series_sql))}"
        self._query(f"INSERT INTO {self._table(UNREBUILT_TABLE)} (series_instance_uid) {series}")
        return {row["series_instance_uid"] for row in self._query(series)}

    def unbuilt_series(self) -> set[str]:
        instance, series = self._table("raw_dicom_instance"), self._table("raw_dicom_series")
        return {row[0] for row in self._query(unbuilt_series_sql(instance, series, self._table(UNREBUILT_TABLE)))}

    def series_counts(self, run_id: str) -> tuple[int, int]:
        row = next(iter(self._query(series_counts_sql(self._table("raw_dicom_series"), _literal(run_id)))))
        return row["added"], row["updated"]

    def series_without_header(self) -> list[tuple[str, str]]:
        """Series whose header is missing. Called after each rebuild: the first time it looks at
        the whole table (a stopped run can leave some), then only at the rows the last rebuild
        wrote: a query of the header column is billed for the whole column, which grows with the
        archive."""
        if not self._headers_checked:
            self._headers_checked = True
            return self._rows_without_header(self._table("raw_dicom_series"))
        rows, self._rebuilt_without_header = self._rebuilt_without_header, []
        return rows

    def _rows_without_header(self, series: str) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in self._query(series_without_header_sql(series))]

    def set_series_headers(self, headers: dict[str, str | None]) -> None:
        if not headers:
            return
        rows = [{"series_instance_uid": uid, "representative_header_json": text} for uid, text in headers.items()]
        staged_before = set(self._staged)
        try:
            staged, _ = self._load("headers", HEADER_COLUMNS, [rows])
            self._query(
                f"""
MERGE {self._table("raw_dicom_series")} AS t
USING (SELECT * FROM {staged}) AS s
ON t.series_instance_uid = s.series_instance_uid
WHEN MATCHED THEN UPDATE SET representative_header_json = s.representative_header_json
"""
            )
        finally:
            self._drop_stages(self._staged - staged_before)

    def record_run(self, run: HarvestRun) -> None:
        columns = RAW_TABLES["raw_harvest_run"]
        staged_before = set(self._staged)
        try:
            staged, _ = self._load("run", columns, [[run.as_row()]])
            self._query(
                self._merge_replace_sql(
                    "raw_harvest_run", "run_id", columns, f"SELECT run_id FROM {staged}", f"SELECT * FROM {staged}"
                )
            )
        finally:
            self._drop_stages(self._staged - staged_before)

    # --- files no longer found (harvest --prune) ---------------------------------------------

    def remember_found(self, run_id: str, files: list[FileRef]) -> None:
        """One load per slice; the staging tables stay until `remove_missing` (or `close`)."""
        staged_before = set(self._staged)
        self._load("found", LOCATION_COLUMNS, [[{"location": text_location(f.location)} for f in files]])
        self._found += sorted(self._staged - staged_before)

    def remove_missing(self, run_id: str, roots: list[str], unreadable: list[str]) -> BatchResult:
        result = BatchResult()
        staged_before = set(self._staged)
        try:
            root_rows, skipped_rows = prune_rows(roots, unreadable, "/")
            roots_table, _ = self._load("roots", PRUNE_ROOT_COLUMNS, [root_rows])
            skipped, _ = self._load("skipped", PRUNE_SKIPPED_COLUMNS, [skipped_rows])
            union = " UNION ALL ".join(f"SELECT location FROM {self._table(name)}" for name in self._found)
            found = f"({union})" if union else _empty_relation(LOCATION_COLUMNS)
            missing = [
                missing_locations_sql(self._table(t), roots_table, skipped, found)
                for t in ("raw_dicom_instance", "raw_harvest_error")
            ]
            gone = self._table(self._create_stage_as("gone", f"{missing[0]} UNION DISTINCT {missing[1]}"))
            instance = self._table("raw_dicom_instance")
            result.touched_series = self._remember_unrebuilt(
                f"SELECT DISTINCT series_instance_uid FROM {instance} WHERE location IN (SELECT location FROM {gone})"
            )
            result.files_removed = next(iter(self._query(f"SELECT COUNT(*) AS n FROM {gone}")))["n"]
            for table in ("raw_harvest_error", "raw_dicom_instance"):
                self._delete_locations(table, gone)
        finally:
            self._drop_stages((self._staged - staged_before) | set(self._found))
            self._found = []
        return result

    def release_orphaned_copies(self, locations: list[str] | None) -> list[tuple[str, str]]:
        if locations == []:
            return []
        staged_before = set(self._staged)
        try:
            copies = None
            if locations is not None:
                copies, _ = self._load("copies", LOCATION_COLUMNS, [[{"location": location} for location in locations]])
            instance, errors = self._table("raw_dicom_instance"), self._table("raw_harvest_error")
            orphans = self._table(self._create_stage_as("orphans", orphaned_copies_sql(errors, instance, copies)))
            released = [(row["location"], row["run_id"]) for row in self._query(f"SELECT location, run_id FROM {orphans}")]
            self._delete_locations("raw_harvest_error", orphans)
        finally:
            self._drop_stages(self._staged - staged_before)
        return sorted(released)

    def _delete_locations(self, table: str, locations: str) -> None:
        """Delete the rows of `table` at the locations of the `locations` table."""
        self._query(
            f"MERGE {self._table(table)} AS t USING {locations} AS s ON t.location = s.location WHEN MATCHED THEN DELETE"
        )

    def close(self) -> None:
        try:
            self._drop_stages(set(self._staged))
        finally:
            self.client.close()


def _candidate_blocks(files: Iterable[FileRef]) -> Iterator[list[dict[str, Any]]]:
    block: list[dict[str, Any]] = []
    for ref in files:
        block.append({"location": text_location(ref.location), "file_size": ref.file_size, "file_mtime_ns": ref.file_mtime_ns})
        if len(block) >= STAGE_ROWS:
            yield block
            block = []
    if block:
        yield block
