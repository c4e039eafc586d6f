"""De-identify a dataset with the walker doing only the work that needs it.

Most elements of a header meet a rule that does not look at their value: remove it (private
groups, group lengths, most of Table E.1-1's X) or leave it as it is (an attribute no rule
names, or a K). ``deidentify_settled`` removes or keeps those by tag, from a table built once
per compiled profile, and hands the rest (values to hash, shift, redact or replace, sequences,
ranges, unknown attributes) to ``deidentify_metadata`` in a dataset of their own. The dataset
ends exactly as ``deidentify_metadata`` leaves it (tests/test_scrub_header.py compares the
written bytes); only the report is not built for the elements settled by tag.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from extractor.scrub.metadata.apply import SPECIFIC_CHARACTER_SET, DeidContext, deidentify_metadata, regenerate_file_meta
from extractor.scrub.metadata.profile import Profile
from extractor.scrub.metadata.rules import (
    KEEP,
    KNOWN_TAGS,
    REMOVE,
    SQ_TAGS,
    WRITTEN_BY_DEIDENTIFIER,
    CompiledProfile,
)

KEPT, REMOVED, WALKED = True, False, None
_MODALITY = 0x00080060
_UNKNOWN = object()  # not in the DICOM dictionary: settled by _unknown_fate
_tables: dict[int, tuple[CompiledProfile, dict[int, bool | None]]] = {}


def settled_table(compiled: CompiledProfile) -> dict[int, bool | None]:
    """Per dictionary tag: KEPT or REMOVED when the walker's outcome follows from the tag alone,
    WALKED when the walker must see the element. Empty in allowlist mode (all walked)."""
    cached = _tables.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    table: dict[int, bool | None] = {}
    if not compiled.allowlist_mode:
        walked = WRITTEN_BY_DEIDENTIFIER | {SPECIFIC_CHARACTER_SET, _MODALITY} | {a.tag for a in compiled.inserts}
        rules = compiled.rules
        for tag in KNOWN_TAGS:
            rule = rules.get(tag)
            if tag in walked or tag in SQ_TAGS and (rule is None or rule.action != REMOVE):
                table[tag] = WALKED  # sequences are walked for their items
            elif rule is None or rule.action == KEEP:
                table[tag] = KEPT
            elif rule.action == REMOVE:
                table[tag] = REMOVED
            else:
                table[tag] = WALKED
    _tables[id(compiled)] = (compiled, table)
    return table


def _unknown_fate(tag: int, compiled: CompiledProfile) -> bool | None:
    """The walker's outside_dictionary, for the cases decided by the tag alone."""
    if tag >> 16 & 1:
        return WALKED if compiled.safe_private else REMOVED  # private: removed unless listed safe
    if tag & 0xFFFF == 0 or tag >> 16 < 3:
        return REMOVED  # group lengths, file meta and command elements
    return WALKED


def deidentify_settled(ds: Dataset, profile: Profile, context: DeidContext) -> None:
    """What ``deidentify_metadata(ds, profile, context)`` does to ``ds`` (file meta included)."""
    compiled = profile.compiled
    table = settled_table(compiled)
    if not table:
        deidentify_metadata(ds, profile, context)
        return
    d = ds._dict
    walked: dict = {}
    private_creator_removed = False
    keys = list(d)
    for key, tag in zip(keys, map(int, keys)):
        fate = table.get(tag, _UNKNOWN)
        if fate is _UNKNOWN:
            fate = _unknown_fate(tag, compiled)
        if fate is KEPT:
            continue
        elem = d.pop(key)
        if fate is WALKED:
            walked[key] = elem
        elif tag & 0x1FF00 == 0x10000:
            private_creator_removed = True
    if private_creator_removed and ds._private_blocks:
        ds._private_blocks = {}
    rest = Dataset(walked)
    rest.set_original_encoding(*ds.original_encoding, ds.original_character_set)
    deidentify_metadata(rest, profile, context, regenerate_meta=False)
    d.update(rest._dict)
    if ds.__dict__.get("file_meta") is not None:
        regenerate_file_meta(ds, key=context.key, strict=False)
