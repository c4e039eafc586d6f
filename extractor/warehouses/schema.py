"""Raw table schemas in logical types; each warehouse writer maps them to its own SQL types."""

from __future__ import annotations

import functools
from typing import Any

import pandas  # noqa: F401  (see below)
import pyarrow as pa

from extractor.harvest.attributes import HARVESTED_ATTRIBUTES

Column = tuple[str, str]  # (name, logical type: STRING | INT64 | FLOAT64 | TIMESTAMP)


def _attribute_columns(series_only: bool) -> list[Column]:
    return [
        (a.column, "INT64" if a.sql_type == "INTEGER" else "STRING")
        for a in HARVESTED_ATTRIBUTES
        if a.series_level or not series_only
    ]


RAW_DICOM_INSTANCE: list[Column] = [
    ("location", "STRING"),  # primary key: a path or URL
    ("file_size", "INT64"),
    ("file_mtime_ns", "INT64"),
    ("transfer_syntax_uid", "STRING"),
    ("pixel_data_offset", "INT64"),  # byte offset of (7FE0,0010); NULL when absent
    ("acquisition_datetime", "TIMESTAMP"),  # parsed from AcquisitionDateTime, else date + time
    ("run_id", "STRING"),
    ("harvested_at", "TIMESTAMP"),
    *_attribute_columns(series_only=False),
    ("write_seq", "INT64"),  # the writer's batch number (DuckDB; NULL elsewhere): see series_sql
]

RAW_DICOM_SERIES: list[Column] = [
    ("series_instance_uid", "STRING"),  # primary key
    *[c for c in _attribute_columns(series_only=True)],
    ("instance_count", "INT64"),  # distinct SOP instances
    ("file_count", "INT64"),
    ("total_bytes", "INT64"),
    ("first_acquisition_datetime", "TIMESTAMP"),
    ("last_acquisition_datetime", "TIMESTAMP"),
    ("conflicting_attributes", "STRING"),  # comma-separated columns whose values differ inside the series
    ("representative_location", "STRING"),
    ("representative_header_json", "STRING"),  # DICOM JSON, bulk data left out
    ("first_run_id", "STRING"),
    ("last_run_id", "STRING"),
    ("updated_at", "TIMESTAMP"),
    ("first_write_seq", "INT64"),  # lowest write_seq of its instance rows; NULL when one has none
]

RAW_HARVEST_ERROR: list[Column] = [
    ("location", "STRING"),  # primary key
    ("file_size", "INT64"),
    ("file_mtime_ns", "INT64"),
    ("error_class", "STRING"),
    ("message", "STRING"),
    ("run_id", "STRING"),
    ("recorded_at", "TIMESTAMP"),
]

RAW_HARVEST_RUN: list[Column] = [
    ("run_id", "STRING"),  # primary key
    ("started_at", "TIMESTAMP"),
    ("ended_at", "TIMESTAMP"),
    ("sources", "STRING"),
    ("status", "STRING"),  # running | completed | failed
    ("files_seen", "INT64"),
    ("files_unchanged", "INT64"),
    ("instances_added", "INT64"),
    ("instances_updated", "INT64"),
    ("errors", "INT64"),
    ("series_added", "INT64"),
    ("series_updated", "INT64"),
    ("files_removed", "INT64"),  # harvest --prune: rows of files no longer found
]

RAW_TABLES: dict[str, list[Column]] = {
    "raw_dicom_instance": RAW_DICOM_INSTANCE,
    "raw_dicom_series": RAW_DICOM_SERIES,
    "raw_harvest_error": RAW_HARVEST_ERROR,
    "raw_harvest_run": RAW_HARVEST_RUN,
}
# Columns added after a table was first released: writers add them to tables that lack them.
ADDED_COLUMNS: dict[str, list[Column]] = {
    "raw_harvest_run": [("files_removed", "INT64")],
    "raw_dicom_instance": [("write_seq", "INT64")],
    "raw_dicom_series": [("first_write_seq", "INT64")],
}
# Representative headers read during the run, handed to the series rebuild (location -> DICOM JSON)
HEADERS_READ: list[Column] = [("location", "STRING"), ("header_json", "STRING")]
PRIMARY_KEYS = {
    "raw_dicom_instance": "location",
    "raw_dicom_series": "series_instance_uid",
    "raw_harvest_error": "location",
    "raw_harvest_run": "run_id",
}
SERIES_ATTRIBUTE_COLUMNS = [name for name, _ in _attribute_columns(series_only=True) if name != "series_instance_uid"]
# What a series row takes from all its instance rows; the attribute columns, the representative and
# its header come from the representative file alone, and first_run_id from the row it replaces.
SERIES_INSTANCE_STATISTICS = [
    "instance_count", "file_count", "total_bytes", "first_acquisition_datetime", "last_acquisition_datetime",
    "conflicting_attributes", "last_run_id", "updated_at", "first_write_seq",
]


ARROW_TYPES = {"STRING": pa.string(), "INT64": pa.int64(), "FLOAT64": pa.float64(), "TIMESTAMP": pa.timestamp("us")}


def arrow_schema(columns: list[Column]) -> pa.Schema:
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in columns])


# pyarrow imports pandas (0.3 s) the first time it converts Python values, only to check whether
# they are a DataFrame; the import above makes that part of start-up, not of the first batch.
def to_arrow(rows: list[dict[str, Any]], columns: list[Column]) -> pa.Table:
    """Rows as an Arrow table of exactly these columns (missing keys are NULL, other keys ignored).

    Converted as one struct array, which reads the dicts in C: half the time of a list per column
    on harvest rows, and a third of `Table.from_pylist`'s.
    """
    return pa.Table.from_struct_array(pa.array(rows, type=_row_type(tuple(columns))))


@functools.lru_cache(maxsize=None)
def _row_type(columns: tuple[Column, ...]) -> pa.StructType:
    return pa.struct(list(arrow_schema(list(columns))))
