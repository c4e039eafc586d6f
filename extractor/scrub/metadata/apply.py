"""De-identify the metadata of one pydicom Dataset according to a Profile.

``deidentify_metadata(ds, profile, context)`` changes ``ds`` in place (sequences at any depth
included) and returns a MetadataReport: per attribute path, the action taken and the rule
that asked for it, never a value. UIDs go through ``hash_uid``, dates through ``shift_date``
and descriptions through ``redact_text`` (extractor.deid.pseudonymize), so every value equals
what the SQL implementation of deid_sql/SPEC.md computes for the de-identified tables.

Speed: the walker never decodes an attribute that no rule touches. Per dataset it takes the
set of tags present and intersects it with the compiled rule tags and the sequence tags (C
set operations); only tags outside the DICOM dictionary (private, group lengths, 50xx/60xx
ranges, unknown) are looked at one by one.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.datadict import dictionary_VR, get_entry, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from extractor.deid.pseudonymize import (
    DeidParameters,
    Key,
    hash_text,
    hash_uid,
    load_allowlist,
    redact_text,
    shift_date,
)
from extractor.scrub.header import plain_text
from extractor.scrub.metadata.confidentiality import format_tag
from extractor.scrub.metadata.profile import Profile
from extractor.scrub.metadata.rules import (
    CLEAN,
    DATE,
    DEIDENTIFICATION_METHOD,
    DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    DICOM_UID_ROOT,
    DUMMY,
    EMPTY,
    HASH_TEXT,
    HASH_UID,
    HASH_UID_UNLISTED,
    KEEP,
    KNOWN_TAGS,
    DICT_VR as _DICT_VR,
    LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
    PATIENT_IDENTITY_REMOVED,
    REDACT,
    REMOVE,
    REPLACE,
    SHIFT_DATE,
    SQ_TAGS,
    UID,
    CompiledProfile,
    Rule,
)

DEFAULT_ALLOWLIST = Path(__file__).resolve().parents[3] / "vocab" / "seeds" / "description_allowlist.csv"

# File meta written by imgomop (PS3.15 E.1.1 step 7: the file meta describes the de-identifier).
IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "https://imgomop/implementation").int)
IMPLEMENTATION_VERSION_NAME = "IMGOMOP_0.1"

SPECIFIC_CHARACTER_SET = 0x00080005  # always survives allowlist mode: the remaining text must stay decodable

# Report action names.
REMOVED, EMPTIED, REPLACED, HASHED, SHIFTED, KEPT, REDACTED, ADDED = (
    "removed", "emptied", "replaced", "hashed", "shifted", "kept", "redacted", "added",
)

_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "IS": 12, "LO": 64, "PN": 64, "SH": 16, "TM": 14, "UI": 64, "DT": 26}
_DUMMY = {
    "AE": "ANONYMIZED", "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000",
    "DS": "0", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED", "SH": "ANONYMIZED",
    "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UR": "", "UT": "ANONYMIZED",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0, "AT": 0,
}
_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_DT = re.compile(r"^(\d{4})(\d{2})(\d{2})((?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?(?:[+-]\d{4})?)$")
_DT_YEAR = re.compile(r"^(\d{4})")
_ASCII_VRS = frozenset({"UI", "DA", "DT", "TM", "CS", "AS", "DS", "IS", "AE"})
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_SINGLE_VALUE_VRS = frozenset({"LT", "ST", "UT", "UR"})
_FAST_TEXT_ACTIONS = frozenset({EMPTY, KEEP, DUMMY, CLEAN, REDACT, REPLACE})
# Character sets in which every byte below 0x80 is the ASCII character (no code extensions).
_BYTE_TRANSPARENT_CHARSETS = frozenset(
    {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144", "ISO_IR 127",
     "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 166", "ISO_IR 203", "ISO_IR 192"}
)
_IGNORE = 0  # pydicom.config.IGNORE: our values are checked here, not warned about by pydicom



def hashed_uids(values: list[str], unlisted: bool, key: str, cache: dict[str, str]) -> list[str] | None:
    """The UID values keyed-hashed (with `unlisted`, UIDs under the DICOM root are kept), or None
    when nothing changed. `cache` holds the hashes already computed in this run."""
    out, changed = [], False
    for v in values:
        if unlisted and v.startswith(DICOM_UID_ROOT):
            out.append(v)
            continue
        h = cache.get(v)
        if h is None:
            h = hash_uid(v, key) or ""
            cache[v] = h
        out.append(h)
        changed = True
    return out if changed else None


class MetadataError(ValueError):
    """The instance cannot be de-identified as asked (quarantine it); the message names the fix."""


@dataclass(frozen=True)
class DeidContext:
    """Per-study inputs. The key, subject and parameters never appear in repr, logs or reports."""

    key: Key = field(repr=False)
    subject: str | None = field(default=None, repr=False)  # identified person id (as text) for the date jitter
    parameters: Mapping[str, Any] = field(default_factory=dict, repr=False)  # PatientID, PatientName, AccessionNumber, ...
    allowlist: frozenset[str] | None = field(default=None, repr=False)  # redact_text tokens; default: vocab seed
    deid_parameters: DeidParameters = DeidParameters()
    pixels_cleaned: bool = False  # the pixel stage cleaned burned-in text: records 113101


class ReportEntry(NamedTuple):
    path: str  # e.g. "ReferencedImageSequence[0].ReferencedSOPInstanceUID" or "(0019,1023)"
    action: str  # removed, emptied, replaced, hashed, shifted, kept, redacted, added
    rule: str  # why, e.g. "E.1-1 basic U", "profile", "not in allowlist"


@dataclass
class MetadataReport:
    """What was done, per attribute path: no values, so it can go into the manifest and the review report."""

    profile: str
    entries: list[ReportEntry] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, problem), no values
    method_codes: tuple[str, ...] = ()
    temporal: str | None = None  # LongitudinalTemporalInformationModified written

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.action] = out.get(e.action, 0) + 1
        return out

    def paths(self, action: str) -> list[str]:
        return [e.path for e in self.entries if e.action == action]

    def action_for(self, path: str) -> str | None:
        return next((e.action for e in self.entries if e.path == path), None)

    def rows(self) -> list[dict[str, str]]:
        return [e._asdict() for e in self.entries]


@lru_cache(maxsize=4096)
def _name(tag: int) -> str:
    """The keyword of a dictionary attribute; (gggg,eeee) for private, repeating-group (50xx,
    60xx: the group matters) and unknown attributes."""
    if tag not in KNOWN_TAGS:
        return format_tag(tag)
    return keyword_for_tag(tag) or format_tag(tag)


@lru_cache(maxsize=1024)
def _is_repeater(tag: int) -> bool:
    try:
        get_entry(tag)
        return True
    except KeyError:
        return False


def _values(value: Any) -> list[str]:
    if isinstance(value, bytes):  # e.g. a private creator read as UN
        return [value.decode("latin-1").strip(" \x00")]
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _elem_values(elem: DataElement) -> list[str]:
    """The values of a decoded element as text; [] when empty."""
    value = elem.value
    if _is_empty(value):
        return []
    values = _values(value)
    return values if any(values) else []


def _raw_values(raw: RawDataElement, vr: str) -> list[str]:
    """The values of a raw ASCII (or byte-transparent text) element; [] when empty."""
    data = raw.value
    if not data:
        return []
    text = data.decode("latin-1")
    if vr in _SINGLE_VALUE_VRS:
        text = text.rstrip(" \x00")
        return [text] if text else []
    values = [v.strip(" \x00") for v in text.split("\\")]
    return values if any(values) else []


def _joined(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, bytes, MultiValue, list, tuple)):
        return len(value) == 0
    return str(value) == ""


_tuple_new = tuple.__new__
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _delete(ds: Dataset, tag: BaseTag) -> None:
    """Remove one element. Plain elements go straight out of the dataset's dict (the public
    ``del ds[tag]`` costs several times more per element, and scrubbing removes hundreds);
    pixel data and private creators take the public path so pydicom resets its caches."""
    number = int(tag)
    if number >= 0x7FE00008 and number in _PIXEL_TAGS or (number & 0x1FF00) == 0x10000:
        del ds[tag]
    else:
        del ds._dict[tag]


def _set(elem: DataElement, value: Any) -> None:
    elem.validation_mode = _IGNORE
    elem.value = value


class _Walker:
    def __init__(self, compiled: CompiledProfile, context: DeidContext, allowlist: frozenset[str], report: MetadataReport):
        self.c = compiled
        self.p = compiled.profile
        self.rules = compiled.rules
        self.rule_tags = compiled.rule_tags
        self.key = context.key
        self.subject = context.subject
        self.params = context.parameters
        self.deid_parameters = context.deid_parameters
        self.tokens = allowlist
        self.entries = report.entries
        self.warnings = report.warnings
        self.allowed: frozenset[int] | None = None
        self.fast_text = False
        # Pseudonyms are pure functions of (value, key[, subject]): shared by the walkers of a process,
        # since a series repeats its study, series and frame UIDs, dates and descriptions file after file.
        self.uids = _shared_cache(_UID_CACHES, context.key)
        self.dates = _shared_cache(_DATE_CACHES, (context.key, context.subject, context.deid_parameters))

    def add(self, path: str, action: str, rule: str) -> None:
        self.entries.append(_tuple_new(ReportEntry, (path, action, rule)))

    # --- one dataset ------------------------------------------------------------------
    # Tags are handled as plain ints for the set operations (pydicom's BaseTag compares in
    # Python, which made set operations and sorting the slowest part); the BaseTag keys of
    # the dataset's own dict are used to reach the elements (dict lookups by identity).
    def walk(self, ds: Dataset, prefix: str) -> None:
        d = ds._dict
        if not d:
            return
        keymap = dict(zip(map(int, d), d))
        present = keymap.keys()
        if SPECIFIC_CHARACTER_SET in present and prefix:  # an item with its own character set
            outer = self.fast_text
            self.fast_text = byte_transparent(ds)
            try:
                self._walk(ds, prefix, keymap, present)
            finally:
                self.fast_text = outer
            return
        self._walk(ds, prefix, keymap, present)

    def _walk(self, ds: Dataset, prefix: str, keymap: dict, present) -> None:
        unknown = set(present).difference(KNOWN_TAGS)  # not `present - KNOWN_TAGS`: that iterates the dictionary
        known = present & KNOWN_TAGS if unknown else set(present)
        dropped: set[int] = set()
        if self.allowed is not None:
            dropped = known - self.allowed
            known -= dropped
        hits = known & self.rule_tags
        seqs = (known & SQ_TAGS) - hits
        # every set is computed before the dataset changes
        if unknown:
            self.outside_dictionary(ds, keymap, sorted(unknown), prefix)
        if dropped:
            for tag in sorted(dropped):
                _delete(ds, keymap[tag])
                self.add(prefix + _name(tag), REMOVED, "not in allowlist")
        rules = self.rules
        for tag in sorted(hits):
            self.apply(ds, keymap[tag], tag, rules[tag], prefix)
        for tag in seqs:
            self.items(ds[keymap[tag]], prefix + _name(tag))

    def outside_dictionary(self, ds: Dataset, keymap: dict, tags: list[int], prefix: str) -> None:
        privates = []
        for tag in tags:
            group = tag >> 16
            if group & 1:
                privates.append(tag)
                continue
            btag = keymap[tag]
            if tag & 0xFFFF == 0:
                _delete(ds, btag)
                self.add(prefix + _name(tag), REMOVED, "group length (recomputed by writers)")
                continue
            if group < 3:
                _delete(ds, btag)
                self.add(prefix + _name(tag), REMOVED, "file meta / command element inside the dataset")
                continue
            rule = next((r for pattern, r in self.c.ranges if pattern.matches(tag)), None)
            if self.allowed is not None and tag not in self.allowed:
                _delete(ds, btag)
                self.add(prefix + _name(tag), REMOVED, "not in allowlist")
            elif rule is not None:
                self.apply(ds, btag, tag, rule, prefix)
            elif _is_repeater(tag):
                pass  # a known repeating-group attribute no rule names: kept
            elif self.p.unknown_public == "remove":
                _delete(ds, btag)
                self.add(prefix + _name(tag), REMOVED, "attribute not in the DICOM dictionary")
            elif ds[btag].VR == "SQ":
                self.items(ds[btag], prefix + _name(tag))
        if privates:
            self.private(ds, keymap, privates, prefix)

    def private(self, ds: Dataset, keymap: dict, tags: list[int], prefix: str) -> None:
        rule = self.c.private_rule
        keep: set[int] = set()
        if self.c.safe_private:
            creators: dict[int, str | None] = {}
            safe = self.c.safe_private
            for tag in tags:
                element = tag & 0xFFFF
                if element < 0x1000:
                    continue
                creator_tag = (tag & 0xFFFF0000) | (element >> 8)
                if creator_tag not in creators:
                    creators[creator_tag] = None
                    if creator_tag in keymap:
                        elem = ds._dict[keymap[creator_tag]]
                        values = _raw_values(elem, "LO") if elem.__class__ is RawDataElement else _elem_values(elem)
                        creators[creator_tag] = values[0] if values else None
                creator = creators[creator_tag]
                if creator is not None and (tag >> 16, creator, element & 0xFF) in safe:
                    keep.add(tag)
                    keep.add(creator_tag)
        origin = rule.origin if rule.action != CLEAN else "private, not listed safe"
        d = ds._dict
        append = self.entries.append
        creator_removed = False
        for tag in tags:
            path = prefix + _name(tag)
            btag = keymap[tag]
            if tag not in keep:
                del d[btag]  # private: never pixel data; creators reset the cache below
                creator_removed = creator_removed or tag & 0xFF00 == 0
                append(_tuple_new(ReportEntry, (path, REMOVED, origin)))
                continue
            if tag & 0xFFFF < 0x1000:
                continue  # the private creator of a kept block
            elem = ds[btag]
            if elem.VR == "SQ":
                self.add(path, KEPT, "safe private (contents cleaned)")
                self.items(elem, path)
            elif elem.VR == "UI" and _elem_values(elem):
                self.uid(ds, btag, elem, None, _elem_values(elem), path, "safe private UID", unlisted=True)
            else:
                self.add(path, KEPT, "safe private")
        if creator_removed and ds._private_blocks:
            ds._private_blocks = {}

    def items(self, elem: DataElement, path: str) -> None:
        value = elem.value
        if not value:
            return
        for i, item in enumerate(value):
            if isinstance(item, Dataset):
                self.walk(item, f"{path}[{i}].")

    # --- one attribute ------------------------------------------------------------------
    # An element still in its raw (undecoded) form is read and written as bytes when its VR
    # is ASCII-only (UI, DA, DT, TM, CS, AS, DS, IS, AE), or when it is text under a
    # character set where every byte below 0x80 is ASCII and redaction is the action (the
    # redaction maps every other character to a space first, so the decoding cannot change
    # its result). Decoding through pydicom costs tens of microseconds per element; this
    # path costs about one. Everything else (sequences, numbers, exact text for hash_text,
    # other character sets) goes through pydicom.
    def apply(self, ds: Dataset, tag: BaseTag, number: int, rule: Rule, prefix: str) -> None:
        action = rule.action
        path = prefix + _name(number)
        if action == REMOVE:
            _delete(ds, tag)
            self.add(path, REMOVED, rule.origin)
            return
        if action == KEEP and number not in SQ_TAGS and number in KNOWN_TAGS:
            self.add(path, KEPT, rule.origin)
            return
        elem = ds._dict[tag]
        raw = None
        if elem.__class__ is RawDataElement:
            vr = elem.VR or _DICT_VR.get(number)
            if vr in _ASCII_VRS or (vr in _CHARSET_VRS and self.fast_text and action in _FAST_TEXT_ACTIONS):
                raw = elem
            else:
                elem = ds[tag]
                vr = elem.VR
        else:
            vr = elem.VR
        if vr == "SQ":
            self.sequence(ds, tag, elem, rule, path)
            return
        self.value(ds, tag, elem, raw, vr, rule, path)

    def sequence(self, ds: Dataset, tag: BaseTag, elem: DataElement, rule: Rule, path: str) -> None:
        action = rule.action
        if action == EMPTY:
            _set(elem, [])
            self.add(path, EMPTIED, rule.origin)
        elif action in (KEEP, DUMMY, CLEAN, UID, DATE):
            self.add(path, KEPT, f"{rule.origin}: contents cleaned")
            self.items(elem, path)
        else:  # an action meant for a value (replace, hash, ...) on a sequence: fail closed
            _delete(ds, tag)
            self.add(path, REMOVED, f"{rule.origin}: {action} cannot apply to a sequence")

    def value(self, ds: Dataset, tag: BaseTag, elem: Any, raw: RawDataElement | None, vr: str, rule: Rule, path: str) -> None:
        action = rule.action
        if action == REPLACE:
            self.replace(ds, tag, elem, raw, vr, rule, path)
            return
        if action == EMPTY:
            self.put(ds, tag, elem, raw, vr, None)
            self.add(path, EMPTIED, rule.origin)
            return
        if action == KEEP:
            self.add(path, KEPT, rule.origin)
            return
        if action == HASH_TEXT and raw is not None and vr in _CHARSET_VRS:
            elem, raw = ds[tag], None  # hash the exact text, decoded by pydicom
        values = _raw_values(raw, vr) if raw is not None else _elem_values(elem)
        if action == DUMMY:
            if vr == "UI" and values:
                self.uid(ds, tag, elem, raw, values, path, rule.origin)
                return
            dummy = _DUMMY.get(vr, b"\x00\x00")
            self.put(ds, tag, elem, raw, vr, hash_uid(path, self.key) if vr == "UI" else dummy)
            self.add(path, REPLACED, rule.origin)
            return
        if not values:
            return  # nothing to hash, shift or clean
        if action in (UID, HASH_UID, HASH_UID_UNLISTED):
            if vr != "UI":
                _delete(ds, tag)
                self.add(path, REMOVED, f"{rule.origin}: not a UID (VR {vr})")
                return
            self.uid(ds, tag, elem, raw, values, path, rule.origin, unlisted=action == HASH_UID_UNLISTED)
        elif action == DATE or action == SHIFT_DATE:
            self.temporal(ds, tag, elem, raw, vr, values, rule, path, force_shift=action == SHIFT_DATE)
        elif action in (CLEAN, REDACT):
            if vr not in _TEXT_VRS:
                _delete(ds, tag)
                self.add(path, REMOVED, f"{rule.origin}: VR {vr} cannot be cleaned")
                return
            out = [_redact(v, self.tokens) for v in values]
            self.put(ds, tag, elem, raw, vr, out)
            for v in out:
                self.check_length(path, vr, v)
            self.add(path, REDACTED, rule.origin)
        elif action == HASH_TEXT:
            if vr not in _TEXT_VRS:
                _delete(ds, tag)
                self.add(path, REMOVED, f"{rule.origin}: VR {vr} cannot be hashed as text")
                return
            domain = rule.attribute.domain if rule.attribute and rule.attribute.domain else "text"
            hashed = hash_text(domain, "\\".join(values), self.key)
            self.put(ds, tag, elem, raw, vr, hashed)
            self.check_length(path, vr, hashed)
            self.add(path, HASHED, rule.origin)
        else:
            _delete(ds, tag)
            self.add(path, REMOVED, f"{rule.origin}: unknown action {action!r}")

    def put(self, ds: Dataset, tag: BaseTag, elem: Any, raw: RawDataElement | None, vr: str, value: Any) -> None:
        """Write a new value: as raw bytes when the element is raw and the value ASCII text."""
        if raw is not None:
            if value is None:
                data = b""
            elif isinstance(value, str):
                data = value.encode("ascii") if value.isascii() else None
            elif isinstance(value, list) and all(isinstance(v, str) and v.isascii() for v in value):
                data = "\\".join(value).encode("ascii")
            else:
                data = None
            if data is not None:
                if len(data) & 1:
                    data += b"\x00" if vr == "UI" else b" "
                ds._dict[tag] = RawDataElement(
                    raw.tag, raw.VR, len(data), data, raw.value_tell, raw.is_implicit_VR, raw.is_little_endian, True, False
                )
                return
            elem = ds[tag]
        if value is None:
            value = empty_value_for_VR(vr)
        elif isinstance(value, list):
            value = _joined(value)
        _set(elem, value)

    def uid(self, ds: Dataset, tag: BaseTag, elem: Any, raw: RawDataElement | None, values: list[str], path: str,
            origin: str, unlisted: bool = False) -> None:
        out = hashed_uids(values, unlisted, self.key, self.uids)
        if out is not None:
            self.put(ds, tag, elem, raw, "UI", out)
            self.add(path, HASHED, origin)

    def temporal(self, ds: Dataset, tag: BaseTag, elem: Any, raw: RawDataElement | None, vr: str, values: list[str],
                 rule: Rule, path: str, force_shift: bool) -> None:
        mode = "shift" if force_shift else self.p.dates
        if vr not in ("DA", "DT"):  # TM, or a time zone offset: times of day survive a whole-day shift
            if mode == "keep" or self.p.times == "keep":
                self.add(path, KEPT, rule.origin)
            else:
                self.put(ds, tag, elem, raw, vr, None)
                self.add(path, EMPTIED, f"{rule.origin}: times removed")
            return
        if mode == "keep":
            self.add(path, KEPT, rule.origin)
            return
        if mode == "remove":
            self.put(ds, tag, elem, raw, vr, None)
            self.add(path, EMPTIED, f"{rule.origin}: dates removed")
            return
        out = []
        for v in values:
            new = self.shift_one(v, vr) if mode == "shift" else self.year_one(v, vr)
            if new is None:  # fail closed: a value we cannot read is not passed on
                self.put(ds, tag, elem, raw, vr, None)
                self.add(path, EMPTIED, f"{rule.origin}: unreadable {vr}")
                self.warnings.append((path, f"unreadable {vr} value emptied"))
                return
            out.append(new)
        self.put(ds, tag, elem, raw, vr, out)
        self.add(path, SHIFTED if mode == "shift" else REPLACED, rule.origin if mode == "shift" else f"{rule.origin}: year kept")

    def shift_one(self, value: str, vr: str) -> str | None:
        if vr == "DA":
            return self.shift_day(value)
        m = _DT.match(value)
        if not m:
            return None
        day = self.shift_day(m.group(1) + m.group(2) + m.group(3))
        if day is None:
            return None
        return day if self.p.times == "remove" else day + m.group(4)

    def shift_day(self, yyyymmdd: str) -> str | None:
        cached = self.dates.get(yyyymmdd)
        if cached is not None:
            return cached
        m = _DA.match(yyyymmdd)
        if not m:
            return None
        try:
            original = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
        try:
            shifted = shift_date(original, self.subject, self.key, self.deid_parameters)
        except OverflowError:
            return None
        if shifted is None:
            raise MetadataError("dates are shifted but the context has no subject (the identified person id)")
        out = shifted.strftime("%Y%m%d")
        self.dates[yyyymmdd] = out
        return out

    @staticmethod
    def year_one(value: str, vr: str) -> str | None:
        m = _DA.match(value) if vr == "DA" else _DT_YEAR.match(value)
        if not m:
            return None
        return f"{m.group(1)}0101" if vr == "DA" else m.group(1)

    def replace(self, ds: Dataset, tag: BaseTag, elem: Any, raw: RawDataElement | None, vr: str, rule: Rule, path: str) -> None:
        attr = rule.attribute
        new, missing = self.render(attr, vr)
        if missing is None:
            self.put(ds, tag, elem, raw, vr, new)
            self.check_length(path, vr, new)
            self.add(path, REPLACED, rule.origin)
            return
        why = f"{rule.origin} fallback (parameter {missing} not given)"
        if attr.fallback is not None:
            self.put(ds, tag, elem, raw, vr, attr.fallback)
            self.check_length(path, vr, attr.fallback)
            self.add(path, REPLACED, why)
        elif attr.fallback_action is not None:
            self.value(ds, tag, elem, raw, vr, Rule(attr.fallback_action, why, attribute=attr), path)
        else:
            self.put(ds, tag, elem, raw, vr, None)
            self.add(path, EMPTIED, why)

    def render(self, attr, vr: str) -> tuple[Any, str | None]:
        if attr.literal is not None:
            return attr.literal, None
        parts = []
        for text, is_param in attr.template or ():
            if not is_param:
                parts.append(text)
                continue
            value = self.params.get(text)
            if value is None:
                return None, text
            parts.append(str(value))
        out = "".join(parts)
        if vr not in ("LT", "ST", "UT"):
            out = out.replace("\\", " ")  # one value, never a multi-value by accident
        return out, None

    def check_length(self, path: str, vr: str, value: Any) -> None:
        limit = _MAX_LENGTH.get(vr)
        if limit and isinstance(value, str) and len(value) > limit:
            self.warnings.append((path, f"value longer than the VR {vr} maximum of {limit} characters"))

    def insert(self, ds: Dataset) -> None:
        for attr in self.c.inserts:
            tag = attr.tag
            if tag in ds:
                continue
            vr = attr.vr or dictionary_VR(tag)
            new, missing = self.render(attr, vr)
            if missing is not None:
                if attr.fallback is None:
                    continue
                new = attr.fallback
            ds[tag] = DataElement(tag, vr, new, validation_mode=_IGNORE)
            self.add(_name(tag), ADDED, "profile (insert)")


_UID_CACHES: dict[Any, dict[str, str]] = {}  # per key: UID -> pseudonym
_DATE_CACHES: dict[Any, dict[str, str]] = {}  # per (key, subject, parameters): YYYYMMDD -> shifted
_SHARED_CACHE_MAX = 50_000


def _shared_cache(caches: dict[Any, dict[str, str]], owner: Any) -> dict[str, str]:
    """The owner's cache, emptied when it grows large (memory stays bounded on a long run)."""
    cache = caches.get(owner)
    if cache is None or len(cache) > _SHARED_CACHE_MAX:
        if len(caches) > 1024:
            caches.clear()
        cache = caches[owner] = {}
    return cache


