"""A series' representative header as DICOM JSON (PS3.18 Annex F), without bulk data.

The result equals pydicom's `Dataset.to_json_dict` in its default (lenient) reading mode, with
binary values longer than BULK_INLINE_BYTES left out and elements pydicom cannot convert
dropped; tests/test_header_json.py checks this on every bundled pydicom test file. It costs a
fraction of to_json_dict because the common elements (ASCII text, plain numbers, binary) are
turned into JSON straight from their bytes, by a small C accelerator (`_header_json.c`) where
it is built and by the same rules in Python otherwise. Anything else (other character sets,
private tags of implicit-VR files, UN and ambiguous VRs, unusual numbers) goes through pydicom,
element by element.
"""

from __future__ import annotations

import base64
import json
import re
import warnings

import orjson
from struct import error as struct_error
from struct import calcsize, unpack_from
from typing import Any, BinaryIO

from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from extractor.harvest.reader import (
    DEFLATED_LE,
    EXPLICIT_VR_BE,
    IMPLICIT_VR_LE,
    ITEM,
    ITEM_END,
    LONG_LENGTH_VRS,
    PIXEL_DATA,
    PIXEL_TAG_BYTES,
    SEQUENCE_END,
    SHORT_LENGTH_VRS,
    SPECIFIC_CHARACTER_SET,
    UNDEFINED_LENGTH,
    encodings_for_charset,
    read_header_dataset,
)

try:  # the C accelerator of the loop below (setup.py builds it; without a compiler, Python does it all)
    from extractor.harvest._header_json import plain_elements as _plain_elements
except ImportError:  # pragma: no cover - exercised by the tests that set it to None
    _plain_elements = None

BULK_INLINE_BYTES = 768  # pydicom's rule for a 1024-character base64 threshold: (1024 // 4) * 3
_BULK_MARKER = "bulk-data-omitted"
_LEFT_OUT: dict[str, Any] = {"left out": "bulk data"}  # sentinel: the element is not written

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_SPLIT_AND_RSTRIP = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # pydicom's multi_string
_TEXT = frozenset({"SH", "LO", "UC"})  # split, then strip each value's trailing padding
_SINGLE_TEXT = frozenset({"LT", "ST", "UT"})
_NOT_EXPLICIT_LITTLE = frozenset({"", IMPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_LE})
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, PIXEL_DATA})  # where pydicom's stop_before_pixels stops
HEADER_READ_BYTES = 64 * 1024
MAX_HEADER_BYTES = 1024 * 1024  # a longer header goes through pydicom
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def header_json(fp: BinaryIO) -> str | None:
    """The header of an open file as DICOM JSON text; None when it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            as_dict = bytes_json(_header_bytes(fp))
            if as_dict is None:
                as_dict = dataset_json(read_header_dataset(fp))
    except Exception:  # noqa: BLE001 - a header that will not serialise keeps its row, without JSON
        return None
    return json_text(as_dict)


def json_text(as_dict: dict[str, Any]) -> str:
    """Compact JSON text, by orjson (about 5x json.dumps on headers); json.dumps for what orjson
    refuses (integers past 64 bits, which an IS value can hold, and strings that are not UTF-8).
    orjson writes NaN and infinity as null, which JSON can hold; json.dumps writes NaN."""
    try:
        return orjson.dumps(as_dict).decode()
    except (TypeError, ValueError):
        return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def _header_bytes(fp: BinaryIO) -> bytes:
    """The file up to its pixel data (or all of it when no pixel data tag is found in the first MB)."""
    fp.seek(0)
    data = fp.read(HEADER_READ_BYTES)
    while len(data) % HEADER_READ_BYTES == 0 and PIXEL_TAG_BYTES not in data and len(data) < MAX_HEADER_BYTES:
        more = fp.read(HEADER_READ_BYTES)
        if not more:
            break
        data += more
    return data


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
    if vr is None or raw.value is None or vr == "SQ":
        return None
    return _value_json(vr, raw.value, raw.is_little_endian)


def _value_json(vr: str, data: bytes, little_endian: bool) -> dict[str, Any] | None:
    """The JSON of a non-sequence value from its bytes, or None when pydicom should convert it."""
    if not data:
        return {"vr": vr}
    if vr in _BINARY_VRS:
        if len(data) > BULK_INLINE_BYTES:
            return _LEFT_OUT
        return {"vr": vr, "InlineBinary": base64.b64encode(data).decode("ascii")}
    number_format = _NUMBER_FORMATS.get(vr)
    if number_format is not None:
        return _binary_numbers(vr, data, number_format, little_endian)
    if not data.isascii() or b"\x1b" in data:
        return None  # another character set: pydicom decodes it
    values = _text_values(vr, data.decode("ascii"))
    if values is None or values == [""]:
        return None if values is None else {"vr": vr}
    return {"vr": vr, "Value": values}


class _Unusual(Exception):
    """Something the bytes path leaves to pydicom (the whole header then goes through pydicom)."""


def bytes_json(data: bytes) -> dict[str, Any] | None:
    """The DICOM JSON of a file's header read straight from its bytes: explicit VR little endian
    files with a preamble only (None for anything else, or anything unusual, for pydicom to read).
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    try:
        pos, syntax = _skip_file_meta(data, 132)
        if syntax in _NOT_EXPLICIT_LITTLE:
            return None
        out, _ = _items_json(data, pos, len(data), top_level=True, encodings=None)
    except (_Unusual, struct_error, UnicodeDecodeError):
        return None
    return out


