"""Metadata de-identification: Table E.1-1, profiles, the walker (extractor.scrub.metadata).

Real files come from pydicom's bundled test folder; crafted datasets are written to bytes and
read back, so the walker sees raw (undecoded) elements as it does in production, and every
crafted test also runs on fully decoded datasets (the two paths must agree).
"""

from __future__ import annotations

import io
import json
import re
import warnings
from datetime import date
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from extractor.deid.pseudonymize import hash_text, hash_uid, load_allowlist, redact_text, shift_date
from extractor.scrub.metadata import (
    DEFAULT_COMBINATIONS,
    IMPLEMENTATION_CLASS_UID,
    DeidContext,
    MetadataError,
    ProfileError,
    deidentify_metadata,
    load_profile,
    load_source_table,
    load_table,
    parse_profile,
    parse_tag_pattern,
    regenerate_file_meta,
    resolve_action,
    shipped_profile,
    shipped_profile_names,
)
from extractor.scrub.metadata import build_table
from extractor.scrub.metadata.confidentiality import SOURCE_TABLE
from extractor.scrub.metadata.rules import STRUCTURAL_UIDS

# pydicom warns about the invalid values some bundled files carry (and the ones crafted here)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom.valuerep")

REPO = Path(__file__).resolve().parents[1]
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
KEY = "imgomop-scrub-metadata-test-key-not-secret"
SUBJECT = "4711"
ALLOWLIST = load_allowlist(REPO / "vocab" / "seeds" / "description_allowlist.csv")
UID_2_25 = re.compile(r"^2\.25\.\d+$")


# --- helpers ---------------------------------------------------------------------------------


def context(**overrides) -> DeidContext:
    values = dict(key=KEY, subject=SUBJECT, parameters={}, allowlist=ALLOWLIST)
    values.update(overrides)
    return DeidContext(**values)


def roundtrip(ds: Dataset, implicit: bool = False) -> Dataset:
    """Write and read back: the elements come back raw, as from an archive."""
    ds = ds.copy()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", CTImageStorage)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3.4")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def decoded(ds: Dataset) -> Dataset:
    for _ in ds.iterall():
        pass
    return ds


