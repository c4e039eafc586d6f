"""The rules both raw-table writers share, as SQL DuckDB and BigQuery both run: the series row
built from its instances, and the duplicate SOP instance check.

Only functions both engines share are used (CONCAT, RTRIM, NULLIF, SUBSTR, STRPOS, LENGTH, COUNT DISTINCT).
"""

from __future__ import annotations

from extractor.harvest.attributes import PATIENT_CONSISTENCY_COLUMNS
from extractor.warehouses.base import text_location
from extractor.warehouses.schema import RAW_DICOM_SERIES, SERIES_ATTRIBUTE_COLUMNS


def new_series_rows_sql(
    instance: str,
    series: str | None,
    touched: str,
    headers: str | None,
    run_id_param: str,
    since_write_seq: int | None = None,
) -> str:
    """SELECT of the rebuilt series rows for the series listed in the `touched` subquery/table.

    The representative instance is the one with the lowest location. Its header JSON comes from
    `headers` (location, header_json: the headers the harvest read since its last rebuild); the
    harvest reads the few left without one afterwards (a series spanning two rebuilds, or one whose
    representative this run did not read; the DuckDB writer keeps the stored header of those whose
    representative is unchanged, and updates their other columns in place). The old rows' headers
    are never read: a scan reads a text column whole whatever the filter, and the headers of every
    series are the largest column there is, so each rebuild would cost time and memory in
    proportion to the archive. A series row keeps the `first_run_id` of the row it replaces in
    `series`.

    With `series` or `headers` None, `first_run_id` or `representative_header_json` is NULL, for
    the caller to fill in: the DuckDB writer does so from the rows it deletes and the headers it
    holds, since each join costs DuckDB a hash table of about 8 MB however few its rows.

    `since_write_seq`, when the writer knows that every instance row of the touched series has a
    `write_seq` at least that high, limits both scans of the instance table to those rows: the
    writer numbers its batches, so DuckDB skips the older row groups by their min/max statistics,
    and a rebuild costs the size of the slice instead of the size of the archive. (Text columns
    cannot do this: DuckDB keeps 8 bytes of their min/max, and locations and UIDs share longer
    prefixes.) `first_write_seq` is what the next rebuild takes that bound from.
    """
    newer = f" AND i.write_seq >= {int(since_write_seq)}" if since_write_seq is not None else ""
    newer_representative = newer.replace("i.write_seq", "r.write_seq")
    # MIN <> MAX: two different non-NULL values, as COUNT(DISTINCT) > 1 says, without a hash table per column
    conflicts = ", ".join(
        f"CASE WHEN MIN(i.{c}) <> MAX(i.{c}) THEN '{c},' ELSE '' END" for c in PATIENT_CONSISTENCY_COLUMNS
    )
    attributes = ", ".join(f"r.{c}" for c in SERIES_ATTRIBUTE_COLUMNS)
    first_run, old_join = "NULL", ""
    if series is not None:
        first_run = f"COALESCE(old.first_run_id, {run_id_param})"
        old_join = (f"\n    LEFT JOIN (SELECT series_instance_uid, first_run_id FROM {series}) AS old"
                    "\n        ON old.series_instance_uid = s.series_instance_uid")
    header, header_join = "NULL", ""
    if headers is not None:
        header = "h.header_json"
        header_join = f"\n    LEFT JOIN {headers} AS h ON h.location = s.representative_location"
    columns = [name for name, _ in RAW_DICOM_SERIES]
    return f"""
WITH stats AS (
    SELECT
        i.series_instance_uid,
        MIN(i.location) AS representative_location,
        COUNT(*) AS instance_count,  -- one row per SOP instance: the duplicate check makes the others errors
        COUNT(*) AS file_count,
        SUM(i.file_size) AS total_bytes,
        MIN(i.acquisition_datetime) AS first_acquisition_datetime,
        MAX(i.acquisition_datetime) AS last_acquisition_datetime,
        NULLIF(RTRIM(CONCAT({conflicts}), ','), '') AS conflicting_attributes,
        CASE WHEN COUNT(i.write_seq) = COUNT(*) THEN MIN(i.write_seq) END AS first_write_seq
    FROM {instance} AS i
    WHERE i.series_instance_uid IN (SELECT series_instance_uid FROM {touched}){newer}
    GROUP BY i.series_instance_uid
)
SELECT {", ".join(columns)} FROM (
    SELECT
        s.series_instance_uid,
        {attributes},
        s.instance_count,
        s.file_count,
        s.total_bytes,
        s.first_acquisition_datetime,
        s.last_acquisition_datetime,
        s.conflicting_attributes,
        s.representative_location,
        {header} AS representative_header_json,
        {first_run} AS first_run_id,
        {run_id_param} AS last_run_id,
        CURRENT_TIMESTAMP AS updated_at,
        s.first_write_seq
    FROM stats AS s
    JOIN {instance} AS r ON r.location = s.representative_location{newer_representative}{old_join}{header_join}
)
"""


