"""The scrub's fast header path: read the header and write the scrubbed file without pydicom's
element-by-element reader and writer, for the common case.

``read_header_fast`` builds the very Dataset that ``pydicom.dcmread(force=True,
stop_before_pixels=True)`` builds (the same RawDataElements, file meta, preamble and original
encoding), about five times faster; it returns None for any file it does not handle (big
endian, deflated, no DICM prefix, a VR it does not know, elements out of order, a header that
switches between implicit and explicit VR, an undefined length other than a sequence's, a
truncated element), and the caller reads that file with pydicom. ``encode_file_fast`` writes
the bytes ``instance.encode_file`` writes: raw elements as their bytes, anything pydicom has
decoded through pydicom's own element writer.

Both are checked byte for byte against the pydicom path by tests/test_scrub_header.py.
"""

from __future__ import annotations

import io
from struct import Struct

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.multival import MultiValue
from pydicom.filereader import read_sequence
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.values import convert_string
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

_EXPLICIT = Struct("<HH2sH").unpack_from
_IMPLICIT = Struct("<HHL").unpack_from
_UL = Struct("<L").unpack_from
_GROUP_ELEMENT = Struct("<HH").unpack_from
_TAG_US = Struct("<HH2sH").pack
_TAG_UL = Struct("<HH2s2xL").pack
_TAG_IMPLICIT = Struct("<HHL").pack

_VR_NAMES = {vr.value.encode("ascii"): vr.value for vr in VR if len(vr.value) == 2}
_LONG_VRS = frozenset(vr for vr in _VR_NAMES if _VR_NAMES[vr] in EXPLICIT_VR_LENGTH_32)
_LONG_VR_NAMES = frozenset(EXPLICIT_VR_LENGTH_32)
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # where stop_before_pixels stops
_CHARSET = 0x00080005
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_NOT_HANDLED = frozenset({_DEFLATED, _EXPLICIT_BIG})


_DICTIONARY_VR = {tag: entry[0] for tag, entry in DicomDictionary.items()}
_BASE_TAGS: dict[int, BaseTag] = {}  # BaseTag objects are immutable; a header's tags recur from file to file


class _Decline(Exception):
    """The fast reader does not handle this file: read it with pydicom."""


# --- reading ----------------------------------------------------------------------------------


def read_header_fast(data: bytes, skip_private: bool = False) -> tuple[FileDataset, int] | None:
    """What ``instance.read_header`` returns (the dataset up to its pixel data and the offset of
    the pixel data element), or None when this reader does not handle the file.

    ``skip_private`` leaves the top-level private elements out, for a caller that would only
    remove them (its profile keeps no private element and nothing it runs reads one)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    try:
        meta_elements, position = _read_elements(data, 132, implicit=False, meta=True)
    except _Decline:
        return None
    file_meta = FileMetaDataset(meta_elements)  # (pydicom's reader also decodes its first element; nothing reads it)
    file_meta.set_original_encoding(False, True, default_encoding)
    syntax = plain_text(file_meta, 0x00020010) or file_meta.get("TransferSyntaxUID")
    if not syntax or syntax in _NOT_HANDLED or position + 8 > len(data) or data[position:position + 2] == b"\x00\x00":
        return None  # guessed syntax, big endian, deflated, no dataset, or a command set (group 0000) first
    implicit = syntax == _IMPLICIT_LITTLE  # any other syntax is explicit VR little endian, as in pydicom
    try:
        _check_first_vr(data, position, implicit)
        elements, stop = _read_elements(data, position, implicit=implicit, meta=False, skip_private=skip_private)
    except _Decline:
        return None
    # What read_partial builds; its inner Dataset and the encoding computed for it are not kept.
    ds = FileDataset(io.BytesIO(data), elements, data[:128], file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, ds._character_set)  # decodes the character set, as pydicom does
    return ds, stop


def _check_first_vr(data: bytes, position: int, implicit: bool) -> None:
    """pydicom switches encodings when the first element's VR says otherwise: not handled here."""
    vr = data[position + 4:position + 6]
    if len(vr) < 2:
        return
    looks_implicit = not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)
    group, element = _GROUP_ELEMENT(data, position)
    if looks_implicit != implicit and (group << 16 | element) not in _PIXEL_TAGS:
        raise _Decline


