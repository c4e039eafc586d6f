"""The demo archive: deterministic, realistic, and its answer key tells the truth.

One archive is generated per module (seed 0); the determinism test makes two more.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from extractor.demo_data import DemoArchive, make_demo_archive
from extractor.demo_data.ehr import synthea_dir

SOP = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "US multi-frame": "1.2.840.10008.5.1.4.1.1.3.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "secondary capture": "1.2.840.10008.5.1.4.1.1.7",
    "encapsulated PDF": "1.2.840.10008.5.1.4.1.1.104.1",
    "basic text SR": "1.2.840.10008.5.1.4.1.1.88.11",
}
OMOP_TABLES = (
    "person",
    "visit_occurrence",
    "procedure_occurrence",
    "condition_occurrence",
    "measurement",
    "observation",
    "concept",
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    return make_demo_archive(tmp_path_factory.mktemp("demo") / "archive", seed=0)


@pytest.fixture(scope="module")
def key(archive: DemoArchive) -> dict:
    return json.loads(archive.answer_key.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def datasets(archive: DemoArchive, key: dict) -> dict[str, Dataset]:
    return {entry["file"]: pydicom.dcmread(archive.root / entry["file"]) for entry in key["files"]}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    archive: DemoArchive, tmp_path: Path
) -> None:
    again = make_demo_archive(tmp_path / "again", seed=0)
    first, second = tree_bytes(archive.root), tree_bytes(again.root)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []

    other = make_demo_archive(tmp_path / "other", seed=1)
    assert other.answer_key.read_bytes() != archive.answer_key.read_bytes()
    assert (other.ehr_dir / "person.csv").read_bytes() != (archive.ehr_dir / "person.csv").read_bytes()
    constant = {"dicom/README.txt", "dicom/pacs/thumbs/preview_0001.jpg"}
    ours = {content for name, content in first.items() if name.startswith("dicom/") and name not in constant}
    theirs = set(tree_bytes(other.dicom_dir).values())
    assert not ours & theirs


def test_refuses_to_overwrite_an_archive_unless_asked(archive: DemoArchive, tmp_path: Path) -> None:
    target = tmp_path / "twice"
    make_demo_archive(target, seed=3, patients=10)
    with pytest.raises(FileExistsError, match="already holds"):
        make_demo_archive(target, seed=3, patients=10)
    replaced = make_demo_archive(target, seed=4, patients=10, overwrite=True)
    assert json.loads(replaced.answer_key.read_text(encoding="utf-8"))["seed"] == 4
    assert [path.name for path in target.iterdir() if path.name.startswith(".")] == []


# ---------------------------------------------------------------- the imaging side


def test_every_file_in_the_dicom_folder_is_listed_and_readable(archive: DemoArchive, key: dict) -> None:
    on_disk = {
        path.relative_to(archive.root).as_posix() for path in archive.dicom_dir.rglob("*") if path.is_file()
    }
    listed = {entry["file"] for entry in key["files"]}
    assert on_disk == listed | set(key["non_dicom_files"])
    assert archive.dicom_files == len(listed) and archive.non_dicom_files == len(key["non_dicom_files"]) == 2
    for name in listed:
        with (archive.root / name).open("rb") as handle:
            assert handle.read(132)[128:] == b"DICM", f"{name}: no preamble"
        ds = pydicom.dcmread(archive.root / name)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    for name in key["non_dicom_files"]:
        with pytest.raises(pydicom.errors.InvalidDicomError):
            pydicom.dcmread(archive.root / name)


def test_file_names_are_mixed_and_not_identifying(key: dict) -> None:
    names = [Path(entry["file"]).name for entry in key["files"]]
    assert any(re.fullmatch(r"IM\d{6}", name) for name in names)
    assert any(name.endswith(".dcm") for name in names)
    assert any("." not in name and not name.startswith("IM") for name in names)
    assert len({len(Path(entry["file"]).parts) for entry in key["files"]}) > 1  # nesting depth varies
    identifiers = {entry["patient_mrn"] for entry in key["files"]} | {
        value["value"]
        for value in key["phi"]
        if value["category"] == "name" and value["location"] == "PatientName"
    }
    for entry in key["files"]:
        for identifier in identifiers:
            assert identifier not in entry["file"]


def test_modalities_and_sop_classes(archive: DemoArchive, key: dict, datasets: dict[str, Dataset]) -> None:
    assert archive.patients >= 24
    sop_classes = {entry["sop_class_uid"] for entry in key["files"]}
    assert set(SOP.values()) <= sop_classes
    assert {"CT", "MR", "US", "CR", "DX", "PT", "SR", "DOC"} <= set(archive.files_per_modality)
    per_study_dates: dict[int, set[str]] = defaultdict(set)
    for entry in key["files"]:
        per_study_dates[entry["person_id"]].add(entry["study_date"])
    assert all(len(dates) >= 2 for dates in per_study_dates.values())

    thin_ct = [
        ds
        for ds in datasets.values()
        if ds.Modality == "CT" and ds.get("SliceThickness") and float(ds.SliceThickness) <= 1.0
    ]
    assert thin_ct
    mr = [ds for ds in datasets.values() if ds.SOPClassUID == SOP["MR"]]
    assert all(float(ds.MagneticFieldStrength) in (1.5, 3.0) for ds in mr)
    cine = [ds for ds in datasets.values() if ds.SOPClassUID == SOP["US multi-frame"]]
    assert cine and all(int(ds.NumberOfFrames) >= 5 for ds in cine)
    for ds in datasets.values():
        if "PixelData" in ds:
            pixels = ds.pixel_array
            assert pixels.std() > 0, f"{ds.SOPInstanceUID}: flat pixel data"
        assert ds.Manufacturer and ds.BodyPartExamined and ds.StudyDescription


def test_series_sizes_are_realistic(key: dict) -> None:
    per_series: dict[tuple[str, str], int] = defaultdict(int)
    for entry in key["files"]:
        per_series[(entry["series_uid"], entry["sop_class_uid"])] += 1
    for (_, sop_class), count in per_series.items():
        if sop_class == SOP["CT"]:
            assert 5 <= count <= 12
        elif sop_class == SOP["MR"]:
            assert 4 <= count <= 8
        else:
            assert 1 <= count <= 3


def test_instances_a_scrubber_must_filter(key: dict, datasets: dict[str, Dataset]) -> None:
    reasons: dict[str, list[Dataset]] = defaultdict(list)
    for entry in key["files"]:
        ds = datasets[entry["file"]]
        if entry["should_filter"]:
            reasons[entry["filter_reason"]].append(ds)
        else:
            assert ds.SOPClassUID not in (
                SOP["encapsulated PDF"],
                SOP["basic text SR"],
                SOP["secondary capture"],
            )
    pdfs = reasons["encapsulated PDF document"]
    assert pdfs and all(
        ds.EncapsulatedDocument.startswith(b"%PDF-1.4") and b"%%EOF" in ds.EncapsulatedDocument for ds in pdfs
    )
    reports = reasons["structured report"]
    assert reports and all(
        ds.SOPClassUID == SOP["basic text SR"] and ds.ContentSequence[0].ValueType == "PNAME"
        for ds in reports
    )
    burned = reasons["secondary capture with BurnedInAnnotation YES"]
    assert burned and all(
        ds.SOPClassUID == SOP["secondary capture"] and ds.BurnedInAnnotation == "YES" for ds in burned
    )
    films = reasons["scanned film (Manufacturer VIDAR)"]
    assert films and all(
        ds.Manufacturer == "VIDAR" and ds.SOPClassUID == SOP["secondary capture"] for ds in films
    )


def test_character_sets(key: dict, datasets: dict[str, Dataset]) -> None:
    charsets = {entry["specific_character_set"] for entry in key["scenarios"]["character_sets"]}
    assert {"ISO_IR 100", "\\ISO 2022 IR 87", "GB18030"} <= charsets
    names_by_charset: dict[str, set[str]] = defaultdict(set)
    for ds in datasets.values():
        charset = ds.get("SpecificCharacterSet", "")
        charset = "\\".join(charset) if isinstance(charset, MultiValue) else charset
        names_by_charset[charset].add(str(ds.PatientName))
    assert any(re.search(r"[\u00c0-\u00ff]", name) for name in names_by_charset["ISO_IR 100"])
    kanji_kana = r"^\w+\^\w+=[\u4e00-\u9fff]+\^[\u4e00-\u9fff]+=[\u3040-\u309f]+\^[\u3040-\u309f]+$"
    assert any(re.match(kanji_kana, name) for name in names_by_charset["\\ISO 2022 IR 87"])
    assert any(
        re.search(r"=[\u4e00-\u9fff]+\^[\u4e00-\u9fff]+$", name) for name in names_by_charset["GB18030"]
    )


def test_japanese_names_are_written_with_iso_2022_escapes(archive: DemoArchive, key: dict) -> None:
    japanese = {
        entry["person_id"]
        for entry in key["scenarios"]["character_sets"]
        if "2022" in entry["specific_character_set"]
    }
    files = [entry["file"] for entry in key["files"] if entry["person_id"] in japanese]
    assert files and all(b"\x1b$B" in (archive.root / name).read_bytes() for name in files)


# ---------------------------------------------------------------- the answer key


def element_at(ds: Dataset, location: str) -> pydicom.DataElement:
    """Resolve 'Seq[0].Inner[1].Keyword' or a private tag '(gggg,eeee)' at the end of such a path."""
    node = ds
    *parents, last = location.split(".")
    for part in parents:
        keyword, index = re.fullmatch(r"(\w+)\[(\d+)\]", part).groups()  # type: ignore[union-attr]
        node = node[keyword].value[int(index)]
    private = re.fullmatch(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)", last)
    if private:
        return node[int(private[1], 16), int(private[2], 16)]
    return node[last]


def element_text(element: pydicom.DataElement) -> str:
    value = element.value
    if isinstance(value, (list, MultiValue)):
        return "\\".join(str(item) for item in value)
    return str(value)


def frames_of(ds: Dataset) -> np.ndarray:
    pixels = ds.pixel_array
    return pixels if int(ds.get("NumberOfFrames", 1)) > 1 else pixels[np.newaxis]


def test_every_answer_key_value_is_where_it_says(
    archive: DemoArchive, key: dict, datasets: dict[str, Dataset]
) -> None:
    notes = {row["note_id"]: row["note_text"] for row in read_csv(archive.ehr_dir / "note.csv")}
    assert set(key["categories"]) == {
        "name",
        "id",
        "date",
        "time",
        "address",
        "phone",
        "institution",
        "station",
        "device",
        "free_text",
        "burned_in",
    }
    checked: dict[str, int] = defaultdict(int)
    for value in key["phi"]:
        assert value["category"] in key["categories"]
        where = f"{value['file']} {value['location']}: {value['value']!r}"
        if value["file"] == "ehr/note.csv":
            note_id = re.fullmatch(r"note_text\[note_id=(\d+)\]", value["location"])[1]  # type: ignore[index]
            assert value["value"] in notes[note_id], where
        elif value["location"] == "pixels":
            x, y, width, height = value["rect"]
            region = frames_of(datasets[value["file"]])[:, y : y + height, x : x + width]
            assert region.size and all(frame.min() != frame.max() for frame in region), where
        elif value["location"] == "EncapsulatedDocument":
            assert value["value"].encode("ascii") in datasets[value["file"]].EncapsulatedDocument, where
        else:
            text = element_text(element_at(datasets[value["file"]], value["location"]))
            if value["category"] == "free_text":
                assert value["value"] in text and value["value"] != text, where
            else:
                assert value["value"] == text, where
        checked[value["category"]] += 1
    assert set(checked) == set(key["categories"])


def test_phi_is_in_the_places_real_archives_have_it(key: dict) -> None:
    locations = {value["location"] for value in key["phi"]}
    for expected in (
        "PatientName",
        "PatientID",
        "OtherPatientIDs",
        "PatientBirthDate",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "AccessionNumber",
        "StudyDate",
        "SeriesDate",
        "AcquisitionDate",
        "ContentDate",
        "StudyTime",
        "SeriesTime",
        "AcquisitionTime",
        "ContentTime",
        "StudyDescription",
        "ImageComments",
        "AdditionalPatientHistory",
        "(0009,1001)",
        "(0009,1002)",
        "RequestAttributesSequence[0].AccessionNumber",
        "RequestAttributesSequence[0].RequestedProcedureDescription",
        "OtherPatientIDsSequence[0].PatientID",
        "ReferringPhysicianIdentificationSequence[0].PersonIdentificationCodeSequence[0].CodeValue",
        "ContentSequence[1].ContentSequence[0].TextValue",
        "pixels",
        "EncapsulatedDocument",
    ):
        assert expected in locations, expected
    burned_files = {value["file"] for value in key["phi"] if value["location"] == "pixels"}
    for entry in key["files"]:
        if entry["needs_pixel_scrub"]:
            assert entry["file"] in burned_files  # every US and SC image carries burned-in text
    assert any(
        entry["sop_class_uid"] == SOP["US multi-frame"]
        for entry in key["files"]
        if entry["file"] in burned_files
    )


# ---------------------------------------------------------------- the EHR side


def test_omop_tables_keep_synthea_columns(archive: DemoArchive) -> None:
    for table in OMOP_TABLES:
        ours = (archive.ehr_dir / f"{table}.csv").read_text(encoding="utf-8").splitlines()[0]
        theirs = (synthea_dir() / f"{table.upper()}.csv").read_text(encoding="utf-8").splitlines()[0]
        assert ours == theirs, table
    persons = {row["person_id"] for row in read_csv(archive.ehr_dir / "person.csv")}
    assert len(persons) == archive.patients
    for table in (
        "visit_occurrence",
        "procedure_occurrence",
        "condition_occurrence",
        "measurement",
        "observation",
    ):
        rows = read_csv(archive.ehr_dir / f"{table}.csv")
        assert rows and {row["person_id"] for row in rows} <= persons, table


def test_crosswalk_tables_have_required_columns(archive: DemoArchive) -> None:
    expected = {
        "mrn_crosswalk.csv": ["person_id", "mrn", "birth_date"],
        "imaging_order.csv": [
            "mrn",
            "birth_date",
            "accession_number",
            "procedure_occurrence_id",
            "visit_occurrence_id",
            "note_id",
            "department",
            "modality",
            "order_datetime",
        ],
        "note.csv": [
            "note_id",
            "person_id",
            "note_date",
            "note_datetime",
            "note_type_concept_id",
            "note_class_concept_id",
            "note_title",
            "note_text",
            "encoding_concept_id",
            "language_concept_id",
            "visit_occurrence_id",
            "note_source_value",
        ],
    }
    for name, columns in expected.items():
        with (archive.ehr_dir / name).open(encoding="utf-8", newline="") as handle:
            assert next(csv.reader(handle)) == columns, name
    orders = read_csv(archive.ehr_dir / "imaging_order.csv")
    notes = read_csv(archive.ehr_dir / "note.csv")
    assert sorted(int(order["note_id"]) for order in orders) == sorted(int(note["note_id"]) for note in notes)


def test_orders_link_to_the_persons_own_procedures_visits_and_notes(archive: DemoArchive) -> None:
    person_of_mrn = {row["mrn"]: row["person_id"] for row in read_csv(archive.ehr_dir / "mrn_crosswalk.csv")}
    birth_of_person = {
        row["person_id"]: row["birth_datetime"][:10] for row in read_csv(archive.ehr_dir / "person.csv")
    }
    procedures = {
        row["procedure_occurrence_id"]: row for row in read_csv(archive.ehr_dir / "procedure_occurrence.csv")
    }
    visits = {row["visit_occurrence_id"]: row for row in read_csv(archive.ehr_dir / "visit_occurrence.csv")}
    notes = {row["note_id"]: row for row in read_csv(archive.ehr_dir / "note.csv")}
    synthea_ids = {
        row["procedure_occurrence_id"] for row in read_csv(synthea_dir() / "PROCEDURE_OCCURRENCE.csv")
    }
    orders = read_csv(archive.ehr_dir / "imaging_order.csv")
    for order in orders:
        person = person_of_mrn[order["mrn"]]
        assert order["birth_date"] == birth_of_person[person]
        procedure = procedures[order["procedure_occurrence_id"]]
        assert procedure["person_id"] == person
        assert procedure["procedure_date"] == order["order_datetime"][:10]
        assert procedure["visit_occurrence_id"] == order["visit_occurrence_id"]
        assert visits[order["visit_occurrence_id"]]["person_id"] == person
        assert notes[order["note_id"]]["person_id"] == person
    reused = [order for order in orders if order["procedure_occurrence_id"] in synthea_ids]
    assert reused, "existing Synthea imaging procedures are preferred where a person has them"


def test_study_date_equals_order_date(archive: DemoArchive, key: dict, datasets: dict[str, Dataset]) -> None:
    orders = {
        (row["mrn"], row["accession_number"]): row for row in read_csv(archive.ehr_dir / "imaging_order.csv")
    }
    for entry in key["files"]:
        ds = datasets[entry["file"]]
        order = orders.get((ds.PatientID, ds.AccessionNumber))
        assert (order is not None) == entry["has_order"], entry["file"]
        if order:
            assert ds.StudyDate == order["order_datetime"][:10].replace("-", "")
            assert ds.PatientBirthDate == order["birth_date"].replace("-", "")


def test_accession_numbers_repeat_across_departments(archive: DemoArchive) -> None:
    person_of_mrn = {row["mrn"]: row["person_id"] for row in read_csv(archive.ehr_dir / "mrn_crosswalk.csv")}
    by_accession: dict[str, list[dict[str, str]]] = defaultdict(list)
    for order in read_csv(archive.ehr_dir / "imaging_order.csv"):
        by_accession[order["accession_number"]].append(order)
    repeated = [
        orders
        for orders in by_accession.values()
        if len({order["department"] for order in orders}) > 1
        and len({person_of_mrn[o["mrn"]] for o in orders}) > 1
    ]
    assert len(repeated) >= 2


def test_person_with_two_mrns_has_studies_under_each(
    archive: DemoArchive, datasets: dict[str, Dataset]
) -> None:
    mrns_of_person: dict[str, set[str]] = defaultdict(set)
    for row in read_csv(archive.ehr_dir / "mrn_crosswalk.csv"):
        mrns_of_person[row["person_id"]].add(row["mrn"])
    two = {person: mrns for person, mrns in mrns_of_person.items() if len(mrns) == 2}
    assert two
    studies_by_mrn: dict[str, set[str]] = defaultdict(set)
    for ds in datasets.values():
        studies_by_mrn[ds.PatientID].add(ds.StudyInstanceUID)
    assert all(studies_by_mrn[mrn] for mrns in two.values() for mrn in mrns)


def test_orders_without_images_and_images_without_orders(
    archive: DemoArchive, datasets: dict[str, Dataset]
) -> None:
    orders = {
        (row["mrn"], row["accession_number"]) for row in read_csv(archive.ehr_dir / "imaging_order.csv")
    }
    imaged = {(ds.PatientID, ds.AccessionNumber) for ds in datasets.values()}
    assert orders - imaged, "orders with no images"
    assert imaged - orders, "images with no order"
