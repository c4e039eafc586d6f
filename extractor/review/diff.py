"""The metadata inspector: what the scrub did to each attribute, found by comparing two datasets.

`compare(original, scrubbed)` walks both datasets (sequences at any depth, items paired by
position) and says, for every attribute, what happened to it:

| change | when |
| --- | --- |
| removed | in the original, absent from the scrubbed file |
| emptied | had a value, present but empty in the scrubbed file |
| kept | the same value in both |
| hashed | a UI value that changed (a keyed-hash UID) |
| shifted | a DA or DT value that changed (date jitter) |
| replaced | any other value that changed (pseudonym, redacted text, dummy value) |
| added | absent from the original, present in the scrubbed file (e.g. PatientIdentityRemoved) |

The comparison trusts neither the scrubber's report nor the profile: it looks at the files
as released. The file meta (group 0002) is not compared: the scrubber rewrites it from the
dataset. Pixel Data is compared by the images, not here.

`phi_category(change)` sorts a changed attribute into a PHI category for the statistics
(names, IDs, UIDs, dates and times, institutions, addresses and phones, patient characteristics,
free text, private attributes, other); burned-in text is counted
from the pixel regions of the manifest, not from the header.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

REMOVED, EMPTIED, REPLACED, HASHED, SHIFTED, KEPT, ADDED = (
    "removed", "emptied", "replaced", "hashed", "shifted", "kept", "added",
)  # fmt: skip
CHANGES = (REMOVED, EMPTIED, REPLACED, HASHED, SHIFTED, KEPT, ADDED)
# What counts as a PHI action in the statistics (kept and added values are not).
PHI_ACTIONS = frozenset({REMOVED, EMPTIED, REPLACED, HASHED, SHIFTED})

NAMES, IDS, UIDS, DATES, INSTITUTIONS, CONTACT, CHARACTERISTICS, FREE_TEXT, PRIVATE, OTHER, BURNED_IN = (
    "names", "IDs", "UIDs", "dates and times", "institutions", "addresses and phones",
    "patient characteristics", "free text", "private attributes", "other", "burned-in text",
)  # fmt: skip
PHI_CATEGORIES = (
    NAMES, IDS, UIDS, DATES, INSTITUTIONS, CONTACT, CHARACTERISTICS, FREE_TEXT, PRIVATE, OTHER, BURNED_IN,
)  # fmt: skip
PATIENT_CHARACTERISTICS = frozenset(
    {"PatientAge", "PatientSex", "PatientSize", "PatientWeight", "EthnicGroup", "PatientSexNeutered", "SmokingStatus"}
)
PERSON_WORDS = ("Physician", "Operator", "PersonIdentification", "PersonName")

PIXEL_DATA = 0x7FE00010
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
MAX_SHOWN = 120  # characters of a value shown in the inspector


@dataclass(frozen=True)
class AttributeChange:
    """One attribute (at one sequence path) and what the scrub did to it; values as display text."""

    path: str  # e.g. "ReferencedSeriesSequence[0].SeriesInstanceUID"
    tag: str  # "(0020,000E)"
    keyword: str
    vr: str
    original: str | None  # None: absent
    scrubbed: str | None
    change: str


def compare(original: Dataset, scrubbed: Dataset) -> list[AttributeChange]:
    """Every attribute of either dataset, in tag order, with its change category."""
    return list(_walk(original, scrubbed, ""))


def _walk(original: Dataset, scrubbed: Dataset, prefix: str) -> Iterator[AttributeChange]:
    tags = sorted(set(original.keys()) | set(scrubbed.keys()))
    for tag in tags:
        if tag == PIXEL_DATA:
            continue
        before = original.get(tag) if tag in original else None
        after = scrubbed.get(tag) if tag in scrubbed else None
        element = before if before is not None else after
        path = prefix + (element.keyword or _tag_text(element.tag))
        if _both_sequences_with_items(before, after):
            yield from _walk_sequences(before.value, after.value, path)
            continue
        yield AttributeChange(
            path=path,
            tag=_tag_text(element.tag),
            keyword=element.keyword,
            vr=str(element.VR),
            original=display_value(before) if before is not None else None,
            scrubbed=display_value(after) if after is not None else None,
            change=classify(before, after),
        )


def _both_sequences_with_items(before: DataElement | None, after: DataElement | None) -> bool:
    return (
        before is not None and after is not None and before.VR == "SQ" and after.VR == "SQ"
        and bool(before.value) and bool(after.value)
    )  # fmt: skip


def _walk_sequences(before: Sequence, after: Sequence, path: str) -> Iterator[AttributeChange]:
    for index in range(max(len(before), len(after))):
        item_before = before[index] if index < len(before) else Dataset()
        item_after = after[index] if index < len(after) else Dataset()
        yield from _walk(item_before, item_after, f"{path}[{index}].")


def classify(before: DataElement | None, after: DataElement | None) -> str:
    """The change category of one attribute (None: absent on that side)."""
    if before is None:
        return ADDED
    if after is None:
        return REMOVED
    if _is_empty(before) and _is_empty(after):
        return KEPT
    if _is_empty(after):
        return EMPTIED
    if _same_value(before, after):
        return KEPT
    vr = str(after.VR)
    if vr == "UI":
        return HASHED
    if vr in ("DA", "DT"):
        return SHIFTED
    return REPLACED


def _is_empty(element: DataElement) -> bool:
    value = element.value
    if value is None:
        return True
    if isinstance(value, (bytes, Sequence, MultiValue, list)):
        return len(value) == 0
    return not str(value).strip("\x00 ")  # str, PersonName, numbers


def _same_value(before: DataElement, after: DataElement) -> bool:
    if before.VR == "SQ" or after.VR == "SQ":
        return False  # one side is not a sequence: the type changed
    return _normalised(before.value) == _normalised(after.value)


def _normalised(value: object) -> object:
    if isinstance(value, (MultiValue, list, tuple)):
        return tuple(_normalised(v) for v in value)
    if isinstance(value, str):
        return value.strip("\x00 ")
    if isinstance(value, bytes):
        return value.rstrip(b"\x00 ")
    return str(value)


def display_value(element: DataElement) -> str:
    """A short, printable form of an element's value (bulk data and sequences summarised)."""
    vr = str(element.VR)
    value = element.value
    if vr == "SQ":
        return f"<sequence, {len(value or [])} item(s)>"
    if vr in BULK_VRS or isinstance(value, bytes):
        return f"<{len(value or b'')} bytes>"
    if value is None:
        return ""
    text = "\\".join(str(v) for v in value) if isinstance(value, (MultiValue, list, tuple)) else str(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def change_counts(changes: Iterable[AttributeChange]) -> Counter:
    """How many attributes fell in each change category."""
    return Counter(c.change for c in changes)


def phi_category(change: AttributeChange) -> str | None:
    """The PHI category of a changed attribute; None when it was kept or added."""
    if change.change not in PHI_ACTIONS:
        return None
    keyword, vr = change.keyword, change.vr
    if int(change.tag[1:5], 16) % 2:
        return PRIVATE
    if "Institution" in keyword or "Station" in keyword:
        return INSTITUTIONS
    if vr == "PN" or any(word in keyword for word in PERSON_WORDS):
        return NAMES
    if vr == "UI":
        return UIDS
    if vr in ("DA", "DT", "TM") or "Timezone" in keyword:
        return DATES
    if _is_identifier(keyword):
        return IDS
    if "Address" in keyword or "Telephone" in keyword:
        return CONTACT
    if keyword in PATIENT_CHARACTERISTICS:
        return CHARACTERISTICS
    if vr in TEXT_VRS:
        return FREE_TEXT
    return OTHER


def _is_identifier(keyword: str) -> bool:
    return (
        keyword.endswith(("ID", "IDs", "Identifier", "SerialNumber"))
        or keyword in ("AccessionNumber", "OtherPatientIDsSequence", "MedicalRecordLocator")
        or "IDSequence" in keyword
    )


def phi_counts(changes: Iterable[AttributeChange]) -> Counter:
    """Changed attributes per PHI category."""
    return Counter(category for c in changes if (category := phi_category(c)) is not None)
