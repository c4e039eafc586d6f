"""The harvest against every bad input the harvest issue names (corpus: tests/bad_dicom.py).

One harvest (two worker processes, real DuckDB file) over the whole corpus; the tests then read
the raw tables back and check that every file ended in exactly one recorded state, with the
right error class and message, or with the right decoded values.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pydicom
import pytest

from bad_dicom import (
    CHINESE_NAME,
    CONFLICT_SERIES,
    JAPANESE_NAME,
    LATIN1_NAME,
    LONG_DESCRIPTION,
    PIXEL_TAG_LE,
    TEST_FILES,
    BadFile,
    build_corpus,
    build_fallback_truncations,
    build_mislabelled,
)
from extractor.harvest.pipeline import harvest, harvest_chunk
from extractor.warehouses.base import FileRef, HarvestRun
from extractor.warehouses.duckdb_writer import DuckDBRawWarehouse


class Harvested:
    """A finished harvest and the rows it wrote, keyed by location."""

    def __init__(self, root: Path, files: list[BadFile], run: HarvestRun, warehouse: DuckDBRawWarehouse) -> None:
        self.root = root
        self.files = files
        self.run = run
        self.con = warehouse.con
        self.instances = self._rows("SELECT * FROM raw_dicom_instance")
        self.errors = self._rows("SELECT * FROM raw_harvest_error")
        self.series = {r["series_instance_uid"]: r for r in self._rows("SELECT * FROM raw_dicom_series").values()}

    def _rows(self, sql: str) -> dict[str, dict[str, Any]]:
        cursor = self.con.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        key = "location" if "location" in names else names[0]
        return {r[key]: r for r in rows}

    def by_case(self, case: str) -> BadFile:
        return next(f for f in self.files if f.case == case)


def loc(path: Path) -> str:
    return str(path.resolve())


def run_harvest(folder: Path, files: list[BadFile], db: Path, workers: int = 2) -> Harvested:
    warehouse = DuckDBRawWarehouse(db)
    run = harvest([str(folder)], warehouse, workers=workers, progress=False)
    return Harvested(folder, files, run, warehouse)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Harvested:
    base = tmp_path_factory.mktemp("bad_inputs")
    folder = base / "archive"
    files = build_corpus(folder)
    harvested = run_harvest(folder, files, base / "id.duckdb")
    yield harvested
    harvested.con.close()


def test_the_run_completes_and_is_recorded(corpus: Harvested) -> None:
    run = corpus.run
    assert run.status == "completed"
    assert run.files_seen == len(corpus.files)
    assert run.files_unchanged == 0
    rows = corpus.con.execute("SELECT run_id, status, files_seen, instances_added, errors FROM raw_harvest_run").fetchall()
    assert rows == [(run.run_id, "completed", len(corpus.files), run.instances_added, run.errors)]


def test_every_file_ends_in_exactly_one_table(corpus: Harvested) -> None:
    on_disk = {loc(p) for p in corpus.root.rglob("*") if p.is_file()}
    assert on_disk == {loc(f.path) for f in corpus.files}
    instances, errors = set(corpus.instances), set(corpus.errors)
    assert not instances & errors, f"locations both harvested and in error: {sorted(instances & errors)}"
    assert instances | errors == on_disk, f"files with no recorded state: {sorted(on_disk - instances - errors)}"
    assert len(on_disk) == len(instances) + len(errors)
    assert corpus.run.instances_added == len(instances)
    assert corpus.run.errors == len(errors)


def test_each_bad_file_gets_its_error_class(corpus: Harvested) -> None:
    wrong = {}
    for bad in corpus.files:
        error = corpus.errors.get(loc(bad.path))
        got = error["error_class"] if error else "harvested"
        want = bad.expected_error or "harvested"
        if got != want:
            wrong[bad.case] = f"expected {want}, got {got}: {error['message'] if error else ''}"
    assert not wrong, wrong


def test_every_error_message_names_the_problem(corpus: Harvested) -> None:
    vague = {}
    for bad in corpus.files:
        if bad.expected_error is None:
            continue
        error = corpus.errors[loc(bad.path)]
        assert error["file_size"] == bad.path.stat().st_size
        if not re.search(bad.message_hint, error["message"] or ""):
            vague[bad.case] = error["message"]
    assert not vague, f"messages that do not name the problem: {vague}"


def test_odd_but_valid_files_are_harvested_with_the_right_values(corpus: Harvested) -> None:
    wrong = {}
    for bad in corpus.files:
        if bad.expected_error is not None:
            continue
        row = corpus.instances[loc(bad.path)]
        for column, value in bad.expect.items():
            if row[column] != value:
                wrong[f"{bad.case}.{column}"] = (row[column] if not isinstance(row[column], str) else row[column][:80], value if not isinstance(value, str) else value[:80])
        assert row["file_size"] == bad.path.stat().st_size
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("case", "literal"),
    [("charset-latin1", LATIN1_NAME), ("charset-iso2022-ir87", JAPANESE_NAME), ("charset-gb18030", CHINESE_NAME)],
)
def test_names_decoded_exactly_as_pydicom_decodes_them(corpus: Harvested, case: str, literal: str) -> None:
    bad = corpus.by_case(case)
    ds = pydicom.dcmread(bad.path)
    row = corpus.instances[loc(bad.path)]
    assert str(ds.PatientName) == literal
    assert row["patient_name"] == str(ds.PatientName)
    assert row["study_description"] == ds.StudyDescription
    assert row["institution_name"] == ds.InstitutionName
    series = corpus.series[row["series_instance_uid"]]
    assert series["patient_name"] == literal


def test_iso2022_file_really_uses_escape_sequences(corpus: Harvested) -> None:
    data = corpus.by_case("charset-iso2022-ir87").path.read_bytes()
    assert b"\x1b$B" in data  # ESC $ B: JIS X 0208 in G0
    assert corpus.instances[loc(corpus.by_case("charset-iso2022-ir87").path)]["specific_character_set"] == "\\ISO 2022 IR 87"


def test_invalid_dates_and_times_are_stored_as_raw_strings(corpus: Harvested) -> None:
    month = corpus.instances[loc(corpus.by_case("invalid-date-month").path)]
    assert (month["study_date"], month["study_time"], month["acquisition_datetime_raw"]) == ("20231345", "256199", "garbage!")
    assert month["acquisition_datetime"] is None
    short = corpus.instances[loc(corpus.by_case("invalid-date-short").path)]
    assert (short["study_date"], short["series_date"], short["series_time"]) == ("2023", "2023", "99")
    assert short["acquisition_datetime"] is None
    series = corpus.series[month["series_instance_uid"]]
    assert series["study_date"] == "20231345" and series["first_acquisition_datetime"] is None
    offset = corpus.instances[loc(corpus.by_case("datetime-with-offset").path)]
    assert offset["acquisition_datetime"].isoformat() == "2023-01-02T10:10:10.123456"


@pytest.mark.parametrize("case", ["long-values-explicit", "long-values-implicit"])
def test_very_long_values_are_kept_whole(corpus: Harvested, case: str) -> None:
    bad = corpus.by_case(case)
    row = corpus.instances[loc(bad.path)]
    assert row["study_description"] == LONG_DESCRIPTION and len(row["study_description"]) == 10_000
    assert corpus.series[row["series_instance_uid"]]["study_description"] == LONG_DESCRIPTION
    # attributes after the 64 KB values and the 2,000-item sequence are still read
    assert (row["image_rows"], row["image_columns"], row["modality"]) == (128, 128, "CT")
    data = bad.path.read_bytes()
    assert row["pixel_data_offset"] is not None and data[row["pixel_data_offset"] : row["pixel_data_offset"] + 4] == PIXEL_TAG_LE


@pytest.mark.parametrize("case", ["nested-undefined-sequences", "nested-undefined-sequences-implicit"])
def test_values_inside_nested_sequences_are_not_taken_for_top_level_ones(corpus: Harvested, case: str) -> None:
    row = corpus.instances[loc(corpus.by_case(case).path)]
    assert "Decoy" not in (row["patient_name"] or "")
    assert row["series_instance_uid"] != "1.2.3.999"
    assert row["study_description"] != "Decoy description"
    assert row["modality"] == "CT" and row["slice_thickness"] != "99"


def test_pixel_data_offsets_point_at_the_pixel_data_tag(corpus: Harvested) -> None:
    checked = 0
    for bad in corpus.files:
        row = corpus.instances.get(loc(bad.path))
        if row is None or row["pixel_data_offset"] is None:
            continue
        data = bad.path.read_bytes()
        assert data[row["pixel_data_offset"] : row["pixel_data_offset"] + 4] == PIXEL_TAG_LE, bad.case
        checked += 1
    for case in ("trailing-padding-element", "implicit-vr", "no-extension", "unicode-name", "charset-gb18030"):
        assert corpus.instances[loc(corpus.by_case(case).path)]["pixel_data_offset"] is not None, case
    assert checked >= 15


def test_one_sop_instance_uid_in_two_files(corpus: Harvested) -> None:
    kept, rejected = corpus.by_case("duplicate-kept"), corpus.by_case("duplicate-rejected")
    sop = kept.expect["sop_instance_uid"]
    rows = [r for r in corpus.instances.values() if r["sop_instance_uid"] == sop]
    assert [r["location"] for r in rows] == [loc(kept.path)]
    assert rows[0]["instance_number"] == "1"
    message = corpus.errors[loc(rejected.path)]["message"]
    assert sop in message and loc(kept.path) in message
    assert corpus.series[rows[0]["series_instance_uid"]]["instance_count"] == 1


def test_conflicting_patient_data_in_one_series_is_recorded(corpus: Harvested) -> None:
    series = corpus.series[CONFLICT_SERIES]
    assert set(series["conflicting_attributes"].split(",")) == {"patient_id", "patient_birth_date"}
    assert (series["instance_count"], series["file_count"]) == (2, 2)
    for case in ("conflict-1", "conflict-2"):
        bad = corpus.by_case(case)
        row = corpus.instances[loc(bad.path)]
        assert (row["patient_id"], row["patient_birth_date"]) == (bad.expect["patient_id"], bad.expect["patient_birth_date"])
    # series without disagreement carry no conflict
    others = [s for uid, s in corpus.series.items() if uid != CONFLICT_SERIES]
    assert others and all(s["conflicting_attributes"] is None for s in others)


def test_one_series_row_per_series_with_a_header_json_without_bulk_data(corpus: Harvested) -> None:
    harvested_series = {r["series_instance_uid"] for r in corpus.instances.values()}
    assert set(corpus.series) == harvested_series
    assert sum(s["file_count"] for s in corpus.series.values()) == len(corpus.instances)
    for uid, series in corpus.series.items():
        header = json.loads(series["representative_header_json"])
        assert header["0020000E"]["Value"] == [uid]
        assert "7FE00010" not in header
        assert series["representative_location"] in corpus.instances


# --- truncations that only pydicom's reader sees, and encodings that lie ------------------

FALLBACK_TRUNCATIONS = ["cut-inside-meta", "cut-inside-sq-header", "cut-big-endian", "cut-deflated", "cut-no-preamble"]


@pytest.mark.parametrize("case", FALLBACK_TRUNCATIONS)
def test_truncated_file_is_an_error_row_whatever_reader_sees_it(tmp_path: Path, case: str) -> None:
    """A truncated header becomes a TruncatedHeader row; it never aborts the run, never passes as complete."""
    bad = next(f for f in build_fallback_truncations(tmp_path / "all") if f.case == case)
    folder = tmp_path / "one"
    folder.mkdir()
    target = folder / bad.path.name
    bad.path.rename(target)
    result = run_harvest(folder, [bad], tmp_path / "id.duckdb", workers=1)
    assert result.run.status == "completed"
    assert not result.instances, f"{case}: a truncated file was harvested as complete: {list(result.instances.values())[0]['location']}"
    error = result.errors[loc(target)]
    assert error["error_class"] == "TruncatedHeader", error
    assert re.search(bad.message_hint, error["message"]), error["message"]


@pytest.mark.parametrize("case", ["explicit-dataset-under-implicit-ts", "implicit-dataset-under-explicit-ts", "un-vr-patient-name-gb18030"])
def test_mislabelled_encodings_are_harvested_as_pydicom_reads_them(tmp_path: Path, case: str) -> None:
    bad = next(f for f in build_mislabelled(tmp_path / "archive") if f.case == case)
    result = run_harvest(tmp_path / "archive", [], tmp_path / "id.duckdb", workers=1)
    error = result.errors.get(loc(bad.path))
    assert error is None, f"{case}: {error}"
    row = result.instances[loc(bad.path)]
    ds = pydicom.dcmread(bad.path, force=True)
    assert row["patient_name"] == str(ds.PatientName)
    wrong = {c: (row[c], v) for c, v in bad.expect.items() if row[c] != v}
    assert not wrong, wrong


def test_raw_bytes_after_the_pixel_data_keep_the_pixel_data_offset(corpus: Harvested) -> None:
    """Bare zero bytes after the pixel data (no (FFFC,FFFC) element) must not hide where it starts."""
    bad = corpus.by_case("trailing-zero-bytes")
    row = corpus.instances[loc(bad.path)]
    offset = row["pixel_data_offset"]
    assert offset is not None, "pixel_data_offset is NULL for a file whose pixel data is followed by 256 zero bytes"
    assert bad.path.read_bytes()[offset : offset + 4] == PIXEL_TAG_LE


@pytest.mark.parametrize("workers", [1, 2])
def test_what_is_neither_file_nor_folder_is_an_error_row(tmp_path: Path, workers: int) -> None:
    """A broken link, a FIFO (which a plain open would wait on for ever) and a socket are error
    rows, where they were skipped without one; a link to a folder is not followed, and a link to
    a file is read through."""
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copyfile(TEST_FILES / "CT_small.dcm", archive / "ct.dcm")
    (archive / "to_ct.dcm").symlink_to(archive / "ct.dcm")
    (archive / "broken.dcm").symlink_to(tmp_path / "unmounted" / "mr.dcm")
    (archive / "to_folder").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(archive / "fifo")
    with socket.socket(socket.AF_UNIX) as unix_socket:
        unix_socket.bind(str(archive / "socket"))
        warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
        run = harvest([str(archive)], warehouse, workers=workers, progress=False)
    errors = dict(warehouse.con.execute("SELECT location, error_class || ': ' || message FROM raw_harvest_error").fetchall())
    warehouse.close()
    assert (run.files_seen, run.instances_added, run.errors) == (5, 1, 4)  # to_ct.dcm repeats ct.dcm's instance
    assert errors[str(archive / "fifo")] == "NotAFile: a FIFO (named pipe), not a file: nothing to read"
    assert errors[str(archive / "socket")].startswith("ReadError: OSError")  # a socket cannot be opened
    assert errors[str(archive / "broken.dcm")].startswith("ReadError: FileNotFoundError")
    assert errors[str(archive / "to_ct.dcm")].startswith("DuplicateSOPInstanceUID")


def test_files_gone_or_unreadable_when_read_are_error_rows(tmp_path: Path) -> None:
    """The walk does not stat, so a file can vanish, or turn out to be no file, by the time it is
    read: an error row, with the size and mtime when the path can still be stat'ed."""
    folder = tmp_path / "a folder"
    folder.mkdir()
    refs = [FileRef(str(tmp_path / "gone.dcm")), FileRef(str(folder))]
    result = harvest_chunk(refs, "run")
    assert result.instances.num_rows == 0
    rows = {row["location"]: row for row in result.errors.to_pylist()}
    assert {row["error_class"] for row in rows.values()} == {"ReadError"}
    assert "FileNotFoundError" in rows[refs[0].location]["message"]
    assert rows[refs[0].location]["file_size"] is None
    assert rows[refs[1].location]["file_mtime_ns"] == folder.stat().st_mtime_ns
