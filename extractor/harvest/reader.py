"""Read the harvested attributes of one DICOM file, headers only: never the pixel data.

`read_instance(fp, size)` is a pure per-file function (a file-like object in, one row out) so
a process pool today and a Beam pipeline later can call it unchanged.

Two readers give the same row:
- a fast walker for the common case (preamble + file meta + little-endian dataset): it steps
  over elements by their lengths, seeks past large values, and converts only the harvested
  attributes (through pydicom's own value converters when a value is not plain ASCII); its
  inner loop has a C accelerator (`_walk.c`) that steps over regular elements only;
- pydicom's `dcmread` for everything else (no preamble, big endian, deflated, odd meta).
`tests/test_reader_differential.py` checks that they agree (with and without the accelerator).
"""

from __future__ import annotations

import io
import os
import re
import zlib
from datetime import datetime
from struct import Struct, unpack_from
from struct import error as struct_error
from typing import Any, BinaryIO

import pydicom
from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.values import convert_value

from extractor.harvest.attributes import (
    ATTRIBUTES_BY_TAG,
    HARVESTED_ATTRIBUTES,
    LAST_HARVESTED_TAG,
    REQUIRED_UID_COLUMNS,
)

try:  # the C accelerator built by setup.py; without a compiler the pure-Python loop does it all
    from extractor.harvest._walk import walk as _fast_forward
except ImportError:  # pragma: no cover - depends on the install
    _fast_forward = None

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

PIXEL_DATA = 0x7FE00010
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
TRANSFER_SYNTAX_UID = 0x00020010
MEDIA_SOP_CLASS_UID = 0x00020002
UNDEFINED_LENGTH = 0xFFFFFFFF
LONG_LENGTH_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
SHORT_LENGTH_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
CHUNK = 64 * 1024  # bytes read when the walker steps outside the window
FIRST_READ = 16 * 1024  # bytes read first: most headers end before; copying more costs more than a second read
_TAG = Struct("<HH")
_EXPLICIT_HEADER = Struct("<HH2sH")
_IMPLICIT_HEADER = Struct("<HHI")
_U16 = Struct("<H")
_U32 = Struct("<I")
PIXEL_TAG_BYTES = b"\xe0\x7f\x10\x00"
MAX_NESTING = 64
TEXT_VRS_WITH_CHARSET = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
COLUMNS_BY_TAG = {tag: attr.column for tag, attr in ATTRIBUTES_BY_TAG.items()}
US_TAGS = frozenset(tag for tag, attr in ATTRIBUTES_BY_TAG.items() if attr.vr == "US")
META_COLUMNS = {TRANSFER_SYNTAX_UID: "transfer_syntax_uid", MEDIA_SOP_CLASS_UID: "media_storage_sop_class_uid"}
SPECIFIC_CHARACTER_SET = 0x00080005


