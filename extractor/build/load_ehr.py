"""`imgomop load-ehr DIR`: EHR OMOP tables and the imaging-order crosswalk into the identified warehouse.

Files are found by table name, any case, as .csv, .csv.gz or .parquet (PERSON.csv, person.parquet).
Every table is checked before anything is replaced: a missing required table or column, or a value
of the wrong type, stops the load with a message naming the file, the column and the fix.

Two targets, one validation: `load_ehr` (DuckDB) and `load_ehr_bigquery` both read and type every
file with DuckDB (`_stage_table`). The BigQuery path then loads each typed table through the raw
writer's load path (extractor/warehouses/bigquery_writer.py: CSV against the emulator, Parquet
otherwise) into a staging table of the identified dataset, and only when every load has succeeded
replaces the EHR tables, one CREATE OR REPLACE TABLE ... AS SELECT each (BigQuery has no
multi-table transaction; a failure there leaves each table either old or new, never half-written).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from extractor.build.ehr_tables import EHR_TABLES, EhrTable

if TYPE_CHECKING:
    from google.cloud import bigquery

    from extractor.config import BigQueryTarget

SUFFIXES = (".csv", ".csv.gz", ".parquet")


class EhrLoadError(ValueError):
    """A problem in the EHR input; the message names the file and the fix."""


@dataclass(frozen=True)
class LoadedTable:
    name: str
    source: Path | None  # None: created empty
    rows: int


def find_table_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise EhrLoadError(f"{directory}: not a folder (give the folder that holds person.csv, imaging_order.csv, ...)")
    by_name: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        lower = path.name.lower()
        for suffix in SUFFIXES:
            if lower.endswith(suffix):
                by_name.setdefault(lower[: -len(suffix)], path)
    return by_name


def load_ehr(directory: Path, con: duckdb.DuckDBPyConnection) -> list[LoadedTable]:
    """Validate every table first, then replace them all in one transaction."""
    staged = _stage_all(directory, con)
    con.execute("BEGIN TRANSACTION")
    try:
        loaded = []
        for table, path in staged:
            if path is None:
                body = ", ".join(f"{c} {t}" for c, t in table.columns.items())
                con.execute(f"CREATE OR REPLACE TABLE {table.name} ({body})")
            else:
                con.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT * FROM _ehr_stage_{table.name}")
            rows = con.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0]
            loaded.append(LoadedTable(table.name, path, rows))
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return loaded


def _stage_all(directory: Path, con: duckdb.DuckDBPyConnection) -> list[tuple[EhrTable, Path | None]]:
    """Every table file read, checked and typed into a temp table `_ehr_stage_<name>`; the tables
    with no file are listed with path None."""
    files = find_table_files(directory)
    missing = [t.name for t in EHR_TABLES if t.required and t.name not in files]
    if missing:
        raise EhrLoadError(
            f"{directory}: missing required table file(s): {', '.join(f'{m}.csv' for m in missing)} "
            f"(found: {', '.join(sorted(files)) or 'nothing'})"
        )
    staged: list[tuple[EhrTable, Path | None]] = []
    for table in EHR_TABLES:
        path = files.get(table.name)
        if path is not None:
            _stage_table(con, table, path)
        staged.append((table, path))
    return staged


# --- BigQuery -----------------------------------------------------------------------------------

# ehr_tables.py types (DuckDB) -> BigQuery column types of the loaded tables.
BIGQUERY_TYPES = {"BIGINT": "INT64", "VARCHAR": "STRING", "DOUBLE": "FLOAT64", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP"}
# How a column travels in the load file when that differs from its table type. The raw writer's
# encoders (csv_field, ARROW_TYPES) know no DATE yet, so a DATE travels as its ISO text and the
# final CREATE TABLE AS casts it back. TIMESTAMP stays TIMESTAMP (the emulator cannot load DATETIME
# columns): EHR timestamps are naive and are written as UTC, i.e. the same wall-clock value as on DuckDB.
LOAD_AS = {"DATE": "STRING"}
BQ_BLOCK_ROWS = 50_000  # rows per block read from DuckDB and encoded into the load file


def bigquery_columns(table: EhrTable) -> list[tuple[str, str]]:
    """The table's columns with their BigQuery types."""
    return [(name, BIGQUERY_TYPES[kind]) for name, kind in table.columns.items()]


def load_ehr_bigquery(
    directory: Path, target: BigQueryTarget, client: bigquery.Client | None = None
) -> list[LoadedTable]:
    """Validate and type every table with DuckDB (as `load_ehr`), load each into a staging table of
    the identified dataset, then, only when all loads succeeded, replace the EHR tables from them."""
    from google.cloud import bigquery

    from extractor.build.bigquery_setup import load_format
    from extractor.warehouses.bigquery_writer import make_client

    con = duckdb.connect()  # in memory: only the typed temp tables
    own_client = client is None
    client = client or make_client(target)
    dataset_id = f"{target.project}.{target.identified_dataset}"
    token = uuid.uuid4().hex[:12]
    stages: list[str] = []
    try:
        staged = _stage_all(directory, con)
        dataset = bigquery.Dataset(dataset_id)
        dataset.location = target.location
        client.create_dataset(dataset, exists_ok=True)
        fmt = load_format(target)
        loads: list[tuple[EhrTable, Path | None, str | None, int]] = []
        for table, path in staged:
            if path is None:
                loads.append((table, None, None, 0))
                continue
            stage = f"imgomop_stage_ehr_{token}_{table.name}"
            stages.append(stage)
            rows = _load_typed_table(client, f"{dataset_id}.{stage}", con, table, path, fmt)
            loads.append((table, path, stage if rows else None, rows))
        loaded = []
        for table, path, stage, rows in loads:
            client.query(_replace_table_sql(dataset_id, table, stage)).result()
            loaded.append(LoadedTable(table.name, path, rows))
        return loaded
    finally:
        try:
            for stage in stages:
                client.delete_table(f"{dataset_id}.{stage}", not_found_ok=True)
        finally:
            con.close()
            if own_client:
                client.close()


