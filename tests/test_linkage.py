"""Linkage tiers, one crafted case each: which tier links a series, and why others do not link."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest
from conftest import invoke_cli, write_duckdb_config

from extractor.warehouses.duckdb_writer import DuckDBRawWarehouse

# (series uid, PatientID, birth date, accession, modality, study date, conflicting attributes)
SERIES = [
    ("1.1", "MRN-001", "19700101", "ACC1", "CT", "20200105", None),  # exact composite key
    ("1.2", "0000MRN002", "19800202", "ACC2", "MR", "20200106", None),  # MRN written with padding
    ("1.3", "MRN-003B", "19900303", "ACC3", "CT", "20200107", None),  # second MRN of person 3
    ("1.4", "MRN-004", None, "ACC4", "CR", "20200108", None),  # no birth date in DICOM
    ("1.5", "MRN-005", "19500505", None, "US", "20200109", None),  # no accession: date + modality
    ("1.6", "MRN-006", "19600606", "SHARED", "CT", "20200110", None),  # accession reused by another department
    ("1.7", "MRN-007", "19700707", "DUP", "CT", "20200111", None),  # two orders fit equally
    ("1.8", "MRN-008", "19800808", "ACC8", "CT", "20200112", None),  # order under another identity
    ("1.9", "MRN-009", "19900909", "ACC9", "CT", "20200113", "patient_id,patient_birth_date"),
    ("1.10", "MRN-010", "19991010", "NOPE", "CT", "20200114", None),  # no order at all
    ("1.11", "MRN-999", "20010101", "ACC11", "CT", "20200115", None),  # MRN not in the crosswalk
]
CROSSWALK = [
    (1, "MRN-001", "1970-01-01"), (2, "MRN002", "1980-02-02"), (3, "MRN-003A", "1990-03-03"),
    (3, "MRN-003B", "1990-03-03"), (4, "MRN-004", "1940-04-04"), (5, "MRN-005", "1950-05-05"),
    (6, "MRN-006", "1960-06-06"), (60, "MRN-060", "1961-06-06"), (7, "MRN-007", "1970-07-07"),
    (8, "MRN-008", "1980-08-08"), (80, "MRN-080", "1981-08-08"), (9, "MRN-009", "1990-09-09"),
    (10, "MRN-010", "1999-10-10"),
]
# (mrn, birth date, accession, procedure id, department, modality, order date)
ORDERS = [
    ("MRN-001", "1970-01-01", "ACC1", 101, "RAD", "CT", "2020-01-05"),
    ("MRN002", "1980-02-02", "ACC2", 102, "RAD", "MR", "2020-01-06"),
    ("MRN-003A", "1990-03-03", "ACC3", 103, "RAD", "CT", "2020-01-07"),
    ("MRN-004", "1940-04-04", "ACC4", 104, "RAD", "CR", "2020-01-08"),
    ("MRN-005", "1950-05-05", "ACC5-OTHER", 105, "OB", "US", "2020-01-09"),
    ("MRN-006", "1960-06-06", "SHARED", 106, "RAD", "CT", "2020-01-10"),
    ("MRN-060", "1961-06-06", "SHARED", 160, "CARDIO", "CT", "2020-01-10"),
    ("MRN-007", "1970-07-07", "DUP", 107, "RAD", "CT", "2020-01-11"),
    ("MRN-007", "1970-07-07", "DUP", 117, "ED", "CT", "2020-01-11"),
    ("MRN-080", "1981-08-08", "ACC8", 108, "RAD", "CT", "2020-01-12"),
    ("MRN-009", "1990-09-09", "ACC9", 109, "RAD", "CT", "2020-01-13"),
    ("MRN-999", "2001-01-01", "ACC11", 111, "RAD", "CT", "2020-01-15"),
]
PROCEDURE_PERSON = {101: 1, 102: 2, 103: 3, 104: 4, 105: 5, 106: 6, 160: 60, 107: 7, 117: 7, 108: 80, 109: 9, 111: 11}

EXPECTED = {
    "1.1": ("linked", "mrn_dob_accession", 101),
    "1.2": ("linked", "mrn_dob_accession", 102),
    "1.3": ("linked", "alternate_mrn_dob_accession", 103),
    "1.4": ("linked", "mrn_accession_missing_dob", 104),
    "1.5": ("linked", "mrn_dob_date_modality", 105),
    "1.6": ("linked", "mrn_dob_accession", 106),
    "1.7": ("ambiguous", None, None),
    "1.8": ("identity_mismatch", None, None),
    "1.9": ("conflicting_series", "mrn_dob_accession", None),  # the tier it would have reached
    "1.10": ("no_order", None, None),
    "1.11": ("order_without_person", "mrn_dob_accession", None),
}


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_ehr(folder: Path) -> None:
    folder.mkdir()
    persons = sorted({p for p, _, _ in CROSSWALK} | set(PROCEDURE_PERSON.values()))
    _write_csv(folder / "person.csv", ["person_id", "gender_concept_id", "year_of_birth"], [(p, 8507, 1970) for p in persons])
    _write_csv(
        folder / "visit_occurrence.csv",
        ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"],
        [(p, p, 9202, "2020-01-01") for p in persons],
    )
    _write_csv(
        folder / "procedure_occurrence.csv",
        ["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date", "visit_occurrence_id"],
        [(proc, person, 0, "2020-01-05", person) for proc, person in PROCEDURE_PERSON.items()],
    )
    _write_csv(folder / "mrn_crosswalk.csv", ["person_id", "mrn", "birth_date"], CROSSWALK)
    _write_csv(
        folder / "imaging_order.csv",
        ["mrn", "birth_date", "accession_number", "procedure_occurrence_id", "visit_occurrence_id", "department", "modality", "order_datetime"],
        [(m, b, a, proc, PROCEDURE_PERSON[proc], dept, mod, f"{day} 09:00:00") for m, b, a, proc, dept, mod, day in ORDERS],
    )


def _write_raw_series(path: Path) -> None:
    warehouse = DuckDBRawWarehouse(path)
    warehouse.ensure_tables()
    for uid, mrn, dob, accession, modality, day, conflicts in SERIES:
        location = f"/archive/{uid}/1.dcm"
        warehouse.con.execute(
            "INSERT INTO raw_dicom_instance (location, file_size, file_mtime_ns, sop_instance_uid, series_instance_uid, "
            "study_instance_uid) VALUES (?, 1, 1, ?, ?, ?)",
            [location, uid + ".1", uid, "9." + uid],
        )
        warehouse.con.execute(
            "INSERT INTO raw_dicom_series (series_instance_uid, study_instance_uid, patient_id, patient_birth_date, "
            "accession_number, modality, study_date, series_date, series_description, study_description, "
            "instance_count, file_count, total_bytes, conflicting_attributes, representative_location) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'AXIAL', 'CT CHEST', 1, 1, 1, ?, ?)",
            [uid, "9." + uid, mrn, dob, accession, modality, day, day, conflicts, location],
        )
    warehouse.close()


@pytest.fixture(scope="module")
def linkage(tmp_path_factory, built_demo) -> tuple[dict[str, tuple], set[str]]:
    """Build the crafted warehouse (after the shared demo build, which sets the test key)."""
    root = tmp_path_factory.mktemp("linkage")
    config = write_duckdb_config(root)
    _write_raw_series(root / "warehouse" / "identified.duckdb")
    _write_ehr(root / "ehr")
    invoke_cli("load-ehr", str(root / "ehr"), "--config", str(config))
    invoke_cli("build", "--config", str(config))
    con = duckdb.connect(str(root / "warehouse" / "identified.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT series_instance_uid, link_status, link_tier_name, procedure_occurrence_id, link_reason FROM image_linkage_audit"
    ).fetchall()
    occurrences = {uid for (uid,) in con.execute("SELECT image_series_uid FROM image_occurrence").fetchall()}
    return {uid: (status, tier, procedure, reason) for uid, status, tier, procedure, reason in rows}, occurrences


@pytest.mark.parametrize("series_uid", sorted(EXPECTED))
def test_each_series_links_by_the_expected_tier_or_is_explained(linkage, series_uid):
    audit, _ = linkage
    status, tier, procedure, reason = audit[series_uid]
    assert (status, tier, procedure) == EXPECTED[series_uid], reason
    assert reason


def test_only_linked_series_reach_image_occurrence(linkage):
    audit, occurrences = linkage
    assert occurrences == {uid for uid, (status, *_rest) in audit.items() if status == "linked"}
    assert not occurrences & {"1.7", "1.8", "1.9", "1.10", "1.11"}
