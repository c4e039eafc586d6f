"""Read-only SQL against the configured warehouse, for summaries and checks."""

from __future__ import annotations

from typing import Any

from extractor.config import Config


def table_name(config: Config, table: str, deidentified: bool = False) -> str:
    """The fully qualified name of a table in the identified or de-identified warehouse."""
    if config.target == "bigquery":
        assert config.bigquery is not None
        dataset = config.bigquery.deidentified_dataset if deidentified else config.bigquery.identified_dataset
        return f"`{config.bigquery.project}.{dataset}.{table}`"
    return f"{'deid' if deidentified else 'identified'}.main.{table}"


def run_query(config: Config, sql: str) -> list[tuple[Any, ...]]:
    """Run one query; DuckDB attaches both files read-only as `identified` and `deid`."""
    if config.target == "bigquery":
        from extractor.warehouses.bigquery_writer import make_client

        assert config.bigquery is not None
        return [tuple(row.values()) for row in make_client(config.bigquery).query(sql).result()]
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{_quote(config.duckdb.identified_path)}' AS identified (READ_ONLY)")
        if config.duckdb.deidentified_path.exists():
            con.execute(f"ATTACH '{_quote(config.duckdb.deidentified_path)}' AS deid (READ_ONLY)")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _quote(path) -> str:
    return str(path).replace("'", "''")