# The series touched by rows written since the last series rebuild, kept beside those rows (DuckDB:
# in the same transaction; BigQuery: before them) and emptied once the rebuild is written: a run that
# stops in between (killed, interrupted) leaves them for the next run to rebuild first, also the
# series that already had a row (`unbuilt_series`).
UNREBUILT_TABLE = "_harvest_unrebuilt"


def series_without_header_sql(series: str) -> str:
    """(series UID, representative location) of the rows of `series` that have no header JSON."""
    return (
        f"SELECT series_instance_uid, representative_location FROM {series} "
        "WHERE representative_header_json IS NULL ORDER BY 1"
    )


def unbuilt_series_sql(instance: str, series: str, waiting: str) -> str:
    """Series UIDs a stopped run left to rebuild: those waiting in `waiting` (UNREBUILT_TABLE), and
    those with instance rows and no series row (from a warehouse written before that table)."""
    return f"""
SELECT series_instance_uid FROM {waiting}
UNION DISTINCT
SELECT series_instance_uid FROM {instance}
WHERE series_instance_uid NOT IN (SELECT series_instance_uid FROM {series})
"""


def series_counts_sql(series: str, run_id_param: str) -> str:
    """(added, updated): series the run created, and series it changed that earlier runs created."""
    return f"""
SELECT COUNT(CASE WHEN first_run_id = {run_id_param} THEN 1 END) AS added,
       COUNT(CASE WHEN first_run_id <> {run_id_param} THEN 1 END) AS updated
FROM {series}
WHERE last_run_id = {run_id_param}
"""


DUPLICATE_ERROR_CLASS = "DuplicateSOPInstanceUID"
DUPLICATE_KEPT_FROM = " is already harvested from "  # in a duplicate's error message, before the file kept


def duplicate_message_sql(sop_uid: str, kept_location: str) -> str:
    """The message of a duplicate-SOP error row: it names the file that holds the instance."""
    return f"CONCAT('SOPInstanceUID ', {sop_uid}, '{DUPLICATE_KEPT_FROM}', {kept_location})"


def duplicate_sop_rows_sql(batch: str, instance: str, run_id_sql: str, replaced_locations: str | None = None) -> str:
    """Error rows for the batch's files whose SOP Instance UID is already harvested from another
    file, or appears twice in the batch (the lowest location keeps the instance).

    `replaced_locations` (a subquery) leaves out instance rows the batch is about to replace.
    """
    not_replaced = f"AND location NOT IN ({replaced_locations})" if replaced_locations else ""
    return f"""
WITH repeated AS (  -- UIDs found twice in the batch (rare): a GROUP BY, cheaper than a window over every row
    SELECT sop_instance_uid, MIN(location) AS first_location
    FROM {batch}
    GROUP BY sop_instance_uid
    HAVING COUNT(*) > 1
),
earlier AS (
    SELECT sop_instance_uid, MIN(location) AS location
    FROM {instance}
    WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM {batch}) {not_replaced}
    GROUP BY sop_instance_uid
),
clash AS (
    SELECT b.location, b.file_size, b.file_mtime_ns, b.sop_instance_uid,
           COALESCE(e.location, r.first_location) AS kept_location
    FROM {batch} AS b
    LEFT JOIN earlier AS e ON e.sop_instance_uid = b.sop_instance_uid
    LEFT JOIN repeated AS r ON r.sop_instance_uid = b.sop_instance_uid
    WHERE e.location IS NOT NULL OR b.location <> r.first_location
)
SELECT location, file_size, file_mtime_ns,
       '{DUPLICATE_ERROR_CLASS}' AS error_class,
       {duplicate_message_sql("sop_instance_uid", "kept_location")} AS message,
       {run_id_sql} AS run_id, CAST(CURRENT_TIMESTAMP AS TIMESTAMP) AS recorded_at
FROM clash
"""


