"""The SQL the checks run, for DuckDB and BigQuery. Pure functions returning strings.

Two kinds of query:
- *templates* for great-expectations' UnexpectedRowsExpectation: they return the offending rows
  and read the batch as `{batch}` (GX fills it in with `str.format`, so every other brace is
  doubled here); each starts with `WITH b AS (SELECT * FROM {batch})`;
- *asset queries* (plain SELECTs) that GX validates like a table, e.g. one row of shares.

Table names come in already qualified (extractor.warehouses.query.table_name), so the same
text reads the identified and the de-identified warehouse in one query: on DuckDB both files
are attached to one connection, on BigQuery both datasets are in one project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from extractor.config import Config
from extractor.warehouses.query import table_name

BATCH = "WITH b AS (SELECT * FROM {batch})"


@dataclass(frozen=True)
class Dialect:
    target: str
    text_type: str
    datetime_type: str
    float_type: str
    regexp: str  # function(text, pattern) -> true when the RE2 pattern matches somewhere in text
    split: str  # function(text, separator) -> array

    def matches(self, expr: str, pattern: str) -> str:
        return f"{self.regexp}({expr}, {template_literal(pattern)})"


DUCKDB = Dialect("duckdb", "VARCHAR", "TIMESTAMP", "DOUBLE", "regexp_matches", "string_split")
BIGQUERY = Dialect("bigquery", "STRING", "DATETIME", "FLOAT64", "REGEXP_CONTAINS", "SPLIT")


def dialect(config: Config) -> Dialect:
    return BIGQUERY if config.target == "bigquery" else DUCKDB


def template_literal(text: str) -> str:
    """A SQL string literal inside a GX template: braces doubled. Quotes and backslashes are
    refused (DuckDB and BigQuery escape them differently; no rule needs them)."""
    if "'" in text or "\\" in text:
        raise ValueError(f"not usable as a literal in the check SQL: {text!r}")
    return "'" + text.replace("{", "{{").replace("}", "}}") + "'"


def select_all(table: str) -> str:
    return f"SELECT * FROM {table}"


def columns_query(config: Config, deidentified: bool) -> str:
    """(table_name, column_name, data_type) of every column in one warehouse, for run_query."""
    if config.target == "bigquery":
        assert config.bigquery is not None
        bq = config.bigquery
        dataset = bq.deidentified_dataset if deidentified else bq.identified_dataset
        return f"SELECT table_name, column_name, data_type FROM `{bq.project}.{dataset}`.INFORMATION_SCHEMA.COLUMNS"
    catalog, schema, _ = table_name(config, "_", deidentified).split(".")
    return (
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        f"WHERE table_catalog = '{catalog}' AND table_schema = '{schema}' ORDER BY table_name, ordinal_position"
    )


# --- templates (UnexpectedRowsExpectation) -------------------------------------------------------


def failing_pattern(column: str, pattern: str, d: Dialect, max_length: int | None = None) -> str:
    """Rows whose value does not match the pattern (or is longer than max_length)."""
    too_long = f" OR LENGTH(b.{column}) > {max_length}" if max_length else ""
    return f"{BATCH}\nSELECT b.{column} FROM b\nWHERE b.{column} IS NOT NULL AND (NOT {d.matches(f'b.{column}', pattern)}{too_long})"


def missing_reference(column: str, target: str, target_column: str) -> str:
    """Rows whose foreign key has no row in the target table."""
    return (
        f"{BATCH}\nSELECT b.{column} FROM b\nWHERE b.{column} IS NOT NULL\n"
        f"  AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE t.{target_column} = b.{column})"
    )


def unknown_concept(column: str, known: Sequence[tuple[str, str]], known_ids: Sequence[int]) -> str:
    """Rows whose concept id is neither 0 (unmapped) nor in one of the (table, column) sources."""
    sources = [f"SELECT {c} AS concept_id FROM {t}" for t, c in known] + [f"SELECT {int(i)} AS concept_id" for i in known_ids]
    union = "\n  UNION ALL ".join(sources)
    return (
        f"{BATCH},\nknown AS (\n  {union}\n)\n"
        f"SELECT b.{column} AS unknown_concept_id FROM b\n"
        f"WHERE b.{column} IS NOT NULL AND b.{column} <> 0\n"
        f"  AND b.{column} NOT IN (SELECT concept_id FROM known WHERE concept_id IS NOT NULL)"
    )


@dataclass(frozen=True)
class Identifier:
    """An identified column whose values must never appear in a de-identified table."""

    kind: str  # MRN, accession number, name, UID
    table: str  # qualified
    column: str
    person_name: bool = False  # a DICOM PN: also compared with its ^ separators as spaces


def identified_values(columns: Sequence[str], identifiers: Sequence[Identifier], d: Dialect) -> str:
    """Rows (column, kind, value) where a de-identified text value equals an identified one
    (both compared as text, trimmed and upper-cased)."""
    if not identifiers:
        raise ValueError("no identified columns to compare with")
    normalized = lambda expr: f"UPPER(TRIM(CAST({expr} AS {d.text_type})))"  # noqa: E731
    phi = []
    for ident in identifiers:
        forms = [ident.column] + ([f"REPLACE({ident.column}, '^', ' ')"] if ident.person_name else [])
        phi += [f"SELECT {template_literal(ident.kind)} AS kind, {normalized(f)} AS value FROM {ident.table}" for f in forms]
    candidates = [f"SELECT {template_literal(c)} AS column_name, {normalized(f'b.{c}')} AS value FROM b" for c in columns]
    return (
        f"{BATCH},\nphi AS (\n  " + "\n  UNION ALL ".join(phi) + "\n),\n"
        "candidates AS (\n  " + "\n  UNION ALL ".join(candidates) + "\n)\n"
        "SELECT DISTINCT c.column_name, p.kind, c.value FROM candidates AS c\n"
        "JOIN phi AS p ON p.value = c.value\nWHERE c.value <> ''"
    )


def _typed(expr: str, column: str, d: Dialect) -> str:
    return f"CAST({expr} AS {'DATE' if column.endswith('_date') else d.datetime_type})"


def unshifted_dates(id_column: str, offset: int, identified: Sequence[str], date_columns: Sequence[str], d: Dialect) -> str:
    """Rows whose date equals the date of the identified row it was made from. A de-identified
    row is paired with its original through the offset id (id + offset, SPEC operation 4); a row
    without an original is offending too, so a wrong key fails the check instead of pairing nothing."""
    originals = "\n  UNION ALL ".join(
        f"SELECT {id_column}, " + ", ".join(f"{_typed(c, c, d)} AS {c}" for c in date_columns) + f" FROM {t}" for t in identified
    )
    joined = f"FROM b\nLEFT JOIN originals AS i ON b.{id_column} = i.{id_column} + {int(offset)}\n"
    problems = [(f"i.{id_column} IS NULL", "no original row (another key?)")]
    problems += [(f"{_typed(f'b.{c}', c, d)} = i.{c}", c) for c in date_columns]
    rows = "\nUNION ALL\n".join(
        f"SELECT b.{id_column}, {template_literal(what)} AS problem {joined}WHERE {condition}" for condition, what in problems
    )
    return f"{BATCH},\noriginals AS (\n  {originals}\n)\n{rows}"


def unallowlisted_tokens(column: str, allowlist: str, masks: Sequence[str], d: Dialect) -> str:
    """(redacted_text, token) pairs where a token of redacted text is not kept by redaction stage 2: not a
    mask, not a number of 1 to 4 digits, not in the allowlist (normalised as the redaction
    normalises it: trimmed, upper case, [A-Z0-9]+ only; see extractor.deid.pseudonymize.keep_token)."""
    masks_sql = ", ".join(template_literal(m) for m in sorted(masks))
    return (
        f"{BATCH},\n"
        f"allowed AS (SELECT DISTINCT UPPER(TRIM(token)) AS token FROM {allowlist}),\n"
        f"tokens AS (\n  SELECT b.{column} AS redacted_text, tok FROM b, UNNEST({d.split}(b.{column}, ' ')) AS tok\n"
        f"  WHERE b.{column} IS NOT NULL\n)\n"
        "SELECT DISTINCT redacted_text, tok AS token FROM tokens\n"
        f"WHERE tok <> '' AND tok NOT IN ({masks_sql})\n"
        f"  AND NOT {d.matches('tok', '^[0-9]{1,4}$')}\n"
        f"  AND tok NOT IN (SELECT token FROM allowed WHERE {d.matches('token', '^[A-Z0-9]+$')})"
    )


def incomplete_outcomes(outcome_column: str, required: Mapping[str, str]) -> str:
    """Rows with an unknown outcome, or a known one without the column it needs (outcome -> column)."""
    known = ", ".join(template_literal(o) for o in required)
    missing = "".join(f"\n   OR (b.{outcome_column} = {template_literal(o)} AND b.{c} IS NULL)" for o, c in required.items())
    return (
        f"{BATCH}\nSELECT * FROM b\n"
        f"WHERE b.{outcome_column} IS NULL OR b.{outcome_column} NOT IN ({known}){missing}"
    )


# --- asset queries --------------------------------------------------------------------------------


def shares(relation: str, named: Mapping[str, tuple[str, str]], d: Dialect) -> str:
    """One row: for each name, the share of rows meeting a condition among rows meeting another
    (name -> (condition, among)); 0 when no row is among them."""

    def share(condition: str, among: str) -> str:
        count = lambda c: f"SUM(CASE WHEN {c} THEN 1 ELSE 0 END)"  # noqa: E731
        return f"CAST(COALESCE({count(condition)} / NULLIF({count(among)}, 0), 0) AS {d.float_type})"

    return "SELECT " + ", ".join(f"{share(c, a)} AS {name}" for name, (c, a) in named.items()) + f" FROM {relation}"


def labelled_union(parts: Mapping[str, str]) -> str:
    """A derived table of one `label` column: one row per row of each table (label -> table)."""
    union = " UNION ALL ".join(f"SELECT '{label}' AS label FROM {table}" for label, table in parts.items())
    return f"({union}) AS labelled"