def _replace_table_sql(dataset_id: str, table: EhrTable, stage: str | None) -> str:
    """CREATE OR REPLACE the EHR table with its BigQuery types: from the staging table, or empty."""
    columns = bigquery_columns(table)
    final = f"`{dataset_id}.{table.name}`"
    if stage is None:
        return f"CREATE OR REPLACE TABLE {final} ({', '.join(f'{name} {kind}' for name, kind in columns)})"
    select = ", ".join(f"CAST({name} AS {kind}) AS {name}" if kind in LOAD_AS else name for name, kind in columns)
    return f"CREATE OR REPLACE TABLE {final} AS SELECT {select} FROM `{dataset_id}.{stage}`"


def _load_typed_table(
    client: bigquery.Client, table_id: str, con: duckdb.DuckDBPyConnection, table: EhrTable, path: Path, fmt: str
) -> int:
    """Load the typed temp table `_ehr_stage_<name>` into `table_id` with the raw writer's load file
    (its encoders, job config and explicit schema); return the row count (0: nothing loaded)."""
    from extractor.warehouses.bigquery_writer import _LoadFile

    names = list(table.columns)
    load_columns = [(name, LOAD_AS.get(kind, kind)) for name, kind in bigquery_columns(table)]
    as_text = [name for name, kind in bigquery_columns(table) if kind in LOAD_AS]
    spool = _LoadFile(load_columns, fmt)
    try:
        cursor = con.execute(f"SELECT {', '.join(names)} FROM _ehr_stage_{table.name}")
        while block := cursor.fetchmany(BQ_BLOCK_ROWS):
            rows = [dict(zip(names, values)) for values in block]
            for row in rows:
                for name in as_text:
                    if row[name] is not None:
                        row[name] = row[name].isoformat()
            spool.add(rows)
        if spool.rows == 0:
            return 0
        try:
            client.load_table_from_file(spool.finish(), table_id, job_config=spool.job_config(), rewind=True).result()
        except Exception as exc:  # noqa: BLE001 - reported with the file the rows came from
            raise EhrLoadError(f"{path}: loading table {table.name} into BigQuery {table_id} failed: {_first_line(exc)}") from exc
        return spool.rows
    finally:
        spool.file.close()


def _stage_table(con: duckdb.DuckDBPyConnection, table: EhrTable, path: Path) -> None:
    """Read one file into a typed temp table with exactly the table's columns."""
    reader = _reader_sql(path)
    try:
        present = {row[0].lower(): row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
    except duckdb.Error as exc:
        raise EhrLoadError(f"{path}: cannot be read as {path.suffix.lstrip('.')}: {_first_line(exc)}") from exc
    missing = [c for c in table.required_columns if c not in present]
    if missing:
        raise EhrLoadError(
            f"{path}: missing required column(s) {', '.join(missing)} for table {table.name} "
            f"(columns found: {', '.join(sorted(present))})"
        )
    selects = [
        f'CAST("{present[c]}" AS {kind}) AS {c}' if c in present else f"CAST(NULL AS {kind}) AS {c}"
        for c, kind in table.columns.items()
    ]
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _ehr_stage_{table.name} AS SELECT {', '.join(selects)} FROM {reader}")
    except duckdb.ConversionException as exc:
        raise EhrLoadError(f"{path}: {_describe_bad_value(con, table, present, reader) or _first_line(exc)}") from exc
    except duckdb.Error as exc:
        raise EhrLoadError(f"{path}: cannot be loaded into {table.name}: {_first_line(exc)}") from exc


def _describe_bad_value(con: duckdb.DuckDBPyConnection, table: EhrTable, present: dict[str, str], reader: str) -> str | None:
    """Name the first column with a value that does not convert, with the value and its row."""
    for column, kind in table.columns.items():
        if column not in present:
            continue
        source = f'"{present[column]}"'
        bad = con.execute(
            f"SELECT row_number, value FROM (SELECT ROW_NUMBER() OVER () AS row_number, {source} AS value FROM {reader}) "
            f"WHERE value IS NOT NULL AND TRY_CAST(value AS {kind}) IS NULL LIMIT 1"
        ).fetchone()
        if bad:
            return f"column {column}: {bad[1]!r} on data row {bad[0]} is not a valid {kind}"
    return None


def _reader_sql(path: Path) -> str:
    quoted = str(path).replace("'", "''")
    if path.name.lower().endswith(".parquet"):
        return f"read_parquet('{quoted}')"
    # every column as text; the CAST above types them and reports the column that does not fit
    return f"read_csv('{quoted}', header = true, all_varchar = true)"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
