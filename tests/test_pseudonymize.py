"""The Python pseudonymization functions against the shared test vectors, and their properties.

deid_sql/seeds/deid_test_vectors.csv is the contract between the SQL macros (checked by the
dbt test dbt_project/tests/deid_test_vectors.sql, see tests/test_deid_sql.py) and this module.
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime
from pathlib import Path

import pytest

from extractor.deid import pseudonymize as p
from extractor.deid.pseudonymize import DeidKeyError, DeidParameters

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "deid_sql" / "seeds" / "deid_test_vectors.csv"
ALLOWLIST_SEED = REPO / "vocab" / "seeds" / "description_allowlist.csv"
UID_FORM = re.compile(r"2\.25\.[1-9]\d{37}")
TEST_KEY = "imgomop-TEST-KEY-1-published-not-secret"
OPERATIONS = {
    "keyed_hash", "hash_uid", "hash_text", "substitute_id", "offset_id", "jitter_days",
    "shift_date", "shift_datetime", "redact_patterns", "redact_text", "delete",
}


def read_vectors() -> list[dict[str, str]]:
    with VECTORS.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def decode(cell: str) -> str | None:
    """The seed's encoding: empty cell = NULL, <EMPTY> = '', <NUL> = U+0000."""
    if cell == "":
        return None
    if cell == "<EMPTY>":
        return ""
    return cell.replace("<NUL>", "\x00")


def split_shift_input(value: str) -> tuple[str | None, str | None]:
    when, subject = value.split("|", 1)
    return when or None, subject or None


def compute(operation: str, param: str, value: str | None, key: str, allowlist: frozenset[str]) -> str | None:
    """One vector through the Python implementation, as the string the seed stores."""
    if operation == "keyed_hash":
        return p.keyed_hash(param, value, key)
    if operation == "hash_uid":
        return p.hash_uid(value, key)
    if operation == "hash_text":
        return p.hash_text(param, value, key)
    if operation == "substitute_id":
        return _text(p.substitute_id(None if value is None else int(value), key))
    if operation == "offset_id":
        return _text(p.offset_id(param, None if value is None else int(value), key))
    if operation == "jitter_days":
        return _text(p.jitter_days(value, key, DeidParameters(int(param))))
    if operation == "shift_date":
        when, subject = split_shift_input(value)
        d = None if when is None else date.fromisoformat(when)
        return _text(p.shift_date(d, subject, key, DeidParameters(int(param))))
    if operation == "shift_datetime":
        when, subject = split_shift_input(value)
        dt = None if when is None else datetime.fromisoformat(when)
        shifted = p.shift_datetime(dt, subject, key, DeidParameters(int(param)))
        return None if shifted is None else shifted.isoformat(sep=" ")
    if operation == "redact_patterns":
        return p.redact_patterns(value)
    if operation == "redact_text":
        return p.redact_text(value, allowlist)
    if operation == "delete":
        return None
    raise AssertionError(f"unknown operation {operation!r} in {VECTORS}")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@pytest.fixture(scope="module")
def allowlist() -> frozenset[str]:
    return p.load_allowlist(ALLOWLIST_SEED)


# --- the shared vectors ------------------------------------------------------------------


@pytest.mark.parametrize("vector", read_vectors(), ids=lambda v: f"{v['vector_id']}-{v['operation']}")
def test_python_matches_vector(vector: dict[str, str], allowlist: frozenset[str]) -> None:
    got = compute(vector["operation"], vector["param"], decode(vector["input"]), vector["key"], allowlist)
    assert got == decode(vector["expected"]), vector["note"]


def test_vectors_cover_every_operation_and_edge_case() -> None:
    vectors = read_vectors()
    assert len(vectors) >= 40
    assert {v["operation"] for v in vectors} == OPERATIONS
    assert len({v["vector_id"] for v in vectors}) == len(vectors)
    inputs = [v["input"] for v in vectors]
    assert "" in inputs and "<EMPTY>" in inputs and any("<NUL>" in i for i in inputs)
    assert any(not i.isascii() for i in inputs)
    assert any(i.startswith("2024-02-29") for i in inputs)
    assert len({v["key"] for v in vectors}) >= 2