@lru_cache(maxsize=4096)
def _redact(text: str, allowlist: frozenset[str]) -> str:
    return redact_text(text, allowlist) or ""


def byte_transparent(ds: Dataset) -> bool:
    """True when the dataset's character set maps every byte below 0x80 to ASCII."""
    elem = ds._dict.get(SPECIFIC_CHARACTER_SET)
    if elem is None:
        return True
    if elem.__class__ is RawDataElement:
        values = _raw_values(elem, "CS")
    else:
        values = _elem_values(elem)
    if len(values) > 1:
        return False  # code extensions (ISO 2022)
    return (values[0] if values else "") in _BYTE_TRANSPARENT_CHARSETS


def _context_allowlist(compiled: CompiledProfile, context: DeidContext) -> frozenset[str]:
    if context.allowlist is not None:
        return context.allowlist
    if not compiled.needs_allowlist:
        return frozenset()
    return _default_allowlist()


@lru_cache(maxsize=1)
def _default_allowlist() -> frozenset[str]:
    if not DEFAULT_ALLOWLIST.is_file():
        raise MetadataError(
            f"the profile redacts text but the context has no allowlist and {DEFAULT_ALLOWLIST} is missing: "
            "pass DeidContext(allowlist=load_allowlist(<description_allowlist.csv>))"
        )
    return load_allowlist(DEFAULT_ALLOWLIST)


