"""`imgomop build` on the demo archive, on DuckDB: linkage, the field spec, and the de-identified copy."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pydicom
import pytest
from conftest import TEST_DEID_KEY, invoke_cli, write_duckdb_config

from extractor.build.field_spec import read_spec

SPEC_TYPES = {"integer": "BIGINT", "int": "BIGINT", "date": "DATE", "datetime": "TIMESTAMP"}


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def test_build_reports_models_tests_rows_and_linkage(built_demo):
    output = built_demo.build_output
    assert "models" in output and "tests" in output and "FAILED" not in output
    assert "image_occurrence" in output and "linkage" in output


def test_linkage_rate_of_series_with_an_order_is_at_least_95_percent(built_demo):
    con = _connect(built_demo.identified)
    linked, with_order = con.execute(
        "SELECT count(*) FILTER (WHERE is_linked), count(*) FILTER (WHERE link_status NOT IN ('no_order', 'no_accession')) "
        "FROM image_linkage_audit"
    ).fetchone()
    assert with_order > 100
    assert linked / with_order >= 0.95


def test_every_series_is_audited_and_every_miss_explained(built_demo):
    con = _connect(built_demo.identified)
    series = con.execute("SELECT count(*) FROM raw_dicom_series").fetchone()[0]
    audited = con.execute("SELECT count(*), count(DISTINCT series_instance_uid) FROM image_linkage_audit").fetchone()
    assert audited == (series, series)
    unexplained = con.execute(
        "SELECT count(*) FROM image_linkage_audit WHERE NOT is_linked AND (link_reason IS NULL OR link_status IS NULL)"
    ).fetchone()[0]
    assert unexplained == 0
    # images the demo made without an order are reported as such, never linked
    key = json.loads(built_demo.archive.answer_key.read_text())
    orderless = {f["series_uid"] for f in key["files"] if not f["has_order"]}
    statuses = dict(
        con.execute(
            "SELECT series_instance_uid, link_status FROM image_linkage_audit WHERE series_instance_uid IN (SELECT unnest(?))",
            [sorted(orderless)],
        ).fetchall()
    )
    assert orderless and set(statuses) == orderless
    assert "linked" not in statuses.values()


def test_linked_series_point_at_the_order_the_demo_placed(built_demo):
    key = json.loads(built_demo.archive.answer_key.read_text())
    expected = {f["series_uid"]: f["procedure_occurrence_id"] for f in key["files"] if f["has_order"]}
    con = _connect(built_demo.identified)
    linked = dict(con.execute("SELECT image_series_uid, procedure_occurrence_id FROM image_occurrence").fetchall())
    wrong = {uid: (got, expected[uid]) for uid, got in linked.items() if uid in expected and expected[uid] != got}
    assert linked and not wrong


@pytest.mark.parametrize("database", ["identified", "deidentified"])
def test_required_fields_are_filled_and_typed_as_the_field_spec_says(built_demo, database):
    con = _connect(getattr(built_demo, database))
    for table in ("IMAGE_OCCURRENCE", "IMAGE_FEATURE"):
        columns = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table.lower()})").fetchall())
        assert con.execute(f"SELECT count(*) FROM {table.lower()}").fetchone()[0] > 0
        for row in (r for r in read_spec() if r["cdmTableName"] == table):
            column = row["cdmFieldName"].lower()
            assert column in columns, f"{database}.{table}.{column} missing"
            spec_type = row["cdmDatatype"].lower()
            expected = SPEC_TYPES.get(spec_type, "VARCHAR")
            assert columns[column] == expected, f"{database}.{table}.{column}: {columns[column]} != {expected}"
            if row["isRequired"].lower() == "yes":
                nulls = con.execute(f"SELECT count(*) FROM {table.lower()} WHERE {column} IS NULL").fetchone()[0]
                assert nulls == 0, f"{database}.{table}.{column} has {nulls} NULLs"


def test_deidentified_file_alone_answers_a_cohort_query(built_demo):
    """Seed 003's example: thin-slice chest CT of persons with a condition, from the de-identified file only."""
    con = duckdb.connect(str(built_demo.deidentified), read_only=True)
    attached = {row[0] for row in con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()}
    assert attached == {"deidentified"}
    views = con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0]
    assert views == 0  # everything is a table: nothing reaches back into the identified file
    rows = con.execute(
        """
        SELECT DISTINCT io.person_id, io.image_series_uid, io.slice_thickness
        FROM image_occurrence io
        JOIN image_feature f ON f.image_occurrence_id = io.image_occurrence_id
        JOIN measurement m ON m.measurement_id = f.image_feature_event_id AND m.measurement_source_value = 'SliceThickness'
        WHERE io.modality_source_value = 'CT' AND m.value_as_number <= 1.0
          AND io.person_id IN (SELECT person_id FROM condition_occurrence)
        """
    ).fetchall()
    assert rows
    assert all(thickness <= 1.0 and uid.startswith("2.25.") for _, uid, thickness in rows)


def _deid_text_values(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    values: list[str] = []
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
    ).fetchall():
        values += [v for (v,) in con.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()]
    return values


def test_no_identifier_of_the_archive_survives_in_the_deidentified_file(built_demo):
    key = json.loads(built_demo.archive.answer_key.read_text())
    identifiers = set()
    for f in key["files"]:
        identifiers |= {f["study_uid"], f["series_uid"], f["sop_uid"], f["patient_mrn"], f["accession"]}
    identifiers |= {p["value"] for p in key["phi"] if p["category"] != "burned_in" and len(str(p["value"])) >= 4}
    identifiers -= {None, ""}
    values = _deid_text_values(built_demo.deidentified)
    text = "\n".join(values).upper()
    tokens = {t for v in values for t in re.split(r"[^A-Za-z0-9.]+", v.upper())}
    # names and addresses may hide inside longer text (as whole words: KING is not in SMOKING);
    # numbers and UIDs must not stand as a token (a digit run inside a hashed UID is not a leak)
    survivors = sorted(
        v
        for v in map(str, identifiers)
        if (re.search(rf"\b{re.escape(v.upper())}\b", text) if re.search("[A-Za-z]", v) else v in tokens)
    )
    assert not survivors, survivors[:20]