class HarvestError(Exception):
    """A file that cannot be harvested; `error_class` is what the error table records."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class _NeedsGeneralReader(Exception):
    """The fast walker does not handle this encoding; pydicom reads it instead."""


class _Window:
    """A sliding window over the file, refilled by another read when the walker steps outside."""

    def __init__(self, fp: BinaryIO, size: int) -> None:
        self.fp = fp
        self.fd = fp.fileno() if isinstance(fp, io.FileIO) else None  # a plain file: pread, no seek
        self.size = size
        self.base = 0
        self.data = self._read(0, FIRST_READ)

    def _read(self, pos: int, n: int) -> bytes:
        if self.fd is not None:
            return os.pread(self.fd, n, pos)
        self.fp.seek(pos)
        return self.fp.read(n)

    def at(self, pos: int, n: int) -> int:
        """Make bytes [pos, pos + n) available; return their offset in `self.data`."""
        off = pos - self.base
        if off >= 0 and off + n <= len(self.data):
            return off
        if pos + n > self.size:
            raise HarvestError(
                "TruncatedHeader", f"an element at byte {pos} needs {n} bytes but the file ends at byte {self.size}"
            )
        self.data = self._read(pos, max(n, CHUNK))
        self.base = pos
        if len(self.data) < n:
            raise HarvestError("TruncatedHeader", f"file shorter than its stated size at byte {pos}")
        return 0

    def read(self, pos: int, n: int) -> bytes:
        off = self.at(pos, n)
        return self.data[off : off + n]


def read_instance(fp: BinaryIO, size: int) -> dict[str, Any]:
    """Return the harvested attributes of one file as a row, or raise HarvestError."""
    if size == 0:
        raise HarvestError("EmptyFile", "file is empty (0 bytes)")
    try:
        try:
            row = _read_fast(fp, size)
        except _NeedsGeneralReader:
            row = _read_general(_buffered(fp), size)
    except HarvestError:
        raise
    except (EOFError, struct_error, zlib.error) as exc:
        raise HarvestError("TruncatedHeader", f"file ends inside the header: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any malformed input becomes an error row, never a crash
        raise HarvestError("MalformedDicom", f"{type(exc).__name__}: {exc}") from exc
    _check_row(row)
    return row


def _buffered(fp: BinaryIO) -> BinaryIO:
    """pydicom reads in many small pieces: an unbuffered file gets a buffer (the fast walker reads large ones)."""
    return io.BufferedReader(fp) if isinstance(fp, io.RawIOBase) else fp


def _check_row(row: dict[str, Any]) -> None:
    if row.get("sop_class_uid") == DICOMDIR_SOP_CLASS or row.get("media_storage_sop_class_uid") == DICOMDIR_SOP_CLASS:
        raise HarvestError("DICOMDIR", "a DICOMDIR media directory, not an image instance (skipped)")
    row.pop("media_storage_sop_class_uid", None)
    missing = [c for c in REQUIRED_UID_COLUMNS if not row.get(c)]
    if missing:
        raise HarvestError("MissingUID", f"required attribute(s) missing or empty: {', '.join(missing)}")
    row["acquisition_datetime"] = acquisition_datetime(row)


# --- fast walker -------------------------------------------------------------------------


def _read_fast(fp: BinaryIO, size: int) -> dict[str, Any]:
    win = _Window(fp, size)
    if len(win.data) < 132 or win.data[128:132] != b"DICM":
        raise _NeedsGeneralReader
    meta, pos = _read_meta(win, 132)
    transfer_syntax = meta.get(TRANSFER_SYNTAX_UID)
    if not transfer_syntax or transfer_syntax in (EXPLICIT_VR_BE, DEFLATED_LE):
        raise _NeedsGeneralReader
    explicit = transfer_syntax != IMPLICIT_VR_LE
    raw_values: dict[int, tuple[str, bytes]] = {}
    row: dict[str, Any] = {}
    pixel_offset = _walk_dataset(win, pos, explicit, raw_values, row)
    _convert_raw_values(raw_values, explicit, row)
    row["transfer_syntax_uid"] = transfer_syntax
    row["media_storage_sop_class_uid"] = meta.get(MEDIA_SOP_CLASS_UID)
    row["pixel_data_offset"] = pixel_offset
    return row


def _read_meta(win: _Window, pos: int) -> tuple[dict[int, str], int]:
    """Read the file meta group (always explicit VR little endian); return its UIDs and the dataset start."""
    meta: dict[int, str] = {}
    if _fast_forward is not None:
        raw: dict[int, tuple[str, bytes]] = {}
        pos, _ = _fast_forward(win.data, win.base, pos, win.size, True, META_COLUMNS, None, 0x00020000, 0x0002FFFF, {}, raw)
        meta = {tag: value.decode("ascii", "replace").strip(" \x00") for tag, (_vr, value) in raw.items()}
    while pos + 8 <= win.size:
        off = win.at(pos, 8)
        group, elem = unpack_from("<HH", win.data, off)
        if group != 0x0002:
            break
        vr = win.data[off + 4 : off + 6]
        if not (vr.isalpha() and vr.isupper()):
            raise _NeedsGeneralReader  # meta written in implicit VR: leave it to pydicom
        if vr in LONG_LENGTH_VRS:
            off = win.at(pos, 12)
            length = unpack_from("<I", win.data, off + 8)[0]
            header = 12
        else:
            length = unpack_from("<H", win.data, off + 6)[0]
            header = 8
        if length == UNDEFINED_LENGTH:
            raise _NeedsGeneralReader
        tag = group << 16 | elem
        if tag in (TRANSFER_SYNTAX_UID, MEDIA_SOP_CLASS_UID):
            meta[tag] = win.read(pos + header, length).decode("ascii", "replace").strip(" \x00")
        pos += header + length
    if pos > win.size or 0 < win.size - pos < 8:
        raise HarvestError("TruncatedHeader", f"the file ends inside its file meta information (byte {win.size})")
    return meta, pos


def _walk_dataset(
    win: _Window, pos: int, explicit: bool, out: dict[int, tuple[str, bytes]], row: dict[str, Any]
) -> int | None:
    """Walk the top-level dataset collecting harvested values; return the pixel data offset.

    Values go into `out` as (VR, bytes) for `_convert_raw_values`. The loop is written flat,
    with the window in local variables, because it runs once per element of every file
    harvested. The C accelerator, when built, steps over the regular elements (putting the
    values it can convert straight into `row`) and hands back each element it leaves to this loop.
    """
    size = win.size
    wanted = ATTRIBUTES_BY_TAG
    fast_forward = _fast_forward
    data, base = win.data, win.base
    data_end = base + len(data)
    while pos < size:
        if fast_forward is not None:
            pos, past_last = fast_forward(
                data, base, pos, size, explicit, COLUMNS_BY_TAG, US_TAGS, 0, LAST_HARVESTED_TAG, row, out
            )
            if past_last:
                return _locate_pixel_data(win, pos, explicit)
            if pos >= size:
                break
        if pos + 12 > data_end:
            if pos + 8 > size:
                raise HarvestError("TruncatedHeader", f"{size - pos} stray bytes at the end of the header (byte {pos})")
            win.at(pos, 12 if pos + 12 <= size else 8)
            data, base = win.data, win.base
            data_end = base + len(data)
        off = pos - base
        if explicit:
            group, elem, vr, length = _EXPLICIT_HEADER.unpack_from(data, off)
            if vr in SHORT_LENGTH_VRS:
                value_pos = pos + 8
            elif vr in LONG_LENGTH_VRS:
                if pos + 12 > size:
                    raise HarvestError("TruncatedHeader", f"element header at byte {pos} is cut by the end of the file")
                length = _U32.unpack_from(data, off + 8)[0]
                value_pos = pos + 12
            elif group == 0xFFFE:
                length = _U32.unpack_from(data, off + 4)[0]
                value_pos = pos + 8
            else:
                raise _NeedsGeneralReader  # e.g. implicit VR data under an explicit transfer syntax: pydicom copes
        else:
            group, elem, length = _IMPLICIT_HEADER.unpack_from(data, off)
            vr = b""
            value_pos = pos + 8
            if value_pos + length > size and data[off + 4 : off + 6] in SHORT_LENGTH_VRS | LONG_LENGTH_VRS:
                raise _NeedsGeneralReader  # explicit VR data under an implicit transfer syntax: pydicom copes
        tag = group << 16 | elem
        if tag > LAST_HARVESTED_TAG:
            return _locate_pixel_data(win, pos, explicit)
        if length == UNDEFINED_LENGTH:
            pos = _skip_undefined_length(win, value_pos, explicit and vr != b"UN", 1)
            data, base = win.data, win.base
            data_end = base + len(data)
            continue
        if value_pos + length > size:
            raise HarvestError(
                "TruncatedHeader",
                f"element ({group:04X},{elem:04X}) at byte {pos} runs past the end of the file "
                f"({value_pos + length} > {size} bytes)",
            )
        if tag in wanted:
            out[tag] = (vr.decode(), win.read(value_pos, length))
            data, base = win.data, win.base
            data_end = base + len(data)
        pos = value_pos + length
    return None


def _locate_pixel_data(win: _Window, pos: int, explicit: bool) -> int | None:
    """Find (7FE0,0010) after the harvested attributes and check it lies inside the file.

    Pixel data nearly always ends the file, so a tag match whose value (or whose encapsulated
    fragments) ends exactly at the end of the file is accepted without walking the private groups
    in between; anything else is walked element by element. An icon image (0088,0200) holds pixel
    data of its own, often encapsulated, inside a sequence before the file's.
    """
    header_end = min(win.size, pos + CHUNK)
    found = -1
    if win.base <= pos < win.base + len(win.data) < header_end:  # first look in what is already read
        found = win.data.find(PIXEL_TAG_BYTES, pos - win.base)
    if found < 0:
        off = win.at(pos, header_end - pos)
        found = win.data.find(PIXEL_TAG_BYTES, off, off + (header_end - pos))
    if found >= 0:
        candidate = win.base + found
        if _pixel_data_fits_exactly(win, candidate, explicit):
            return candidate
    return _walk_to_pixel_data(win, pos, explicit)


def _pixel_data_fits_exactly(win: _Window, pos: int, explicit: bool) -> bool:
    if pos + 12 > win.size:
        return False
    tag, vr, length, header = _element_header(win, pos, explicit)
    if tag != PIXEL_DATA or (explicit and vr not in ("OB", "OW")):
        return False
    if length == UNDEFINED_LENGTH:
        try:
            end = _skip_undefined_length(win, pos + header, explicit, 1)
        except HarvestError:
            return False  # let the element walk decide and report it
    else:
        end = pos + header + length
    return end == win.size or _is_trailing_padding(win, end, explicit)


def _is_trailing_padding(win: _Window, pos: int, explicit: bool) -> bool:
    """True when a Data Set Trailing Padding element (FFFC,FFFC) runs from `pos` to the end."""
    if pos + 12 > win.size:
        return False
    try:
        tag, _vr, length, header = _element_header(win, pos, explicit)
    except _NeedsGeneralReader:
        return False
    return tag == 0xFFFCFFFC and pos + header + length == win.size


def _walk_to_pixel_data(win: _Window, pos: int, explicit: bool) -> int | None:
    size = win.size
    while pos < size:
        if pos + 8 > size:
            raise HarvestError("TruncatedHeader", f"{size - pos} stray bytes at the end of the header (byte {pos})")
        tag, vr, length, header = _element_header(win, pos, explicit)
        value_pos = pos + header
        if tag == PIXEL_DATA:
            _check_pixel_data(win, value_pos, length, explicit)
            return pos
        if length == UNDEFINED_LENGTH:
            pos = _skip_undefined_length(win, value_pos, explicit and vr != "UN", 1)
            continue
        if value_pos + length > size:
            raise HarvestError(
                "TruncatedHeader",
                f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {pos} runs past the end of the file "
                f"({value_pos + length} > {size} bytes)",
            )
        pos = value_pos + length
    return None


def _element_header(win: _Window, pos: int, explicit: bool) -> tuple[int, str, int, int]:
    """Return (tag, VR or '', value length, header length) of the element at `pos`."""
    off = win.at(pos, 12 if pos + 12 <= win.size else 8)
    data = win.data
    group, elem = _TAG.unpack_from(data, off)
    tag = group << 16 | elem
    if group == 0xFFFE or not explicit:  # item tags carry no VR even in explicit VR
        return tag, "", unpack_from("<I", data, off + 4)[0], 8
    vr = data[off + 4 : off + 6]
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _NeedsGeneralReader
    if vr in LONG_LENGTH_VRS:
        off = win.at(pos, 12)
        return tag, vr.decode(), unpack_from("<I", win.data, off + 8)[0], 12
    return tag, vr.decode(), unpack_from("<H", data, off + 6)[0], 8


def _skip_undefined_length(win: _Window, pos: int, explicit: bool, depth: int) -> int:
    """Step over the items of an undefined-length sequence (or encapsulated fragments)."""
    if depth > MAX_NESTING:
        raise HarvestError("MalformedDicom", f"sequences nested deeper than {MAX_NESTING} levels")
    while True:
        off = win.at(pos, 8)
        group, elem, length = unpack_from("<HHI", win.data, off)
        tag = group << 16 | elem
        pos += 8
        if tag == SEQUENCE_END:
            return pos
        if tag != ITEM:
            raise HarvestError("MalformedDicom", f"expected an item tag in a sequence at byte {pos - 8}")
        if length != UNDEFINED_LENGTH:
            pos += length
            continue
        pos = _skip_undefined_item(win, pos, explicit, depth)


def _skip_undefined_item(win: _Window, pos: int, explicit: bool, depth: int) -> int:
    while True:
        tag, vr, length, header = _element_header(win, pos, explicit)
        pos += header
        if tag == ITEM_END:
            return pos
        if length == UNDEFINED_LENGTH:
            pos = _skip_undefined_length(win, pos, explicit and vr != "UN", depth + 1)
        else:
            pos += length
        if pos > win.size:
            raise HarvestError("TruncatedHeader", f"a sequence item runs past the end of the file (byte {pos})")


def _check_pixel_data(win: _Window, pos: int, length: int, explicit: bool) -> None:
    """Pixel data is never read, only measured: its declared extent must lie inside the file."""
    if length != UNDEFINED_LENGTH:
        if pos + length > win.size:
            raise HarvestError(
                "TruncatedPixelData", f"pixel data declares {length} bytes but only {win.size - pos} remain"
            )
        return
    try:
        _skip_undefined_length(win, pos, explicit, 1)
    except HarvestError as exc:
        raise HarvestError("TruncatedPixelData", f"encapsulated pixel data is incomplete: {exc.message}") from exc


# Values the walker leaves as bytes (all of them without the accelerator; with it, non-ASCII
# text) mostly repeat across the instances of a series: each distinct (tag, VR, bytes,
# character set) is converted once per process.
_converted: dict[tuple[int, str, bytes, str], Any] = {}
MAX_CONVERTED = 200_000


def _convert_raw_values(raw_values: dict[int, tuple[str, bytes]], explicit: bool, row: dict[str, Any]) -> None:
    """Convert the values the walker left as bytes into `row`; the character set first, as the others' decoding needs it."""
    if len(_converted) > MAX_CONVERTED:
        _converted.clear()
    charset = raw_values.pop(SPECIFIC_CHARACTER_SET, None)
    if charset is not None:
        row["specific_character_set"] = _convert_cached(SPECIFIC_CHARACTER_SET, *charset, "", explicit)
    charset_text = row.get("specific_character_set") or ""
    for tag, (vr, raw) in raw_values.items():
        row[COLUMNS_BY_TAG[tag]] = _convert_cached(tag, vr, raw, charset_text, explicit)