def deidentify_metadata(ds: Dataset, profile: Profile, context: DeidContext, regenerate_meta: bool = True) -> MetadataReport:
    """De-identify ``ds`` in place; return what was done, per attribute path, without values.

    Raises MetadataError when the profile cannot be applied as asked (no subject for a date
    shift, no allowlist for redaction): the caller quarantines the instance. When ``ds`` has a
    file meta group it is regenerated (``regenerate_file_meta``) unless ``regenerate_meta`` is
    False, for a caller that regenerates it itself after a later step.
    """
    compiled = profile.compiled
    if compiled.needs_subject and not context.subject:
        raise MetadataError(
            f"profile {profile.name} shifts dates but the context has no subject: pass "
            "DeidContext(subject=<identified person id as text>) so the jitter equals the de-identified tables"
        )
    report = MetadataReport(profile.name)
    walker = _Walker(compiled, context, _context_allowlist(compiled, context), report)
    if compiled.allowlist_mode:
        modality = ds.get(0x00080060)
        walker.allowed = profile.allowed_tags(str(modality.value) if modality is not None and modality.value else None) | {SPECIFIC_CHARACTER_SET}
    walker.fast_text = byte_transparent(ds)
    walker.walk(ds, "")
    walker.insert(ds)
    _record_method(ds, profile, context, report, walker)
    if regenerate_meta and ds.__dict__.get("file_meta") is not None:
        regenerate_file_meta(ds, key=context.key, strict=False)
    return report