# Under a root: the root itself (a file source) or a location starting with root + separator.
PRUNE_ROOT_COLUMNS = [("root", "STRING"), ("prefix", "STRING")]
PRUNE_SKIPPED_COLUMNS = [("prefix", "STRING")]


def missing_locations_sql(table: str, roots: str, skipped: str, found: str) -> str:
    """Locations in `table` under one of the `roots` (root, prefix) that the run did not find
    (`found`: location), outside the folders it could not list (`skipped`: prefix)."""
    return f"""
SELECT t.location FROM {table} AS t
WHERE EXISTS (SELECT 1 FROM {roots} AS r WHERE t.location = r.root OR STARTS_WITH(t.location, r.prefix))
  AND NOT EXISTS (SELECT 1 FROM {skipped} AS u WHERE STARTS_WITH(t.location, u.prefix))
  AND t.location NOT IN (SELECT location FROM {found})
"""


def _kept_location_sql(message: str) -> str:
    """The kept file's location, read back from a duplicate-SOP error message."""
    marker = f"'{DUPLICATE_KEPT_FROM}'"
    return f"SUBSTR({message}, STRPOS({message}, {marker}) + LENGTH({marker}))"


def copies_of_sql(errors: str, kept: str) -> str:
    """Locations of the duplicate-SOP error rows of `errors` whose message names one of the `kept`
    locations as the file holding their instance (and which are not among them): the copies to
    look at again once those files are replaced (see `orphaned_copies_sql`)."""
    return f"""
SELECT e.location FROM {errors} AS e
WHERE e.error_class = '{DUPLICATE_ERROR_CLASS}'
  AND STRPOS(e.message, '{DUPLICATE_KEPT_FROM}') > 0
  AND {_kept_location_sql("e.message")} IN (SELECT location FROM {kept})
  AND e.location NOT IN (SELECT location FROM {kept})
"""


def orphaned_copies_sql(errors: str, instance: str, copies: str | None) -> str:
    """(location, run_id) of the duplicate-SOP error rows (at the `copies` locations; None: all of
    them) whose kept file no longer holds their SOP instance (it was deleted, rewritten with
    another UID, or is an error now): such a copy is the instance's only file, and the harvest
    reads it again."""
    among = f" AND e.location IN (SELECT location FROM {copies})" if copies else ""
    return f"""
WITH copy AS (
    SELECT e.location, e.run_id, e.message, {_kept_location_sql("e.message")} AS kept_location
    FROM {errors} AS e
    WHERE e.error_class = '{DUPLICATE_ERROR_CLASS}'{among}
),
holder AS (
    SELECT i.location, i.sop_instance_uid FROM {instance} AS i
    WHERE i.location IN (SELECT kept_location FROM copy)
)
SELECT c.location, c.run_id FROM copy AS c
LEFT JOIN holder AS h
    ON h.location = c.kept_location AND {duplicate_message_sql("h.sop_instance_uid", "h.location")} = c.message
WHERE h.location IS NULL
"""


def prune_rows(roots: list[str], unreadable: list[str], separator: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The rows of the `roots` and `skipped` relations of `missing_locations_sql`."""
    roots, unreadable = [text_location(root) for root in roots], [text_location(folder) for folder in unreadable]
    root_rows = [{"root": root, "prefix": root.rstrip(separator) + separator} for root in roots]
    skipped_rows = [{"prefix": folder.rstrip(separator) + separator} for folder in unreadable]
    return root_rows, skipped_rows
