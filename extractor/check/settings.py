"""The `[check]` table of imgomop.toml: where Data Docs go, thresholds, and which rules are critical.

    [check]
    data_docs_dir = "warehouse/data_docs"   # relative to the config file
    min_linkage_rate = 0.95                 # default: the dbt var linkage_min_rate
    max_harvest_error_rate = 0.05
    max_quarantine_rate = 0.01
    max_filtered_rate = 0.5

    [check.critical]                        # rule id -> true/false (see extractor/check/rules.py)
    "raw.uid_syntax" = true

Every problem is a CheckConfigError naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from extractor.build.dbt_build import dbt_project_dir
from extractor.check.rules import RULE_IDS, RULES, THRESHOLDS
from extractor.config import Config, ConfigError

DATA_DOCS_FOLDER = "data_docs"
KEYS = ("data_docs_dir", "critical", *THRESHOLDS)


class CheckConfigError(ConfigError):
    """A [check] setting that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class CheckSettings:
    data_docs_dir: Path
    thresholds: dict[str, float]
    critical: dict[str, bool]  # every rule id
    dbt_vars: dict[str, Any]


def check_settings(config: Config) -> CheckSettings:
    where = str(config.source_file) if config.source_file else "the default config"
    section = config.extra.get("check", {})
    if not isinstance(section, dict):
        raise CheckConfigError(f"{where}: [check] must be a table")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise CheckConfigError(f"{where}: [check] has unknown key(s) {', '.join(unknown)}; known keys: {', '.join(KEYS)}")
    dbt_vars = project_vars(config)
    return CheckSettings(
        data_docs_dir=_data_docs_dir(config, section, where),
        thresholds=_thresholds(section, dbt_vars, where),
        critical=_critical(section.get("critical", {}), where),
        dbt_vars=dbt_vars,
    )


def project_vars(config: Config) -> dict[str, Any]:
    """The dbt vars of dbt_project.yml, overridden by [dbt] vars of the config (as `imgomop build` passes them)."""
    project = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text(encoding="utf-8"))
    return {**(project.get("vars") or {}), **config.extra.get("dbt", {}).get("vars", {})}


def _data_docs_dir(config: Config, section: dict, where: str) -> Path:
    if "data_docs_dir" not in section:
        # next to the identified data: Data Docs show values the cross-database checks found
        return config.duckdb.identified_path.parent / DATA_DOCS_FOLDER
    value = section["data_docs_dir"]
    if not isinstance(value, str) or not value.strip():
        raise CheckConfigError(f"{where}: [check] data_docs_dir must be a folder path, got {value!r}")
    path = Path(value).expanduser()
    base = config.source_file.parent.resolve() if config.source_file else Path.cwd()
    return path if path.is_absolute() else base / path


def _thresholds(section: dict, dbt_vars: dict, where: str) -> dict[str, float]:
    defaults = {**THRESHOLDS, "min_linkage_rate": dbt_vars.get("linkage_min_rate", 0.95)}
    out = {}
    for key, default in defaults.items():
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise CheckConfigError(f"{where}: [check] {key} must be a number from 0 to 1 (a share), got {value!r}")
        out[key] = float(value)
    return out


def _critical(table: Any, where: str) -> dict[str, bool]:
    if not isinstance(table, dict):
        raise CheckConfigError(f"{where}: [check.critical] must be a table of rule = true/false")
    overrides = _flatten(table)
    for rule_id, value in overrides.items():
        if rule_id not in RULE_IDS:
            raise CheckConfigError(f"{where}: [check.critical] {rule_id!r} is not a rule; rules: {', '.join(RULE_IDS)}")
        if not isinstance(value, bool):
            raise CheckConfigError(f"{where}: [check.critical] {rule_id!r} must be true or false, got {value!r}")
    return {rule.id: overrides.get(rule.id, rule.critical) for rule in RULES}


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """`raw.uid_syntax = true` (a dotted TOML key, a nested table) and `"raw.uid_syntax" = true` alike."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
