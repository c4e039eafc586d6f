"""Cohort mode: the cohort is a SQL query over the de-identified tables; files come from the harvest.

The query must return `image_occurrence_id` (the de-identified one). Each series is traced back
to its identified row through the id offset, and its files through raw_dicom_instance. The
values a file must carry (patient and accession pseudonyms, redacted descriptions) are read from
its de-identified row, so file and row agree by construction; UIDs and dates are recomputed by
the same functions the SQL uses (contract 1).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from extractor.config import Config
from extractor.deid.pseudonymize import offset
from extractor.scrub.instance import ScrubJob
from extractor.scrub.run import MANIFEST_SCHEMA


class CohortError(ValueError):
    """The cohort query is unusable; the message says why."""


def read_cohort_sql(query_or_file: str) -> str:
    path = Path(query_or_file)
    if path.suffix.lower() == ".sql" or (len(query_or_file) < 4096 and path.is_file()):
        if not path.is_file():
            raise CohortError(f"{path}: cohort SQL file not found")
        return path.read_text(encoding="utf-8")
    return query_or_file


def cohort_jobs(config: Config, cohort_sql: str, key: str) -> list[ScrubJob]:
    if config.target != "duckdb":
        raise CohortError("cohort mode reads the embedded DuckDB warehouse so far; BigQuery cohorts are not wired yet")
    deid_path, identified_path = config.duckdb.deidentified_path, config.duckdb.identified_path
    for path in (deid_path, identified_path):
        if not path.exists():
            raise CohortError(f"{path}: warehouse not found; run `imgomop build` first")
    con = duckdb.connect(str(deid_path), read_only=True)
    try:
        con.execute(f"ATTACH '{_quote(identified_path)}' AS identified (READ_ONLY)")
        try:
            columns = [d[0] for d in con.execute(f"SELECT * FROM ({cohort_sql.rstrip().rstrip(';')}) LIMIT 0").description]
        except duckdb.Error as exc:
            raise CohortError(f"the cohort query does not run on the de-identified tables: {str(exc).splitlines()[0]}") from exc
        if "image_occurrence_id" not in columns:
            raise CohortError(f"the cohort query must return image_occurrence_id (it returns: {', '.join(columns)})")
        rows = con.execute(
            f"""
            WITH cohort AS (SELECT DISTINCT image_occurrence_id FROM ({cohort_sql.rstrip().rstrip(';')}))
            SELECT r.location, i.person_id, d.person_id, d.accession_number, d.study_description, d.series_description
            FROM cohort c
            JOIN image_occurrence d ON d.image_occurrence_id = c.image_occurrence_id
            JOIN identified.main.image_occurrence i ON i.image_occurrence_id = d.image_occurrence_id - ?
            JOIN identified.main.raw_dicom_instance r ON r.series_instance_uid = i.image_series_uid
            ORDER BY r.location
            """,
            [offset("image_occurrence", key)],
        ).fetchall()
    finally:
        con.close()
    return [
        ScrubJob(
            location=location,
            subject=str(person_id),
            parameters=(
                ("PatientID", str(pseudonym)),
                ("PatientName", str(pseudonym)),
                ("AccessionNumber", accession or ""),
                ("StudyDescription", study_description or ""),
                ("SeriesDescription", series_description or ""),
            ),
        )
        for location, person_id, pseudonym, accession, study_description, series_description in rows
    ]


def record_manifest(config: Config, rows: list[dict]) -> None:
    """Append the run's manifest to the identified warehouse and refresh the per-series locations."""
    if not rows:
        return
    import pyarrow as pa

    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    con = duckdb.connect(str(config.duckdb.identified_path))
    try:
        con.register("_manifest", table)
        con.execute("CREATE TABLE IF NOT EXISTS scrub_manifest AS SELECT * FROM _manifest LIMIT 0")
        _repair_null_typed_columns(con)
        con.execute("DELETE FROM scrub_manifest WHERE location IN (SELECT location FROM _manifest)")
        con.execute("INSERT INTO scrub_manifest BY NAME SELECT * FROM _manifest")
        con.execute(
            """
            CREATE OR REPLACE TABLE scrub_manifest_series AS
            WITH outputs AS (
                SELECT series_instance_uid, regexp_replace(output, '/[^/]*$', '') AS series_path, scrubbed_at
                FROM scrub_manifest
                WHERE outcome = 'deidentified' AND output IS NOT NULL
            ),
            latest AS (  -- a series scrubbed into several extracts points at the newest one
                SELECT series_instance_uid, arg_max(series_path, scrubbed_at) AS scrubbed_series_path
                FROM outputs
                GROUP BY series_instance_uid
            )
            SELECT latest.series_instance_uid, latest.scrubbed_series_path, count(*) AS scrubbed_instances
            FROM latest
            JOIN outputs ON outputs.series_instance_uid = latest.series_instance_uid
                        AND outputs.series_path = latest.scrubbed_series_path
            GROUP BY ALL
            """
        )
    finally:
        con.close()


def _repair_null_typed_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Manifests recorded before the schema was explicit typed all-null columns as NULL."""
    for (column,) in con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'scrub_manifest' AND data_type = '\"NULL\"'"
    ).fetchall():
        con.execute(f'ALTER TABLE scrub_manifest ALTER "{column}" TYPE VARCHAR')


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