def test_vector_cells_survive_the_seed_loader() -> None:
    """dbt loads 'null' and blank cells as NULL: the vectors must not rely on either as text."""
    for v in read_vectors():
        for column in ("param", "input", "key", "expected"):
            cell = v[column]
            assert cell.strip().lower() != "null", (v["vector_id"], column)
            assert cell == "" or cell.strip() != "", (v["vector_id"], column)


def test_uid_and_accession_with_the_same_text_hash_differently() -> None:
    by_note = {v["vector_id"]: v for v in read_vectors()}
    uid_digest = next(v for v in by_note.values() if v["operation"] == "keyed_hash" and v["param"] == "uid")
    acc_digest = next(v for v in by_note.values() if v["operation"] == "keyed_hash" and v["param"] == "accession")
    assert uid_digest["input"] == acc_digest["input"]
    assert uid_digest["expected"] != acc_digest["expected"]


# --- specific behaviour --------------------------------------------------------------------


def test_patterns_are_written_identically_in_sql_python_and_spec() -> None:
    macro = (REPO / "deid_sql" / "macros" / "deid_redact.sql").read_text(encoding="utf-8")
    block = macro.split("{%- set table -%}", 1)[1].split("{%- endset -%}", 1)[0]
    sql_patterns = tuple(tuple(line.split(" ", 1)) for line in block.strip().splitlines())
    assert sql_patterns == p.REDACTION_PATTERNS
    spec = (REPO / "deid_sql" / "SPEC.md").read_text(encoding="utf-8")
    spec_rows = re.findall(r"^   \| `(\[[A-Z]+\])` \| `(.+)` \|$", spec, flags=re.MULTILINE)
    assert tuple((mask, pattern.replace("\\|", "|")) for mask, pattern in spec_rows) == p.REDACTION_PATTERNS



def test_bytes_and_str_keys_agree() -> None:
    assert p.hash_uid("1.2.3", TEST_KEY.encode()) == p.hash_uid("1.2.3", TEST_KEY)


def test_unusable_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(DeidKeyError):
        p.hash_uid("1.2.3", "")
    with pytest.raises(DeidKeyError) as excinfo:
        p.hash_uid("1.2.3", b"\xffsecret-bytes")
    assert "secret-bytes" not in str(excinfo.value)


def test_key_from_environment() -> None:
    assert p.key_from_environment({"IMGOMOP_DEID_KEY": "from-env"}) == "from-env"
    for env in ({}, {"IMGOMOP_DEID_KEY": ""}):
        with pytest.raises(DeidKeyError) as excinfo:
            p.key_from_environment(env)
        message = str(excinfo.value)
        assert "IMGOMOP_DEID_KEY" in message and "secrets.token_urlsafe" in message


def test_jitter_parameters_are_validated() -> None:
    for bad in (0, -3, True, 2.5, "30"):
        with pytest.raises(ValueError):
            DeidParameters(bad)  # type: ignore[arg-type]
    assert DeidParameters().jitter_days_max == 30


def test_jitter_subject_is_the_person_id_as_text() -> None:
    assert p.jitter_days(12345, TEST_KEY) == p.jitter_days("12345", TEST_KEY)


