"""Run the suites with great-expectations: an ephemeral context (nothing written but Data Docs),
one SQL datasource over both warehouses, one checkpoint that validates every suite and
updates the Data Docs site; one Outcome per expectation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.check.connection import warehouse_connection
from extractor.check.gx import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig, gx
from extractor.check.settings import CheckSettings, check_settings
from extractor.check.sql import columns_query
from extractor.check.suites import Columns, Planner, Suite, missing_tables, plan
from extractor.config import Config
from extractor.deid.pseudonymize import DeidKeyError, key_from_environment
from extractor.warehouses.query import run_query

SITE = "imgomop"
CHECKPOINT = "imgomop-check"
BUILT_BY = {"raw": "imgomop harvest", "marts": "imgomop load-ehr` and `imgomop build", "deid": "imgomop build"}


class CheckError(RuntimeError):
    """The checks cannot run (no warehouse, a missing table, no key); the message says what to do."""


@dataclass(frozen=True)
class Outcome:
    layer: str
    rule: str
    label: str
    critical: bool
    observed: str
    status: str  # pass, fail or error

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class CheckRun:
    outcomes: list[Outcome]
    data_docs: Path | None  # index.html; None when nothing was validated
    skipped: list[str] = field(default_factory=list)

    @property
    def critical_failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.critical and not o.passed]


def run_checks(config: Config, layers: Sequence[str], settings: CheckSettings | None = None) -> CheckRun:
    settings = settings or check_settings(config)
    _require_files(config, layers)
    identified = warehouse_columns(config, deidentified=False)
    deidentified = warehouse_columns(config, deidentified=True) if "deid" in layers else {}
    runnable, skipped = [], []
    for layer in layers:
        missing = missing_tables(layer, identified, deidentified)
        if missing and layer == "scrub":
            skipped.append("scrub: skipped, no scrub_manifest in the identified warehouse yet (no cohort scrub has run)")
        elif missing:
            raise CheckError(f"the {layer} checks need {', '.join(missing)}: run `{BUILT_BY[layer]}` first")
        else:
            runnable.append(layer)
    planner = Planner(config, settings, identified, deidentified, _deid_key() if "deid" in runnable else None)
    suites = [s for s in plan(runnable, planner) if s.checks]
    if not suites:
        return CheckRun([], None, skipped)
    outcomes = validate(config, suites, settings.data_docs_dir, deidentified="deid" in runnable)
    return CheckRun(outcomes, settings.data_docs_dir / "index.html", skipped)


def warehouse_columns(config: Config, deidentified: bool) -> Columns:
    """Table -> column -> data type of one warehouse."""
    try:
        rows = run_query(config, columns_query(config, deidentified))
    except Exception as exc:  # noqa: BLE001 - any driver's error: the warehouse cannot be read
        which = "de-identified" if deidentified else "identified"
        raise CheckError(f"cannot read the {which} warehouse: {exc}") from exc
    columns: Columns = {}
    for table, column, data_type in rows:
        columns.setdefault(table, {})[column] = str(data_type)
    return columns


def _require_files(config: Config, layers: Sequence[str]) -> None:
    if config.target != "duckdb":
        return
    needed = [config.duckdb.identified_path] + ([config.duckdb.deidentified_path] if "deid" in layers else [])
    for path in needed:
        if not path.is_file():
            raise CheckError(f"{path}: no such warehouse file; run `imgomop harvest` and `imgomop build` first (or pass --config)")


def _deid_key() -> str:
    try:
        return key_from_environment()
    except DeidKeyError as exc:
        raise CheckError(
            f"the de-identified checks pair each row with its original through the keyed offsets: {exc}"
        ) from None


def validate(config: Config, suites: Sequence[Suite], docs_dir: Path, deidentified: bool) -> list[Outcome]:
    """Validate every suite in one checkpoint run; write the Data Docs site to docs_dir."""
    context = _ephemeral_context(docs_dir)
    connection = warehouse_connection(config, deidentified)
    source = context.data_sources.add_sql("warehouse", connection_string=connection.connection_string, kwargs=connection.kwargs)
    try:
        definitions = []
        for suite in suites:
            asset = source.add_query_asset(suite.name, query=suite.query)
            gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=[c.expectation for c in suite.checks]))
            definition = gx.ValidationDefinition(name=suite.name, data=asset.add_batch_definition_whole_table("all rows"), suite=gx_suite)
            definitions.append(context.validation_definitions.add(definition))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=CHECKPOINT,
            validation_definitions=definitions,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
            result_format={"result_format": "SUMMARY"},
        ))  # fmt: skip
        result = checkpoint.run()
    finally:
        source.get_execution_engine().engine.dispose()
        source.get_engine().dispose()
    by_suite = {run.suite_name: run.results for run in result.run_results.values()}
    return [outcome for suite in suites for outcome in _suite_outcomes(suite, by_suite[suite.name])]


def _ephemeral_context(docs_dir: Path):
    """In-memory stores; the only files written are the Data Docs site in docs_dir."""
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    project = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={SITE: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=project)


def _suite_outcomes(suite: Suite, results: Sequence[Any]) -> list[Outcome]:
    by_label = {r.expectation_config.meta["label"]: r for r in results}
    outcomes = []
    for check in suite.checks:
        result = by_label[check.label]
        error = _exception_message(result)
        meta = result.expectation_config.meta
        status = "error" if error else ("pass" if result.success else "fail")
        observed = f"error: {error}" if error else observed_value(result.expectation_config.type, result.result or {})
        outcomes.append(Outcome(suite.layer, check.rule, check.label, bool(meta["critical"]), observed, status))
    return outcomes


def _exception_message(result: Any) -> str | None:
    info = result.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error").strip().splitlines()[0][:200]
    return None


def observed_value(expectation_type: str, result: dict[str, Any]) -> str:
    """What the summary shows for one result: offending rows, or a share."""
    if "unexpected_count" in result:
        return f"{result['unexpected_count']:,} of {_rows(result.get('element_count', 0))}"
    value = result.get("observed_value")
    if expectation_type in ("expect_column_max_to_be_between", "expect_column_min_to_be_between") and value is not None:
        return f"{float(value):.2%}"
    return _rows(value) if isinstance(value, int) else str(value)


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")