def _convert_cached(tag: int, vr: str, raw: bytes, charset_text: str, explicit: bool) -> Any:
    cache_key = (tag, vr, raw, charset_text)
    value = _converted.get(cache_key, _MISSING)
    if value is _MISSING:
        value = _converted[cache_key] = _convert_value(tag, vr, raw, charset_text, explicit)
    return value


def _convert_value(tag: int, vr: str, raw: bytes, charset_text: str, explicit: bool) -> Any:
    attr = ATTRIBUTES_BY_TAG[tag]
    vr = attr.vr if vr in ("", "UN") else vr
    if vr == "US" or attr.vr == "US":
        return unpack_from("<H", raw)[0] if len(raw) >= 2 else None
    if raw.isascii() and b"\x1b" not in raw:
        return normalise_text(raw.decode("ascii").split("\\"))
    element = RawDataElement(tag, vr, len(raw), raw, 0, not explicit, True)
    encodings = encodings_for_charset(charset_text)
    return python_value_to_text(convert_value(vr, element, encodings))


_MISSING = object()


def encodings_for_charset(charset_text: str) -> list[str]:
    """Python codecs for a SpecificCharacterSet value; an unknown one falls back to the default."""
    terms = [t.strip() for t in charset_text.split("\\")] if charset_text else []
    try:
        return convert_encodings(terms or ["ISO_IR 6"])
    except Exception:  # noqa: BLE001 - an unknown charset falls back to the default, as pydicom does
        return convert_encodings(["ISO_IR 6"])


