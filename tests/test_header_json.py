"""The representative header JSON against pydicom's own DICOM JSON, on every bundled test file.

Reference: pydicom's `DataElement.to_json_dict` per top-level element in its default reading
mode, elements it cannot convert left out, binary values over 768 bytes (a 1024-character
base64 threshold) left out at any depth. `dataset_json` converts common elements from their
bytes and must give exactly the same JSON.
"""

from __future__ import annotations

import io
import json
import random
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest

from bad_dicom import TEST_FILES, damaged, with_and_without
from extractor.harvest import header_json as header_json_module
from extractor.harvest.header_json import BULK_INLINE_BYTES, bytes_json, dataset_json, header_json, json_text
from extractor.harvest.reader import HarvestError, read_header_dataset

MARKER = "bulk"


def _read(path: Path) -> pydicom.Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read_header_dataset(io.BytesIO(path.read_bytes()))
        except (HarvestError, Exception):  # noqa: BLE001 - files pydicom cannot read have no JSON to compare
            return None


# Files whose header pydicom reads (the others are the reader's bad-input cases).
FILES = sorted(p for p in TEST_FILES.rglob("*") if p.is_file() and _read(p) is not None)


def _without_bulk(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_bulk(v) for k, v in value.items() if not (isinstance(v, dict) and v.get("BulkDataURI") == MARKER)}
    if isinstance(value, list):
        return [_without_bulk(v) for v in value]
    return value


def reference_json(ds: pydicom.Dataset) -> dict[str, Any]:
    out = {}
    for tag in ds.keys():
        try:
            element = ds[tag].to_json_dict(lambda _element: MARKER, BULK_INLINE_BYTES // 3 * 4)
        except Exception:  # noqa: BLE001 - left out, as dataset_json does
            continue
        if element.get("BulkDataURI") != MARKER:
            out[f"{tag:08X}"] = _without_bulk(element)
    return out


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(TEST_FILES)) for p in FILES])
def test_header_json_equals_pydicom(path: Path) -> None:
    ours, theirs = _read(path), _read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference_json(theirs)
        got = dataset_json(ours)
    assert json.loads(json.dumps(got)) == json.loads(json.dumps(expected))


