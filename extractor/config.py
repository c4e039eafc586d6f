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
SCHEDULE_KEYS = ("cron", "sources", "prune", "ehr", "requests", "retries", "retry_delay_minutes", "executable")
WAREHOUSE_KEYS = ("target", "duckdb", "bigquery")
DUCKDB_KEYS = ("identified", "deidentified")
BIGQUERY_KEYS = ("project", "identified_dataset", "deidentified_dataset", "location", "api_endpoint")
HARVEST_KEYS = ("batch_size",)


class ConfigError(ValueError):
    """A problem in imgomop.toml; the message names the file, the key and the fix."""


HARVEST_BATCH_SIZE = 6144  # files read before their rows are written: three of DuckDB's 2,048-row groups


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
class ScheduleSettings:
    """[schedule]: what the Airflow DAG (dags/imgomop_refresh.py) runs, and where scrub requests wait.

    Paths are absolute (relative ones in the file resolve beside it). `cron` is None for a DAG
    that runs only when triggered; `executable` None means the imgomop next to Airflow's Python.
    """

    requests: Path
    cron: str | None = "@daily"
    sources: tuple[Path, ...] = ()
    ehr: Path | None = None
    retries: int = 2
    retry_delay_minutes: float = 10
    executable: Path | None = None
    prune: bool = False  # the harvest task removes the rows of files no longer found (harvest --prune)


@dataclass(frozen=True)
class Config:
    target: str
    duckdb: DuckDBTarget
    bigquery: BigQueryTarget | None = None
    source_file: Path | None = None
    harvest_batch_size: int = HARVEST_BATCH_SIZE
    schedule: ScheduleSettings | None = None
    extra: dict = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths resolve against: the config file's, else the working directory."""
        return self.source_file.parent.resolve() if self.source_file else Path.cwd()

    @property
    def scrub_requests_dir(self) -> Path:
        return self.schedule.requests if self.schedule else self.base_dir / "requests"


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
    _known_keys_only(warehouse, WAREHOUSE_KEYS, "warehouse", path)
    target = warehouse.get("target", "duckdb")
    if target not in TARGETS:
        raise ConfigError(f"{path}: [warehouse] target = {target!r}; use one of {', '.join(TARGETS)}")

    duck = _table(warehouse, "duckdb", path, prefix="warehouse.")
    _known_keys_only(duck, DUCKDB_KEYS, "warehouse.duckdb", path)
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
        _known_keys_only(bq, BIGQUERY_KEYS, "warehouse.bigquery", path)
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
    _known_keys_only(harvest, HARVEST_KEYS, "harvest", path)
    batch_size = harvest.get("batch_size", HARVEST_BATCH_SIZE)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"{path}: [harvest] batch_size must be a positive integer, got {batch_size!r}")

    return Config(
        target=target,
        duckdb=duckdb_target,
        bigquery=bigquery_target,
        source_file=path,
        harvest_batch_size=batch_size,
        schedule=_schedule(_table(raw, "schedule", path), path, base_dir),
        extra={k: v for k, v in raw.items() if k not in ("warehouse", "harvest", "schedule")},
    )


def _schedule(table: dict, path: Path, base_dir: Path) -> ScheduleSettings:
    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(f"{path}: [schedule] {key} must be {expected}, got {table[key]!r}")

    _known_keys_only(table, SCHEDULE_KEYS, "schedule", path)
    for key in ("cron", "ehr", "requests", "executable"):
        if key in table and not isinstance(table[key], str):
            raise bad(key, "a string")
    sources = table.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise bad("sources", 'a list of folders, e.g. sources = ["/mnt/pacs"]')
    retries = table.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise bad("retries", "a whole number >= 0")
    delay = table.get("retry_delay_minutes", 10)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise bad("retry_delay_minutes", "a number >= 0")
    prune = table.get("prune", False)
    if not isinstance(prune, bool):
        raise bad("prune", "true or false")
    optional = lambda key: _resolve(base_dir, table[key]) if table.get(key) else None  # noqa: E731
    return ScheduleSettings(
        requests=optional("requests") or base_dir / "requests",
        cron=table.get("cron", "@daily").strip() or None,
        sources=tuple(_resolve(base_dir, s) for s in sources),
        ehr=optional("ehr"),
        retries=retries,
        retry_delay_minutes=delay,
        executable=optional("executable"),
        prune=prune,
    )


def dag_schedule(config: Config) -> ScheduleSettings:
    """The [schedule] table the Airflow DAG needs: it must name the harvest sources and the EHR folder."""
    where = config.source_file or "the embedded default config"
    settings = config.schedule
    missing = [k for k in ("sources", "ehr") if settings is None or not getattr(settings, k)]
    if missing:
        raise ConfigError(
            f"{where}: [schedule] needs {' and '.join(missing)} for the Airflow DAG, e.g. "
            'sources = ["/mnt/pacs"] and ehr = "/data/ehr-export" (see imgomop.toml.example)'
        )
    return settings


def _known_keys_only(table: dict, known: tuple[str, ...], section: str, path: Path) -> None:
    """A misspelt key would otherwise be ignored and its default used without a word."""
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{path}: [{section}] has unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")


def _table(parent: dict, key: str, path: Path, prefix: str = "") -> dict:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{prefix}{key}] must be a table")
    return value


def _resolve(base_dir: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base_dir / p
