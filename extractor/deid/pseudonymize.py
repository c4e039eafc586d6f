"""The de-identification operations in Python, exactly as deid_sql/SPEC.md defines them.

The de-identified warehouse tables are computed in SQL (the dbt macros in deid_sql/macros);
the scrubbed DICOM files are written by Python with these functions. Both must give the same
string for the same input and key: deid_sql/seeds/deid_test_vectors.csv holds the vectors
both implementations are tested against (tests/test_pseudonymize.py, tests/test_deid_sql.py).

Every function is pure: the key is passed explicitly (``bytes`` or ``str``, UTF-8) and is
never logged, stored or put in an exception message.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterable, Mapping

Key = bytes | str

KEY_ENV_VAR = "IMGOMOP_DEID_KEY"

# Hash domains (SPEC.md "Domains"): the same text hashes differently in each.
DOMAIN_UID = "uid"
DOMAIN_ACCESSION = "accession"
DOMAIN_PERSON = "person"
DOMAIN_JITTER = "jitter"
DOMAIN_TEXT = "text"
OFFSET_DOMAIN_PREFIX = "offset:"
OFFSET_VALUE = "offset"

UID_ROOT = "2.25."
SUBSTITUTE_ID_MODULUS = 2**53 - 1  # ids stay exact in JSON / float64 consumers
OFFSET_BASE = 10**12
DEFAULT_JITTER_DAYS_MAX = 30

# Characters trimmed from UIDs and hashed strings: DICOM pads values with a space or a NUL.
PADDING = " \x00"

# Redaction stage 1 (SPEC.md operation 6b): (mask, pattern), applied in this order. The same
# patterns, character for character, are in deid_sql/macros/deid_redact.sql.
REDACTION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("[EMAIL]", r"[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}"),
    ("[DATE]", r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b"),
    ("[DATE]", r"\b(19|20)\d{6}\b"),
    ("[TIME]", r"\b\d{1,2}:\d{2}(:\d{2})?\b"),
    ("[PHONE]", r"\(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4}\b"),
    ("[ID]", r"\b[A-Z]{0,3}\d{5,}\b"),
    # digit groups joined by a space, underscore or hyphen, 5 digits or more in all:
    # MRNs, phone numbers and dates written with separators the patterns above do not know
    ("[ID]", r"\b(\d{2,4}([ _-]\d{2,4}){2,}|\d{3,4}[ _-]\d{2,4}|\d{2}[ _-]\d{3,4})\b"),
)
REDACTION_MASKS = frozenset({"[EMAIL]", "[DATE]", "[TIME]", "[PHONE]", "[ID]", "[X]"})
REDACTED_TOKEN = "[X]"

_COMPILED_PATTERNS = tuple((f" {mask} ", re.compile(p, re.ASCII)) for mask, p in REDACTION_PATTERNS)
_NOT_PRINTABLE_ASCII = re.compile(r"[^ -~]")
_NOT_TOKEN_CHARACTER = re.compile(r"[^A-Z0-9\[\]]+")
_SHORT_NUMBER = re.compile(r"\d{1,4}", re.ASCII)
_ALLOWLIST_TOKEN = re.compile(r"[A-Z0-9]+")


class DeidKeyError(RuntimeError):
    """The de-identification key is missing or unusable (the message never contains the key)."""


@dataclass(frozen=True)
class DeidParameters:
    """Parameters of the operations besides the key (dbt var of the same name in SQL)."""

    jitter_days_max: int = DEFAULT_JITTER_DAYS_MAX

    def __post_init__(self) -> None:
        if isinstance(self.jitter_days_max, bool) or not isinstance(self.jitter_days_max, int):
            raise ValueError(f"jitter_days_max must be an integer, got {self.jitter_days_max!r}")
        if self.jitter_days_max < 1:
            raise ValueError(f"jitter_days_max must be >= 1 (jitter is never 0), got {self.jitter_days_max}")


# --- the key -----------------------------------------------------------------------------


def key_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The key from IMGOMOP_DEID_KEY; a clear error (without any key material) if it is unset."""
    env = os.environ if environ is None else environ
    key = env.get(KEY_ENV_VAR, "")
    if not key:
        raise DeidKeyError(
            f"{KEY_ENV_VAR} is not set: the de-identification key must come from the environment "
            "(or a secret manager that sets it), never from a file in the repository. Create one with "
            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`, store it in your secret "
            f"manager, and export {KEY_ENV_VAR} before running imgomop. Use the same key for the "
            "warehouse build and the scrub, or their pseudonyms will not match."
        )
    return key


def _key_text(key: Key) -> str:
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            raise DeidKeyError("the de-identification key must be UTF-8 text (SQL keeps it in a string)") from None
    if not isinstance(key, str):
        raise DeidKeyError(f"the de-identification key must be bytes or str, got {type(key).__name__}")
    if not key:
        raise DeidKeyError("the de-identification key is empty")
    return key


# --- primitives --------------------------------------------------------------------------


def keyed_hash(domain: str, value: str, key: Key) -> str:
    """H(domain, value): lowercase hex SHA-256 of UTF-8 ``key|domain|value``."""
    message = f"{_key_text(key)}|{domain}|{value}"
    return hashlib.sha256(message.encode("utf-8")).hexdigest()


def int60(hex_digest: str, i: int) -> int:
    """The integer value of hex digits [15*i, 15*i + 15) of a digest (60 bits, fits INT64)."""
    if not 0 <= i <= 3:
        raise ValueError(f"int60 index must be 0..3 for a 64-digit digest, got {i}")
    return int(hex_digest[15 * i : 15 * i + 15], 16)


def strip_padding(value: str) -> str:
    """Trim the spaces and NULs DICOM pads values with (both ends)."""
    return value.strip(PADDING)


# --- operations --------------------------------------------------------------------------


def hash_uid(uid: str | None, key: Key) -> str | None:
    """A DICOM UID -> ``2.25.`` + 38 decimal digits (valid UID, 43 characters)."""
    if uid is None:
        return None
    uid = strip_padding(uid)
    if not uid:
        return None
    h = keyed_hash(DOMAIN_UID, uid, key)
    digits = (
        str(10 + int60(h, 0) % 90)
        + str(int60(h, 1) % 10**18).rjust(18, "0")
        + str(int60(h, 2) % 10**18).rjust(18, "0")
    )
    return UID_ROOT + digits


def hash_text(domain: str, value: str | None, key: Key) -> str | None:
    """A string (accession number, MRN, ...) -> the first 16 hex digits of H(domain, value)
    (16 characters: the most an SH element such as AccessionNumber may hold)."""
    if value is None:
        return None
    value = strip_padding(value)
    if not value:
        return None
    return keyed_hash(domain, value, key)[:16]


def substitute_id(person_id: int | None, key: Key) -> int | None:
    """A person_id -> a stable pseudonymous id in [1, 2**53 - 1]."""
    if person_id is None:
        return None
    _require_int(person_id, "person_id")
    return 1 + int60(keyed_hash(DOMAIN_PERSON, str(person_id), key), 0) % SUBSTITUTE_ID_MODULUS


def offset(name: str, key: Key) -> int:
    """The per-table offset: 10**12 + (a keyed value below 10**12)."""
    return OFFSET_BASE + int60(keyed_hash(OFFSET_DOMAIN_PREFIX + name, OFFSET_VALUE, key), 0) % OFFSET_BASE


def offset_id(name: str, record_id: int | None, key: Key) -> int | None:
    """A table's id -> id + offset(name)."""
    if record_id is None:
        return None
    _require_int(record_id, f"{name} id")
    return record_id + offset(name, key)


def jitter_days(subject: int | str | None, key: Key, params: DeidParameters = DeidParameters()) -> int | None:
    """The per-patient date shift, in [-R, -1] U [1, R] with R = params.jitter_days_max."""
    if subject is None:
        return None
    r = params.jitter_days_max
    v = int60(keyed_hash(DOMAIN_JITTER, str(subject), key), 0) % (2 * r)
    return v - r if v < r else v - r + 1


def shift_date(value: date | None, subject: int | str | None, key: Key,
               params: DeidParameters = DeidParameters()) -> date | None:
    """A date moved by the subject's jitter."""
    days = jitter_days(subject, key, params)
    if value is None or days is None:
        return None
    return value + timedelta(days=days)


def shift_datetime(value: datetime | None, subject: int | str | None, key: Key,
                   params: DeidParameters = DeidParameters()) -> datetime | None:
    """A datetime moved by the subject's jitter in whole days (time of day kept)."""
    days = jitter_days(subject, key, params)
    if value is None or days is None:
        return None
    return value + timedelta(days=days)


# --- free-text redaction -----------------------------------------------------------------


def redact_patterns(text: str | None) -> str | None:
    """Stage 1 (SPEC 6a-6c): printable ASCII, upper case, pattern masks, one space between tokens."""
    if text is None:
        return None
    s = _NOT_PRINTABLE_ASCII.sub(" ", text).upper()
    for replacement, pattern in _COMPILED_PATTERNS:
        s = pattern.sub(replacement, s)
    return _NOT_TOKEN_CHARACTER.sub(" ", s).strip(" ")


def keep_token(token: str, allowlist: frozenset[str]) -> bool:
    """Stage 2 rule for one token: a mask, an allowlisted word, or a number of 1-4 digits."""
    return token in REDACTION_MASKS or token in allowlist or _SHORT_NUMBER.fullmatch(token) is not None


def redact_text(text: str | None, allowlist: frozenset[str]) -> str | None:
    """Two-stage allowlist redaction (SPEC 6). NULL -> None; nothing left -> ''."""
    s = redact_patterns(text)
    if s is None:
        return None
    if not s:
        return ""
    return " ".join(t if keep_token(t, allowlist) else REDACTED_TOKEN for t in s.split(" "))


def normalize_allowlist(tokens: Iterable[str]) -> frozenset[str]:
    """Allowlist tokens as stage 2 compares them: trimmed, upper case, only [A-Z0-9]+ kept."""
    out = set()
    for raw in tokens:
        token = raw.strip(" ")
        if token.isascii():
            token = token.upper()
            if _ALLOWLIST_TOKEN.fullmatch(token):
                out.add(token)
    return frozenset(out)


def load_allowlist(path: Path | str) -> frozenset[str]:
    """The `token` column of the description_allowlist seed (vocab/seeds/description_allowlist.csv)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "token" not in reader.fieldnames:
            raise ValueError(f"{path}: the allowlist needs a `token` column (found {reader.fieldnames})")
        return normalize_allowlist(row["token"] or "" for row in reader)


def _require_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