def _read_elements(data: bytes, position: int, *, implicit: bool, meta: bool,
                   skip_private: bool = False) -> tuple[dict, int]:
    """Elements from position on, as pydicom's data_element_generator yields them, up to the
    pixel data (or the end of group 0002 when meta); and where reading stopped."""
    elements: dict[BaseTag, RawDataElement | DataElement] = {}
    end = len(data)
    previous = -1
    encoding: str | list[str] = default_encoding
    unpack, unpack_length, vr_names, long_vrs = (_IMPLICIT if implicit else _EXPLICIT), _UL, _VR_NAMES, _LONG_VRS
    new, raw_element, base_tag, tags = tuple.__new__, RawDataElement, BaseTag, _BASE_TAGS
    if len(tags) > 100_000:
        tags.clear()
    vr: str | None = None
    header = 8
    while position + 8 <= end:
        if implicit:
            group, element, length = unpack(data, position)
        else:
            group, element, raw_vr, length = unpack(data, position)
            if meta and group != 2:
                return elements, position
            vr = vr_names.get(raw_vr)
            if vr is None:
                raise _Decline  # unknown VR, or implicit VR inside an explicit dataset
            if raw_vr in long_vrs:
                if data[position + 6:position + 8] != b"\x00\x00":
                    raise _Decline  # reserved bytes pydicom would not write back
                if position + 12 > end:
                    raise _Decline  # the file ends inside the element's length: pydicom decides
                length = unpack_length(data, position + 8)[0]
                header = 12
            else:
                header = 8
        tag = group << 16 | element
        if tag <= previous or tag >= 0x7FE00008:
            if tag in _PIXEL_TAGS:
                return elements, position
            if tag <= previous or tag == _ITEM_DELIMITER:
                raise _Decline  # out of order or repeated: pydicom keeps the last, writes in order
        previous = tag
        start = position + header
        if length == _UNDEFINED:
            if meta:
                raise _Decline
            sequence, position = _undefined_length_sequence(data, tag, vr, start, implicit, encoding)
            if not (skip_private and group & 1):
                elements[sequence.tag] = sequence
            continue
        position = start + length
        if position > end:
            raise _Decline  # truncated: pydicom warns and keeps what it read
        if skip_private and group & 1:
            continue
        key = tags.get(tag)
        if key is None:
            key = tags[tag] = base_tag(tag)
        if length:
            elements[key] = new(raw_element, (key, vr, length, data[start:position], start, implicit, True, True, False))
        else:
            elements[key] = new(raw_element, (key, vr, 0, empty_value_for_VR(vr, raw=True), start, implicit, True, True, False))
        if tag == _CHARSET:
            encoding = convert_encodings(convert_string(elements[key].value or b"", True))
    if position != end:
        raise _Decline  # a few stray bytes at the end
    return elements, end


def _undefined_length_sequence(data: bytes, tag: int, vr: str | None, start: int, implicit: bool,
                               encoding: str | list[str]) -> tuple[DataElement, int]:
    """An undefined-length sequence, parsed by pydicom's read_sequence as its reader does."""
    if vr == "UN":
        vr = "SQ"  # pydicom's infer_sq_for_un_vr
    elif vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            group, element = _GROUP_ELEMENT(data, start)
            vr = "SQ" if group << 16 | element == _ITEM else None
    if vr != "SQ":
        raise _Decline  # undefined-length values other than sequences (rare before the pixel data)
    stream = io.BytesIO(data)
    stream.seek(start)
    sequence = read_sequence(stream, implicit, True, _UNDEFINED, encoding)
    return DataElement(BaseTag(tag), "SQ", sequence, start, is_undefined_length=True), stream.tell()