def _identified_and_deidentified_pairs(built_demo, columns: str) -> list[tuple]:
    """Rows of identified image_occurrence beside their de-identified row (matched by the id offset)."""
    from extractor.deid import pseudonymize as p

    con = _connect(built_demo.identified)
    con.execute(f"ATTACH '{built_demo.deidentified}' AS d (READ_ONLY)")
    return con.execute(
        f"SELECT {columns} FROM image_occurrence i JOIN d.image_occurrence d ON d.image_occurrence_id = i.image_occurrence_id + ?",
        [p.offset("image_occurrence", TEST_DEID_KEY)],
    ).fetchall()


def test_every_deidentified_date_is_shifted_by_a_nonzero_per_person_jitter(built_demo):
    pairs = _identified_and_deidentified_pairs(built_demo, "i.person_id, i.image_occurrence_date, d.image_occurrence_date")
    assert len(pairs) == _connect(built_demo.identified).execute("SELECT count(*) FROM image_occurrence").fetchone()[0]
    shifts: dict[int, set[int]] = {}
    for person, original, shifted in pairs:
        shifts.setdefault(person, set()).add((shifted - original).days)
    assert all(len(s) == 1 for s in shifts.values())
    assert all(0 < abs(next(iter(s))) <= 30 for s in shifts.values())


def test_pseudonyms_equal_the_python_implementation(built_demo):
    """Contract 1: the SQL macros and extractor/deid give the same UIDs, accessions and dates."""
    from extractor.deid import pseudonymize as p

    rows = _identified_and_deidentified_pairs(
        built_demo,
        "i.person_id, i.image_series_uid, i.image_study_uid, i.accession_number, i.image_occurrence_date, "
        "d.image_series_uid, d.image_study_uid, d.accession_number, d.image_occurrence_date",
    )
    assert rows
    for person, series, study, accession, day, d_series, d_study, d_accession, d_day in rows:
        assert d_series == p.hash_uid(series, TEST_DEID_KEY)
        assert d_study == p.hash_uid(study, TEST_DEID_KEY)
        assert d_accession == p.hash_text("accession", accession, TEST_DEID_KEY)
        assert d_day == p.shift_date(day, str(person), TEST_DEID_KEY)


def test_ids_stay_stable_when_new_data_arrives(built_demo, tmp_path):
    """A refresh with a new series keeps every existing image_occurrence_id, identified and de-identified.

    Runs on a copy of the demo warehouse, so the shared one is left as it was.
    """
    shutil.copytree(built_demo.identified.parent, tmp_path / "warehouse", ignore=shutil.ignore_patterns("dbt"))
    config = write_duckdb_config(tmp_path)
    identified, deidentified = tmp_path / "warehouse" / "identified.duckdb", tmp_path / "warehouse" / "deidentified.duckdb"
    query = "SELECT image_series_uid, image_occurrence_id FROM image_occurrence"
    before = dict(_connect(identified).execute(query).fetchall())
    deid_before = {r[1] for r in _connect(deidentified).execute(query).fetchall()}
    # a new series in an existing, linked study: a copy of one linked file with new series/SOP UIDs
    key = json.loads(built_demo.archive.answer_key.read_text())
    linked_file = next(f for f in key["files"] if f["has_order"] and f["modality"] == "CT")
    ds = pydicom.dcmread(built_demo.archive.root / linked_file["file"])
    ds.SeriesInstanceUID = linked_file["series_uid"] + ".77"
    ds.SOPInstanceUID = linked_file["sop_uid"] + ".77"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    (tmp_path / "incoming").mkdir()
    ds.save_as(tmp_path / "incoming" / "new_series.dcm")
    invoke_cli("harvest", str(tmp_path / "incoming"), "--config", str(config), "--workers", "1")
    invoke_cli("build", "--config", str(config))
    after = dict(_connect(identified).execute(query).fetchall())
    deid_after = {r[1] for r in _connect(deidentified).execute(query).fetchall()}
    assert ds.SeriesInstanceUID in after
    assert {uid: after[uid] for uid in before} == before
    assert deid_before < deid_after and len(deid_after) == len(deid_before) + 1


def test_the_key_is_never_written_to_dbt_artifacts(built_demo):
    artifacts = built_demo.identified.parent / "dbt"
    assert artifacts.is_dir()
    for path in artifacts.rglob("*"):
        if path.is_file():
            assert TEST_DEID_KEY.encode() not in path.read_bytes(), path


def test_build_without_a_key_explains_how_to_make_one(built_demo, monkeypatch):
    from typer.testing import CliRunner

    from extractor.cli import app

    monkeypatch.delenv("IMGOMOP_DEID_KEY", raising=False)
    result = CliRunner().invoke(app, ["build", "--config", str(built_demo.config_path)])
    assert result.exit_code == 2
    assert "IMGOMOP_DEID_KEY" in result.output and "secrets.token_hex" in result.output


def test_deidentified_dates_are_real_dates(built_demo):
    con = _connect(built_demo.deidentified)
    low, high = con.execute("SELECT min(image_occurrence_date), max(image_occurrence_date) FROM image_occurrence").fetchone()
    assert date(1900, 1, 1) < low <= high < date(2100, 1, 1)
