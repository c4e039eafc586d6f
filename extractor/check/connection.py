"""How great-expectations reaches the warehouse: one SQLAlchemy datasource that sees both the
identified and the de-identified data, so a check can compare the two in one query.

- DuckDB (duckdb-engine): an in-memory database with both files attached READ_ONLY under the
  names extractor.warehouses.query.table_name uses (`identified`, `deid`).
- BigQuery (sqlalchemy-bigquery): `bigquery://<project>`, every table fully qualified with its
  dataset; the client is the project's own (extractor.warehouses.bigquery_writer.make_client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from duckdb_engine import Dialect as DuckDBDialect
from sqlalchemy.dialects import registry

from extractor.config import Config
from extractor.warehouses.query import _quote, table_name

DUCKDB_DRIVER = "imgomop_readonly"


class ReadOnlyDuckDBDialect(DuckDBDialect):
    """duckdb-engine for read-only checks.

    - `connect_args={"attach": {alias: path}}` attaches each file READ_ONLY on every new connection.
    - Transactions are left to DuckDB's autocommit: GX reads a query's rows after it has handed the
      connection back, and the ROLLBACK SQLAlchemy issues then would discard DuckDB's pending result
      (duckdb-engine's cursors share their connection), so every metric would come back empty.
      The checks never write, so there is nothing to commit or roll back.
    """

    supports_statement_cache = False

    def connect(self, *cargs: Any, **cparams: Any):
        attach = cparams.pop("attach", {})
        connection = super().connect(*cargs, **cparams)
        cursor = connection.cursor()
        for alias, path in attach.items():
            cursor.execute(f"ATTACH IF NOT EXISTS '{_quote(path)}' AS {alias} (READ_ONLY)")
        return connection

    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass


registry.register(f"duckdb.{DUCKDB_DRIVER}", __name__, "ReadOnlyDuckDBDialect")


@dataclass(frozen=True)
class Connection:
    """What `context.data_sources.add_sql` needs."""

    connection_string: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def warehouse_connection(config: Config, deidentified: bool = True) -> Connection:
    if config.target == "bigquery":
        return bigquery_connection(config)
    attach = {_catalog(config, False): str(config.duckdb.identified_path)}
    if deidentified:
        attach[_catalog(config, True)] = str(config.duckdb.deidentified_path)
    return Connection(f"duckdb+{DUCKDB_DRIVER}:///:memory:", {"connect_args": {"attach": attach}})


def bigquery_connection(config: Config) -> Connection:
    """`bigquery://<project>` with the client imgomop uses elsewhere (default credentials, or
    anonymous against an emulator's api_endpoint); tables are named with their dataset."""
    from extractor.warehouses.bigquery_writer import make_client

    assert config.bigquery is not None
    client = make_client(config.bigquery)
    return Connection(
        f"bigquery://{config.bigquery.project}?user_supplied_client=true",
        {"connect_args": {"client": client}},
    )


def _catalog(config: Config, deidentified: bool) -> str:
    return table_name(config, "_", deidentified).split(".")[0]
