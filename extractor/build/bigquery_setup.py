"""What `imgomop build` does on BigQuery around the dbt run: the datasets and the key table.

The de-identification macros on BigQuery read the key with
`(SELECT deid_key FROM `<project>.<identified dataset>._imgomop_deid_key`)` (deid_sql/macros/deid_key.sql),
so that the key is never a literal in a model, in compiled SQL or in a log. This module writes that
one-row table from the environment (IMGOMOP_DEID_KEY) just before dbt runs and drops it right after:

    with deid_key_table(config.bigquery):
        result = run_dbt(...)

- The key travels only in the body of a load job (the same load path as the raw writer:
  CSV against the emulator, Parquet otherwise), never in SQL text, a job label, an exception message
  or a log line.
- The table lives in the identified dataset (never the de-identified one) and is created with an
  expiration time, so a process killed between create and drop does not leave the key there for
  longer than KEY_TABLE_TTL on real BigQuery (not against the emulator: it refuses an expiration time).
- Both datasets are created when missing, in the target's location, before dbt runs.
- One build per identified dataset at a time: two concurrent builds share the table name, and the first
  to finish drops the key under the other (its remaining queries then fail; they never use a wrong key).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from google.cloud import bigquery

from extractor.config import BigQueryTarget
from extractor.warehouses.bigquery_writer import _LoadFile, bigquery_schema, make_client

KEY_ENV_VAR = "IMGOMOP_DEID_KEY"
KEY_TABLE = "_imgomop_deid_key"
KEY_COLUMNS = [("deid_key", "STRING")]
KEY_TABLE_TTL = timedelta(hours=12)  # longer than any build; a crashed build leaves the key no longer than this


class BigQuerySetupError(RuntimeError):
    """The key table or a dataset could not be prepared; the message never holds the key."""


def load_format(target: BigQueryTarget) -> str:
    """The raw writer's rule: CSV against an emulator endpoint (it loads nothing else), Parquet otherwise."""
    return "CSV" if target.api_endpoint else "PARQUET"


def key_table_id(target: BigQueryTarget) -> str:
    return f"{target.project}.{target.identified_dataset}.{KEY_TABLE}"


def ensure_datasets(target: BigQueryTarget, client: bigquery.Client | None = None) -> None:
    """Create the identified and de-identified datasets when missing (in the target's location)."""
    own = client is None
    client = client or make_client(target)
    try:
        for name in (target.identified_dataset, target.deidentified_dataset):
            dataset = bigquery.Dataset(f"{target.project}.{name}")
            dataset.location = target.location
            client.create_dataset(dataset, exists_ok=True)
    finally:
        if own:
            client.close()


def create_deid_key_table(target: BigQueryTarget, client: bigquery.Client | None = None) -> None:
    """Write the one-row key table from IMGOMOP_DEID_KEY (replacing any leftover)."""
    key = os.environ.get(KEY_ENV_VAR)
    if not key:
        raise BigQuerySetupError(f"{KEY_ENV_VAR} is not set: the de-identified tables need the secret key")
    if "\n" in key or "\r" in key:
        raise BigQuerySetupError(f"{KEY_ENV_VAR} holds a line break; use a hex or base64 key (one line)")
    own = client is None
    client = client or make_client(target)
    table_id = key_table_id(target)
    spool = _LoadFile(KEY_COLUMNS, load_format(target))
    try:
        # the table first, with its expiration, then the row: a crash in between leaves an empty table
        table = bigquery.Table(table_id, schema=bigquery_schema(KEY_COLUMNS))
        if not target.api_endpoint:  # the emulator refuses tables.insert with expirationTime
            table.expires = datetime.now(UTC) + KEY_TABLE_TTL
        client.delete_table(table_id, not_found_ok=True)
        client.create_table(table)
        spool.add([{"deid_key": key}])
        job_config = spool.job_config()
        job_config.write_disposition = bigquery.WriteDisposition.WRITE_APPEND  # keeps the table's expiration
        try:
            client.load_table_from_file(spool.finish(), table_id, job_config=job_config, rewind=True).result()
        except Exception as exc:  # noqa: BLE001 - re-raised without the API's message, which may quote the value
            raise BigQuerySetupError(
                f"could not write the de-identification key table {table_id}: {type(exc).__name__}"
                f"{_status(exc)} (the API's message is left out: it may quote the key)"
            ) from None
    except BaseException:
        client.delete_table(table_id, not_found_ok=True)
        raise
    finally:
        spool.file.close()
        if own:
            client.close()


def drop_deid_key_table(target: BigQueryTarget, client: bigquery.Client | None = None) -> None:
    own = client is None
    client = client or make_client(target)
    try:
        client.delete_table(key_table_id(target), not_found_ok=True)
    finally:
        if own:
            client.close()


@contextmanager
def deid_key_table(target: BigQueryTarget) -> Iterator[None]:
    """Datasets ready and the key table present for the duration of the block; the key table is
    dropped afterwards whatever happens (try/finally)."""
    client = make_client(target)
    try:
        ensure_datasets(target, client)
        create_deid_key_table(target, client)
        try:
            yield
        finally:
            drop_deid_key_table(target, client)
    finally:
        client.close()


def _status(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f" (HTTP {code})" if code else ""