def _record_method(ds: Dataset, profile: Profile, context: DeidContext, report: MetadataReport, walker: _Walker) -> None:
    """PatientIdentityRemoved, DeidentificationMethod(CodeSequence) (PS3.15 E.1.1 step 6) and E.3.6."""
    codes = tuple(profile.method_codes(pixels_cleaned=context.pixels_cleaned))
    temporal = {"shift": "MODIFIED", "keep_year": "MODIFIED", "keep": "UNMODIFIED", "remove": "REMOVED"}[profile.dates]
    implicit, little = getattr(ds, "original_encoding", (None, None))
    d = ds._dict
    if implicit is None or little is None:
        elements = _method_elements(codes, tuple(profile.method), temporal)
    else:  # pre-encoded in the dataset's own encoding: no Dataset objects to build per instance
        elements = _method_raw_elements(codes, tuple(profile.method), temporal, implicit, little)
    for tag, elem in elements:
        action = REPLACED if tag in d else ADDED
        if elem.__class__ is RawDataElement:
            d[tag] = elem
        else:
            ds[tag] = DataElement(elem.tag, elem.VR, elem.value, validation_mode=_IGNORE) if elem.VR != "SQ" else _method_sequence(codes)
        walker.add(_name(int(tag)), action, "PS3.15 E.1.1")
    report.method_codes = tuple(v for v, _ in codes)
    report.temporal = temporal


