"""Compile a Profile into what the walker needs: one dict tag -> Rule, and a few ranges.

Everything that can be decided without the instance is decided here, once per profile:
the Table E.1-1 action of each attribute under the profile's options and combination
choices, the VR-based extensions (unlisted UIDs and dates), the built-in rules (Icon Image
Sequence, file meta and command groups in a dataset), and the profile's own overrides.
Attributes with no rule and a non-sequence VR are never decoded by the walker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pydicom.datadict import DicomDictionary

from extractor.scrub.metadata.confidentiality import (
    ConfidentialityTable,
    TagPattern,
    load_table,
    resolve_action,
)
from extractor.scrub.metadata.profile import AttributeRule, Profile

# Runtime action codes.
REMOVE = "remove"
EMPTY = "empty"
DUMMY = "dummy"
KEEP = "keep"
HASH_UID = "hash_uid"
HASH_UID_UNLISTED = "hash_uid_unlisted"  # hash unless the value is a DICOM-registered UID (1.2.840.10008.*)
HASH_TEXT = "hash_text"
DATE = "date"  # a date option's C, or an unlisted DA/DT/TM: follows [dates]
SHIFT_DATE = "shift_date"  # explicit override: always shift
REDACT = "redact"
CLEAN = "clean"  # the table's C on a non-temporal attribute: redact text, clean sequences, else remove
REPLACE = "replace"
UID = "uid"  # the table's U: hash a UID; on a sequence (X/Z/U*) keep it and clean inside

DICOM_UID_ROOT = "1.2.840.10008."

# UI attributes that name classes, syntaxes or coding schemes, never instances: kept as they
# are (PS3.15 E.3.9 note 4: "one would never remove or replace the SOP Class UID").
STRUCTURAL_UIDS = frozenset(
    {
        0x00000002,  # AffectedSOPClassUID
        0x00000003,  # RequestedSOPClassUID
        0x00020002,  # MediaStorageSOPClassUID
        0x00020010,  # TransferSyntaxUID
        0x00020032,  # RTVCommunicationSOPClassUID
        0x00041510,  # ReferencedSOPClassUIDInFile
        0x00041512,  # ReferencedTransferSyntaxUIDInFile
        0x0004151A,  # ReferencedRelatedGeneralSOPClassUIDInFile
        0x00080016,  # SOPClassUID
        0x0008001A,  # RelatedGeneralSOPClassUID
        0x0008001B,  # OriginalSpecializedSOPClassUID
        0x00080062,  # SOPClassesInStudy
        0x0008010C,  # CodingSchemeUID (e.g. SNOMED's 2.16.840.1.113883.6.96)
        0x00080117,  # ContextUID
        0x00080118,  # MappingResourceUID
        0x0008040E,  # StoredInstanceTransferSyntaxUID
        0x00081150,  # ReferencedSOPClassUID
        0x0008115A,  # SOPClassesSupported
        0x00083002,  # AvailableTransferSyntaxUID
        0x00340003,  # FlowTransferSyntaxUID
        0x04000010,  # MACCalculationTransferSyntaxUID
        0x04000510,  # EncryptedContentTransferSyntaxUID
        0x30100052,  # PertinentSOPClassesInStudy
        0x30100053,  # PertinentSOPClassesInSeries
    }
)

DICT_VR = {tag: entry[0] for tag, entry in DicomDictionary.items()}
KNOWN_TAGS = frozenset(DicomDictionary)
SQ_TAGS = frozenset(t for t, vr in DICT_VR.items() if vr == "SQ")
UI_TAGS = frozenset(t for t, vr in DICT_VR.items() if vr == "UI")
DA_DT_TAGS = frozenset(t for t, vr in DICT_VR.items() if vr in ("DA", "DT"))
TM_TAGS = frozenset(t for t, vr in DICT_VR.items() if vr == "TM")
META_AND_COMMAND_TAGS = frozenset(t for t in DicomDictionary if t < 0x00030000)

ICON_IMAGE_SEQUENCE = 0x00880200
# Written by the de-identifier after the walk (PS3.15 E.1.1 step 6, E.3.6).
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODE_SEQUENCE = 0x00120064
LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED = 0x00280303
WRITTEN_BY_DEIDENTIFIER = frozenset(
    {PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODE_SEQUENCE, LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED}
)


@dataclass(frozen=True)
class Rule:
    action: str
    origin: str  # why: "E.1-1 basic X", "profile", "VR UI (not in E.1-1)", ...
    temporal: bool = False
    attribute: AttributeRule | None = None  # the profile entry, for replace / hash_text / fallbacks


@dataclass(frozen=True)
class CompiledProfile:
    profile: Profile
    rules: Mapping[int, Rule]
    rule_tags: frozenset[int]
    ranges: tuple[tuple[TagPattern, Rule], ...]  # checked for tags outside the dictionary (50xx, 60xx, ...)
    private_rule: Rule
    safe_private: frozenset[tuple[int, str, int]]  # (group, creator, low byte) when retain_safe_private is on
    inserts: tuple[AttributeRule, ...]
    needs_subject: bool
    needs_allowlist: bool
    allowlist_mode: bool


_TABLE_CODE = {"X": REMOVE, "Z": EMPTY, "D": DUMMY, "K": KEEP, "U": UID, "C": CLEAN}


def _table_rule(entry, profile: Profile) -> Rule:
    resolved = resolve_action(entry, profile.options, profile.combinations)
    if resolved.temporal:
        return Rule(DATE, resolved.origin, temporal=True)
    return Rule(_TABLE_CODE[resolved.code], resolved.origin)


def _decide_temporal(vr: str | None, rule: Rule, profile: Profile) -> Rule | None:
    """A DATE rule as KEEP or EMPTY when the dictionary VR and the profile settle it."""
    if vr == "TM":
        if profile.dates == "keep" or profile.times == "keep":
            return Rule(KEEP, rule.origin, temporal=True)
        return Rule(EMPTY, f"{rule.origin}: times removed", temporal=True)
    if vr in ("DA", "DT"):
        if profile.dates == "keep":
            return Rule(KEEP, rule.origin, temporal=True)
        if profile.dates == "remove":
            return Rule(EMPTY, f"{rule.origin}: dates removed", temporal=True)
    return None  # shift / keep_year need the value; other VRs (time zone offset) are decided when applied


def compile_profile(profile: Profile, table: ConfidentialityTable | None = None) -> CompiledProfile:
    table = table or load_table()
    rules: dict[int, Rule] = {}
    retain_uids = "rtnUIDsOpt" in profile.options

    # 1. VR-based extensions for attributes the table does not list (PS3.15 E.1.1 note 4).
    if profile.hash_unlisted_uids and not retain_uids:
        for tag in UI_TAGS - STRUCTURAL_UIDS:
            rules[tag] = Rule(HASH_UID_UNLISTED, "VR UI, not in E.1-1")
    if profile.dates_by_vr:
        for tag in DA_DT_TAGS | TM_TAGS:
            rules[tag] = Rule(DATE, "VR DA/DT/TM, not in E.1-1", temporal=True)

    # 2. Table E.1-1 with the profile's options and combination choices.
    ranges: list[tuple[TagPattern, Rule]] = []
    private_rule = Rule(REMOVE, "E.1-1 private X")
    for entry in table.entries:
        rule = _table_rule(entry, profile)
        if entry.pattern.private:
            private_rule = rule
        elif entry.pattern.is_exact:
            rules[entry.pattern.value] = rule
        else:
            ranges.append((entry.pattern, rule))

    # 3. Built-in rules: the icon may show burned-in text (PS3.15 E.1-1 note 11: removed when its
    # pixels are not cleaned; they are not); file meta and command elements do not belong in a dataset.
    rules[ICON_IMAGE_SEQUENCE] = Rule(REMOVE, "icon image: not pixel-cleaned (E.1-1 note 11)")
    for tag in META_AND_COMMAND_TAGS:
        rules[tag] = Rule(REMOVE, "file meta / command element inside the dataset")

    # 4. The profile's own rules win.
    inserts = []
    for attr in profile.attributes:
        rule = Rule(attr.action, "profile", attribute=attr)  # profile action names are runtime codes
        if attr.pattern.is_exact:
            rules[attr.pattern.value] = rule
            if attr.insert:
                inserts.append(attr)
        else:
            ranges.insert(0, (attr.pattern, rule))

    # Date rules whose outcome does not depend on the value are decided now (no decoding later).
    for tag, rule in list(rules.items()):
        if rule.action == DATE:
            decided = _decide_temporal(DICT_VR.get(tag), rule, profile)
            if decided is not None:
                rules[tag] = decided

    # Written after the walk (PatientIdentityRemoved, ...): the walker leaves them alone.
    for tag in WRITTEN_BY_DEIDENTIFIER:
        rules.pop(tag, None)

    actions = {r.action for r in rules.values()} | {r.action for _, r in ranges} | {private_rule.action}
    fallbacks = {a.fallback_action for a in profile.attributes if a.fallback_action}
    needs_subject = profile.dates == "shift" or SHIFT_DATE in actions or SHIFT_DATE in fallbacks
    needs_allowlist = bool({CLEAN, REDACT} & (actions | fallbacks))
    safe = frozenset()
    if private_rule.action == CLEAN:  # retain_safe_private: C = keep the safe ones
        safe = frozenset((s.group, s.creator, s.element) for s in profile.safe_private)
    return CompiledProfile(
        profile=profile,
        rules=rules,
        rule_tags=frozenset(rules),
        ranges=tuple(ranges),
        private_rule=private_rule,
        safe_private=safe,
        inserts=tuple(inserts),
        needs_subject=needs_subject,
        needs_allowlist=needs_allowlist,
        allowlist_mode=profile.base == "allowlist",
    )