def _skip_file_meta(data: bytes, pos: int) -> tuple[int, str]:
    syntax = ""
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        vr = data[pos + 4 : pos + 6]
        header, length = _element_lengths(data, pos, vr)
        if data[pos + 2 : pos + 4] == b"\x10\x00":
            syntax = data[pos + header : pos + header + length].decode("ascii").strip(" \x00")
        pos += header + length
    return pos, syntax


def _element_lengths(data: bytes, pos: int, vr: bytes) -> tuple[int, int]:
    """(header length, value length) of the explicit VR element at pos."""
    if vr in SHORT_LENGTH_VRS:
        return 8, unpack_from("<H", data, pos + 6)[0]
    if vr in LONG_LENGTH_VRS:
        return 12, unpack_from("<I", data, pos + 8)[0]
    raise _Unusual(repr(vr))


def _items_json(data: bytes, pos: int, end: int, top_level: bool, encodings: list[str] | None) -> tuple[dict[str, Any], int]:
    """The elements from pos to end (or to an item delimiter) as a JSON object; and where they end."""
    out: dict[str, Any] = {}
    while pos < end:
        if _plain_elements is not None:  # converts the plain elements, hands back the next other one
            pos = _plain_elements(data, pos, end, out)
            if pos >= end:
                break
        if pos + 8 > len(data):
            raise _Unusual("cut header")
        tag = unpack_from("<HH", data, pos)
        tag = tag[0] << 16 | tag[1]
        if tag == ITEM_END:
            if top_level:
                raise _Unusual("an item delimiter outside a sequence")
            return out, pos + 8
        if top_level and tag in _PIXEL_TAGS:
            break
        vr_bytes = data[pos + 4 : pos + 6]
        header, length = _element_lengths(data, pos, vr_bytes)
        vr = vr_bytes.decode("ascii")
        pos += header
        if vr == "SQ":
            items, pos = _sequence_json(data, pos, length, encodings)
            out[f"{tag:08X}"] = {"vr": "SQ", "Value": items}
            continue
        if length == UNDEFINED_LENGTH or pos + length > len(data):
            raise _Unusual("undefined or cut value")
        value = data[pos : pos + length]
        pos += length
        if tag == SPECIFIC_CHARACTER_SET:
            if not top_level:
                raise _Unusual("a character set inside a sequence item")
            encodings = encodings_for_charset(value.decode("ascii").rstrip(" \x00"))
        element = _value_json(vr, value, True)
        if element is None:
            element = _converted_json(tag, vr, value, encodings)
        if element is not _LEFT_OUT:
            out[f"{tag:08X}"] = element
    return out, pos


def _sequence_json(data: bytes, pos: int, length: int, encodings: list[str] | None) -> tuple[list[Any], int]:
    items: list[Any] = []
    end = len(data) if length == UNDEFINED_LENGTH else pos + length
    while pos < end:
        tag, item_length = unpack_from("<HH", data, pos), unpack_from("<I", data, pos + 4)[0]
        tag = tag[0] << 16 | tag[1]
        pos += 8
        if tag == SEQUENCE_END:
            return items, pos
        if tag != ITEM:
            raise _Unusual("not an item")
        item_end = len(data) if item_length == UNDEFINED_LENGTH else pos + item_length
        item, pos = _items_json(data, pos, item_end, top_level=False, encodings=encodings)
        items.append(item)
    if length == UNDEFINED_LENGTH:
        raise _Unusual("no sequence delimiter")
    return items, pos




def _converted_json(tag: int, vr: str, value: bytes, encodings: list[str] | None) -> dict[str, Any]:
    """pydicom's JSON of one element (text in another character set, AT, unusual numbers, public UN)."""
    if vr == "UN" and tag >> 16 & 1:
        raise _Unusual("a private UN element: its VR depends on the private dictionary")
    if vr == "UN" and _dictionary_vr(tag) == "SQ":
        raise _Unusual("a UN element that is a sequence")
    raw = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)
    try:
        element = convert_raw_data_element(raw, encoding=encodings or ["iso8859"])
        converted = element.to_json_dict(lambda _element: _BULK_MARKER, BULK_INLINE_BYTES // 3 * 4)
    except Exception:  # noqa: BLE001 - a value pydicom cannot convert is left out, as in dataset_json
        return _LEFT_OUT
    return _LEFT_OUT if converted.get("BulkDataURI") == _BULK_MARKER else converted


def _dictionary_vr(tag: int) -> str | None:
    """The VR of an implicit-VR element when the dictionary settles it (public, one VR)."""
    entry = DicomDictionary.get(tag)
    if entry is None or " or " in entry[0] or tag >> 16 & 1:
        return None
    return entry[0]


def _binary_numbers(vr: str, data: bytes, number_format: str, little_endian: bool) -> dict[str, Any] | None:
    size = calcsize("<" + number_format)  # standard sizes, not the platform's
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
