"""Metadata de-identification: PS3.15 Table E.1-1 with its options, allowlists, per-study parameters.

    profile = load_profile("extractor/scrub/profiles/pre-irb.toml")      # validated; ProfileError names file:line
    context = DeidContext(key=key, subject=str(person_id),
                          parameters={"PatientID": ..., "PatientName": ..., "AccessionNumber": ...},
                          allowlist=load_allowlist("vocab/seeds/description_allowlist.csv"))
    report = deidentify_metadata(ds, profile, context)                  # ds changed in place
    regenerate_file_meta(ds)                                            # again, if the transfer syntax changed

Modules: confidentiality (the table), profile (files and validation), rules (compiled
profile), apply (the walker), build_table (regenerates table_e1_1.json).
"""

from extractor.scrub.metadata.apply import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    DeidContext,
    MetadataError,
    MetadataReport,
    ReportEntry,
    deidentify_metadata,
    regenerate_file_meta,
)
from extractor.scrub.metadata.confidentiality import (
    DEFAULT_COMBINATIONS,
    OPTION_NAMES,
    ConfidentialityTable,
    load_source_table,
    load_table,
    parse_tag_pattern,
    resolve_action,
)
from extractor.scrub.metadata.profile import (
    PROFILES_DIR,
    Profile,
    ProfileError,
    load_profile,
    parse_profile,
    shipped_profile,
    shipped_profile_names,
)

__all__ = [
    "DEFAULT_COMBINATIONS",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "OPTION_NAMES",
    "PROFILES_DIR",
    "ConfidentialityTable",
    "DeidContext",
    "MetadataError",
    "MetadataReport",
    "Profile",
    "ProfileError",
    "ReportEntry",
    "deidentify_metadata",
    "load_profile",
    "load_source_table",
    "load_table",
    "parse_profile",
    "parse_tag_pattern",
    "regenerate_file_meta",
    "resolve_action",
    "shipped_profile",
    "shipped_profile_names",
]