def written(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def flatten(ds: Dataset, prefix: str = "", meta: bool = True) -> dict[str, tuple[str, object]]:
    """path -> (VR, value as text) for every element, sequences included, file meta first."""
    out: dict[str, tuple[str, object]] = {}
    if meta and getattr(ds, "file_meta", None) is not None:
        for elem in ds.file_meta:
            out[f"meta.{elem.keyword or elem.tag}"] = (elem.VR, _text(elem.value))
    for elem in ds:
        name = prefix + (elem.keyword if elem.keyword and not elem.tag.is_private else f"{elem.tag}")
        if elem.VR == "SQ":
            out[name] = ("SQ", len(elem.value))
            for i, item in enumerate(elem.value):
                out.update(flatten(item, f"{name}[{i}].", meta=False))
        else:
            out[name] = (elem.VR, _text(elem.value))
    return out


def _text(value) -> object:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def readable_test_files() -> list[Path]:
    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(TEST_FILES.rglob("*")):
            if not path.is_file():
                continue
            try:
                pydicom.dcmread(path)
            except Exception:  # noqa: BLE001 - not a file pydicom reads: not in scope
                continue
            files.append(path)
    return files


READABLE = readable_test_files()


def writable(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written(pydicom.dcmread(path))
        return True
    except Exception:  # noqa: BLE001 - pydicom itself cannot rewrite it (e.g. a mislabelled VR)
        return False


def profile_text(*lines: str, options: tuple[str, ...] = (), base: str = "basic") -> str:
    opts = ", ".join(f'"{o}"' for o in options)
    return f'name = "t"\nbase = "{base}"\noptions = [{opts}]\n' + "\n".join(lines) + "\n"


def crafted() -> Dataset:
    """An instance with an attribute for every action code of Table E.1-1, nested sequences,
    private attributes and curve / overlay groups."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.101"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.102"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.103"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.104"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.PatientName = "Doe^John"  # Z
    ds.PatientID = "MRN0012345"  # Z/D
    ds.AccessionNumber = "ACC98765"  # Z
    ds.PatientBirthDate = "19600203"  # Z
    ds.PatientSex = "M"  # Z, rtnPatCharsOpt K
    ds.PatientAge = "064Y"  # X, rtnPatCharsOpt K
    ds.PatientWeight = "80"  # X, rtnPatCharsOpt K
    ds.StudyDate = "20240105"  # Z, dates C
    ds.StudyTime = "101500"  # Z, dates C
    ds.SeriesDate = "20240105"  # X/D
    ds.AcquisitionDate = "20240106"  # X/Z
    ds.ContentDate = "20240106"  # Z/D
    ds.AcquisitionDateTime = "20240106101500.123456+0100"  # X/Z/D
    ds.StudyDescription = "CT CHEST WITH CONTRAST JOHN DOE 555-123-4567"  # X, cleanDescOpt C
    ds.ImageComments = "Patient John Doe, MRN0012345"  # X, cleanDescOpt C
    ds.InstitutionName = "General Hospital"  # X/Z/D, rtnInstIdOpt K
    ds.StationName = "CTSTATION1"  # X/Z/D, rtnDevIdOpt K
    ds.DeviceSerialNumber = "SN-778899"  # X/Z/D, rtnDevIdOpt K
    ds.AcquisitionComments = "called Dr Smith"  # X
    ds.ReferringPhysicianName = "Smith^Jane"  # Z
    ds.VerifyingObserverName = "Smith^Jane"  # D
    ds.ContentCreatorName = "Roe^Richard"  # Z/D
    ds.StudyID = "S1234"  # Z
    ds.PatientIdentityRemoved = "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.201"
    ds.ReferencedImageSequence = Sequence([ref])  # X/Z/U*
    # three levels deep: Referenced Series > Referenced Instance > a code item with a PN and a UID
    level3 = Dataset()
    level3.PersonName = "Deep^Person"  # (0040,A123) D
    level3.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.101"  # same UID as the top level
    level3.ObservationDateTime = "20240106093000"  # X/D, dates C
    level3.add_new(0x00191000 | 0x0010, "LO", "ACME PRIVATE")
    level3.add_new(0x00191010, "LO", "secret in depth")
    level2 = Dataset()
    level2.ReferencedSOPClassUID = CTImageStorage
    level2.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.202"
    level2.ContentSequence = Sequence([level3])  # D: kept, cleaned
    level1 = Dataset()
    level1.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.103"
    level1.ReferencedInstanceSequence = Sequence([level2])
    ds.ReferencedSeriesSequence = Sequence([level1])
    # private attributes: a safe one (PS3.15 Table E.3.10-1) and an unsafe one, GE block
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191023, "DS", "39.37")  # Table Speed: safe
    ds.add_new(0x00191002, "SL", 12)  # not listed
    ds.add_new(0x00290010, "LO", "OTHER VENDOR")
    ds.add_new(0x00291023, "DS", "1.0")  # same element byte, other creator: not safe
    # curve (50xx) and overlay (60xx) groups
    ds.add_new(0x50003000, "OW", b"\x01\x02\x03\x04")  # Curve Data (50XX,XXXX) X
    ds.add_new(0x50000005, "US", 2)  # Curve Dimensions: also 50XX,XXXX
    ds.add_new(0x60000010, "US", 4)  # Overlay Rows: not in the table, kept
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60003000, "OW", b"\xff\x00")  # Overlay Data (60XX,3000) X, cleanGraphOpt C
    ds.add_new(0x60004000, "LT", "overlay by John Doe")  # Overlay Comments (60XX,4000) X, cleanGraphOpt C
    ds.Rows = 2
    ds.Columns = 2
    return ds


def both_paths(ds: Dataset) -> list[Dataset]:
    return [roundtrip(ds), decoded(roundtrip(ds))]


# --- Table E.1-1 -------------------------------------------------------------------------------


def test_packaged_table_equals_the_source_and_records_its_commit():
    if not SOURCE_TABLE.is_file():
        pytest.fail(f"{SOURCE_TABLE} missing: the packaged table cannot be checked against its source")
    packaged, source = load_table(), load_source_table()
    assert len(packaged.entries) == len(source.entries) == 621
    assert sorted(packaged.entries, key=lambda e: e.pattern.text) == sorted(source.entries, key=lambda e: e.pattern.text)
    assert packaged.source["commit"] == "7f4749d0"
    assert build_table.main(["--check"]) == 0


def test_tag_patterns_and_ranges():
    curve = parse_tag_pattern("(50XX,XXXX)")
    assert curve.matches(0x50003000) and curve.matches(0x501E0005) and not curve.matches(0x51000000)
    overlay = parse_tag_pattern("(60xx,3000)")
    assert overlay.matches(0x60003000) and overlay.matches(0x601E3000) and not overlay.matches(0x60004000)
    private = parse_tag_pattern("(GGGG,EEEE) WHERE GGGG IS ODD")
    assert private.private and private.matches(0x00191023) and not private.matches(0x00100010)
    assert parse_tag_pattern("00100010").is_exact and parse_tag_pattern("0010,0010").value == 0x00100010
    for bad in ("(0010,001)", "PatientName", "(0010,0010,0)"):
        with pytest.raises(ValueError):
            parse_tag_pattern(bad)
    table = load_table()
    assert {e.pattern.text for e in table.ranges} == {"(50XX,XXXX)", "(60XX,3000)", "(60XX,4000)"}
    assert table.lookup(0x60023000).name == "Overlay Data"
    assert table.lookup(0x00431027).name == "Private Attributes"


def test_combined_actions_resolve_as_documented():
    table = load_table()
    cases = {
        0x00080022: ("X/Z", "X"),  # Acquisition Date
        0x00080021: ("X/D", "X"),  # Series Date
        0x00080080: ("X/Z/D", "X"),  # Institution Name
        0x00100020: ("Z/D", "Z"),  # Patient ID
        0x00081140: ("X/Z/U*", "U"),  # Referenced Image Sequence
    }
    for tag, (basic, expected) in cases.items():
        entry = table.exact[tag]
        assert entry.basic == basic
        assert resolve_action(entry).code == expected == DEFAULT_COMBINATIONS[basic]
    # a profile may choose the other side of a combination
    profile = parse_profile(profile_text('[combinations]', '"X/D" = "D"', '"Z/D" = "D"'))
    assert resolve_action(table.exact[0x00080021], profile.options, profile.combinations).code == "D"
    assert resolve_action(table.exact[0x00100020], profile.options, profile.combinations).code == "D"


def test_options_replace_the_basic_action_as_the_json_says():
    """Spot-check attributes against the innolitics JSON: each option column's action wins."""
    rows = {row["tag"]: row for row in json.loads(SOURCE_TABLE.read_text())}
    table = load_table()
    spot = [
        "(0008,0050)", "(0008,0020)", "(0008,1030)", "(0010,1010)", "(0008,1010)", "(0008,0080)",
        "(0020,000D)", "(0018,1000)", "(0040,A730)", "(300C,0127)", "(0018,100B)", "(0010,0040)",
    ]
    columns = ("rtnSafePrivOpt", "rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt", "rtnPatCharsOpt", "rtnLongFullDatesOpt",
               "rtnLongModifDatesOpt", "cleanDescOpt", "cleanStructContOpt", "cleanGraphOpt")
    checked = 0
    for text in spot:
        row = rows[text]
        entry = table.exact[parse_tag_pattern(text).value]
        assert entry.basic == row["basicProfile"]
        for column in columns:
            if column in row:
                assert resolve_action(entry, {column}).code == row[column], (text, column)
                checked += 1
            else:
                assert resolve_action(entry, {column}).code == resolve_action(entry).code
    assert checked >= 12
    # the private and range rows too
    assert resolve_action(table.private, {"rtnSafePrivOpt"}).code == rows["(GGGG,EEEE) WHERE GGGG IS ODD"]["rtnSafePrivOpt"]
    assert resolve_action(table.ranges[0], {"cleanGraphOpt"}).code == "C"
    # two options on one attribute: clean (modify) beats keep
    calibration = table.exact[0x0018700C]  # Date of Last Detector Calibration: rtnDevIdOpt K, rtnLongModifDatesOpt C
    assert resolve_action(calibration, {"rtnDevIdOpt", "rtnLongModifDatesOpt"}).code == "C"
    assert resolve_action(calibration, {"rtnDevIdOpt"}).code == "K"


@pytest.mark.parametrize("option, path, without, with_option", [
    ("retain_patient_characteristics", "PatientAge", "removed", "kept"),
    ("retain_patient_characteristics", "PatientSex", "emptied", "kept"),
    ("retain_device_identity", "StationName", "removed", "kept"),
    ("retain_device_identity", "DeviceSerialNumber", "removed", "kept"),
    ("retain_institution_identity", "InstitutionName", "removed", "kept"),
    ("retain_uids", "StudyInstanceUID", "hashed", "kept"),
    ("clean_descriptors", "StudyDescription", "removed", "redacted"),
    ("clean_descriptors", "ImageComments", "removed", "redacted"),
    ("retain_longitudinal_modified_dates", "StudyDate", "emptied", "shifted"),
    ("retain_longitudinal_modified_dates", "AcquisitionDate", "removed", "shifted"),
    ("retain_longitudinal_full_dates", "StudyDate", "emptied", "kept"),
    ("clean_graphics", "(6000,4000)", "removed", "redacted"),
])
def test_options_change_actions_on_an_instance(option, path, without, with_option):
    base = deidentify_metadata(roundtrip(crafted()), parse_profile(profile_text()), context())
    opted = deidentify_metadata(roundtrip(crafted()), parse_profile(profile_text(options=(option,))), context())
    assert base.action_for(path) == without
    assert opted.action_for(path) == with_option


# --- every action ---------------------------------------------------------------------------------


@pytest.mark.parametrize("implicit", [False, True])
def test_every_basic_action_code(implicit):
    source = crafted()
    profile = parse_profile(profile_text())
    for ds in (roundtrip(source, implicit), decoded(roundtrip(source, implicit))):
        report = deidentify_metadata(ds, profile, context())
        act = report.action_for
        # X
        assert act("AcquisitionComments") == "removed" and "AcquisitionComments" not in ds
        # Z
        assert act("PatientName") == "emptied" and ds.PatientName == ""
        assert act("AccessionNumber") == "emptied" and ds.AccessionNumber == ""
        # D
        assert act("VerifyingObserverName") == "replaced" and ds.VerifyingObserverName == "ANONYMIZED"
        # U
        assert act("StudyInstanceUID") == "hashed" and ds.StudyInstanceUID == hash_uid(source.StudyInstanceUID, KEY)
        # X/Z -> X, X/D -> X, X/Z/D -> X, Z/D -> Z
        assert act("AcquisitionDate") == "removed" and "AcquisitionDate" not in ds
        assert act("SeriesDate") == "removed" and "SeriesDate" not in ds
        assert act("InstitutionName") == "removed" and "InstitutionName" not in ds
        assert act("ContentCreatorName") == "emptied" and ds.ContentCreatorName == ""
        assert act("PatientID") == "emptied" and ds.PatientID == ""
        # X/Z/U* -> U: the sequence stays, its UIDs are replaced
        assert act("ReferencedImageSequence") == "kept"
        item = ds.ReferencedImageSequence[0]
        assert item.ReferencedSOPInstanceUID == hash_uid("1.2.826.0.1.3680043.8.498.201", KEY)
        assert item.ReferencedSOPClassUID == CTImageStorage
        # D on a sequence keeps it and cleans inside
        assert act("ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ContentSequence") == "kept"
        # no date option: dates emptied or removed
        assert ds.StudyDate == "" and "AcquisitionDateTime" not in ds
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    # K and C come from options
    kept = deidentify_metadata(roundtrip(source), parse_profile(profile_text(options=("retain_device_identity",))), context())
    assert kept.action_for("StationName") == "kept"
    cleaned_ds = roundtrip(source)
    cleaned = deidentify_metadata(cleaned_ds, parse_profile(profile_text(options=("clean_descriptors",))), context())
    assert cleaned.action_for("StudyDescription") == "redacted"
    assert cleaned_ds.StudyDescription == redact_text(source.StudyDescription, ALLOWLIST)
    assert "JOHN" not in cleaned_ds.StudyDescription and "[PHONE]" in cleaned_ds.StudyDescription


def test_every_profile_action():
    text = profile_text(
        "[dates]",
        'mode = "remove"',
        "[attributes]",
        'Manufacturer = "keep"',
        'StudyID = "remove"',
        'InstitutionName = "empty"',
        'StationName = "dummy"',
        'PatientID = { action = "hash_text", domain = "text" }',
        'AccessionNumber = { action = "hash_text", domain = "accession" }',
        'ContentDate = "shift_date"',
        'ImageComments = "redact"',
        'AcquisitionComments = "clean"',
        'PatientName = { action = "replace", value = "{param.PatientName}", fallback = "ANON" }',
        'StudyDescription = { action = "replace", value = "Study {param.Code} {{x}}" }',
        'ReferringPhysicianName = { action = "replace", value = "{param.Missing}" }',
        'ClinicalTrialSubjectID = { action = "replace", value = "{param.Subject}", insert = true }',
        '"(0020,0052)" = "U"',
        'SeriesDescription = { action = "replace", value = "{param.SeriesDescription}", fallback_action = "redact" }',
    )
    profile = parse_profile(text)
    source = crafted()
    source.SeriesDescription = "AX 5MM JOHN"
    for ds in both_paths(source):
        report = deidentify_metadata(ds, profile, context(parameters={"Code": "A1", "Subject": "SUBJ-9"}))
        act = report.action_for
        assert act("Manufacturer") == "kept" and ds.Manufacturer == "ACME"
        assert act("StudyID") == "removed" and "StudyID" not in ds
        assert act("InstitutionName") == "emptied" and ds.InstitutionName == ""
        assert act("StationName") == "replaced" and ds.StationName == "ANONYMIZED"
        assert ds.PatientID == hash_text("text", "MRN0012345", KEY)
        assert ds.AccessionNumber == hash_text("accession", "ACC98765", KEY)
        assert act("ContentDate") == "shifted"
        assert ds.ContentDate == shift_date(date(2024, 1, 6), SUBJECT, KEY).strftime("%Y%m%d")
        assert ds.ImageComments == redact_text(source.ImageComments, ALLOWLIST)
        assert act("AcquisitionComments") == "redacted"
        assert act("PatientName") == "replaced" and ds.PatientName == "ANON"  # parameter missing: fallback
        assert ds.StudyDescription == "Study A1 {x}"
        assert act("ReferringPhysicianName") == "emptied" and ds.ReferringPhysicianName == ""  # no fallback
        assert act("ClinicalTrialSubjectID") == "added" and ds.ClinicalTrialSubjectID == "SUBJ-9"
        assert ds.FrameOfReferenceUID == hash_uid(source.FrameOfReferenceUID, KEY)
        assert act("SeriesDescription") == "redacted" and ds.SeriesDescription == "AX 5MM [X]"
        # other dates removed by [dates] mode, the explicit shift_date still shifts
        assert ds.StudyDate == ""


def test_parameters_fill_pseudonyms_and_descriptions_like_the_warehouse():
    profile = shipped_profile("pre-irb")
    params = {"PatientID": "123456789", "PatientName": "PERSON^123456789", "AccessionNumber": "a" * 32,
              "StudyDescription": "CT CHEST [X]"}
    ds = roundtrip(crafted())
    report = deidentify_metadata(ds, profile, context(parameters=params))
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == ("123456789", "PERSON^123456789", "a" * 32)
    assert ds.StudyDescription == "CT CHEST [X]"
    assert ("AccessionNumber", "value longer than the VR SH maximum of 16 characters") in report.warnings
    # folder mode, no parameters: accession hashed exactly as the warehouse hashes it
    ds = roundtrip(crafted())
    deidentify_metadata(ds, profile, context())
    assert ds.AccessionNumber == hash_text("accession", "ACC98765", KEY)
    assert ds.PatientName == "ANONYMIZED"
    assert ds.StudyDescription == redact_text(crafted().StudyDescription, ALLOWLIST)


def test_dates_shift_keep_year_and_times():
    source = crafted()
    shift = lambda d: shift_date(d, SUBJECT, KEY).strftime("%Y%m%d")  # noqa: E731
    for ds in both_paths(source):
        report = deidentify_metadata(ds, shipped_profile("pre-irb"), context())
        assert ds.StudyDate == shift(date(2024, 1, 5))
        assert ds.AcquisitionDate == shift(date(2024, 1, 6))
        assert ds.AcquisitionDateTime == shift(date(2024, 1, 6))  # pre-IRB removes times of day, in DT too
        assert ds.StudyTime == "" and report.action_for("StudyTime") != "kept"
        assert ds.PatientBirthDate == ""
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    year = parse_profile(profile_text("[dates]", 'mode = "keep_year"', 'times = "remove"'))
    ds = roundtrip(source)
    deidentify_metadata(ds, year, context(subject=None))
    assert (ds.StudyDate, ds.AcquisitionDateTime, ds.StudyTime) == ("20240101", "2024", "")
    # unreadable dates are emptied, never passed on
    bad = crafted()
    bad.StudyDate = "2024XX05"
    ds = roundtrip(bad)
    report = deidentify_metadata(ds, shipped_profile("pre-irb"), context())
    assert ds.StudyDate == "" and ("StudyDate", "unreadable DA value emptied") in report.warnings


def test_shift_without_subject_fails_closed_and_context_hides_secrets():
    with pytest.raises(MetadataError, match="subject"):
        deidentify_metadata(roundtrip(crafted()), shipped_profile("pre-irb"), context(subject=None))
    text = repr(context(parameters={"PatientID": "P1"}))
    assert KEY not in text and SUBJECT not in text and "P1" not in text


# --- sequences, private attributes, ranges --------------------------------------------------------


def test_nested_sequences_three_deep():
    source = crafted()
    for ds in both_paths(source):
        report = deidentify_metadata(ds, shipped_profile("pre-irb"), context())
        level3 = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ContentSequence[0]
        deep = "ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ContentSequence[0]."
        assert level3.PersonName == "ANONYMIZED" and report.action_for(deep + "PersonName") == "replaced"
        # the same UID at the top level and three levels down hashes the same (referential integrity)
        assert level3.ReferencedSOPInstanceUID == ds.SOPInstanceUID == hash_uid(source.SOPInstanceUID, KEY)
        assert level3.ObservationDateTime == shift_date(date(2024, 1, 6), SUBJECT, KEY).strftime("%Y%m%d")  # time of day removed
        assert 0x00191010 not in level3 and report.action_for(deep + "(0019,1010)") == "removed"
        level1 = ds.ReferencedSeriesSequence[0]
        assert level1.SeriesInstanceUID == ds.SeriesInstanceUID


def test_private_attributes_removed_unless_listed_safe():
    pre = roundtrip(crafted())
    report = deidentify_metadata(pre, shipped_profile("pre-irb"), context())
    assert not [e for e in pre.iterall() if e.tag.is_private]
    assert report.action_for("(0019,1023)") == "removed"
    post = roundtrip(crafted())
    report = deidentify_metadata(post, shipped_profile("post-irb-limited"), context())
    assert post[0x00191023].value == "39.37" and post[0x00190010].value == "GEMS_ACQU_01"
    assert report.action_for("(0019,1023)") == "kept"
    assert 0x00191002 not in post  # same block, not listed
    assert 0x00291023 not in post and 0x00290010 not in post  # right element byte, wrong creator
    # the option without the list, and the list without the option
    with pytest.raises(ProfileError, match="retain_safe_private"):
        parse_profile(profile_text("[[safe_private]]", 'creator = "GEMS_ACQU_01"', 'tag = "(0019,xx23)"'))
    # a real GE CT: the listed GE attributes survive, nothing else private does
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    deidentify_metadata(ds, shipped_profile("post-irb-limited"), context())
    kept = {f"{e.tag.group:04X},xx{e.tag.element & 0xFF:02X}" for e in ds if e.tag.is_private and e.tag.element >= 0x1000}
    assert kept and kept <= {"0019,xx23", "0019,xx24", "0019,xx27", "0025,xx07", "0043,xx27", "0043,xx39"}


def test_curve_and_overlay_ranges():
    for ds in both_paths(crafted()):
        report = deidentify_metadata(ds, parse_profile(profile_text()), context())
        assert 0x50003000 not in ds and 0x50000005 not in ds
        assert report.action_for("(5000,3000)") == "removed"
        assert 0x60003000 not in ds and 0x60004000 not in ds  # overlay data and comments: X
        assert ds[0x60000010].value == 4  # overlay rows: not in the table
    graphics = parse_profile(profile_text(options=("clean_graphics",)))
    ds = roundtrip(crafted())
    report = deidentify_metadata(ds, graphics, context())
    assert 0x60003000 not in ds  # overlay bitmap cannot be cleaned: removed (fail closed)
    assert "cannot be cleaned" in next(e.rule for e in report.entries if e.path == "(6000,3000)")
    assert ds[0x60004000].value == redact_text("overlay by John Doe", ALLOWLIST)
    # a real file with overlays
    ds = pydicom.dcmread(TEST_FILES / "examples_overlay.dcm")
    assert 0x60003000 in ds
    deidentify_metadata(ds, shipped_profile("pre-irb"), context())
    assert 0x60003000 not in ds


def test_allowlist_mode_with_modality_lists():
    profile = shipped_profile("strict-allowlist")
    allowed_ct = profile.allowed_tags("CT") | {0x00080005, 0x00120062, 0x00120063, 0x00120064, 0x00280303}
    ct = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    assert 0x00180060 in ct  # KVP
    report = deidentify_metadata(ct, profile, context())
    assert {int(t) for t in ct.keys()} <= allowed_ct
    assert "KVP" in ct and "PixelData" in ct and "Rows" in ct
    assert report.action_for("Manufacturer") is None and "Manufacturer" in ct  # listed: kept
    assert report.action_for("SliceThickness") is None
    assert report.action_for("ContrastBolusAgent") == "removed"  # not listed
    assert ct.StudyInstanceUID == hash_uid(pydicom.dcmread(TEST_FILES / "CT_small.dcm").StudyInstanceUID, KEY)
    mr = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    deidentify_metadata(mr, profile, context())
    assert "EchoTime" in mr and "KVP" not in mr
    # CR and DX share one list
    assert profile.allowlist_by_modality["CR"] == profile.allowlist_by_modality["DX"]
    cr = crafted()
    cr.Modality = "DX"
    cr.ViewPosition = "PA"
    cr.KVP = "120"
    ds = roundtrip(cr)
    deidentify_metadata(ds, profile, context())
    assert ds.ViewPosition == "PA" and "KVP" in ds and "ReferencedSeriesSequence" not in ds
    # a listed sequence keeps only listed attributes inside
    listed = parse_profile(
        profile_text(
            "[allowlist]",
            'attributes = ["SOPClassUID", "SOPInstanceUID", "ReferencedImageSequence", "ReferencedSOPInstanceUID"]',
            base="allowlist",
        )
    )
    ds = roundtrip(crafted())
    deidentify_metadata(ds, listed, context())
    item = ds.ReferencedImageSequence[0]
    assert list(item.keys()) == [0x00081155] and item.ReferencedSOPInstanceUID.startswith("2.25.")


# --- de-identification record and file meta -------------------------------------------------------


def test_method_is_recorded_and_file_meta_regenerated():
    source = crafted()
    ds = roundtrip(source)
    assert ds.file_meta.SourceApplicationEntityTitle == "HOSPITAL_PACS"
    report = deidentify_metadata(ds, shipped_profile("post-irb-limited"), context(pixels_cleaned=True))
    assert ds.PatientIdentityRemoved == "YES"
    assert list(ds.DeidentificationMethod) == ["imgomop post-irb-limited v1", "PS3.15 basic, limited data set options"]
    codes = [(i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning) for i in ds.DeidentificationMethodCodeSequence]
    assert [c[0] for c in codes] == ["113100", "113101", "113105", "113107", "113108", "113109", "113111"]
    assert all(c[1] == "DCM" for c in codes)
    assert ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option") in codes
    assert report.method_codes == tuple(c[0] for c in codes)
    meta = ds.file_meta
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == hash_uid(source.SOPInstanceUID, KEY)
    assert meta.MediaStorageSOPClassUID == CTImageStorage and meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID and meta.ImplementationVersionName == "IMGOMOP_0.1"
    assert "SourceApplicationEntityTitle" not in meta
    again = regenerate_file_meta(ds, transfer_syntax_uid=ImplicitVRLittleEndian)
    assert again.TransferSyntaxUID == ImplicitVRLittleEndian and again.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    out = written(ds)  # the pre-encoded method elements read back
    assert out.DeidentificationMethodCodeSequence[1].CodeValue == "113101"
    with pytest.raises(MetadataError, match="SOPInstanceUID"):
        regenerate_file_meta(Dataset())


def test_report_has_paths_and_actions_but_no_values():
    source = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    values = {str(e.value) for e in source if isinstance(e.value, str) and len(e.value.strip()) >= 4}
    values |= {str(source.PatientName)}
    report = deidentify_metadata(pydicom.dcmread(TEST_FILES / "CT_small.dcm"), shipped_profile("pre-irb"), context())
    allowed_actions = {"removed", "emptied", "replaced", "hashed", "shifted", "kept", "redacted", "added"}
    assert {e.action for e in report.entries} <= allowed_actions
    text = json.dumps([report.rows(), report.warnings])
    assert not [v for v in values if v in text]
    assert report.counts()["removed"] > 100  # the GE private attributes


# --- profiles -------------------------------------------------------------------------------------


def test_profile_errors_name_file_line_and_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        'name = "bad"\n'  # 1
        'options = ["clean_descriptors", "retain_everything"]\n'  # 2
        "[dates]\n"  # 3
        'mode = "shift"\n'  # 4
        "[attributes]\n"  # 5
        'PatientNme = "remove"\n'  # 6
        'StudyDate = "shred"\n'  # 7
        'PatientID = { action = "replace", value = [1] }\n'  # 8
        'PatientName = "hash_uid"\n'  # 9
        '"(0019,1010)" = "keep"\n'  # 10
        "[allowlist]\n"  # 11
        "attributes = [\n"  # 12
        '    "Modality",\n'  # 13
        '    "NotAKeyword",\n'  # 14
        "]\n"  # 15
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    expected = {
        2: "unknown option 'retain_everything'",
        6: "unknown attribute 'PatientNme'",
        7: "bad action 'shred' for StudyDate",
        8: "value for PatientID must be a string or a number, not a list",
        9: "action 'hash_uid' does not fit PatientName (VR PN)",
        10: "is a private attribute",
        11: "[allowlist] lists are used only with base = \"allowlist\"",
        14: "unknown allowlist attribute 'NotAKeyword'",
    }
    for line, problem in expected.items():
        assert f"{path}:{line}: " in message and problem in message, (line, problem, message)
        assert any(ln == line and problem in text for ln, text in caught.value.issues)
    assert "did you mean 'PatientName'" in message
    # TOML syntax errors carry the line too
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\noptions = ["clean_descriptors"\n')
    with pytest.raises(ProfileError, match=rf"{re.escape(str(broken))}:\d+: not valid TOML"):
        load_profile(broken)
    # bad value types and contradictions
    cases = [
        (profile_text('unknown_public = "maybe"'), "unknown_public must be one of"),
        (profile_text("hash_unlisted_uids = 1"), "hash_unlisted_uids must be true or false"),
        (profile_text(options=("retain_longitudinal_full_dates",)) + '[dates]\nmode = "shift"\n', "contradicts"),
        (profile_text("[combinations]", '"X/Z" = "D"'), "X/Z can resolve to X or Z"),
        (profile_text("[attributes]", 'PatientID = { action = "replace", value = "{patient}" }'), "bad placeholder"),
        (profile_text("[attributes]", 'PatientID = { action = "remove", fallback = "x" }'), "fallback only goes with"),
        (profile_text("[attributes]", 'PatientID = { action = "hash_text", domain = "uid" }'), "domain"),
        (profile_text("[attributes]", '"(60xx,3000)" = "hash_uid"'), "needs a single attribute"),
        (profile_text(base="allowlist"), "needs an [allowlist] table"),
        ('base = "basic"\n', "missing required key 'name'"),
        (profile_text('method = "' + "x" * 70 + '"'), "at most 64 ASCII characters"),
    ]
    for text, problem in cases:
        with pytest.raises(ProfileError, match=re.escape(problem)):
            parse_profile(text, "case.toml")


def test_shipped_profiles_load():
    assert shipped_profile_names() == ["post-irb-limited", "pre-irb", "strict-allowlist"]
    pre = shipped_profile("pre-irb")
    assert pre.base == "basic" and pre.dates == "shift" and "cleanDescOpt" in pre.options
    assert "rtnSafePrivOpt" not in pre.options and pre.compiled.private_rule.action == "remove"
    post = shipped_profile("post-irb-limited")
    assert {"rtnLongModifDatesOpt", "rtnPatCharsOpt", "rtnDevIdOpt", "rtnSafePrivOpt"} <= set(post.options)
    assert len(post.safe_private) >= 20
    strict = shipped_profile("strict-allowlist")
    assert strict.base == "allowlist" and {"CT", "MR", "US", "CR", "DX", "PT"} <= set(strict.allowlist_by_modality)


@pytest.mark.parametrize("name", ["pre-irb", "post-irb-limited", "strict-allowlist"])
def test_shipped_profiles_apply_to_every_bundled_file(name):
    profile = shipped_profile(name)
    assert len(READABLE) > 150
    for path in READABLE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            report = deidentify_metadata(ds, profile, context(parameters={"PatientID": "PSEUDO1"}))
            assert report.entries, path.name
            if "SOPInstanceUID" in ds and writable(path):
                out = written(ds)
                for _ in out.iterall():  # every element decodes
                    pass
                assert out.PatientIdentityRemoved == "YES"


def _identifiers(ds: Dataset) -> tuple[set[str], set[str], dict[str, str]]:
    """(identifying texts, dates, instance UIDs -> hash) anywhere in a source instance."""
    texts: set[str] = set()
    dates: set[str] = set()
    uids: dict[str, str] = {}
    for path, (vr, value) in flatten(ds).items():
        if vr == "SQ" or not isinstance(value, str):
            continue
        keyword = path.rsplit(".", 1)[-1].split("[")[0]
        for v in value.split("\\"):
            v = v.strip(" \x00")
            if not v:
                continue
            if keyword in ("PatientName", "PatientID", "AccessionNumber", "OtherPatientIDs", "OtherPatientNames") and not (
                v.isdigit() and len(v) <= 3
            ):
                texts.add(v.upper())
            if vr == "DA" and re.fullmatch(r"\d{8}", v):
                dates.add(v)
            if vr == "DT" and re.match(r"\d{8}", v):
                dates.add(v[:8])
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.tag not in STRUCTURAL_UIDS and elem.value:
            for v in (elem.value if isinstance(elem.value, list) or type(elem.value).__name__ == "MultiValue" else [elem.value]):
                if not str(v).startswith("1.2.840.10008."):
                    uids[str(v)] = hash_uid(str(v), KEY)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        uids[str(meta.MediaStorageSOPInstanceUID)] = hash_uid(str(meta.MediaStorageSOPInstanceUID), KEY)
    return texts, dates, uids


def _shifted(d: str) -> str | None:
    try:
        return shift_date(date(int(d[:4]), int(d[4:6]), int(d[6:8])), SUBJECT, KEY).strftime("%Y%m%d")
    except ValueError:
        return None


def test_pre_irb_leaves_no_source_identifier_anywhere():
    """Walk every element of every output (file meta, sequences, private): no patient name, id,
    accession number, date or instance UID of the source survives."""
    profile = shipped_profile("pre-irb")
    checked = 0
    for path in READABLE:
        if not writable(path):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = pydicom.dcmread(path)
            texts, dates, uids = _identifiers(source)
            ds = pydicom.dcmread(path)
            deidentify_metadata(ds, profile, context(parameters={"PatientID": "PSEUDO-ID", "PatientName": "PSEUDO^NAME"}))
            if "SOPInstanceUID" not in ds:
                continue
            out = flatten(written(ds))
        checked += 1
        shifted = {_shifted(d) for d in dates}
        for where, (vr, value) in out.items():
            if vr == "SQ" or not isinstance(value, str):
                continue
            tag_keyword = where.rsplit(".", 1)[-1]
            for v in value.split("\\") if vr not in ("LT", "ST", "UT", "OB", "OW", "UN") else [value]:
                v = v.strip(" \x00")
                upper = v.upper()
                for t in texts:
                    assert t != upper and not (len(t) >= 4 and t in upper), (path.name, where)
                if vr in ("DA", "DT"):
                    assert v[:8] not in dates or v[:8] in shifted, (path.name, where)
                if vr == "UI" and v and "ImplementationClassUID" not in where and not v.startswith("1.2.840.10008."):
                    if tag_keyword not in {"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "CodingSchemeUID"}:
                        assert UID_2_25.match(v), (path.name, where)
                        assert v not in uids, (path.name, where)
    assert checked > 130


@pytest.mark.parametrize("filename", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                      "rtplan.dcm", "rtdose.dcm", "reportsi.dcm", "test-SR.dcm"])
def test_uids_and_dates_equal_the_shared_functions(filename):
    """Every output UID is hash_uid of the input at the same path; every date is shift_date of it."""
    source = flatten(pydicom.dcmread(TEST_FILES / filename))
    ds = pydicom.dcmread(TEST_FILES / filename)
    deidentify_metadata(ds, shipped_profile("pre-irb"), context())
    out = flatten(written(ds))
    compared = 0
    for where, (vr, value) in out.items():
        if where not in source or where.startswith("meta.") or not isinstance(value, str) or not value:
            continue
        before = source[where][1]
        if vr == "UI" and not str(before).startswith("1.2.840.10008.") and not where.endswith("ClassUID") \
                and not where.endswith("CodingSchemeUID"):
            for b, a in zip(str(before).split("\\"), value.split("\\")):
                assert UID_2_25.match(a) and a == hash_uid(b, KEY), where
                compared += 1
        if vr == "DA":
            assert value == _shifted(str(before)), where
            compared += 1
    # the file meta names the (hashed) SOP instance, even where the source's meta disagreed with it
    assert out["meta.MediaStorageSOPInstanceUID"][1] == hash_uid(source["SOPInstanceUID"][1], KEY)
    assert compared >= 3


def test_raw_and_decoded_paths_agree_on_every_bundled_file():
    """The walker reads ASCII values from raw bytes; pydicom-decoded datasets must give the same output."""
    for name in ("pre-irb", "post-irb-limited", "strict-allowlist"):
        profile = shipped_profile(name)
        for path in READABLE:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = pydicom.dcmread(path)
                dec = decoded(pydicom.dcmread(path))
                r1 = deidentify_metadata(raw, profile, context())
                r2 = deidentify_metadata(dec, profile, context())
            assert r1.rows() == r2.rows(), (name, path.name)
            assert flatten(raw) == flatten(dec), (name, path.name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\\"), max_size=60),
    charset=st.sampled_from(["ISO_IR 100", "ISO_IR 192", None]),
    day=st.dates(min_value=date(1900, 3, 1), max_value=date(2099, 10, 1)),
)
def test_fast_path_redaction_and_shift_equal_the_shared_functions(text, charset, day):
    ds = crafted()
    if charset:
        ds.SpecificCharacterSet = charset
    else:
        del ds.SpecificCharacterSet
        text = text.encode("ascii", "replace").decode("ascii")
    ds.StudyDescription = text
    ds.StudyDate = day.strftime("%Y%m%d")
    raw = roundtrip(ds)
    deidentify_metadata(raw, shipped_profile("pre-irb"), context())
    expected = redact_text(text.strip(" "), ALLOWLIST) if text.strip(" ") else None
    assert (raw.StudyDescription or None) == (expected or None)
    assert raw.StudyDate == shift_date(day, SUBJECT, KEY).strftime("%Y%m%d")
