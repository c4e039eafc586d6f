"""DICOM PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes) as data.

The table comes from the machine-readable copy in ``../shared/dicom-standard``
(innolitics/dicom-standard, ``confidentiality_profile_attributes.json``). The facts this
package needs are copied into ``table_e1_1.json`` beside this module by
``python -m extractor.scrub.metadata.build_table``, so the package works without ../shared;
the generated file records the source commit and the SHA-256 of the source file.

Vocabulary (PS3.15 E.1.1):

- action codes: D (dummy), Z (zero length or dummy), X (remove), K (keep; sequences are
  cleaned recursively), C (clean), U (replace UID consistently), and the combinations
  Z/D, X/Z, X/D, X/Z/D, X/Z/U* ("X unless Z / D / U is needed for IOD conformance");
- option columns (one per Annex E.3 option): the action that replaces the basic one when
  the option is on.

We do not check IOD conformance, so a combination resolves by a fixed, documented rule
(``DEFAULT_COMBINATIONS``) that a profile may override in its ``[combinations]`` table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

PACKAGE_TABLE = Path(__file__).with_name("table_e1_1.json")
# <repo>/../shared/dicom-standard/confidentiality_profile_attributes.json
SOURCE_TABLE = Path(__file__).resolve().parents[4] / "shared" / "dicom-standard" / "confidentiality_profile_attributes.json"

SINGLE_ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U"})
COMBINED_ACTIONS = frozenset({"Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
ALL_ACTIONS = SINGLE_ACTIONS | COMBINED_ACTIONS

# How a combined action resolves when IOD conformance is not checked (it is not, here).
# The rule: take the most protective choice (X before Z before D), which keeps every file
# readable (Type 3 attributes may be absent; readers do not require Type 2/1 attributes of
# the combinations below to open a file), except:
# - Z/D -> Z: Z/D attributes (Patient ID, Content Date/Time, Content Creator's Name, ...) are
#   Type 2 in the common image IODs, so they stay present, empty;
# - X/Z/U* -> U: Referenced Image Sequence and Source Image Sequence are kept and every UID
#   inside them is replaced (recursively, by the same hash as everywhere else), so references
#   between the scrubbed instances keep working.
# A profile can override any of these in [combinations] (e.g. "X/D" = "D").
DEFAULT_COMBINATIONS: Mapping[str, str] = {
    "X/Z": "X",
    "X/D": "X",
    "X/Z/D": "X",
    "Z/D": "Z",
    "X/Z/U*": "U",
}

# Option columns of the JSON, the friendly names profiles use, and the CID 7050 codes
# (PS3.16, De-identification Method) recorded in DeidentificationMethodCodeSequence.
OPTION_COLUMNS: tuple[str, ...] = (
    "rtnSafePrivOpt",
    "rtnUIDsOpt",
    "rtnDevIdOpt",
    "rtnInstIdOpt",
    "rtnPatCharsOpt",
    "rtnLongFullDatesOpt",
    "rtnLongModifDatesOpt",
    "cleanDescOpt",
    "cleanStructContOpt",
    "cleanGraphOpt",
)

OPTION_NAMES: Mapping[str, str] = {
    "retain_safe_private": "rtnSafePrivOpt",
    "retain_uids": "rtnUIDsOpt",
    "retain_device_identity": "rtnDevIdOpt",
    "retain_institution_identity": "rtnInstIdOpt",
    "retain_patient_characteristics": "rtnPatCharsOpt",
    "retain_longitudinal_full_dates": "rtnLongFullDatesOpt",
    "retain_longitudinal_modified_dates": "rtnLongModifDatesOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
}

# (code value, code meaning), coding scheme designator DCM; PS3.16 CID 7050.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_DATA_CODE = ("113101", "Clean Pixel Data Option")
OPTION_CODES: Mapping[str, tuple[str, str]] = {
    "cleanGraphOpt": ("113103", "Clean Graphics Option"),
    "cleanStructContOpt": ("113104", "Clean Structured Content Option"),
    "cleanDescOpt": ("113105", "Clean Descriptors Option"),
    "rtnLongFullDatesOpt": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "rtnLongModifDatesOpt": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "rtnPatCharsOpt": ("113108", "Retain Patient Characteristics Option"),
    "rtnDevIdOpt": ("113109", "Retain Device Identity Option"),
    "rtnUIDsOpt": ("113110", "Retain UIDs Option"),
    "rtnSafePrivOpt": ("113111", "Retain Safe Private Option"),
    "rtnInstIdOpt": ("113112", "Retain Institution Identity Option"),
}

# The options whose "C" means "modify the date/time" (E.3.6), not "clean the text".
TEMPORAL_OPTIONS = frozenset({"rtnLongModifDatesOpt"})


class TableError(ValueError):
    """The confidentiality table file is missing or malformed (the message names the file and row)."""


# --- tag patterns ---------------------------------------------------------------------

_TAG_PATTERN = re.compile(r"^\(?\s*([0-9A-Fa-fXx]{4})\s*,\s*([0-9A-Fa-fXx]{4})\s*\)?$")
_PRIVATE_PATTERN = re.compile(r"^\(gggg,eeee\)\s+where\s+gggg\s+is\s+odd$", re.IGNORECASE)


@dataclass(frozen=True)
class TagPattern:
    """A tag or a range of tags: ``tag & mask == value``; ``private`` = every odd group."""

    text: str
    mask: int
    value: int
    private: bool = False

    @property
    def is_exact(self) -> bool:
        return not self.private and self.mask == 0xFFFFFFFF

    def matches(self, tag: int) -> bool:
        if self.private:
            return bool((tag >> 16) & 1)
        return tag & self.mask == self.value


def parse_tag_pattern(text: str) -> TagPattern:
    """``(0010,0010)``, ``0010,0010``, ``00100010``, ``(50XX,XXXX)``, ``(60xx,3000)``,
    ``(GGGG,EEEE) WHERE GGGG IS ODD``. Each ``X`` is one hex digit that matches anything."""
    stripped = text.strip()
    if _PRIVATE_PATTERN.match(stripped):
        return TagPattern(stripped, 0, 0, private=True)
    compact = stripped
    if re.fullmatch(r"[0-9A-Fa-fXx]{8}", compact):
        compact = f"{compact[:4]},{compact[4:]}"
    m = _TAG_PATTERN.match(compact)
    if not m:
        raise ValueError(f"not a DICOM tag or tag range: {text!r} (expected e.g. (0010,0010) or (60XX,3000))")
    digits = (m.group(1) + m.group(2)).upper()
    mask = value = 0
    for ch in digits:
        mask <<= 4
        value <<= 4
        if ch != "X":
            mask |= 0xF
            value |= int(ch, 16)
    return TagPattern(stripped, mask, value)


def format_tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# --- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class TableEntry:
    pattern: TagPattern
    name: str
    basic: str
    options: Mapping[str, str]  # option column -> action
    in_std_comp_iod: bool


@dataclass(frozen=True)
class ResolvedAction:
    """The single action a table entry resolves to for a set of options."""

    code: str  # one of D Z X K C U
    origin: str  # e.g. "E.1-1 basic X/Z->X", "E.1-1 cleanDescOpt C"
    temporal: bool = False  # the C comes from a date option (modify dates) rather than text cleaning


@dataclass(frozen=True)
class ConfidentialityTable:
    entries: tuple[TableEntry, ...]
    source: Mapping[str, str] = field(default_factory=dict)

    @property
    def exact(self) -> dict[int, TableEntry]:
        return {e.pattern.value: e for e in self.entries if e.pattern.is_exact}

    @property
    def ranges(self) -> tuple[TableEntry, ...]:
        return tuple(e for e in self.entries if not e.pattern.is_exact and not e.pattern.private)

    @property
    def private(self) -> TableEntry | None:
        return next((e for e in self.entries if e.pattern.private), None)

    def lookup(self, tag: int) -> TableEntry | None:
        entry = self.exact.get(tag)
        if entry is not None:
            return entry
        for e in self.ranges:
            if e.pattern.matches(tag):
                return e
        if (tag >> 16) & 1:
            return self.private
        return None


def resolve_action(
    entry: TableEntry,
    options: Iterable[str] = (),
    combinations: Mapping[str, str] = DEFAULT_COMBINATIONS,
) -> ResolvedAction:
    """The action for one attribute given the enabled option columns.

    An enabled option's action replaces the basic action (PS3.15 E.1.1: "A requirement for an
    Option, when implemented, overrides any requirement for the underlying Profile"). When
    several enabled options name the attribute, the more protective wins: C (clean) before K
    (keep); e.g. Calibration Date with Retain Device Identity (K) and Retain Longitudinal
    Modified Dates (C) is modified, not kept.
    """
    hits = [(col, entry.options[col]) for col in OPTION_COLUMNS if col in options and col in entry.options]
    if hits:
        cleaning = [(c, a) for c, a in hits if a == "C"]
        col, act = cleaning[0] if cleaning else hits[0]
        return ResolvedAction(act, f"E.1-1 {col} {act}", temporal=act == "C" and col in TEMPORAL_OPTIONS)
    basic = entry.basic
    if basic in SINGLE_ACTIONS:
        return ResolvedAction(basic, f"E.1-1 basic {basic}")
    chosen = combinations.get(basic, DEFAULT_COMBINATIONS[basic])
    return ResolvedAction(chosen, f"E.1-1 basic {basic}->{chosen}")


# --- loading ----------------------------------------------------------------------------


def _entry_from_row(row: Mapping[str, object], where: str) -> TableEntry:
    try:
        tag_text = str(row["tag"])
        basic = str(row["basicProfile"])
        name = str(row.get("name", ""))
    except KeyError as exc:
        raise TableError(f"{where}: missing field {exc.args[0]!r}") from None
    try:
        pattern = parse_tag_pattern(tag_text)
    except ValueError as exc:
        raise TableError(f"{where} ({name}): {exc}") from None
    if basic not in ALL_ACTIONS:
        raise TableError(f"{where} ({name}): unknown basic profile action {basic!r}; known: {sorted(ALL_ACTIONS)}")
    opts: dict[str, str] = {}
    for col in OPTION_COLUMNS:
        act = row.get(col)
        if act is None or act == "":
            continue
        if act not in SINGLE_ACTIONS:
            raise TableError(f"{where} ({name}): unknown action {act!r} in option column {col}")
        opts[col] = str(act)
    iod = row.get("stdCompIOD", "Y")
    return TableEntry(pattern, name, basic, opts, iod in ("Y", True))


def load_source_table(path: Path | str | None = None) -> ConfidentialityTable:
    """Parse the innolitics JSON (a list of rows) into a table."""
    path = Path(path) if path is not None else SOURCE_TABLE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TableError(f"{path}: the Table E.1-1 JSON is missing") from None
    except json.JSONDecodeError as exc:
        raise TableError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise TableError(f"{path}: expected a JSON list of rows")
    entries = tuple(_entry_from_row(r, f"{path} row {i}") for i, r in enumerate(rows))
    _check_unique(entries, str(path))
    return ConfidentialityTable(entries, {"path": str(path)})


def _check_unique(entries: tuple[TableEntry, ...], where: str) -> None:
    seen: dict[tuple[int, int, bool], str] = {}
    for e in entries:
        k = (e.pattern.mask, e.pattern.value, e.pattern.private)
        if k in seen:
            raise TableError(f"{where}: tag {e.pattern.text} listed twice ({seen[k]}, {e.name})")
        seen[k] = e.name


def load_table(path: Path | str | None = None) -> ConfidentialityTable:
    """The packaged compact table (``table_e1_1.json``), or another file in the same format."""
    if path is None:
        return _packaged_table()
    return _load_compact(Path(path))


@lru_cache(maxsize=1)
def _packaged_table() -> ConfidentialityTable:
    return _load_compact(PACKAGE_TABLE)


def _load_compact(path: Path) -> ConfidentialityTable:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TableError(
            f"{path}: the packaged Table E.1-1 is missing; regenerate it with "
            "`python -m extractor.scrub.metadata.build_table`"
        ) from None
    rows = data.get("attributes")
    if not isinstance(rows, list):
        raise TableError(f"{path}: expected an `attributes` list")
    entries = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 5:
            raise TableError(f"{path} attribute {i}: expected [tag, name, basic, in_std_comp_iod, options]")
        tag, name, basic, iod, opts = row
        entries.append(
            _entry_from_row(
                {"tag": tag, "name": name, "basicProfile": basic, "stdCompIOD": "Y" if iod else "N", **opts},
                f"{path} attribute {i}",
            )
        )
    entries_t = tuple(entries)
    _check_unique(entries_t, str(path))
    return ConfidentialityTable(entries_t, dict(data.get("source", {})))


def compact_rows(table: ConfidentialityTable) -> list[list[object]]:
    """Rows for the packaged file, sorted by tag text."""
    rows = [
        [e.pattern.text, e.name, e.basic, e.in_std_comp_iod, dict(e.options)]
        for e in table.entries
    ]
    return sorted(rows, key=lambda r: str(r[0]).upper())
