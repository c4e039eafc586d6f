"""The concept seeds in vocab/seeds/: reproducible from the pinned sources, and holding what the models need."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "vocab" / "seeds"
DATA = (REPO / ".." / "shared" / "vocab-data").resolve()
SEED_NAMES = (
    "dicom_modality_concept",
    "dicom_anatomic_site_concept",
    "image_feature_concept",
    "dicom_sop_class",
    "description_allowlist",
    "vocabulary_version",
)
PORTABLE_TYPES = {"INT64", "STRING", "DATE"}  # accepted by both DuckDB and BigQuery


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_seeds", REPO / "vocab" / "build_seeds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_seeds"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


builder = load_builder()


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def seed(name: str) -> list[dict[str, str]]:
    return read(SEEDS / f"{name}.csv")


@pytest.fixture(scope="module")
def source_concepts() -> list[dict[str, str]]:
    assert DATA.is_dir(), f"{DATA} is missing: the tests need the shared vocab-data folder"
    return read(DATA / builder.CONCEPT_FILE)


def source_value_concept(concepts: list[dict[str, str]], code: str) -> dict[str, str]:
    (found,) = [c for c in concepts if c["vocabulary_id"] == "DICOM"
                and c["concept_class_id"] == "DICOM Value Sets" and c["concept_code"] == code]
    return found


def test_rebuild_from_shared_data_reproduces_committed_seeds_exactly(tmp_path: Path) -> None:
    assert builder.main([str(DATA), "--out", str(tmp_path)]) == 0
    for name in SEED_NAMES:
        assert (tmp_path / f"{name}.csv").read_bytes() == (SEEDS / f"{name}.csv").read_bytes(), (
            f"vocab/seeds/{name}.csv is out of date: run python vocab/build_seeds.py")
    assert sorted(p.stem for p in tmp_path.glob("*.csv")) == sorted(SEED_NAMES)
    assert builder.main([str(DATA), "--check"]) == 0


def test_check_reports_a_changed_seed(tmp_path: Path) -> None:
    assert builder.main([str(DATA), "--out", str(tmp_path)]) == 0
    path = tmp_path / "dicom_sop_class.csv"
    path.write_text(path.read_text(encoding="utf-8") + "1.2.3,Made Up Storage,Made Up\n", encoding="utf-8")
    assert builder.main([str(DATA), "--out", str(tmp_path), "--check"]) == 1


def test_missing_source_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert builder.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert builder.CONCEPT_FILE in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_builder_hard_codes_no_concept_id() -> None:
    source = (REPO / "vocab" / "build_seeds.py").read_text(encoding="utf-8")
    assert not re.search(r"\b2128\d{6}\b", source)
    assert "4184181" not in source and "37303869" not in source


@pytest.mark.parametrize("modality", ["CT", "MR", "US", "CR", "DX", "PT", "NM", "MG", "XA", "RF", "OT", "SR", "SEG"])
def test_common_modalities_map_to_their_dicom_value_concept(modality: str, source_concepts) -> None:
    rows = {r["modality"]: r for r in seed("dicom_modality_concept")}
    row = rows[modality]
    expected = source_value_concept(source_concepts, modality)
    assert int(row["concept_id"]) != 0
    assert row["concept_id"] == expected["concept_id"]
    assert (row["vocabulary_id"], row["concept_code"]) == ("DICOM", modality)


def test_modality_seed_holds_exactly_the_values_of_the_modality_attribute() -> None:
    codes = {r["code"] for r in read(DATA / "dicom2omop__part3_modality.csv")}
    assert {r["modality"] for r in seed("dicom_modality_concept")} == codes


@pytest.mark.parametrize("body_part", ["CHEST", "ABDOMEN"])
def test_chest_and_abdomen_map_to_their_standard_snomed_concept(body_part: str, source_concepts) -> None:
    rows = {r["body_part_examined"]: r for r in seed("dicom_anatomic_site_concept")}
    dicom = source_value_concept(source_concepts, body_part)
    (target,) = [r["concept_id_2"] for r in read(DATA / builder.MAPS_TO_FILE)
                 if r["concept_id_1"] == dicom["concept_id"] and r["relationship_id"] == "Maps to"]
    assert rows[body_part]["dicom_concept_id"] == dicom["concept_id"]
    assert rows[body_part]["anatomic_site_concept_id"] == target
    assert 0 < int(target) < 2_000_000_000  # an Athena id, not a custom (>= 2e9) id


def test_chest_maps_to_the_readme_example() -> None:
    rows = {r["body_part_examined"]: r for r in seed("dicom_anatomic_site_concept")}
    assert rows["CHEST"]["anatomic_site_concept_id"] == "4184181"  # vocab-data/README.md: CHEST -> 4184181


def test_unmapped_body_parts_are_kept_with_concept_zero() -> None:
    rows = seed("dicom_anatomic_site_concept")
    mapped_sources = {r["concept_id_1"] for r in read(DATA / builder.MAPS_TO_FILE)}
    body_part_attribute = _attribute_id("00180015")
    body_part_values = [r for r in read(DATA / builder.MAPS_TO_VALUE_FILE) if r["concept_id_1"] == body_part_attribute]
    assert len(rows) == len(body_part_values)
    for row in rows:
        mapped = row["dicom_concept_id"] in mapped_sources
        assert (row["anatomic_site_concept_id"] != "0") == mapped, row


def _attribute_id(tag: str) -> str:
    (found,) = [c["concept_id"] for c in read(DATA / builder.CONCEPT_FILE)
                if c["concept_class_id"] == "DICOM Attributes" and c["concept_code"] == tag]
    return found


def test_allowlist_tokens_are_upper_alnum_and_no_name() -> None:
    tokens = [r["token"] for r in seed("description_allowlist")]
    names = builder.name_exclusions()
    assert tokens == sorted(set(tokens))
    assert all(re.fullmatch(r"[A-Z0-9]+", t) for t in tokens)
    assert not set(tokens) & names
    assert {"SMITH", "JOHN", "MARY", "WILLIS"} <= names  # the exclusion list is a real one


def test_allowlist_keeps_common_description_words_and_vocabulary_codes() -> None:
    tokens = {r["token"] for r in seed("description_allowlist")}
    assert {"CT", "MRI", "CHEST", "ABDOMEN", "PELVIS", "WITH", "WITHOUT", "CONTRAST", "AXIAL", "3D",
            "T1", "FLAIR", "DYNAMIC", "LEFT", "PORTABLE", "THORAX", "ABDOMENPELVIS", "CSPINE"} <= tokens
    assert {r["modality"] for r in seed("dicom_modality_concept")} - tokens == {"ANN"}  # ANN is also a first name


def test_redaction_with_the_allowlist_drops_a_name() -> None:
    tokens = {r["token"] for r in seed("description_allowlist")}
    kept = [t for t in builder.words("CT Chest w/o contrast - John SMITH 1.25mm") if t in tokens]
    assert kept == ["CT", "CHEST", "W", "O", "CONTRAST", "1", "25MM"]  # "w/o" keeps its O: never flip to "with"


FEATURES = {
    "slice_thickness": ("00180050", "mm"),
    "kvp": ("00180060", "kV"),
    "pixel_spacing": ("00280030", "mm"),
    "magnetic_field_strength": ("00180087", "T"),
    "spacing_between_slices": ("00180088", "mm"),
    "rows": ("00280010", "pixels"),
    "columns": ("00280011", "pixels"),
}


def test_feature_concepts_exist_for_all_seven_features(source_concepts) -> None:
    rows = {r["feature_name"]: r for r in seed("image_feature_concept")}
    assert set(rows) == set(FEATURES)
    attributes = {c["concept_code"]: c for c in source_concepts if c["concept_class_id"] == "DICOM Attributes"}
    for name, (tag, unit) in FEATURES.items():
        row = rows[name]
        assert row["tag"] == row["concept_code"] == tag
        assert row["concept_id"] == attributes[tag]["concept_id"] != "0"
        assert row["unit_source_value"] == unit
        assert row["unit_concept_id"] == "0" and row["unit_vocabulary_id"] == "UCUM" and row["unit_ucum_code"]


def test_sop_classes_are_clean_uids() -> None:
    rows = seed("dicom_sop_class")
    uids = {r["sop_class_uid"]: r["sop_class_name"] for r in rows}
    assert len(uids) == len(rows) >= 150
    assert all(builder.is_valid_uid(uid) for uid in uids)
    assert uids["1.2.840.10008.5.1.4.1.1.2"] == "CT Image Storage"
    assert uids["1.2.840.10008.5.1.4.1.1.88.71"] == "Acquisition Context SR Storage"  # had zero-width spaces


def test_vocabulary_version_records_each_source_with_its_hash() -> None:
    rows = {r["source_file"]: r for r in seed("vocabulary_version")}
    for name in (builder.CONCEPT_FILE, builder.MAPS_TO_FILE, builder.MAPS_TO_VALUE_FILE, builder.SOP_CLASS_FILE):
        assert rows[name]["used_by_seeds"]
    for name, row in rows.items():
        assert row["sha256"] == hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert re.fullmatch(r"[0-9a-f]{7,40}", row["source_commit"])
    assert rows[builder.CONCEPT_FILE]["source_commit"] == "56be2b80"
    assert rows[builder.CONCEPT_FILE]["source_repository"] == "paulnagy/DICOM2OMOP"


def test_seed_files_are_small_snake_case_and_fully_typed_in_the_yml() -> None:
    properties = yaml.safe_load((SEEDS / "_seeds.yml").read_text(encoding="utf-8"))
    described = {s["name"]: s for s in properties["seeds"]}
    assert sorted(p.stem for p in SEEDS.glob("*.csv")) == sorted(SEED_NAMES) == sorted(described)
    for name in SEED_NAMES:
        path = SEEDS / f"{name}.csv"
        assert path.stat().st_size < 2_000_000
        header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", column) for column in header)
        types = described[name]["config"]["column_types"]
        assert list(types) == header, name
        assert set(types.values()) <= PORTABLE_TYPES
        assert [c["name"] for c in described[name]["columns"]] == header
        assert all(c.get("description") for c in described[name]["columns"])
