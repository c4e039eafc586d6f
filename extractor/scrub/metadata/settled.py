"""De-identify a dataset with the walker doing only the work that needs it.

Most elements of a header meet a rule that does not look at their value: remove it (private
groups, group lengths, most of Table E.1-1's X) or leave it as it is (an attribute no rule
names, or a K). ``deidentify_settled`` removes or keeps those by tag, from a table built once
per compiled profile, and hands the rest (values to hash, shift, redact or replace, sequences,
ranges, unknown attributes) to ``deidentify_metadata`` in a dataset of their own. What the
walker did to a raw value is remembered for the next element with the same bytes in the same
context (a series repeats its UIDs, dates and descriptions). The dataset ends exactly as
``deidentify_metadata`` leaves it (tests/test_scrub_header.py compares the written bytes); only
the report is not built for the elements settled by tag or from memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from extractor.scrub.header import _element_bytes

from extractor.scrub.metadata.apply import (
    SPECIFIC_CHARACTER_SET,
    DeidContext,
    byte_transparent,
    deidentify_metadata,
    regenerate_file_meta,
)
from extractor.scrub.metadata.profile import Profile
from extractor.scrub.metadata.rules import (
    EMPTY,
    KEEP,
    KNOWN_TAGS,
    REMOVE,
    SQ_TAGS,
    WRITTEN_BY_DEIDENTIFIER,
    CompiledProfile,
)

_MODALITY = 0x00080060
_PRIVATE_CREATOR_MASK, _PRIVATE_CREATOR = 0x1FF00, 0x10000  # (odd group, 00xx)


@dataclass(frozen=True)
class SettledTags:
    """Dictionary tags whose outcome under a profile follows from the tag alone."""

    removed: frozenset[int]
    walked: frozenset[int]  # the walker must see these (any other dictionary tag is kept as it is)
    by_value: frozenset[int]  # walked for a value rule alone: the outcome follows from the value
    emptied: frozenset[int]  # among those, emptied whatever the value


_tables: dict[int, tuple[CompiledProfile, SettledTags | None]] = {}


def settled_tags(compiled: CompiledProfile) -> SettledTags | None:
    """The walker's outcome by tag (its _walk and apply), once per compiled profile; None in
    allowlist mode, where the modality decides what survives (everything is walked)."""
    cached = _tables.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    settled = None
    if not compiled.allowlist_mode:
        always_walked = WRITTEN_BY_DEIDENTIFIER | {SPECIFIC_CHARACTER_SET, _MODALITY} | {a.tag for a in compiled.inserts}
        removed, walked = set(), set(always_walked & KNOWN_TAGS)
        for tag in KNOWN_TAGS - always_walked:
            rule = compiled.rules.get(tag)
            action = rule.action if rule is not None else None
            if action == REMOVE:
                removed.add(tag)
            elif tag in SQ_TAGS or action not in (None, KEEP):
                walked.add(tag)  # sequences are walked for their items; other actions need the value
        by_value = frozenset(walked - SQ_TAGS - always_walked)
        emptied = frozenset(t for t in by_value if compiled.rules[t].action == EMPTY)
        settled = SettledTags(frozenset(removed), frozenset(walked), by_value, emptied)
    _tables[id(compiled)] = (compiled, settled)
    return settled


def _split_unknown(tags: set[int], compiled: CompiledProfile) -> tuple[set[int], set[int]]:
    """(removed, walked) among tags outside the dictionary, as the walker's outside_dictionary
    decides them by tag: private elements go unless some are listed safe; group lengths, file
    meta and command elements go; ranges, repeating groups and unknown attributes are walked."""
    private = {t for t in tags if t & 0x10000}
    other = tags - private
    removed = {t for t in other if t & 0xFFFF == 0 or t >> 16 < 3}
    walked = other - removed
    if compiled.safe_private:
        return removed, walked | private
    return removed | private, walked


# The walker's outcome for an element walked for its value: a pure function of the element's
# bytes and the context (key, subject, parameters, allowlist, character set); remembered, since a
# series repeats most of its values file after file. Per compiled profile and context, bounded.
_UNCHANGED, _REMOVED = "unchanged", "removed"
_OUTCOMES: dict[int, tuple[CompiledProfile, dict[tuple, dict]]] = {}
_CONTEXTS_MAX, _OUTCOMES_MAX = 64, 20_000  # contexts: the patients of the last files (folder mode)
_REMEMBERED_LENGTH_MAX = 1024


def _outcomes(ds: Dataset, compiled: CompiledProfile, context: DeidContext) -> dict | None:
    """The outcomes remembered for this profile and context; None when the context is unhashable."""
    return remembered_outcomes(byte_transparent(ds), compiled, context)


def remembered_outcomes(transparent: bool, compiled: CompiledProfile, context: DeidContext) -> dict | None:
    """_outcomes for a dataset whose byte_transparent is ``transparent``."""
    try:
        parameters = tuple(sorted(context.parameters.items()))
        context_key = (transparent, context.key, context.subject, parameters, context.allowlist,
                       context.deid_parameters)
        hash(context_key)
    except TypeError:
        return None
    entry = _OUTCOMES.get(id(compiled))
    if entry is None or entry[0] is not compiled or len(entry[1]) > _CONTEXTS_MAX:
        entry = _OUTCOMES[id(compiled)] = (compiled, {})
    outcomes = entry[1].get(context_key)
    if outcomes is None or len(outcomes) > _OUTCOMES_MAX:
        outcomes = entry[1][context_key] = {}
    return outcomes


def deidentify_settled(ds: Dataset, profile: Profile, context: DeidContext) -> None:
    """What ``deidentify_metadata(ds, profile, context)`` does to ``ds`` (file meta included)."""
    compiled = profile.compiled
    settled = settled_tags(compiled)
    if settled is None:
        deidentify_metadata(ds, profile, context)
        return
    d = ds._dict
    keymap = dict(zip(map(int, d), d))
    present = set(keymap)
    removed = present & settled.removed
    walked = present & settled.walked
    unknown = present.difference(KNOWN_TAGS)  # iterates present, not the dictionary
    if unknown:
        unknown_removed, unknown_walked = _split_unknown(unknown, compiled)
        removed |= unknown_removed
        walked |= unknown_walked
        if ds._private_blocks and any(t & _PRIVATE_CREATOR_MASK == _PRIVATE_CREATOR for t in unknown_removed):
            ds._private_blocks = {}
    for tag in removed:
        del d[keymap[tag]]
    remembered, asked = _recall(ds, walked & settled.by_value, settled.emptied, keymap, compiled, context)
    rest = Dataset({keymap[tag]: d.pop(keymap[tag]) for tag in walked if tag not in remembered})
    rest.set_original_encoding(*ds.original_encoding, ds.original_character_set)
    deidentify_metadata(rest, profile, context, regenerate_meta=False)
    _remember(asked, rest, ds.original_encoding[0], byte_transparent(ds))
    d.update(rest._dict)
    for key, elem in remembered.values():
        if elem is None:
            del d[key]
        else:
            d[key] = elem
    if ds.__dict__.get("file_meta") is not None:
        regenerate_file_meta(ds, key=context.key, strict=False)


def _recall(ds: Dataset, tags: set[int], emptied: frozenset[int], keymap: dict, compiled: CompiledProfile,
            context: DeidContext) -> tuple[dict, dict]:
    """For raw elements walked for their value: {tag: (key, element after the walk, or None if
    removed)} for those met before (taken out of ds), and {key: (outcomes, outcome key, element)}
    for the walker to settle."""
    outcomes = _outcomes(ds, compiled, context) if tags else None
    if outcomes is None:
        return {}, {}
    d = ds._dict
    remembered, asked = {}, {}
    for tag in tags:
        key = keymap[tag]
        elem = d[key]
        if elem.__class__ is not RawDataElement or elem.length > _REMEMBERED_LENGTH_MAX:
            continue  # decoded already (by a filter, say), or a long value: the walker decides
        value = None if tag in emptied else elem.value  # an emptied value's outcome does not depend on it
        outcome_key = (tag, elem.VR, value, elem.is_implicit_VR, elem.is_little_endian)
        outcome = outcomes.get(outcome_key)
        if outcome is None:
            asked[key] = (outcomes, outcome_key, elem)
        elif outcome is _UNCHANGED:
            remembered[tag] = (key, elem)
        elif outcome is _REMOVED:
            remembered[tag] = (key, None)
        else:
            vr, value = outcome
            remembered[tag] = (key, tuple.__new__(RawDataElement, (
                key, vr, len(value), value, elem.value_tell, elem.is_implicit_VR, elem.is_little_endian, True, False)))
    for tag in remembered:
        del d[keymap[tag]]
    return remembered, asked


def _remember(asked: dict, walked: Dataset, implicit: bool, transparent: bool) -> None:
    """Record what the walker did to the elements asked about, where the result is raw bytes,
    or ASCII text it decoded from ASCII bytes (as the bytes pydicom writes for it: the same
    whatever the character set, where that set keeps ASCII as it is)."""
    d = walked._dict
    for key, (outcomes, outcome_key, before) in asked.items():
        after = d.get(key)
        if after is None:
            outcomes[outcome_key] = _REMOVED
        elif after is before:
            outcomes[outcome_key] = _UNCHANGED
        elif after.__class__ is RawDataElement:
            outcomes[outcome_key] = (after.VR, after.value)
        elif transparent and after.__class__ is DataElement and before.value.__class__ is bytes and before.value.isascii():
            encoded = _ascii_value_bytes(after, implicit)
            if encoded is not None:
                outcomes[outcome_key] = (after.VR, encoded)
        # else decoded by the walker into something else: not remembered


_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UT"})


def _ascii_value_bytes(elem: DataElement, implicit: bool) -> bytes | None:
    """The value bytes pydicom writes for a text element holding one ASCII string; None otherwise."""
    value = elem.value
    if value.__class__ is not str or not value.isascii() or elem.VR not in _TEXT_VRS or elem.is_undefined_length:
        return None
    encoded = _element_bytes(elem, implicit, default_encoding)
    header = 8 if implicit or elem.VR not in EXPLICIT_VR_LENGTH_32 else 12
    return encoded[header:]
