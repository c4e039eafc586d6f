"""Project configuration: `imgomop.toml`, found in the working directory or given with --config.

With no config file the embedded default applies: two DuckDB files under ./warehouse/,
one identified and one de-identified (never the same file).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_FILE_NAME = "imgomop.toml"
TARGETS = ("duckdb", "bigquery")


class ConfigError(ValueError):
    """A problem in imgomop.toml; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class DuckDBTarget:
    identified_path: Path
    deidentified_path: Path


@dataclass(frozen=True)
class BigQueryTarget:
    project: str
    identified_dataset: str
    deidentified_dataset: str
    location: str = "US"
    api_endpoint: str | None = None  # set only for an emulator on loopback


@dataclass(frozen=True)
class Config:
    target: str
    duckdb: DuckDBTarget
    bigquery: BigQueryTarget | None = None
    source_file: Path | None = None
    harvest_batch_size: int = 2000
    extra: dict = field(default_factory=dict)


def default_config(base_dir: Path | None = None) -> Config:
    base = (base_dir or Path.cwd()) / "warehouse"
    return Config(
        target="duckdb",
        duckdb=DuckDBTarget(base / "identified.duckdb", base / "deidentified.duckdb"),
    )


def load_config(path: Path | None = None) -> Config:
    """Load the config given, else ./imgomop.toml if present, else the embedded default."""
    if path is None:
        candidate = Path.cwd() / CONFIG_FILE_NAME
        if not candidate.exists():
            return default_config()
        path = candidate
    if not path.exists():
        raise ConfigError(f"{path}: config file not found (pass an existing file to --config)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, path)


def parse_config(raw: dict, path: Path) -> Config:
    base_dir = path.parent.resolve()
    warehouse = _table(raw, "warehouse", path)
    target = warehouse.get("target", "duckdb")
    if target not in TARGETS:
        raise ConfigError(f"{path}: [warehouse] target = {target!r}; use one of {', '.join(TARGETS)}")

    duck = _table(warehouse, "duckdb", path, prefix="warehouse.")
    duckdb_target = DuckDBTarget(
        identified_path=_resolve(base_dir, duck.get("identified", "warehouse/identified.duckdb")),
        deidentified_path=_resolve(base_dir, duck.get("deidentified", "warehouse/deidentified.duckdb")),
    )
    if duckdb_target.identified_path == duckdb_target.deidentified_path:
        raise ConfigError(
            f"{path}: [warehouse.duckdb] identified and deidentified point at the same file; "
            "identified and de-identified data never share a database"
        )

    bigquery_target = None
    if target == "bigquery" or "bigquery" in warehouse:
        bq = _table(warehouse, "bigquery", path, prefix="warehouse.")
        missing = [k for k in ("project", "identified_dataset", "deidentified_dataset") if not bq.get(k)]
        if missing:
            raise ConfigError(f"{path}: [warehouse.bigquery] is missing {', '.join(missing)}")
        if bq["identified_dataset"] == bq["deidentified_dataset"]:
            raise ConfigError(
                f"{path}: [warehouse.bigquery] identified_dataset and deidentified_dataset are the same; "
                "identified and de-identified data never share a dataset"
            )
        bigquery_target = BigQueryTarget(
            project=bq["project"],
            identified_dataset=bq["identified_dataset"],
            deidentified_dataset=bq["deidentified_dataset"],
            location=bq.get("location", "US"),
            api_endpoint=bq.get("api_endpoint") or None,
        )

    harvest = _table(raw, "harvest", path)
    batch_size = harvest.get("batch_size", 2000)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"{path}: [harvest] batch_size must be a positive integer, got {batch_size!r}")

    return Config(
        target=target,
        duckdb=duckdb_target,
        bigquery=bigquery_target,
        source_file=path,
        harvest_batch_size=batch_size,
        extra={k: v for k, v in raw.items() if k not in ("warehouse", "harvest")},
    )


def _table(parent: dict, key: str, path: Path, prefix: str = "") -> dict:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{prefix}{key}] must be a table")
    return value


def _resolve(base_dir: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base_dir / p
