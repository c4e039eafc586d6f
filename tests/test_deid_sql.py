"""The dbt macros of deid_sql/ against the shared test vectors, through the real dbt and DuckDB.

- `dbt seed` + `dbt test --select deid_test_vectors` (the singular test computes every vector of
  deid_sql/seeds/deid_test_vectors.csv with the macros and returns the mismatches);
- the key's real path: IMGOMOP_DEID_KEY -> dbt-duckdb plugin -> deid_key() gives what the Python
  implementation gives with the same key, a build without the key fails, and the key is written
  to no file under target/ and logs/;
- SQL and Python on the same random inputs (a differential check beyond the fixed vectors);
- the same vectors on the BigQuery macros, against the local BigQuery emulator.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner, dbtRunnerResult

from extractor.deid import pseudonymize as p

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
ALLOWLIST_SEED = REPO / "vocab" / "seeds" / "description_allowlist.csv"
SEEDS = ["deid_test_vectors", "description_allowlist"]
# Recognisable, so that a leak into any file is found by a plain byte search.
CANARY_KEY = "imgomop-LEAK-CANARY-" + secrets.token_hex(12)


@dataclass(frozen=True)
class DbtPaths:
    root: Path
    identified: Path
    deidentified: Path
    target: Path
    logs: Path


def dbt(paths: DbtPaths, *args: str) -> dbtRunnerResult:
    return dbtRunner().invoke(
        [
            *args,
            "--project-dir", str(PROJECT),
            "--profiles-dir", str(PROJECT),
            "--target-path", str(paths.target),
            "--log-path", str(paths.logs),
        ]
    )


def compiled_sql(paths: DbtPaths, inline: str) -> str:
    result = dbt(paths, "compile", "--quiet", "--inline", inline)
    assert result.success, result.exception
    return result.result.results[0].node.compiled_code


def show_row(paths: DbtPaths, inline: str) -> tuple:
    result = dbt(paths, "show", "--quiet", "--inline", inline)
    assert result.success, result.exception
    return tuple(result.result.results[0].agate_table.rows[0])


@pytest.fixture(scope="module")
def dbt_paths(tmp_path_factory) -> Iterator[DbtPaths]:
    root = tmp_path_factory.mktemp("deid-sql")
    paths = DbtPaths(root, root / "identified.duckdb", root / "deidentified.duckdb", root / "target", root / "logs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGOMOP_DBT_TARGET", "duckdb")
        mp.setenv("IMGOMOP_IDENTIFIED_DUCKDB", str(paths.identified))
        mp.setenv("IMGOMOP_DEIDENTIFIED_DUCKDB", str(paths.deidentified))
        mp.setenv("IMGOMOP_DEID_KEY", CANARY_KEY)
        yield paths


@pytest.fixture(scope="module")
def vectors_tested(dbt_paths: DbtPaths) -> list:
    seeded = dbt(dbt_paths, "seed", "--select", *SEEDS)
    assert seeded.success, seeded.exception
    tested = dbt(dbt_paths, "test", "--select", "deid_test_vectors")
    assert tested.result is not None, tested.exception
    return list(tested.result.results)


def test_macros_match_every_vector(dbt_paths: DbtPaths, vectors_tested: list) -> None:
    by_name = {r.node.name: r for r in vectors_tested}
    assert "deid_test_vectors" in by_name, sorted(by_name)
    result = by_name["deid_test_vectors"]
    if str(result.status) != "pass" and result.node.compiled_code:
        con = duckdb.connect(str(dbt_paths.identified), read_only=True)
        rows = con.execute(result.node.compiled_code).fetchall()  # (id, operation, param, via, expected, actual)
        pytest.fail(f"{len(rows)} vector results differ from the expected value:\n" + "\n".join(map(repr, rows)))
    assert str(result.status) == "pass", result.message


def test_key_from_the_environment_gives_the_python_result(dbt_paths: DbtPaths, vectors_tested: list) -> None:
    row = show_row(
        dbt_paths,
        "select {{ deid_hash_uid(\"'1.2.840.10008.1.2 '\") }} as uid,"
        " {{ deid_hash_text('accession', \"'ACC0001234'\") }} as accession,"
        " {{ deid_substitute_id('42') }} as person,"
        " {{ deid_offset_id('image_occurrence', '7') }} as image_occurrence_id,"
        " {{ deid_jitter_days('42') }} as jitter,"
        " {{ deid_shift_date(\"date '2024-02-29'\", '42') }} as shifted",
    )
    assert row == (
        p.hash_uid("1.2.840.10008.1.2 ", CANARY_KEY),
        p.hash_text("accession", "ACC0001234", CANARY_KEY),
        p.substitute_id(42, CANARY_KEY),
        p.offset_id("image_occurrence", 7, CANARY_KEY),
        p.jitter_days(42, CANARY_KEY),
        p.shift_date(date(2024, 2, 29), 42, CANARY_KEY),
    )


def test_a_build_without_the_key_fails_naming_the_variable(dbt_paths: DbtPaths, vectors_tested: list) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("IMGOMOP_DEID_KEY")
        result = dbt(dbt_paths, "show", "--quiet", "--inline", "select {{ deid_hash_uid(\"'1.2.3'\") }} as uid")
    assert not result.success
    assert "IMGOMOP_DEID_KEY is not set" in str(result.exception)


def test_sql_and_python_agree_on_random_inputs(dbt_paths: DbtPaths, vectors_tested: list) -> None:
    key = "imgomop-TEST-KEY-differential"
    literal = f"\"'{key}'\""
    sql = compiled_sql(
        dbt_paths,
        "select v, {{ deid_redact_patterns('v') }} as redacted,"
        f" {{{{ deid_hash_uid('v', key={literal}) }}}} as uid,"
        f" {{{{ deid_hash_text('accession', 'v', key={literal}) }}}} as accession,"
        f" {{{{ deid_jitter_days('v', key={literal}) }}}} as jitter"
        " from random_inputs order by i",
    )
    alphabet = list("0123456789") * 4 + list("abcXYZ@._%+-/:()[] ") + ["é", "\x00", "\t", "_", "ß", "日", "ı"]
    rnd = random.Random(20240229)
    values = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40))) for _ in range(3000)]
    values += ["reach jane.doe@example.org 2024-01-05 12:30 (555) 123-4567 MRN1234567", " 1.2.3\x00"]
    con = duckdb.connect()
    con.execute("create table random_inputs (i integer, v varchar)")
    con.executemany("insert into random_inputs values (?, ?)", list(enumerate(values)))
    rows = con.execute(sql).fetchall()
    assert len(rows) == len(values)
    for v, redacted, uid, accession, jitter in rows:
        assert redacted == p.redact_patterns(v), repr(v)
        assert uid == p.hash_uid(v, key), repr(v)
        assert accession == p.hash_text("accession", v, key), repr(v)
        assert jitter == p.jitter_days(v, key), repr(v)


def test_the_key_is_written_to_no_file(dbt_paths: DbtPaths, vectors_tested: list) -> None:
    # runs after the tests above in this module (pytest keeps file order): they used the key
    show_row(dbt_paths, "select {{ deid_hash_uid(\"'1.2.3'\") }} as uid")
    files = [f for d in (dbt_paths.target, dbt_paths.logs) for f in d.rglob("*") if f.is_file()]
    files += [f for f in (dbt_paths.identified, dbt_paths.deidentified) if f.exists()]
    assert any(f.suffix == ".log" for f in files), "dbt wrote no log: the check would prove nothing"
    needle = CANARY_KEY.encode()
    leaked = [str(f) for f in files if needle in f.read_bytes()]
    assert not leaked, f"the de-identification key was written to {leaked}"


# --- the BigQuery macros, on the local emulator --------------------------------------------


def test_bigquery_macros_match_every_vector_on_the_emulator(bigquery_emulator: str, tmp_path: Path) -> None:
    """The bigquery__ macros against the same vectors, through the project's bigquery profile
    pointed at crucible-emulator (BigQuery SQL translated to and run by DuckDB underneath: it
    proves the SQL parses and computes as specified there, not every BigQuery detail; see
    deid_sql/SPEC.md)."""
    paths = DbtPaths(tmp_path, tmp_path / "unused", tmp_path / "unused", tmp_path / "target", tmp_path / "logs")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "IMGOMOP_DBT_TARGET": "bigquery",
            "IMGOMOP_BQ_API_ENDPOINT": bigquery_emulator,
            "IMGOMOP_BQ_PROJECT": "imgomop-deid-vectors",
            "IMGOMOP_BQ_IDENTIFIED_DATASET": "deid_vectors",
            "IMGOMOP_DEID_DATABASE": "imgomop-deid-vectors",
            "IMGOMOP_DEID_SCHEMA": "deid_vectors_deidentified",
        }.items():
            mp.setenv(name, value)
        seeded = dbt(paths, "seed", "--select", *SEEDS)
        assert seeded.success, seeded.exception
        tested = dbt(paths, "test", "--select", "deid_test_vectors")
    assert tested.result is not None, tested.exception
    (result,) = [r for r in tested.result.results if r.node.name == "deid_test_vectors"]
    assert str(result.status) == "pass", f"{result.failures} vectors differ on BigQuery: {result.message}"
