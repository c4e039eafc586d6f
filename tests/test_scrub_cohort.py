"""Cohort scrub of the demo archive: files match the de-identified table row for row, and no PHI survives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pydicom
import pytest
from conftest import invoke_cli
from pydicom.dataset import Dataset

from extractor.scrub.pixels import frame_regions_are_blank

COHORT = "SELECT image_occurrence_id FROM image_occurrence"
# Burned-in text is checked in the pixels (test_burned_in_text_rectangles_are_blank); every
# other category of the answer key must be gone from every element.
CATEGORIES_NOT_CHECKED = {"burned_in"}


@pytest.fixture(scope="module")
def extract(built_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "cohort"
    output = invoke_cli("scrub", "--cohort", COHORT, "--out", str(out), "--config", str(built_demo.config_path), "--workers", "2")
    con = duckdb.connect(str(built_demo.identified), read_only=True)
    manifest = con.execute(
        "SELECT location, outcome, rule, output, regions, error FROM scrub_manifest"
    ).fetchall()
    con.close()
    return out, output, manifest


def _elements(ds: Dataset):
    """Every element, at every depth, file meta included."""
    if hasattr(ds, "file_meta"):
        yield from ds.file_meta.iterall()
    yield from ds.iterall()


def _text_of(ds: Dataset) -> str:
    parts = []
    for element in _elements(ds):
        if element.tag == 0x7FE00010 or element.VR in ("OB", "OW", "OF", "OD", "UN") and element.tag.is_private is False:
            continue
        value = element.value
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        parts.append(str(value))
    return "\n".join(parts).upper()


def test_every_cohort_instance_has_one_outcome(extract, built_demo):
    _, output, manifest = extract
    assert "deidentified" in output
    con = duckdb.connect(str(built_demo.identified), read_only=True)
    expected = con.execute(
        "SELECT count(*) FROM raw_dicom_instance r JOIN image_occurrence i ON i.image_series_uid = r.series_instance_uid"
    ).fetchone()[0]
    assert len(manifest) == expected
    assert {outcome for _, outcome, *_ in manifest} <= {"deidentified", "filtered", "quarantined"}
    assert not [row for row in manifest if row[1] == "quarantined"], [row for row in manifest if row[1] == "quarantined"][:3]


def test_files_match_the_deidentified_image_occurrence_row_for_row(extract, built_demo):
    out, _, manifest = extract
    con = duckdb.connect(str(built_demo.deidentified), read_only=True)
    rows = {
        r[0]: r
        for r in con.execute(
            "SELECT image_series_uid, image_study_uid, person_id, accession_number, image_occurrence_date, "
            "study_description, series_description, local_path FROM image_occurrence"
        ).fetchall()
    }
    written = [Path(o) for _, outcome, _, o, *_ in manifest if outcome == "deidentified"]
    assert written
    for path in written:
        ds = pydicom.dcmread(path)
        series, study, person, accession, day, study_text, series_text, local_path = rows[ds.SeriesInstanceUID]
        assert ds.StudyInstanceUID == study
        assert ds.PatientID == str(person) and str(ds.PatientName) == str(person)
        assert (ds.get("AccessionNumber") or None) == accession
        assert ds.get("StudyDescription", "") == study_text and ds.get("SeriesDescription", "") == series_text
        assert (ds.get("SeriesDate") or ds.StudyDate) == day.strftime("%Y%m%d")
        assert local_path == str(path.parent)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(out) in str(path) and "2.25." in path.name


def test_no_answer_key_phi_survives_in_any_element(extract, built_demo):
    _, _, manifest = extract
    key = json.loads(built_demo.archive.answer_key.read_text())
    root = built_demo.archive.root
    phi_by_file: dict[str, list[dict]] = {}
    for entry in key["phi"]:
        phi_by_file.setdefault(entry["file"], []).append(entry)
    identity = {f["file"]: f for f in key["files"]}
    checked = 0
    for location, outcome, _, output, *_ in manifest:
        if outcome != "deidentified":
            continue
        relative = str(Path(location).relative_to(root))
        text = _text_of(pydicom.dcmread(output))
        source = identity[relative]
        values = [source["patient_mrn"], source["accession"], source["study_uid"], source["series_uid"], source["sop_uid"]]
        values += [e["value"] for e in phi_by_file.get(relative, []) if e["category"] not in CATEGORIES_NOT_CHECKED]
        for value in {str(v) for v in values if v and len(str(v)) >= 4}:
            pattern = rf"(?<![A-Z0-9.]){re.escape(value.upper())}(?![A-Z0-9.])"
            assert not re.search(pattern, text), f"{value!r} ({relative}) survives in {output}"
        checked += 1
    assert checked > 100


def test_burned_in_text_rectangles_are_blank(extract, built_demo):
    _, _, manifest = extract
    key = json.loads(built_demo.archive.answer_key.read_text())
    rectangles: dict[str, list] = {}
    for entry in key["phi"]:
        if entry["category"] == "burned_in":
            rectangles.setdefault(entry["file"], []).append(entry["rect"])
    root = built_demo.archive.root
    blanked = 0
    for location, outcome, rule, output, regions, _ in manifest:
        relative = str(Path(location).relative_to(root))
        if relative not in rectangles or outcome != "deidentified":
            continue
        assert rule and json.loads(regions)
        assert frame_regions_are_blank(pydicom.dcmread(output), rectangles[relative]), output
        blanked += 1
    assert blanked > 10


def test_instances_the_scrubber_must_filter_never_reach_the_extract(extract, built_demo):
    out, _, manifest = extract
    key = json.loads(built_demo.archive.answer_key.read_text())
    must_filter = {f["file"] for f in key["files"] if f["should_filter"]}
    root = built_demo.archive.root
    outcomes = {str(Path(location).relative_to(root)): outcome for location, outcome, *_ in manifest}
    assert any(f in outcomes for f in must_filter)
    assert all(outcomes[f] == "filtered" for f in must_filter if f in outcomes)
    filtered_classes = ("1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.7")
    for path in Path(out).rglob("*.dcm"):
        assert pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID not in filtered_classes


def test_a_rerun_skips_finished_instances(extract, built_demo):
    out, _, manifest = extract
    output = invoke_cli("scrub", "--cohort", COHORT, "--out", str(out), "--config", str(built_demo.config_path), "--workers", "1")
    assert f"{len(manifest)} already done (skipped)" in output
