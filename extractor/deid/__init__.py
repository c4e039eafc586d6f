"""Pseudonymization primitives shared by the scrubbing stage (see deid_sql/SPEC.md).

The same operations exist as dbt macros in deid_sql/macros; both are tested against
deid_sql/seeds/deid_test_vectors.csv.
"""

from extractor.deid.pseudonymize import (
    KEY_ENV_VAR,
    DeidKeyError,
    DeidParameters,
    hash_text,
    hash_uid,
    jitter_days,
    key_from_environment,
    keyed_hash,
    load_allowlist,
    offset_id,
    redact_patterns,
    redact_text,
    shift_date,
    shift_datetime,
    substitute_id,
)

__all__ = [
    "KEY_ENV_VAR",
    "DeidKeyError",
    "DeidParameters",
    "hash_text",
    "hash_uid",
    "jitter_days",
    "key_from_environment",
    "keyed_hash",
    "load_allowlist",
    "offset_id",
    "redact_patterns",
    "redact_text",
    "shift_date",
    "shift_datetime",
    "substitute_id",
]
