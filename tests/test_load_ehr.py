"""`imgomop load-ehr`: clear errors for bad EHR input, and nothing replaced when the input is bad."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from extractor.build.load_ehr import EhrLoadError, load_ehr


def _minimal_ehr(folder: Path) -> Path:
    folder.mkdir()
    (folder / "PERSON.csv").write_text("person_id,gender_concept_id,year_of_birth\n1,8507,1970\n2,8532,1980\n")
    (folder / "visit_occurrence.csv").write_text("visit_occurrence_id,person_id,visit_concept_id,visit_start_date\n10,1,9202,2020-01-01\n")
    (folder / "procedure_occurrence.csv").write_text(
        "procedure_occurrence_id,person_id,procedure_concept_id,procedure_date\n100,1,0,2020-01-01\n"
    )
    (folder / "mrn_crosswalk.csv").write_text("person_id,mrn,birth_date\n1,A001,1970-01-01\n")
    (folder / "imaging_order.csv").write_text(
        "mrn,birth_date,accession_number,procedure_occurrence_id\nA001,1970-01-01,ACC1,100\n"
    )
    return folder


def test_loads_required_tables_and_creates_optional_ones_empty(tmp_path):
    con = duckdb.connect(str(tmp_path / "id.duckdb"))
    loaded = {t.name: t for t in load_ehr(_minimal_ehr(tmp_path / "ehr"), con)}
    assert loaded["person"].rows == 2 and loaded["person"].source.name == "PERSON.csv"
    assert loaded["note"].rows == 0 and loaded["note"].source is None
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE imaging_order)").fetchall())
    assert types["birth_date"] == "DATE" and types["procedure_occurrence_id"] == "BIGINT"


def test_parquet_input_is_read(tmp_path):
    ehr = _minimal_ehr(tmp_path / "ehr")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{ehr / 'PERSON.csv'}')) TO '{ehr / 'person.parquet'}' (FORMAT parquet)")
    (ehr / "PERSON.csv").unlink()
    loaded = {t.name: t for t in load_ehr(ehr, con)}
    assert loaded["person"].source.name == "person.parquet" and loaded["person"].rows == 2


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda ehr: (ehr / "imaging_order.csv").unlink(), "missing required table file(s): imaging_order.csv"),
        (
            lambda ehr: (ehr / "mrn_crosswalk.csv").write_text("person_id,mrn\n1,A001\n"),
            "missing required column(s) birth_date",
        ),
        (
            lambda ehr: (ehr / "PERSON.csv").write_text("person_id,gender_concept_id,year_of_birth\n1,8507,1970\nabc,8532,1980\n"),
            "column person_id: 'abc' on data row 2 is not a valid BIGINT",
        ),
        (
            lambda ehr: (ehr / "imaging_order.csv").write_text(
                "mrn,birth_date,accession_number,procedure_occurrence_id\nA001,31/01/1970,ACC1,100\n"
            ),
            "column birth_date: '31/01/1970' on data row 1 is not a valid DATE",
        ),
    ],
)
def test_bad_input_names_the_file_and_the_problem_and_replaces_nothing(tmp_path, breakage, message):
    database = tmp_path / "id.duckdb"
    good = _minimal_ehr(tmp_path / "good")
    load_ehr(good, duckdb.connect(str(database)))
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    breakage(bad)
    con = duckdb.connect(str(database))
    with pytest.raises(EhrLoadError) as error:
        load_ehr(bad, con)
    assert message in str(error.value)
    assert str(bad) in str(error.value)
    assert con.execute("SELECT count(*) FROM person").fetchone()[0] == 2  # the earlier load is intact


def test_not_a_folder(tmp_path):
    with pytest.raises(EhrLoadError, match="not a folder"):
        load_ehr(tmp_path / "missing", duckdb.connect())