# --- general reader (pydicom) ------------------------------------------------------------


def _read_general(fp: BinaryIO, size: int | None = None) -> dict[str, Any]:
    ds = read_header_dataset(fp)
    if size is not None:
        _check_complete(ds, fp, size)
    row = row_from_dataset(ds)
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if transfer_syntax is None:
        transfer_syntax = IMPLICIT_VR_LE if ds.is_implicit_VR else EXPLICIT_VR_BE if not ds.is_little_endian else None
    row["transfer_syntax_uid"] = str(transfer_syntax) if transfer_syntax else None
    row["media_storage_sop_class_uid"] = str(getattr(meta, "MediaStorageSOPClassUID", "") or "") or None
    row["pixel_data_offset"] = None
    return row


def _check_complete(ds: pydicom.Dataset, fp: BinaryIO, size: int) -> None:
    """pydicom stops silently at a short value or a cut element header: report those as truncation."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and getattr(meta, "TransferSyntaxUID", None) == DEFLATED_LE:
        return  # positions refer to the inflated stream; an incomplete stream raises zlib.error
    end = 0
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.length == UNDEFINED_LENGTH:
            continue
        if raw.value is not None and len(raw.value) < raw.length:
            raise HarvestError("TruncatedHeader", f"element {raw.tag} declares {raw.length} bytes but the file ends at byte {size}")
        end = max(end, raw.value_tell + raw.length)
    rest = size - fp.tell()
    if 0 < rest < 8 and fp.tell() >= end:
        raise HarvestError("TruncatedHeader", f"{rest} stray bytes at the end of the header (byte {fp.tell()})")


def read_header_dataset(fp: BinaryIO) -> pydicom.Dataset:
    """pydicom read of the header (no pixel data), accepting files without a preamble."""
    fp.seek(0)
    head = fp.read(132)
    fp.seek(0)
    if len(head) < 8:
        raise HarvestError("NotDicom", f"only {len(head)} bytes: too short to be DICOM")
    if not looks_like_dicom(head):
        raise HarvestError("NotDicom", "no DICM preamble and the first bytes are not a DICOM element")
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except InvalidDicomError as exc:
        raise HarvestError("NotDicom", str(exc)) from exc
    except EOFError as exc:
        raise HarvestError("TruncatedHeader", f"file ends inside the header: {exc}") from exc


def looks_like_dicom(head: bytes) -> bool:
    """The first 132 bytes hold the DICM preamble marker, or start like a bare dataset."""
    return len(head) >= 8 and (head[128:132] == b"DICM" or _looks_like_bare_dataset(head))


def _looks_like_bare_dataset(head: bytes) -> bool:
    """A dataset written without preamble starts with a group 0002 or 0008 element (either byte order)."""
    group_le = unpack_from("<H", head)[0]
    group_be = unpack_from(">H", head)[0]
    return group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)


def row_from_dataset(ds: pydicom.Dataset) -> dict[str, Any]:
    """The harvested attributes of a pydicom dataset (the reference for the fast walker)."""
    row: dict[str, Any] = {}
    for attr in HARVESTED_ATTRIBUTES:
        element = ds.get(attr.tag)
        if element is None:
            continue
        value = element.value
        if attr.vr == "US":
            row[attr.column] = int(value[0] if isinstance(value, MultiValue) else value) if value not in (None, "") else None
        else:
            row[attr.column] = python_value_to_text(value)
    return row


def python_value_to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return normalise_text(value.decode("latin-1").split("\\"))
    if isinstance(value, (list, MultiValue)):
        return normalise_text([str(v) for v in value])
    return normalise_text([str(value)])


def normalise_text(parts: list[str]) -> str | None:
    """Join multi-values with a backslash, trimmed of padding; empty becomes NULL."""
    text = "\\".join(p.strip(" \x00") for p in parts)
    return text if text.strip("\\") else None


# --- derived values -----------------------------------------------------------------------


def acquisition_datetime(row: dict[str, Any]) -> datetime | None:
    """AcquisitionDateTime, else AcquisitionDate + AcquisitionTime, else ContentDate + ContentTime."""
    candidates = (
        row.get("acquisition_datetime_raw"),
        _join(row.get("acquisition_date"), row.get("acquisition_time")),
        _join(row.get("content_date"), row.get("content_time")),
    )
    for text in candidates:
        parsed = parse_dicom_datetime(text)
        if parsed is not None:
            return parsed
    return None


def _join(date: str | None, time: str | None) -> str | None:
    return date + (time or "") if date else None


_PLAIN_DATETIME = re.compile(r"(\d{4})(\d\d)(\d\d)(?:(\d\d)(?:(\d\d)(\d\d)?)?)?(?:\.(\d{1,6}))?", re.ASCII)


def parse_dicom_datetime(text: str | None) -> datetime | None:
    """Parse a DICOM DT (or DA + TM) prefix 'YYYYMMDD[HH[MM[SS[.ffffff]]]]'; invalid gives None."""
    if not text:
        return None
    plain = _PLAIN_DATETIME.fullmatch(text)  # the usual form: no clean-up needed
    if plain is None:
        return _parse_untidy_datetime(text)
    year, month, day, hour, minute, second, fraction = plain.groups()
    try:
        micro = int((fraction + "00000")[:6]) if fraction else 0
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)
    except ValueError:
        return None


def _parse_untidy_datetime(text: str) -> datetime | None:
    """Any DT text: the first of several values, colons and a UTC offset dropped, padding trimmed."""
    text = text.split("\\")[0].strip().replace(":", "")
    for sign in "+-":  # drop a UTC offset suffix
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    main, _, fraction = text.partition(".")
    if len(main) < 8 or not main.isdigit() or len(main) % 2:
        return None
    try:
        parts = [int(main[0:4]), int(main[4:6]), int(main[6:8])] + [int(main[i : i + 2]) for i in range(8, min(len(main), 14), 2)]
        micro = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
        return datetime(*parts, microsecond=micro) if len(parts) >= 3 else None
    except ValueError:
        return None


def read_instance_bytes(data: bytes) -> dict[str, Any]:
    """Convenience for in-memory input (tests, object storage): same as `read_instance`."""
    return read_instance(io.BytesIO(data), len(data))