def test_ids_must_be_integers() -> None:
    with pytest.raises(TypeError):
        p.substitute_id("12", TEST_KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.offset_id("note", True, TEST_KEY)  # type: ignore[arg-type]


def test_allowlist_normalisation(tmp_path: Path) -> None:
    seed = tmp_path / "allow.csv"
    seed.write_text("token\nct\n Chest \nW/O\nMÜLLER\n\nT1\n", encoding="utf-8")
    assert p.load_allowlist(seed) == frozenset({"CT", "CHEST", "T1"})
    bad = tmp_path / "bad.csv"
    bad.write_text("word\nCT\n", encoding="utf-8")
    with pytest.raises(ValueError, match="token"):
        p.load_allowlist(bad)


def test_real_allowlist_loads(allowlist: frozenset[str]) -> None:
    assert {"CT", "CHEST", "CONTRAST"} <= allowlist
    assert all(re.fullmatch(r"[A-Z0-9]+", t) for t in allowlist)


def test_redaction_stage_two_in_order(allowlist: frozenset[str]) -> None:
    assert p.redact_text("Chest CT Smith 12 2024-01-05", allowlist) == "CHEST CT [X] 12 [DATE]"
    assert p.redact_text(None, allowlist) is None
    assert p.redact_text(" ,;", allowlist) == ""


# --- properties (hypothesis) ---------------------------------------------------------------

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the vector tests above still run
    given = None

if given is None:

    def test_properties_need_hypothesis() -> None:
        pytest.skip("hypothesis is not installed: pip install hypothesis")

else:
    keys = st.text(min_size=1, max_size=40)
    padded_texts = st.text(max_size=80)
    # DICOM-like UIDs as well as arbitrary text
    uids = st.one_of(
        st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=12).map(lambda xs: ".".join(map(str, xs))),
        padded_texts,
    )

    @settings(max_examples=300)
    @given(uid=uids, key=keys)
    def test_hashed_uid_is_always_a_valid_2_25_uid(uid: str, key: str) -> None:
        out = p.hash_uid(uid, key)
        if uid.strip(" \x00") == "":
            assert out is None
        else:
            assert out is not None and UID_FORM.fullmatch(out) and len(out) <= 64

    @settings(max_examples=300)
    @given(subject=st.integers(min_value=-(2**63), max_value=2**63 - 1), key=keys, r=st.integers(min_value=1, max_value=3650))
    def test_jitter_is_never_zero_and_within_range(subject: int, key: str, r: int) -> None:
        j = p.jitter_days(subject, key, DeidParameters(r))
        assert j != 0 and -r <= j <= r
        # same person, same key -> same jitter, whatever the date: intervals survive
        params = DeidParameters(r)
        d1, d2 = date(2020, 2, 29), date(2021, 7, 4)
        assert p.shift_date(d2, subject, key, params) - p.shift_date(d1, subject, key, params) == d2 - d1

    @given(key=keys, r=st.integers(min_value=1, max_value=5))
    def test_jitter_reaches_both_signs(key: str, r: int) -> None:
        values = {p.jitter_days(s, key, DeidParameters(r)) for s in range(400)}
        assert values == set(range(-r, 0)) | set(range(1, r + 1))

    @given(value=st.text(min_size=1, max_size=60).filter(lambda s: s.strip(" \x00")), key=keys)
    def test_uid_and_accession_domains_are_separated(value: str, key: str) -> None:
        assert p.keyed_hash("uid", value, key) != p.keyed_hash("accession", value, key)
        assert p.hash_text("accession", value, key) != p.keyed_hash("uid", p.strip_padding(value), key)[:32]

    @given(value=st.text(min_size=1, max_size=60).filter(lambda s: s.strip(" \x00")), k1=keys, k2=keys)
    def test_different_keys_give_different_outputs(value: str, k1: str, k2: str) -> None:
        if k1 == k2:
            return
        assert p.hash_uid(value, k1) != p.hash_uid(value, k2)
        assert p.hash_text("accession", value, k1) != p.hash_text("accession", value, k2)

    @given(person_id=st.integers(min_value=-(2**63), max_value=2**63 - 1), key=keys)
    def test_substitute_id_is_a_positive_float64_safe_integer(person_id: int, key: str) -> None:
        out = p.substitute_id(person_id, key)
        assert 1 <= out <= 2**53 - 1
        assert out == p.substitute_id(person_id, key)

    @given(record_id=st.integers(min_value=0, max_value=2**62), key=keys, name=st.sampled_from(["image_occurrence", "note"]))
    def test_offset_keeps_order_and_intervals(record_id: int, key: str, name: str) -> None:
        a, b = p.offset_id(name, record_id, key), p.offset_id(name, record_id + 1, key)
        assert b - a == 1 and a - record_id >= 10**12

    @settings(max_examples=300)
    @given(text=st.text(max_size=120))
    def test_redaction_output_is_only_masks_allowlisted_words_and_short_numbers(text: str) -> None:
        allow = frozenset({"CT", "CHEST", "T1"})
        out = p.redact_text(text, allow)
        assert out is not None
        assert out == "" or all(p.keep_token(t, allow) for t in out.split(" "))
        assert re.fullmatch(r"[A-Z0-9\[\] ]*", out)
