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

from dataclasses import dataclass

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

_MODALITY = 0x00080060
_PRIVATE_CREATOR_MASK, _PRIVATE_CREATOR = 0x1FF00, 0x10000  # (odd group, 00xx)


@dataclass(frozen=True)
class SettledTags:
    """Dictionary tags whose outcome under a profile follows from the tag alone."""

    removed: frozenset[int]
    walked: frozenset[int]  # the walker must see these (any other dictionary tag is kept as it is)


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
        settled = SettledTags(frozenset(removed), frozenset(walked))
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
    rest = Dataset({keymap[tag]: d.pop(keymap[tag]) for tag in walked})
    rest.set_original_encoding(*ds.original_encoding, ds.original_character_set)
    deidentify_metadata(rest, profile, context, regenerate_meta=False)
    d.update(rest._dict)
    if ds.__dict__.get("file_meta") is not None:
        regenerate_file_meta(ds, key=context.key, strict=False)
