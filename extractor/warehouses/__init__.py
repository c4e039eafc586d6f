"""Warehouse adapters: where the raw tables live (DuckDB by default, BigQuery by configuration)."""

from __future__ import annotations

from extractor.config import Config
from extractor.warehouses.base import RawWarehouse


def open_raw_warehouse(config: Config) -> RawWarehouse:
    """The identified warehouse that receives harvested rows, as the config names it."""
    if config.target == "bigquery":
        from extractor.warehouses.bigquery_writer import BigQueryRawWarehouse

        assert config.bigquery is not None
        return BigQueryRawWarehouse(config.bigquery)
    from extractor.warehouses.duckdb_writer import DuckDBRawWarehouse

    return DuckDBRawWarehouse(config.duckdb.identified_path)