# VRs whose plain values pydicom decodes to the same text, whatever the character set, and writes
# back as the same bytes: the characters allowed, and the byte that pads a value to even length.
_PLAIN = {
    "UI": (frozenset(b"0123456789."), 0x00),  # one UID (no backslash)
    "CS": (frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ \\"), 0x20),
}


def plain_text(ds: Dataset, tag: int) -> str | None:
    """The text of a raw UI or CS element read straight from its bytes, values joined by
    backslashes, where pydicom would decode it to the same values and write it back as the same
    bytes: the standard's characters only, no value with surrounding spaces, padded with one byte
    only to an even length. None otherwise (absent, decoded already, another VR, anything unusual):
    ask pydicom. So a filter or a name reads such a value without decoding the element."""
    elem = ds._dict.get(tag)
    if elem is None or elem.__class__ is not RawDataElement or not elem.value:
        return None
    vr = elem.VR
    if vr is None:  # implicit VR: pydicom's VR, unless the dataset was read as explicit
        vr = _DICTIONARY_VR.get(tag) if ds.original_encoding[0] else None
    return plain_value(elem.value, vr)


def plain_value(value: bytes, vr: str | None) -> str | None:
    """plain_text of a UI or CS element's value bytes (not empty)."""
    plain = _PLAIN.get(vr)
    if plain is None:
        return None
    characters, pad = plain
    body = value[:-1] if value[-1] == pad else value
    if len(body) % 2 != len(value) - len(body) or not body or not characters.issuperset(body):
        return None
    text = body.decode("ascii")
    if pad == 0x20 and any(v != v.strip(" ") for v in text.split("\\")):
        return None  # pydicom strips spaces around a CS value
    return text


# pydicom's convert_text for SH and LO: decoded with the character set, split at backslashes, each
# value right-stripped of spaces and NULs. For one value of ASCII bytes under a character set that
# keeps ASCII as it is, that is the bytes' ASCII text, right-stripped.
_STRING_VRS = frozenset({"SH", "LO"})
_STRING_BYTES = frozenset(range(0x20, 0x7F)) - {0x5C} | {0x00}


def plain_string(ds: Dataset, tag: int, transparent: bool) -> str | None:
    """The value pydicom decodes a raw SH or LO element to, read from its bytes (``transparent``:
    the dataset's character set maps every byte below 0x80 to ASCII); None where it would take
    pydicom (absent, decoded already, another VR, empty, several values, other bytes)."""
    if not transparent:
        return None
    elem = ds._dict.get(tag)
    if elem is None or elem.__class__ is not RawDataElement or not elem.value or elem.VR not in _STRING_VRS:
        return None
    value = elem.value
    if not _STRING_BYTES.issuperset(value):
        return None
    return value.decode("ascii").rstrip("\0 ")


# --- writing ----------------------------------------------------------------------------------


def encode_file_fast(ds: Dataset) -> bytes | None:
    """The bytes ``instance.encode_file(ds)`` writes, or None where this writer does not apply
    (a deflated or unknown transfer syntax, a dataset to be re-encoded in another encoding or
    character set, a file meta group that pydicom would refuse)."""
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if not syntax.is_transfer_syntax or syntax.is_deflated or not syntax.is_little_endian:
        return None
    implicit = syntax.is_implicit_VR
    if ds.original_encoding != (implicit, True) or ds.original_character_set != ds._character_set:
        return None  # write_dataset would decode and re-encode every element
    meta = _file_meta_bytes(ds.file_meta)
    if meta is None:
        return None
    parts = [ds.preamble or b"\x00" * 128, b"DICM", meta]
    encodings = ds.get("SpecificCharacterSet", default_encoding)  # as write_dataset: decodes it
    headers = _RAW_HEADERS[implicit]
    if len(headers) > _RAW_HEADERS_MAX:
        headers.clear()
    append = parts.append
    for tag, key, elem in sorted(zip(map(int, ds._dict), ds._dict, ds._dict.values())):  # ints: C comparisons
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written
        header = None
        if elem.__class__ is RawDataElement:
            value = elem.value
            if value is None:
                elem = ds[key]  # pydicom's get_item reads such an element before writing it
            elif elem.length != _UNDEFINED and elem.is_implicit_VR == implicit and elem.is_little_endian:
                header_key = (tag, elem.VR, len(value))  # a header recurs from file to file of a series
                header = headers.get(header_key)
                if header is None:
                    header = _raw_header(elem, implicit)
                    if header is not None:
                        headers[header_key] = header
        if header is None:
            append(_element_bytes(elem, implicit, encodings))
        else:
            append(header)
            append(value)
    return b"".join(parts)


_RAW_HEADERS: dict[bool, dict[tuple, bytes]] = {True: {}, False: {}}  # implicit -> (tag, VR, length) -> header
_RAW_HEADERS_MAX = 20_000


# The file meta regenerate_file_meta writes: its elements, their VRs, and the padding pydicom adds.
_META_VRS = {0x00020001: "OB", 0x00020002: "UI", 0x00020003: "UI", 0x00020010: "UI", 0x00020012: "UI", 0x00020013: "SH"}
_META_REQUIRED = frozenset({0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012})
_PADDING = {"OB": b"\x00", "UI": b"\x00", "SH": b" "}


def _file_meta_bytes(meta: FileMetaDataset) -> bytes | None:
    """What write_file_meta_info(enforce_standard=True) writes for a file meta group as
    regenerate_file_meta builds it (ASCII values, no group length yet); None for anything else,
    including a group pydicom would complete or refuse."""
    items = []
    for tag, elem in sorted(meta._dict.items()):
        if elem.__class__ is not DataElement:
            return None
        items.append((tag, elem.VR, elem.value))
    return file_meta_group(items)


def file_meta_group(items: list[tuple[int, str, object]]) -> bytes | None:
    """The file meta group of these (tag, VR, value), in tag order, as _file_meta_bytes writes it."""
    body = []
    present = set()
    for tag, elem_vr, value in items:
        vr = _META_VRS.get(tag)
        if vr is None or elem_vr != vr or not value:
            return None
        if vr != "OB":
            if not isinstance(value, str) or not value.isascii():
                return None
            value = value.encode("ascii")
        if len(value) & 1:
            value += _PADDING[vr]
        body.append((_TAG_UL if vr == "OB" else _TAG_US)(2, tag & 0xFFFF, vr.encode("ascii"), len(value)))
        body.append(value)
        present.add(tag)
    if not _META_REQUIRED <= present:
        return None
    encoded = b"".join(body)
    return _TAG_US(2, 0, b"UL", 4) + len(encoded).to_bytes(4, "little") + encoded


def _raw_header(elem: RawDataElement, implicit: bool) -> bytes | None:
    """The tag, VR and length pydicom writes before a raw element's bytes; None where pydicom
    writes something else too (undefined length, a value too long for its VR, no VR)."""
    tag, vr, length = elem.tag, elem.VR, len(elem.value)
    if elem.length == _UNDEFINED or elem.is_implicit_VR != implicit or not elem.is_little_endian:
        return None
    if implicit:
        return _TAG_IMPLICIT(tag >> 16, tag & 0xFFFF, length)
    if vr in _LONG_VR_NAMES:
        return _TAG_UL(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
    if vr is None or len(vr) != 2 or length > 0xFFFF:
        return None
    return _TAG_US(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)


def _element_bytes(elem: RawDataElement | DataElement, implicit: bool, encodings) -> bytes:
    """One element as pydicom's write_dataset writes it; remembered for plain text and integer
    values, which recur from file to file of a series (SOP class, modality, manufacturer, ...)."""
    key = _memo_key(elem, implicit, encodings)
    encoded = _ENCODED.get(key) if key is not None else None
    if encoded is None:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, implicit
        write_data_element(out, elem, encodings)
        encoded = out.getvalue()
        if key is not None:
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.clear()
            _ENCODED[key] = encoded
    return encoded


_ENCODED: dict[tuple, bytes] = {}
_ENCODED_MAX = 4096
_MEMO_LENGTH_MAX = 256
_PLAIN_TYPES = (str, UID, int, bytes)  # exact types: their writing depends on the value alone


def _memo_key(elem: RawDataElement | DataElement, implicit: bool, encodings) -> tuple | None:
    """What pydicom's written bytes depend on, for a decoded element with a plain value; None
    for anything else (sequences, numbers with their own formatting, person names, ...)."""
    if elem.__class__ is not DataElement or elem.VR == "SQ":
        return None
    value = elem.value
    if value.__class__ is MultiValue:
        value = tuple(value)
        if any(v.__class__ is not str for v in value):
            return None
    elif value.__class__ not in _PLAIN_TYPES:
        return None
    if value.__class__ is not int and len(value) > _MEMO_LENGTH_MAX:
        return None  # pixel data and other long values are written once, not remembered
    if encodings.__class__ is not str:
        encodings = tuple(encodings)
    return elem.tag, elem.VR, value.__class__, value, elem.is_undefined_length, implicit, encodings
