"""The scrub's raw path: the common file scrubbed from its bytes, without a pydicom Dataset.

For an explicit VR little endian file whose private elements the profile removes unread, the
header is scanned once into element positions. Elements the profile removes by tag are left
out; elements it keeps are copied as their bytes; UIDs it hashes are hashed here; values the
walker has met before come from the walker's memory (extractor.scrub.metadata.settled); only
the rest (the character set, sequences, values not met yet) goes through the walker, in a small
Dataset of its own, exactly as ``deidentify_settled`` hands them over. The filters and the pixel
scripts read a small Dataset of the elements they can name. ``scrub_raw`` returns None (nothing
done) for anything else, and the caller takes the Dataset path.

What a walked element is written as, and the walker's result for the rest, are remembered by
their bytes in the walker's context (a series repeats them file after file). The written bytes
are those of the Dataset path and of the pydicom reference path: tests/test_scrub_header.py
compares the default path (raw where it applies) with the reference, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from struct import error as struct_error

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from extractor.scrub.ctp.elements import TagRef
from extractor.scrub.filters import decide
from extractor.scrub.header import (
    _LONG_VRS,
    _PIXEL_TAGS,
    _VR_NAMES,
    _element_bytes,
    _raw_header,
    _read_elements,
    _Decline,
    file_meta_group,
    plain_string,
    plain_value,
)
from extractor.scrub.metadata.apply import (
    _UID_CACHES,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    SPECIFIC_CHARACTER_SET,
    DeidContext,
    _raw_values,
    _shared_cache,
    byte_transparent,
    deidentify_metadata,
    hashed_uids,
)
from extractor.scrub.metadata.rules import HASH_UID, HASH_UID_UNLISTED, KNOWN_TAGS, UID as UID_ACTION
from extractor.scrub.metadata.settled import (
    _REMEMBERED_LENGTH_MAX,
    _REMOVED,
    _UNCHANGED,
    _remember,
    _split_unknown,
    remembered_outcomes,
    settled_tags,
)

_EXPLICIT = Struct("<HH2sH").unpack_from
_UL = Struct("<L").unpack_from
_UNDEFINED = 0xFFFFFFFF
_ITEM_DELIMITER = 0xFFFEE00D
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
SOP_INSTANCE, MODALITY, PATIENT_ID = 0x00080018, 0x00080060, 0x00100020
STUDY, SERIES = 0x0020000D, 0x0020000E
_NAMING = frozenset({STUDY, SERIES, SOP_INSTANCE})
_NAMES = -1  # the key of the naming values in _deidentify's result
_VR_INFO = {raw: (name, raw in _LONG_VRS) for raw, name in _VR_NAMES.items()}  # VR bytes -> (VR, 4-byte length)

try:  # `_scan` in C (setup.py builds it; without a compiler the Python function below does it)
    from extractor.scrub._raw_scan import scan as _scan_in_c
except ImportError:  # pragma: no cover - exercised by the test that sets it to None
    _scan_in_c = None
# What the default filters read (filters.decide), the modality (the ultrasound check) and the
# patient ID (the subject of the date shift).
_READ_TAGS = frozenset({0x00080016, 0x00080070, 0x00080064, 0x00280301, 0x00080008, MODALITY, PATIENT_ID,
                        SPECIFIC_CHARACTER_SET})


@dataclass(frozen=True)
class RawScrub:
    """A file scrubbed on the raw path (``filtered`` set: not written, ``encoded`` empty)."""

    transfer_syntax: str
    series_in: str | None
    filtered: str | None = None
    name: str = ""
    encoded: bytes = b""
    pixel_tail: memoryview | None = None
    series_out: str = ""
    pixel_offset: int = 0  # where pixel_tail starts in the file


@dataclass(frozen=True)
class _Plan:
    read_tags: frozenset[int]  # what the filters and scripts read, in a small Dataset
    filter_tags: tuple[int, ...]  # among those, what a filter decision depends on
    uid_rules: dict[int, bool]  # tags walked for a value whose rule hashes a UID -> unlisted kept
    decisions: dict[tuple, tuple]  # remembered filter decisions (see _filter)


_plans: dict[int, tuple[object, _Plan | None]] = {}


def _plan(compiled) -> _Plan | None:
    """Once per compiled settings; None where the raw path does not apply (private elements
    kept or read, allowlist mode, a script that names a file meta, private or nested element)."""
    cached = _plans.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    plan = None
    settled = settled_tags(compiled.profile.compiled)
    paths = [t.path for s in compiled.allow_scripts for t in s.terms]
    paths += [t.path for s in compiled.pixel_scripts for r in s.rules for t in r.condition.terms()]
    simple = all(len(p.refs) == 1 and isinstance(p.refs[0], TagRef) and p.refs[0].tag >> 16 not in (0x0002,)
                 and not p.refs[0].tag >> 16 & 1 for p in paths)
    if compiled.skip_private and settled is not None and simple:
        rules = compiled.profile.compiled.rules
        uid_rules = {tag: rules[tag].action == HASH_UID_UNLISTED for tag in settled.by_value
                     if rules[tag].action in (UID_ACTION, HASH_UID, HASH_UID_UNLISTED)}
        script_tags = {p.refs[0].tag for p in paths}
        read_tags = _READ_TAGS | script_tags
        filter_tags = tuple(sorted(read_tags - ({PATIENT_ID} - script_tags)))
        plan = _Plan(read_tags, filter_tags, uid_rules, {})
    _plans[id(compiled)] = (compiled, plan)
    return plan


def scrub_raw(data: bytes, compiled, key: str, job, context_for) -> RawScrub | None:
    """The file scrubbed from its bytes, or None: the caller takes the Dataset path.

    ``context_for(subject)`` builds the DeidContext of the Dataset path for the file's subject."""
    plan = _plan(compiled)
    if plan is None or len(data) < 140 or data[128:132] != b"DICM":
        return None
    try:
        meta, position = _read_elements(data, 132, implicit=False, meta=True)
    except (_Decline, struct_error):  # struct_error: a truncated file
        return None
    syntax_elem = meta.get(0x00020010)
    syntax = plain_value(syntax_elem.value, "UI") if syntax_elem is not None and syntax_elem.value else None
    if syntax is None or syntax == _IMPLICIT_LITTLE or "\\" in syntax:
        return None
    uid = UID(syntax)
    if not uid.is_transfer_syntax or uid.is_deflated or not uid.is_little_endian or uid.is_implicit_VR:
        return None
    if position + 8 > len(data) or data[position:position + 2] == b"\x00\x00" or data[position + 4:position + 6] not in _VR_NAMES:
        return None
    scanned = _scan_in_c(data, position, _VR_INFO) if _scan_in_c is not None else _scan(data, position)
    if scanned is None:
        return None
    elements, stop = scanned
    by_tag = {e[0]: e for e in elements}

    small, charset = _small_dataset(data, by_tag, plan.read_tags)
    transparent = byte_transparent(small)
    series_in = _plain(data, by_tag.get(SERIES))
    if series_in is None and SERIES in by_tag:
        return None
    passed, rule = _filter(small, syntax, compiled, plan)
    if passed is None:
        return None
    if not passed:
        return RawScrub(syntax, series_in, filtered=rule)
    from extractor.scrub.instance import trailing_pixel_element  # noqa: PLC0415 - instance imports this module

    pixel_tail = trailing_pixel_element(data, stop, syntax)
    if pixel_tail is None and stop < len(data):
        return None
    subject = job.subject
    if not subject:
        patient = plain_string(small, PATIENT_ID, transparent) if PATIENT_ID in small._dict else ""
        if patient is None:
            return None  # instance._patient_id decodes it
        subject = f"patient:{patient.strip()}"
    context = context_for(subject)

    try:
        out = _deidentify(data, elements, by_tag, small, charset, compiled, plan, context, transparent, key)
    except Exception:  # noqa: BLE001 - the Dataset path does it again, and reports any error as it always has
        return None
    if out is None:
        return None
    names = out.pop(_NAMES)
    study, series, sop = (plain_value(names[t], "UI") if names.get(t) else None for t in (STUDY, SERIES, SOP_INSTANCE))
    if study is None or series is None or sop is None or "\\" in study + series + sop:
        return None
    sop_class_elem = meta.get(0x00020002)
    sop_class = plain_value(sop_class_elem.value, "UI") if sop_class_elem is not None and sop_class_elem.value else None
    if sop_class is None:
        return None
    group = file_meta_group([(0x00020001, "OB", b"\x00\x01"), (0x00020002, "UI", sop_class), (0x00020003, "UI", sop),
                             (0x00020010, "UI", syntax), (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
                             (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME)])
    if group is None:
        return None
    parts = [b"\x00" * 128, b"DICM", group]
    for tag in sorted(out):
        if not (tag & 0xFFFF == 0 and tag >> 16 > 6):
            parts.append(out[tag])
    return RawScrub(syntax, series_in, None, f"{study}/{series}/{sop}.dcm", b"".join(parts), pixel_tail, series, stop)


def _scan(data: bytes, position: int) -> tuple[list[tuple], int] | None:
    """(tag, VR, header start, value start, value end) of every public element up to the pixel
    data, as header._read_elements reads them with skip_private; None where it would decline
    or hand an undefined length to pydicom."""
    elements = []
    append = elements.append
    end = len(data)
    previous = -1
    unpack, unpack_length, vr_info = _EXPLICIT, _UL, _VR_INFO
    while position + 8 <= end:
        group, element, raw_vr, length = unpack(data, position)
        info = vr_info.get(raw_vr)
        if info is None:
            return None
        vr, long = info
        if long:
            if data[position + 6:position + 8] != b"\x00\x00" or position + 12 > end:
                return None
            length = unpack_length(data, position + 8)[0]
            start = position + 12
        else:
            start = position + 8
        tag = group << 16 | element
        if tag <= previous or tag >= 0x7FE00008:
            if tag in _PIXEL_TAGS:
                return elements, position
            if tag <= previous or tag == _ITEM_DELIMITER:
                return None
        previous = tag
        if length == _UNDEFINED:
            return None
        value_end = start + length
        if value_end > end:
            return None
        if not group & 1:
            append((tag, vr, position, start, value_end))
        position = value_end
    if position != end:
        return None
    return elements, end


def _raw(data: bytes, scanned: tuple) -> RawDataElement:
    """The RawDataElement header._read_elements builds for a scanned element."""
    tag, vr, _, start, end = scanned
    value = data[start:end] if end > start else empty_value_for_VR(vr, raw=True)
    return RawDataElement(BaseTag(tag), vr, end - start, value, start, False, True, True, False)


def _small_dataset(data: bytes, by_tag: dict, tags: frozenset[int]) -> tuple[Dataset, str | list[str]]:
    """The elements the filters read, and the dataset's character set (Python encodings)."""
    small = Dataset({BaseTag(t): _raw(data, by_tag[t]) for t in sorted(tags) if t in by_tag})
    charset = _plain_charset(small)
    if charset is None:
        charset = small._character_set  # decodes the character set, as read_header_fast does
    small.set_original_encoding(False, True, charset)
    return small, charset


def _plain_charset(small: Dataset) -> str | list[str] | None:
    """Dataset._character_set without decoding the element, where its value is plain (then
    pydicom writes back the same bytes, so the element can stay raw); None otherwise."""
    elem = small._dict.get(SPECIFIC_CHARACTER_SET)
    if elem is None:
        return default_encoding
    if elem.__class__ is not RawDataElement or not elem.value:
        return None
    charset = _CHARSETS.get(elem.value)
    if charset is None:
        text = plain_value(elem.value, "CS")
        if text is None:
            return None
        charset = _CHARSETS[elem.value] = convert_encodings(text.split("\\") if "\\" in text else text)
    return list(charset) if isinstance(charset, list) else charset


_CHARSETS: dict[bytes, str | list[str]] = {}


def _filter(small: Dataset, syntax: str, compiled, plan: _Plan) -> tuple[bool | None, str | None]:
    """(passed, rule) as instance._scrub decides before the metadata: the filters, the pixel
    scripts, the ultrasound check; passed None where the Dataset path must decide (pixels to
    blank, a value it would decode). Remembered by the bytes of what the decision reads, where
    it decoded nothing (decoding changes what is written)."""
    d = small._dict
    key = (syntax, *(((t, d[t].VR, d[t].value) if t in d else t) for t in plan.filter_tags))
    try:
        remembered = plan.decisions.get(key)
    except TypeError:  # a decoded (unhashable) value: decide afresh
        remembered, key = None, None
    if remembered is not None:
        return remembered
    decision = decide(small, syntax, compiled.allow_scripts)
    if not decision.passed:
        result = (False, decision.rule)
    elif any(s.regions_for(small) is not None for s in compiled.pixel_scripts):
        result = (None, None)  # pixels to blank: the Dataset path
    else:
        modality = _modality(small)
        if modality is None:
            result = (None, None)
        elif modality.upper() == "US":
            result = (False, "ultrasound-without-pixel-rule")
        else:
            result = (True, None)
    if key is not None and all(d[t].__class__ is RawDataElement for t in plan.filter_tags if t in d and t != SPECIFIC_CHARACTER_SET):
        if len(plan.decisions) > 10_000:
            plan.decisions.clear()
        plan.decisions[key] = result
    return result


def _modality(small: Dataset) -> str | None:
    """The modality as instance._single_text reads it; None where that would decode it."""
    elem = small._dict.get(MODALITY)
    if elem is None:
        return ""
    if elem.__class__ is not RawDataElement or not elem.value:
        return None
    text = plain_value(elem.value, "CS")
    return text if text is not None and "\\" not in text else None


def _plain(data: bytes, scanned: tuple | None) -> str | None:
    """plain_text of a scanned UI element, without backslashes; None when absent or not plain."""
    if scanned is None or scanned[1] != "UI" or scanned[4] == scanned[3]:
        return None
    text = plain_value(data[scanned[3]:scanned[4]], "UI")
    return text if text is not None and "\\" not in text else None


def _deidentify(data: bytes, elements: list, by_tag: dict, small: Dataset, charset: str | list[str], compiled,
                plan: _Plan, context: DeidContext, transparent: bool, key: str) -> dict | None:
    """{tag: element bytes} of the de-identified dataset, as deidentify_settled leaves it and
    encode_file_fast writes it, and under _NAMES {tag: value bytes} of the UIDs that name the
    file; None where that takes the Dataset path."""
    profile = compiled.profile
    settled = settled_tags(profile.compiled)
    present = by_tag.keys()
    removed = present & settled.removed
    walked = present & settled.walked
    unknown = set(present).difference(KNOWN_TAGS)
    if unknown:
        unknown_removed, unknown_walked = _split_unknown(unknown, profile.compiled)
        removed |= unknown_removed
        walked |= unknown_walked
    out: dict = {}
    names: dict[int, bytes] = {}
    decoded = {int(t): e for t, e in small._dict.items() if e.__class__ is not RawDataElement}  # by a filter
    skipped = removed | walked | decoded.keys()
    for tag, _, header, start, end in elements:
        if tag not in skipped:
            out[tag] = data[header:end]
    for tag, elem in decoded.items():
        if tag not in removed and tag not in walked:  # written as pydicom writes it
            out[tag] = _element_bytes(elem, False, small.get("SpecificCharacterSet", default_encoding))
    for tag in _NAMING:
        if tag in out and tag not in decoded:
            scanned = by_tag[tag]
            names[tag] = data[scanned[3]:scanned[4]]

    outcomes = remembered_outcomes(transparent, profile.compiled, context)
    if outcomes is None:
        return None
    uids = _shared_cache(_UID_CACHES, context.key)
    rest, asked = {}, {}
    by_value, emptied, uid_rules = settled.by_value, settled.emptied, plan.uid_rules
    for scanned in elements:
        tag, vr, header, start, end = scanned
        if tag not in walked:
            continue
        elem = decoded.get(tag)
        if elem is not None:
            rest[tag] = elem  # decoded by a filter: the walker takes it as it is
            continue
        if tag not in uid_rules and tag not in by_value or end - start > _REMEMBERED_LENGTH_MAX:
            rest[tag] = _raw(data, scanned)
            continue
        # What this element becomes, remembered by its bytes (tag, VR and value) in this context.
        element = data[header:end]
        written = outcomes.get(element)
        if written is None:
            written = _settle(data, scanned, outcomes, emptied, uid_rules, key, uids)
            if written is None:
                elem = _raw(data, scanned)
                asked[elem.tag] = (outcomes, (tag, vr, None if tag in emptied else elem.value, False, True), elem)
                rest[tag] = elem
                continue
            if tag != SOP_INSTANCE:  # unique to the file: not worth remembering
                outcomes[element] = written
        if written is not _REMOVED:
            out[tag] = written
            if tag in _NAMING:
                names[tag] = written[8:]  # UI: a short header

    # The walker's result for the rest, remembered by the rest's bytes (in files of a series it
    # is the character set, the modality and the same sequences, file after file).
    rest_key = ("rest", *(data[by_tag[t][2]:by_tag[t][4]] for t in rest)) if not asked and not decoded.keys() & rest.keys() else None
    remembered = outcomes.get(rest_key) if rest_key is not None else None
    if remembered is not None:
        written_rest, rest_names = remembered
        out.update(written_rest)
        names.update(rest_names)
        out[_NAMES] = names
        return out
    written_rest, rest_names = {}, {}
    ds = Dataset({BaseTag(t): e for t, e in rest.items()})
    ds.set_original_encoding(False, True, charset)
    charset_elem = ds._dict.get(SPECIFIC_CHARACTER_SET)
    deidentify_metadata(ds, profile, context, regenerate_meta=False)
    _remember(asked, ds, False, transparent)
    if ds._dict.get(SPECIFIC_CHARACTER_SET) is not charset_elem and ds._character_set != charset:
        return None  # encode_file_fast would hand the file to pydicom's writer
    encodings = None
    for tag, elem in ds._dict.items():
        tag = int(tag)
        if elem.__class__ is RawDataElement:
            if elem.value is None:
                return None
            header = _raw_header(elem, False)
            if header is None:
                return None
            written_rest[tag] = header + elem.value
            if tag in _NAMING:
                rest_names[tag] = elem.value
        elif tag in _NAMING:
            return None  # decoded: the Dataset path names the file from the decoded value
        else:
            if encodings is None:
                encodings = ds.get("SpecificCharacterSet", default_encoding)  # as encode_file_fast: decodes it
            written_rest[tag] = _element_bytes(elem, False, encodings)
    if rest_key is not None:
        outcomes[rest_key] = (written_rest, rest_names)
    out.update(written_rest)
    names.update(rest_names)
    out[_NAMES] = names
    return out


def _settle(data: bytes, scanned: tuple, outcomes: dict, emptied: frozenset[int], uid_rules: dict[int, bool], key: str,
            uids: dict[str, str]) -> bytes | str | None:
    """The element bytes a walked element is written as (_REMOVED: not written), from the UID
    rule or the walker's remembered outcome; None where the walker must see it."""
    tag, vr, header, start, end = scanned
    if tag in uid_rules:
        if vr != "UI":
            return None
        value = _hashed_uids(data[start:end], uid_rules[tag], key, uids)
        if value is None:
            return None
        return _raw_value_bytes(tag, vr, value) if value else data[header:end]
    outcome = outcomes.get((tag, vr, None if tag in emptied else data[start:end], False, True))
    if outcome is None:
        return None
    if outcome is _UNCHANGED:
        return data[header:end]
    if outcome is _REMOVED:
        return _REMOVED
    return _raw_value_bytes(tag, outcome[0], outcome[1])


def _hashed_uids(value: bytes, unlisted: bool, key: str, cache: dict[str, str]) -> bytes | None:
    """The walker's UID action on a raw UI value: the new value bytes, b"" when it leaves the
    value as it is, None when it would take another path (non-ASCII text). Remembered by the
    value's bytes: a series repeats its study, series and frame UIDs."""
    memo = _HASHED.get((key, unlisted))
    if memo is None or len(memo) > 50_000:
        if len(_HASHED) > 64:
            _HASHED.clear()
        memo = _HASHED[(key, unlisted)] = {}
    hashed = memo.get(value, _MISSING)
    if hashed is _MISSING:
        hashed = memo[value] = _hash_uids(value, unlisted, key, cache)
    return hashed


_HASHED: dict[tuple, dict[bytes, bytes | None]] = {}
_MISSING = object()


def _hash_uids(value: bytes, unlisted: bool, key: str, cache: dict[str, str]) -> bytes | None:
    if not value:
        return b""
    values = _raw_values(RawDataElement(0, "UI", len(value), value, 0, False, True), "UI")
    if not values:
        return b""
    out = hashed_uids(values, unlisted, key, cache)
    if out is None:
        return b""
    text = "\\".join(out)
    if not text.isascii():
        return None
    data = text.encode("ascii")
    return data + b"\x00" if len(data) & 1 else data


def _raw_value_bytes(tag: int, vr: str, value: bytes) -> bytes:
    """A raw element as encode_file_fast writes it (explicit VR little endian)."""
    header_key = (tag, vr, len(value))
    header = _HEADERS.get(header_key)
    if header is None:
        header = _raw_header(RawDataElement(tag, vr, len(value), value, 0, False, True, True, False), False)
        if header is None:
            raise _Decline
        if len(_HEADERS) > 20_000:
            _HEADERS.clear()
        _HEADERS[header_key] = header
    return header + value


_HEADERS: dict[tuple, bytes] = {}