def _method_sequence(codes: tuple[tuple[str, str], ...]) -> DataElement:
    items = []
    for value, meaning in codes:
        item = Dataset()
        item[0x00080100] = DataElement(0x00080100, "SH", value, validation_mode=_IGNORE)
        item[0x00080102] = DataElement(0x00080102, "SH", "DCM", validation_mode=_IGNORE)
        item[0x00080104] = DataElement(0x00080104, "LO", meaning, validation_mode=_IGNORE)
        items.append(item)
    return DataElement(DEIDENTIFICATION_METHOD_CODE_SEQUENCE, "SQ", Sequence(items), validation_mode=_IGNORE)


def _method_elements(codes, method, temporal) -> list[tuple[BaseTag, DataElement]]:
    out = [
        (PATIENT_IDENTITY_REMOVED, DataElement(PATIENT_IDENTITY_REMOVED, "CS", "YES", validation_mode=_IGNORE)),
        (DEIDENTIFICATION_METHOD, DataElement(DEIDENTIFICATION_METHOD, "LO", _joined(list(method)), validation_mode=_IGNORE)),
        (DEIDENTIFICATION_METHOD_CODE_SEQUENCE, _method_sequence(codes)),
        (LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
         DataElement(LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, "CS", temporal, validation_mode=_IGNORE)),
    ]
    return [(BaseTag(tag), elem) for tag, elem in out]


