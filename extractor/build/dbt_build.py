"""`imgomop build`: run `dbt build` on the configured target through dbt's programmatic runner."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.config import Config

KEY_ENV_VAR = "IMGOMOP_DEID_KEY"
PROJECT_ENV_VAR = "IMGOMOP_DBT_PROJECT_DIR"


class BuildError(RuntimeError):
    """dbt could not run, or a model or test failed; the message says which."""


@dataclass
class BuildSummary:
    statuses: Counter = field(default_factory=Counter)  # (resource type, status) -> count
    failures: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    linkage: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def dbt_project_dir() -> Path:
    """The dbt project shipped with imgomop (next to the package in a source checkout)."""
    override = os.environ.get(PROJECT_ENV_VAR)
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "dbt_project"
    if not (path / "dbt_project.yml").exists():
        raise BuildError(f"{path}: no dbt_project.yml; set {PROJECT_ENV_VAR} to the imgomop dbt_project folder")
    return path


def require_key() -> None:
    if not os.environ.get(KEY_ENV_VAR):
        raise BuildError(
            f"{KEY_ENV_VAR} is not set: the de-identified tables need a secret key. Create one with "
            f"`export {KEY_ENV_VAR}=$(python -c 'import secrets; print(secrets.token_hex(32))')` "
            "and keep it in your secret manager (the same key gives the same pseudonyms)."
        )


def dbt_environment(config: Config) -> dict[str, str]:
    """Environment variables profiles.yml and dbt_project.yml read, from imgomop.toml."""
    if config.target == "bigquery":
        assert config.bigquery is not None
        bq = config.bigquery
        env = {
            "IMGOMOP_DBT_TARGET": "bigquery",
            "IMGOMOP_BQ_PROJECT": bq.project,
            "IMGOMOP_BQ_IDENTIFIED_DATASET": bq.identified_dataset,
            "IMGOMOP_BQ_LOCATION": bq.location,
            "IMGOMOP_DEID_DATABASE": bq.project,
            "IMGOMOP_DEID_SCHEMA": bq.deidentified_dataset,
        }
        # always set: empty means Google's endpoint (profiles.yml), so an emulator endpoint of an
        # earlier build in this process never carries over to the next
        env["IMGOMOP_BQ_API_ENDPOINT"] = bq.api_endpoint or ""
        return env
    config.duckdb.identified_path.parent.mkdir(parents=True, exist_ok=True)
    config.duckdb.deidentified_path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "IMGOMOP_DBT_TARGET": "duckdb",
        "IMGOMOP_IDENTIFIED_DUCKDB": str(config.duckdb.identified_path),
        "IMGOMOP_DEIDENTIFIED_DUCKDB": str(config.duckdb.deidentified_path),
        "IMGOMOP_DEID_DATABASE": "deid",
        "IMGOMOP_DEID_SCHEMA": "main",
    }


def artifacts_dir(config: Config) -> Path:
    base = config.duckdb.identified_path.parent if config.target == "duckdb" else Path.cwd() / ".imgomop"
    return base / "dbt"


def run_dbt(config: Config, command: str = "build", select: list[str] | None = None, extra_vars: dict | None = None):
    """Invoke dbt in-process; return dbt's result object."""
    from dbt.cli.main import dbtRunner

    require_key()
    project = dbt_project_dir()
    os.environ.update(dbt_environment(config))
    artifacts = artifacts_dir(config)
    args = [
        command,
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target-path", str(artifacts / "target"),
        "--log-path", str(artifacts / "logs"),
        "--quiet",
    ]
    dbt_vars = {**config.extra.get("dbt", {}).get("vars", {}), **(extra_vars or {})}
    if "deid" in config.extra:
        dbt_vars.update({k: v for k, v in config.extra["deid"].items() if k == "jitter_days_max"})
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    for selector in select or []:
        args += ["--select", selector]
    try:
        if config.target == "bigquery":
            from extractor.build.bigquery_setup import deid_key_table

            assert config.bigquery is not None
            with deid_key_table(config.bigquery):  # datasets ready, key table written; dropped afterwards
                return dbtRunner().invoke(args)
        return dbtRunner().invoke(args)
    finally:
        if config.target == "duckdb":
            _release_duckdb_files()


def _release_duckdb_files() -> None:
    """dbt-duckdb keeps its database open for the life of the process; close it so the warehouse
    files can be read (or written by the next stage) from this same process."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = DuckDBConnectionManager._ENV
    DuckDBConnectionManager.close_all_connections()
    if environment is not None:
        environment.close()


def summarise(result) -> BuildSummary:
    summary = BuildSummary()
    if result.exception is not None:
        summary.failures.append(f"dbt could not run: {result.exception}")
        return summary
    for node_result in result.result or []:
        node = node_result.node
        status = str(node_result.status)
        summary.statuses[(node.resource_type, status)] += 1
        if status in ("error", "fail"):
            message = (node_result.message or "").strip().splitlines()
            summary.failures.append(f"{node.resource_type} {node.name}: {status}: {message[0] if message else ''}")
    return summary


MART_TABLES = ("image_occurrence", "image_feature", "image_feature_measurement", "image_linkage_audit")
DEID_MART_TABLES = ("image_occurrence", "image_feature", "measurement", "person", "condition_occurrence")
UNORDERED_STATUSES = ("no_order", "no_accession")


def add_warehouse_figures(config: Config, summary: BuildSummary) -> None:
    """Row counts of the marts and the linkage rate, read back from the warehouse."""
    from extractor.warehouses.query import run_query, table_name

    for table in MART_TABLES:
        summary.row_counts[table] = run_query(config, f"SELECT COUNT(*) FROM {table_name(config, table)}")[0][0]
    for table in DEID_MART_TABLES:
        try:
            count = run_query(config, f"SELECT COUNT(*) FROM {table_name(config, table, deidentified=True)}")[0][0]
        except Exception:  # noqa: BLE001 - a mart left out by --select is simply not reported
            continue
        summary.row_counts[f"deidentified.{table}"] = count
    statuses = dict(
        run_query(config, f"SELECT link_status, COUNT(*) FROM {table_name(config, 'image_linkage_audit')} GROUP BY 1")
    )
    with_order = sum(n for status, n in statuses.items() if status not in UNORDERED_STATUSES)
    linked = statuses.get("linked", 0)
    summary.linkage = {
        "series": sum(statuses.values()),
        "linked": linked,
        "series_with_an_order": with_order,
        "linkage_rate": linked / with_order if with_order else None,
        "by_status": statuses,
    }


def format_summary(summary: BuildSummary) -> str:
    lines = []
    by_type: dict[str, Counter] = {}
    for (resource_type, status), n in sorted(summary.statuses.items()):
        by_type.setdefault(str(resource_type), Counter())[status] += n
    for resource_type, counts in by_type.items():
        lines.append(f"{resource_type + 's':<8} " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if summary.row_counts:
        lines.append("rows     " + ", ".join(f"{table} {n:,}" for table, n in summary.row_counts.items()))
    if summary.linkage:
        link = summary.linkage
        rate = f"{link['linkage_rate']:.1%}" if link["linkage_rate"] is not None else "n/a"
        others = ", ".join(f"{s} {n}" for s, n in sorted(link["by_status"].items()) if s != "linked")
        lines.append(
            f"linkage  {link['linked']} of {link['series_with_an_order']} series with an order linked ({rate}); "
            f"{link['series']} series in all" + (f"; not linked: {others}" if others else "")
        )
    lines.extend(f"FAILED   {failure}" for failure in summary.failures)
    return "\n".join(lines)