@pytest.fixture(params=["c-accelerator", "pure-python"])
def accelerator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C accelerator of the bytes path, and again without it."""
    if request.param == "pure-python":
        monkeypatch.setattr(header_json_module, "_plain_elements", None)
    return request.param


def test_the_c_accelerator_is_built() -> None:
    """`pip install .` compiles extractor/harvest/_header_json.c (setup.py); without it harvest is slower."""
    assert header_json_module._plain_elements is not None, "extractor.harvest._header_json is missing: install with gcc"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(TEST_FILES)) for p in FILES])
def test_header_json_from_bytes_equals_pydicom_or_declines(path: Path, accelerator: str) -> None:
    got = bytes_json(path.read_bytes())
    if got is None:
        return  # not explicit VR little endian, or something the bytes path leaves to pydicom
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference_json(_read(path))
    assert json.loads(json.dumps(got)) == json.loads(json.dumps(expected))


def test_the_comparison_covers_the_bundled_folder() -> None:
    assert len(FILES) >= 160
    from_bytes = [p for p in FILES if bytes_json(p.read_bytes()) is not None]
    assert len(from_bytes) >= 80, "the bytes path should read most explicit VR little endian files"


def test_header_json_text_leaves_out_bulk_data_and_keeps_names() -> None:
    text = header_json(io.BytesIO((TEST_FILES / "CT_small.dcm").read_bytes()))
    assert text is not None
    parsed = json.loads(text)
    assert parsed["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert parsed["00280010"] == {"vr": "US", "Value": [128]}
    assert "7FE00010" not in parsed
    assert all(len(v.get("InlineBinary", "")) <= 1024 for v in parsed.values())


def test_header_json_of_a_file_that_is_not_dicom_is_none() -> None:
    assert header_json(io.BytesIO(b"not a dicom file at all" * 10)) is None


def _bytes_json_with_and_without_accelerator(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    return with_and_without(monkeypatch, header_json_module, "_plain_elements", lambda: bytes_json(data))


def _tricky_values_file() -> bytes:
    """Values at the edges of the text and number rules, written as explicit VR little endian."""
    ds = pydicom.Dataset()
    ds.PatientName = "Doe^Jane=Ideo=Phon=extra\\Roe^Rick="
    ds.OtherPatientNames = "  "
    ds.StationAETitle = " AE1 \\\t AE2\x0c"  # AE: every value stripped of whitespace
    ds.RetrieveURL = "http://example.test/x \t "
    ds.ImageType = ["ORIGINAL", "", "AXIAL "]
    ds.StudyDescription = "  trailing pad \x00"
    ds.SeriesDescription = ""
    ds.AdditionalPatientHistory = "line one\r\nline two \x00 "
    ds.InstanceNumber = " +12 "
    ds.add_new(0x00200013, "IS", " +12 ")
    ds.add_new(0x00181160, "SH", "a\\b \\c\x00")  # FilterType, SH: each value rstripped
    ds.add_new(0x00280030, "DS", "1.5\\.5\\5.\\-2e3\\ 7E+01 ")
    ds.add_new(0x00180050, "DS", "7.25")  # becomes "1.5e" below: off the grammar, pydicom decides
    ds.add_new(0x00181110, "DS", "1.5\\\\2")  # an empty value among numbers
    ds.add_new(0x00181120, "IS", "1.0")  # a decimal in IS
    ds.add_new(0x00280010, "US", 512)
    ds.add_new(0x00280106, "SS", -3)
    ds.add_new(0x00189327, "FD", [0.1, -2.5e300])
    ds.add_new(0x00189306, "FL", 0.1)
    ds.add_new(0x00181310, "US", [0xABCD, 0xABCD])  # cut to 3 bytes below: not a whole number of values
    ds.add_new(0x00091001, "OB", bytes(range(256)) * 3)  # 768 bytes: inline
    ds.add_new(0x00091002, "OB", bytes(769))  # one byte over: left out
    ds.add_new(0x00091003, "OB", b"\x01")
    ds.add_new(0x00091004, "OW", b"\x01\x02\x03\x04\x05\x06")
    ds.add_new(0x00091005, "UL", [1, 4294967295])
    ds.add_new(0x00091006, "SL", [-2147483648])
    ds.add_new(0x00091007, "SV", [-(2**63)])
    ds.add_new(0x00091008, "UV", [2**64 - 1])
    ds.add_new(0x00091009, "LT", "free\\text with backslash  ")
    ds.add_new(0x0009100A, "UC", "x\\y ")
    ds.add_new(0x0009100B, "UT", "")
    ds.add_new(0x0009100C, "CS", "A\x1b$B")  # ESC: another character set, pydicom decides
    ds.add_new(0x0009100D, "LO", "caf\xe9")
    ds.add_new(0x0009100E, "AS", "045Y")
    ds.add_new(0x0009100F, "DA", "20200101\\19991231 ")
    ds.add_new(0x00091010, "UI", "1.2.3\x00")
    item = pydicom.Dataset()
    item.CodeValue = "T-A0100"
    item.CodeMeaning = "Brain "
    item.add_new(0x00091011, "DS", "3")
    ds.add_new(0x00082218, "SQ", [item, pydicom.Dataset()])
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    cut_us = b"\x18\x00\x10\x13US\x04\x00\xcd\xab\xcd\xab", b"\x18\x00\x10\x13US\x03\x00\x01\x00\x02"
    return buffer.getvalue().replace(b"7.25", b"1.5e").replace(*cut_us)  # values pydicom will not write


def test_the_accelerator_gives_pydicom_json_on_edge_values(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tricky_values_file()
    with_c, without_c = _bytes_json_with_and_without_accelerator(data, monkeypatch)
    assert with_c is not None and with_c == without_c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference_json(read_header_dataset(io.BytesIO(data)))
    assert json.loads(json.dumps(with_c)) == json.loads(json.dumps(expected))
    assert with_c["00100010"]["Value"][0] == {"Alphabetic": "Doe^Jane", "Ideographic": "Ideo", "Phonetic": "Phon"}
    assert "00091002" not in with_c and len(with_c["00091001"]["InlineBinary"]) == 1024


def test_the_accelerator_changes_nothing_on_damaged_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random byte flips and cuts of real files: the same JSON, or a decline, either way."""
    rng = random.Random(20261207)
    bases = [p for p in FILES if p.suffix == ".dcm" and p.stat().st_size < 600_000 and bytes_json(p.read_bytes())]
    bases.append(None)  # the edge-value file
    declined = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(1500):
            base = rng.choice(bases)
            data = damaged(rng, base.read_bytes() if base is not None else _tricky_values_file())
            with_c, without_c = _bytes_json_with_and_without_accelerator(data, monkeypatch)
            assert with_c == without_c
            declined += with_c is None
    assert declined < 1500


def test_header_json_text_parses_to_the_converted_header() -> None:
    """orjson writes the text (json.dumps where it refuses): parsed back, it is the header's JSON
    object, for every bundled file the bytes path reads, and for values orjson cannot write."""
    checked = 0
    for path in FILES:
        as_dict = bytes_json(path.read_bytes())
        if as_dict is None:
            continue
        assert json.loads(json_text(as_dict)) == json.loads(json.dumps(as_dict)), path.name
        checked += 1
    assert checked >= 80
    big = {"00200013": {"vr": "IS", "Value": [10**30]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Ünïcode"}]}}
    assert json.loads(json_text(big)) == big
    assert json.loads(json_text({"00189327": {"vr": "FD", "Value": [float("nan")]}})) == {"00189327": {"vr": "FD", "Value": [None]}}