@lru_cache(maxsize=64)
def _method_raw_elements(codes, method, temporal, implicit: bool, little: bool) -> tuple[tuple[BaseTag, RawDataElement], ...]:
    """The four elements encoded once per (profile, pixel flag, encoding); immutable, so shared."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_sequence

    def raw(tag: int, vr: str, data: bytes) -> tuple[BaseTag, RawDataElement]:
        if len(data) & 1:
            data += b" "
        return BaseTag(tag), RawDataElement(BaseTag(tag), vr, len(data), data, 0, implicit, little, True, False)

    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    write_sequence(fp, _method_sequence(codes), ["iso8859"])
    return (
        raw(PATIENT_IDENTITY_REMOVED, "CS", b"YES"),
        raw(DEIDENTIFICATION_METHOD, "LO", "\\".join(method).encode("ascii")),
        (BaseTag(DEIDENTIFICATION_METHOD_CODE_SEQUENCE),
         RawDataElement(BaseTag(DEIDENTIFICATION_METHOD_CODE_SEQUENCE), "SQ", len(fp.getvalue()), fp.getvalue(), 0, implicit, little, True, False)),
        raw(LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, "CS", temporal.encode("ascii")),
    )


def regenerate_file_meta(ds: Dataset, transfer_syntax_uid: str | None = None, *, key: Key | None = None,
                         strict: bool = True) -> FileMetaDataset:
    """Replace the file meta group with one describing imgomop (PS3.15 E.1.1 step 7).

    Keeps the transfer syntax (or sets ``transfer_syntax_uid``) and the SOP class; the media
    storage SOP instance UID is the dataset's (already hashed) SOPInstanceUID; source, sending
    and receiving AE titles and private file meta are dropped; the preamble is zeroed.
    Idempotent: call again after a step that changes the transfer syntax.

    Without a SOPInstanceUID in the dataset (a DICOMDIR, a fragment) the old media storage
    UID is hashed with ``key`` when one is given; otherwise ``strict`` raises MetadataError
    (the file cannot be written) and non-strict leaves the element out.
    """
    old = ds.__dict__.get("file_meta") or FileMetaDataset()
    sop_instance = _uid_text(ds, 0x00080018)
    if not sop_instance and key is not None:
        sop_instance = hash_uid(_text(old.get(0x00020003)) or None, key) or ""
    if not sop_instance and strict:
        raise MetadataError("the dataset has no SOPInstanceUID: cannot write its file meta (instance not written)")
    sop_class = _uid_text(old, 0x00020002) or _uid_text(ds, 0x00080016)
    if not sop_class and strict:
        raise MetadataError("the dataset has no SOPClassUID and the file meta no MediaStorageSOPClassUID")
    syntax = transfer_syntax_uid or _uid_text(old, 0x00020010) or _syntax_from_encoding(ds)
    meta = FileMetaDataset({  # built as a whole: one validation, not one per element
        BaseTag(tag): DataElement(tag, vr, value, validation_mode=_IGNORE)
        for tag, vr, value in (
            (0x00020001, "OB", b"\x00\x01"),
            (0x00020002, "UI", sop_class),
            (0x00020003, "UI", sop_instance),
            (0x00020010, "UI", syntax),
            (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
            (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),
        )
        if value
    })
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    return meta


def _text(elem: DataElement | None) -> str:
    if elem is None or _is_empty(elem.value):
        return ""
    return str(elem.value).strip(" \x00")


def _uid_text(ds: Dataset, tag: int) -> str:
    """_text(ds.get(tag)) for a UI element; a plain UID is read without decoding the element."""
    return plain_text(ds, tag) or _text(ds.get(tag))


def _syntax_from_encoding(ds: Dataset) -> str:
    encoding = getattr(ds, "original_encoding", (None, None))
    implicit, little = encoding if encoding else (None, None)
    if implicit:
        return ImplicitVRLittleEndian
    if little is False:
        return ExplicitVRBigEndian
    return ExplicitVRLittleEndian
