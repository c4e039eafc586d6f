"""A series' representative header as DICOM JSON (PS3.18 Annex F), without bulk data.

The result equals pydicom's `Dataset.to_json_dict` in its default (lenient) reading mode, with
binary values longer than BULK_INLINE_BYTES left out and elements pydicom cannot convert
dropped; tests/test_header_json.py checks this on every bundled pydicom test file. It costs a
fraction of to_json_dict because the common elements (ASCII text, plain numbers, binary) are
turned into JSON straight from their bytes. Anything else (other character sets, private tags
of implicit-VR files, UN and ambiguous VRs, unusual numbers) goes through pydicom, element by
element.
"""

from __future__ import annotations

import base64
import json
import re
import warnings
from struct import unpack_from
from typing import Any, BinaryIO

from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from extractor.harvest.reader import read_header_dataset

BULK_INLINE_BYTES = 768  # pydicom's rule for a 1024-character base64 threshold: (1024 // 4) * 3
_BULK_MARKER = "bulk-data-omitted"
_LEFT_OUT: dict[str, Any] = {"left out": "bulk data"}  # sentinel: the element is not written

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_SPLIT_AND_RSTRIP = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # pydicom's multi_string
_TEXT = frozenset({"SH", "LO", "UC"})  # split, then strip each value's trailing padding
_SINGLE_TEXT = frozenset({"LT", "ST", "UT"})
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def header_json(fp: BinaryIO) -> str | None:
    """The header of an open file as DICOM JSON text; None when it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            as_dict = dataset_json(read_header_dataset(fp))
    except Exception:  # noqa: BLE001 - a header that will not serialise keeps its row, without JSON
        return None
    return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False)


def dataset_json(ds: Dataset) -> dict[str, Any]:
    """The DICOM JSON object of a dataset (sequence items included), bulk data left out."""
    out: dict[str, Any] = {}
    for tag in ds.keys():
        element = ds.get_item(tag)
        value = _fast_element(element) if isinstance(element, RawDataElement) else None
        if value is None:
            value = _pydicom_element(ds, tag)
        if value is not None and value is not _LEFT_OUT:
            out[f"{tag:08X}"] = value
    return out


def _fast_element(raw: RawDataElement) -> dict[str, Any] | None:
    """The element's JSON from its bytes, or None when pydicom should convert it."""
    vr = raw.VR or _dictionary_vr(raw.tag)
    data = raw.value
    if vr is None or data is None or vr == "SQ":
        return None
    if not data:
        return {"vr": vr}
    if vr in _BINARY_VRS:
        if len(data) > BULK_INLINE_BYTES:
            return _LEFT_OUT
        return {"vr": vr, "InlineBinary": base64.b64encode(data).decode("ascii")}
    number_format = _NUMBER_FORMATS.get(vr)
    if number_format is not None:
        return _binary_numbers(vr, data, number_format, raw.is_little_endian)
    if not data.isascii() or b"\x1b" in data:
        return None  # another character set: pydicom decodes it
    values = _text_values(vr, data.decode("ascii"))
    if values is None or values == [""]:
        return None if values is None else {"vr": vr}
    return {"vr": vr, "Value": values}


def _dictionary_vr(tag: int) -> str | None:
    """The VR of an implicit-VR element when the dictionary settles it (public, one VR)."""
    entry = DicomDictionary.get(tag)
    if entry is None or " or " in entry[0] or tag >> 16 & 1:
        return None
    return entry[0]


def _binary_numbers(vr: str, data: bytes, number_format: str, little_endian: bool) -> dict[str, Any] | None:
    size = {"H": 2, "h": 2, "L": 4, "l": 4, "f": 4, "d": 8, "q": 8, "Q": 8}[number_format]
    if len(data) % size:
        return None
    count = len(data) // size
    values = list(unpack_from(("<" if little_endian else ">") + number_format * count, data))
    return {"vr": vr, "Value": values}


def _text_values(vr: str, text: str) -> list[Any] | None:
    """pydicom's string conversion for this VR, as JSON values; None for the VRs left to pydicom."""
    if vr in _SPLIT_AND_RSTRIP:
        if vr == "UI":
            text = text.rstrip("\0 ")
        return text.rstrip(" \x00").split("\\")
    if vr in _TEXT:
        return [v.rstrip("\0 ") for v in text.split("\\")]
    if vr in _SINGLE_TEXT:
        return [text.rstrip("\0 ")]
    if vr == "AE":
        return [v.strip() for v in text.split("\\")]
    if vr == "UR":
        return [text.rstrip()]
    if vr == "PN":
        text = text.rstrip(" \x00")
        return [_person_name(v) for v in text.split("\\")] if text else [""]
    if vr == "IS":
        return _numbers(text, _INTEGER, int)
    if vr == "DS":
        return _numbers(text, _DECIMAL, float)
    return None


def _numbers(text: str, pattern: re.Pattern[str], number: type) -> list[Any] | None:
    parts = text.rstrip(" \x00").split("\\")
    if parts == [""]:
        return parts
    if not all(pattern.fullmatch(p) for p in parts):
        return None  # empty or unusual numbers: pydicom decides
    return [number(p) for p in parts]


def _person_name(value: str) -> dict[str, str]:
    components = value.split("=")
    names = {"Alphabetic": components[0]}
    if len(components) > 1:
        names["Ideographic"] = components[1]
    if len(components) > 2:
        names["Phonetic"] = components[2]
    return names


def _pydicom_element(ds: Dataset, tag: int) -> dict[str, Any] | None:
    """pydicom's JSON of one element (sequences go through dataset_json item by item)."""
    try:
        element = ds[tag]
        if element.VR == "SQ":
            return {"vr": "SQ", "Value": [dataset_json(item) for item in element.value]}
        value = element.to_json_dict(lambda _element: _BULK_MARKER, BULK_INLINE_BYTES // 3 * 4)
    except Exception:  # noqa: BLE001 - an element pydicom cannot convert is left out, as before
        return None
    return None if value.get("BulkDataURI") == _BULK_MARKER else value
