"""The representative header JSON against pydicom's own DICOM JSON, on every bundled test file.

Reference: pydicom's `DataElement.to_json_dict` per top-level element in its default reading
mode, elements it cannot convert left out, binary values over 768 bytes (a 1024-character
base64 threshold) left out at any depth. `dataset_json` converts common elements from their
bytes and must give exactly the same JSON.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest

from bad_dicom import TEST_FILES
from extractor.harvest.header_json import BULK_INLINE_BYTES, bytes_json, dataset_json, header_json
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


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(TEST_FILES)) for p in FILES])
def test_header_json_from_bytes_equals_pydicom_or_declines(path: Path) -> None:
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
