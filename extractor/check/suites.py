"""The expectation suites of each layer, built from the rules the project already states elsewhere:

- raw: the raw harvest tables (required and unique UIDs, UID syntax, harvest error rate);
- marts: the OHDSI field spec (extractor.build.field_spec): required, primary and foreign keys,
  concept ids known or 0; and the linkage rate as `imgomop build` computes it;
- deid: the PHI tests the de-identified marts declare in dbt_project/models/deid/_deid.yml
  (UID form, redacted text, deleted columns), the redaction masks and UID root of
  extractor.deid.pseudonymize, the offsets of deid_sql/SPEC.md to pair each row with its
  original, and the identified values that must never appear;
- scrub: the outcomes of extractor.scrub.instance in the scrub manifest.

One suite per table (or per one-row query of shares); every expectation carries its rule id,
label and criticality in `meta`, and `severity` critical or warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from extractor.build.dbt_build import UNORDERED_STATUSES, dbt_project_dir
from extractor.build.field_spec import read_spec
from extractor.check import sql
from extractor.check.gx import gxe
from extractor.check.settings import CheckSettings
from extractor.config import Config
from extractor.deid.pseudonymize import REDACTION_MASKS, UID_ROOT, offset
from extractor.scrub.instance import DEIDENTIFIED, FILTERED, QUARANTINED
from extractor.warehouses.query import table_name

RAW_UID_COLUMNS = ("sop_class_uid", "sop_instance_uid", "study_instance_uid", "series_instance_uid")
UID_SYNTAX = "^(0|[1-9][0-9]*)([.](0|[1-9][0-9]*))*$"  # PS3.5 9.1: digits and dots, no leading zeros
UID_MAX_LENGTH = 64
HASHED_UID = "^" + UID_ROOT.replace(".", "[.]") + "[1-9][0-9]{37}$"  # SPEC.md operation 1: 38 digits

# identified values that must not appear in any de-identified text column: (kind, table, column)
IDENTIFIERS = (
    ("MRN", "raw_dicom_instance", "patient_id"),
    ("MRN", "raw_dicom_instance", "other_patient_ids"),
    ("MRN", "mrn_crosswalk", "mrn"),
    ("MRN", "imaging_order", "mrn"),
    ("accession number", "raw_dicom_instance", "accession_number"),
    ("accession number", "imaging_order", "accession_number"),
    ("name", "raw_dicom_instance", "patient_name"),
    ("name", "raw_dicom_instance", "referring_physician_name"),
    ("UID", "raw_dicom_instance", "study_instance_uid"),
    ("UID", "raw_dicom_instance", "series_instance_uid"),
    ("UID", "raw_dicom_instance", "sop_instance_uid"),
)

# concept ids the warehouse knows (as the dbt test concept_known): (table, column), and dbt vars
KNOWN_CONCEPTS = (
    ("concept", "concept_id"),
    ("dicom_modality_concept", "concept_id"),
    ("dicom_anatomic_site_concept", "anatomic_site_concept_id"),
    ("image_feature_concept", "concept_id"),
)
KNOWN_CONCEPT_VARS = ("image_feature_type_concept_id", "measurement_event_field_concept_id")

# de-identified table -> (identified tables its rows come from, its shifted date columns); the id
# column is <table>_id, offset with the table's name (SPEC.md operation 4)
SHIFTED_DATES = {
    "image_occurrence": (("image_occurrence",), ("image_occurrence_date", "image_occurrence_datetime")),
    "visit_occurrence": (("visit_occurrence",), ("visit_start_date", "visit_end_date")),
    "procedure_occurrence": (("procedure_occurrence",), ("procedure_date", "procedure_end_date")),
    "condition_occurrence": (("condition_occurrence",), ("condition_start_date", "condition_end_date")),
    "measurement": (("measurement", "image_feature_measurement"), ("measurement_date", "measurement_datetime")),
}

# dbt tests of _deid.yml -> the rule that checks the same columns here
DEID_YML_RULES = {"deid_uid_form": "deid.uid_form", "deid_text_redacted": "deid.text_allowlisted", "deid_deleted": "deid.deleted"}

# the scrub outcomes and the manifest column each one must fill
OUTCOME_COLUMNS = {DEIDENTIFIED: "output", FILTERED: "rule", QUARANTINED: "error"}

# tables each layer reads, by warehouse (False: identified, True: de-identified)
REQUIRED_TABLES = {
    "raw": {False: ("raw_dicom_instance", "raw_dicom_series", "raw_harvest_error")},
    "marts": {False: ("image_occurrence", "image_feature", "image_linkage_audit", "person", "visit_occurrence",
                      "procedure_occurrence", *(t for t, _ in KNOWN_CONCEPTS))},
    "deid": {False: ("raw_dicom_instance", "mrn_crosswalk", "imaging_order", "description_allowlist"),
             True: ("image_occurrence",)},
    "scrub": {False: ("scrub_manifest",)},
}
TEXT_TYPES = ("VARCHAR", "STRING")
# vocabulary copied as is (concept codes would only ever match an identifier by coincidence)
VOCABULARY_TABLES = ("concept",)

Columns = dict[str, dict[str, str]]  # table -> column -> data type


@dataclass
class Check:
    rule: str
    label: str
    expectation: Any  # a great_expectations expectation


@dataclass
class Suite:
    layer: str
    name: str  # the GX asset, suite and validation name, e.g. "deid.image_occurrence"
    query: str  # the asset: a SELECT
    checks: list[Check] = field(default_factory=list)


@dataclass(frozen=True)
class Planner:
    """What the suites are built from: the config, [check] settings, the columns of both warehouses."""

    config: Config
    settings: CheckSettings
    identified_columns: Columns
    deidentified_columns: Columns
    deid_key: str | None = None  # needed for the deid layer (offsets pair rows with their originals)

    @property
    def dialect(self) -> sql.Dialect:
        return sql.dialect(self.config)

    def identified(self, table: str) -> str:
        return table_name(self.config, table)

    def deidentified(self, table: str) -> str:
        return table_name(self.config, table, deidentified=True)

    def check(self, rule: str, label: str, kind: Callable[..., Any], **kwargs: Any) -> Check:
        critical = self.settings.critical[rule]
        expectation = kind(
            **kwargs,
            severity="critical" if critical else "warning",
            meta={"rule": rule, "label": label, "critical": critical},
        )
        return Check(rule, label, expectation)

    def unexpected_rows(self, rule: str, label: str, query: str) -> Check:
        return self.check(rule, label, gxe.UnexpectedRowsExpectation, unexpected_rows_query=query, description=label)


def plan(layers: Sequence[str], planner: Planner) -> list[Suite]:
    builders = {"raw": raw_suites, "marts": marts_suites, "deid": deid_suites, "scrub": scrub_suites}
    return [suite for layer in layers for suite in builders[layer](planner)]


def missing_tables(layer: str, identified_columns: Columns, deidentified_columns: Columns) -> list[str]:
    have = {False: identified_columns, True: deidentified_columns}
    return [
        f"{'de-identified' if deid else 'identified'}.{table}"
        for deid, tables in REQUIRED_TABLES[layer].items()
        for table in tables
        if table not in have[deid]
    ]


# --- raw ---------------------------------------------------------------------------------------


def raw_suites(p: Planner) -> list[Suite]:
    d = p.dialect
    instances = Suite("raw", "identified.raw_dicom_instance", sql.select_all(p.identified("raw_dicom_instance")))
    for column in RAW_UID_COLUMNS:
        label = f"raw_dicom_instance.{column}"
        instances.checks.append(p.check("raw.required_uids", f"{label} present", gxe.ExpectColumnValuesToNotBeNull, column=column))
        instances.checks.append(
            p.unexpected_rows("raw.uid_syntax", f"{label} UID syntax", sql.failing_pattern(column, UID_SYNTAX, d, UID_MAX_LENGTH))
        )
    instances.checks.append(
        p.check("raw.unique_uids", "raw_dicom_instance.sop_instance_uid unique", gxe.ExpectColumnValuesToBeUnique, column="sop_instance_uid")
    )
    series = Suite("raw", "identified.raw_dicom_series", sql.select_all(p.identified("raw_dicom_series")))
    series.checks += [
        p.check("raw.has_series", "raw_dicom_series has rows", gxe.ExpectTableRowCountToBeBetween, min_value=1),
        p.check("raw.unique_uids", "raw_dicom_series.series_instance_uid unique", gxe.ExpectColumnValuesToBeUnique, column="series_instance_uid"),
    ]
    limit = p.settings.thresholds["max_harvest_error_rate"]
    files = sql.labelled_union({"error": p.identified("raw_harvest_error"), "instance": p.identified("raw_dicom_instance")})
    errors = Suite("raw", "identified.harvest_error_rate", sql.shares(files, {"harvest_error_rate": ("label = 'error'", "1 = 1")}, d))
    errors.checks.append(
        p.check("raw.harvest_error_rate", f"harvest error rate <= {limit:.1%}", gxe.ExpectColumnMaxToBeBetween,
                column="harvest_error_rate", max_value=limit)  # fmt: skip
    )
    return [instances, series, errors]


# --- marts -------------------------------------------------------------------------------------


def _yes(value: str) -> bool:
    return value.strip().lower() == "yes"


def marts_suites(p: Planner) -> list[Suite]:
    suites, spec = [], read_spec()
    for table in ("image_occurrence", "image_feature"):
        suite = Suite("marts", f"identified.{table}", sql.select_all(p.identified(table)))
        for row in (r for r in spec if r["cdmTableName"].lower() == table):
            suite.checks += _field_checks(p, table, row)
        suites.append(suite)
    limit = p.settings.thresholds["min_linkage_rate"]
    unordered = ", ".join(f"'{status}'" for status in UNORDERED_STATUSES)
    linkage = Suite("marts", "identified.linkage_rate", sql.shares(
        p.identified("image_linkage_audit"), {"linkage_rate": ("link_status = 'linked'", f"link_status NOT IN ({unordered})")}, p.dialect
    ))  # fmt: skip
    linkage.checks.append(
        p.check("marts.linkage_rate", f"linkage rate >= {limit:.1%} (series with an order)", gxe.ExpectColumnMinToBeBetween,
                column="linkage_rate", min_value=limit)  # fmt: skip
    )
    return suites + [linkage]


def _field_checks(p: Planner, table: str, row: dict[str, str]) -> list[Check]:
    """The checks one row of the OHDSI field spec asks for (as field_spec.column_tests does for dbt)."""
    column = row["cdmFieldName"].lower()
    label = f"{table}.{column}"
    checks = []
    if _yes(row["isRequired"]) or _yes(row["isPrimaryKey"]):
        checks.append(p.check("marts.required", f"{label} not null", gxe.ExpectColumnValuesToNotBeNull, column=column))
    if _yes(row["isPrimaryKey"]):
        checks.append(p.check("marts.unique", f"{label} unique", gxe.ExpectColumnValuesToBeUnique, column=column))
    if _yes(row["isForeignKey"]):
        target, target_column = row["fkTableName"].lower(), row["fkFrieldName"].lower()
        if target == "concept":
            known = [(p.identified(t), c) for t, c in KNOWN_CONCEPTS]
            ids = [int(p.settings.dbt_vars[v]) for v in KNOWN_CONCEPT_VARS if p.settings.dbt_vars.get(v) is not None]
            checks.append(p.unexpected_rows("marts.concept_known", f"{label} known concept or 0", sql.unknown_concept(column, known, ids)))
        else:
            checks.append(p.unexpected_rows(
                "marts.foreign_key", f"{label} -> {target}.{target_column}", sql.missing_reference(column, p.identified(target), target_column)
            ))  # fmt: skip
    return checks


# --- de-identified -----------------------------------------------------------------------------


def deid_yml_tests(path: Path | None = None) -> dict[str, dict[str, list[str]]]:
    """De-identified table (the model's alias) -> dbt test name -> columns, from _deid.yml."""
    path = path or dbt_project_dir() / "models" / "deid" / "_deid.yml"
    out: dict[str, dict[str, list[str]]] = {}
    for model in yaml.safe_load(path.read_text(encoding="utf-8"))["models"]:
        table = (model.get("config") or {}).get("alias", model["name"])
        for column in model.get("columns", []):
            for test in column.get("data_tests") or []:
                name = test if isinstance(test, str) else next(iter(test))
                out.setdefault(table, {}).setdefault(name, []).append(column["name"])
    return out


def deid_suites(p: Planner) -> list[Suite]:
    identifiers = [
        sql.Identifier(kind, p.identified(table), column, person_name=kind == "name")
        for kind, table, column in IDENTIFIERS
        if column in p.identified_columns.get(table, {})
    ]
    declared = deid_yml_tests()
    suites = []
    for table, columns in sorted(p.deidentified_columns.items()):
        suite = Suite("deid", f"deid.{table}", sql.select_all(p.deidentified(table)))
        text_columns = [c for c, kind in columns.items() if kind.upper() in TEXT_TYPES]
        if text_columns and table not in VOCABULARY_TABLES:
            suite.checks.append(p.unexpected_rows(
                "deid.identified_value", f"{table}: no identified MRN, accession number, name or UID",
                sql.identified_values(text_columns, identifiers, p.dialect),
            ))  # fmt: skip
        if table in SHIFTED_DATES:
            suite.checks.append(_dates_check(p, table))
        for test, rule in DEID_YML_RULES.items():
            suite.checks += [_declared_check(p, rule, table, column) for column in declared.get(table, {}).get(test, [])]
        suites.append(suite)
    return suites


def _dates_check(p: Planner, table: str) -> Check:
    if p.deid_key is None:
        raise ValueError("the de-identified checks need the de-identification key")
    sources, dates = SHIFTED_DATES[table]
    query = sql.unshifted_dates(
        f"{table}_id", offset(table, p.deid_key), [p.identified(s) for s in sources], dates, p.dialect
    )
    return p.unexpected_rows("deid.date_shifted", f"{table}: {', '.join(dates)} shifted", query)


def _declared_check(p: Planner, rule: str, table: str, column: str) -> Check:
    label = f"{table}.{column}"
    if rule == "deid.uid_form":
        return p.unexpected_rows(rule, f"{label} hashed 2.25 UID", sql.failing_pattern(column, HASHED_UID, p.dialect))
    if rule == "deid.text_allowlisted":
        query = sql.unallowlisted_tokens(column, p.identified("description_allowlist"), sorted(REDACTION_MASKS), p.dialect)
        return p.unexpected_rows(rule, f"{label} allowlisted words and masks only", query)
    return p.check(rule, f"{label} deleted", gxe.ExpectColumnValuesToBeNull, column=column)


# --- scrub manifest ----------------------------------------------------------------------------


def scrub_suites(p: Planner) -> list[Suite]:
    manifest = p.identified("scrub_manifest")
    rows = Suite("scrub", "identified.scrub_manifest", sql.select_all(manifest))
    rows.checks.append(p.unexpected_rows(
        "scrub.outcome_recorded", "scrub_manifest outcomes known, with rule / error / output", sql.incomplete_outcomes("outcome", OUTCOME_COLUMNS)
    ))  # fmt: skip
    quarantine, filtered = (p.settings.thresholds[k] for k in ("max_quarantine_rate", "max_filtered_rate"))
    shares = Suite("scrub", "identified.scrub_outcome_shares", sql.shares(manifest, {
        "quarantine_rate": (f"outcome = '{QUARANTINED}'", "1 = 1"),
        "filtered_rate": (f"outcome = '{FILTERED}'", "1 = 1"),
    }, p.dialect))  # fmt: skip
    shares.checks += [
        p.check("scrub.quarantine_rate", f"quarantined share <= {quarantine:.1%}", gxe.ExpectColumnMaxToBeBetween,
                column="quarantine_rate", max_value=quarantine),
        p.check("scrub.filtered_rate", f"filtered share <= {filtered:.1%}", gxe.ExpectColumnMaxToBeBetween,
                column="filtered_rate", max_value=filtered),
    ]  # fmt: skip
    return [rows, shares]
