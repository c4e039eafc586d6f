"""The dbt project on the BigQuery target, against a local BigQuery emulator, checked against DuckDB.

One demo archive is harvested, its EHR side loaded and `imgomop build` run twice with the same
key: on the embedded DuckDB target and on the BigQuery target served by crucible-emulator (started
by the `bigquery_emulator` fixture). The build must pass every model and dbt test on both, the marts
(identified and de-identified) must hold the same rows, the key table must be gone afterwards, and
the key must not appear in the de-identified dataset, the dbt artifacts or the command output.

What this proves and what it does not: README, "dbt on BigQuery: what the emulator test covers".
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import TEST_DEID_KEY, invoke_cli

from extractor.build.bigquery_setup import (
    KEY_TABLE,
    BigQuerySetupError,
    deid_key_table,
    key_table_id,
)
from extractor.build.dbt_build import KEY_ENV_VAR, MART_TABLES
from extractor.build.ehr_tables import EHR_TABLES
from extractor.build.load_ehr import EhrLoadError, load_ehr_bigquery
from extractor.config import BigQueryTarget, load_config
from extractor.warehouses.bigquery_writer import make_client

TEST_KEY = TEST_DEID_KEY  # published, never a real one
PROJECT = "imgomop-test"
# Columns that carry the moment of a harvest (two harvests here, one per target).
VOLATILE = {"alg_datetime", "harvested_at"}


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo archive's DICOM folder, and its EHR folder with line breaks in values replaced.

    The emulator loads CSV only and refuses `allow_quoted_newlines`, so a value holding a line
    break (the radiology reports in note.csv) cannot reach it; both targets get the same
    one-line copy, so the comparison stays exact. Parquet loads (real BigQuery) have no such limit.
    """
    from extractor.demo_data import make_demo_archive
    from extractor.demo_data.orders import MIN_PATIENTS

    root = tmp_path_factory.mktemp("demo")
    archive = make_demo_archive(root / "archive", seed=0, patients=MIN_PATIENTS)
    ehr = root / "ehr_one_line"
    _one_line_csv_copy(archive.ehr_dir, ehr)
    return archive.dicom_dir, ehr


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """`imgomop build` exports the dbt profile variables into this process; undo that afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_dbt_build_on_bigquery_emulator_matches_duckdb(
    bigquery_emulator: str,
    demo_input: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_environ: None,
) -> None:
    dicom, ehr = demo_input
    monkeypatch.chdir(tmp_path)  # the BigQuery build keeps its dbt artifacts under ./.imgomop
    monkeypatch.setenv(KEY_ENV_VAR, TEST_KEY)
    suffix = uuid.uuid4().hex[:8]
    duck_config = _write_config(
        tmp_path / "duckdb.toml",
        '[warehouse]\ntarget = "duckdb"\n[warehouse.duckdb]\n'
        'identified = "duck/identified.duckdb"\ndeidentified = "duck/deidentified.duckdb"\n',
    )
    bq_config = _write_config(
        tmp_path / "bigquery.toml",
        f'[warehouse]\ntarget = "bigquery"\n[warehouse.bigquery]\nproject = "{PROJECT}"\n'
        f'identified_dataset = "identified_{suffix}"\ndeidentified_dataset = "deidentified_{suffix}"\n'
        f'api_endpoint = "{bigquery_emulator}"\n[harvest]\nbatch_size = 500\n',
    )
    target = load_config(bq_config).bigquery
    assert target is not None
    outputs: list[str] = []

    # the reference: the same input and key on the embedded DuckDB target
    outputs.append(invoke_cli("harvest", str(dicom), "--config", str(duck_config)))
    outputs.append(invoke_cli("load-ehr", str(ehr), "--config", str(duck_config)))
    outputs.append(invoke_cli("build", "--config", str(duck_config)))

    outputs.append(invoke_cli("harvest", str(dicom), "--config", str(bq_config)))
    # `imgomop load-ehr` still refuses the BigQuery target (cli.py); this is what it would call
    loaded = load_ehr_bigquery(ehr, target)
    assert {t.name for t in loaded} == {t.name for t in EHR_TABLES}
    outputs.append(invoke_cli("build", "--config", str(bq_config)))

    client = make_client(target)
    try:
        identified = f"{target.project}.{target.identified_dataset}"
        deidentified = f"{target.project}.{target.deidentified_dataset}"
        # the EHR tables carry their types (DATE as DATE; TIMESTAMP, which the emulator can load)
        person = {f.name: f.field_type for f in client.get_table(f"{identified}.person").schema}
        assert person["person_id"] == "INTEGER" and person["birth_datetime"] == "TIMESTAMP"
        crosswalk = {f.name: f.field_type for f in client.get_table(f"{identified}.mrn_crosswalk").schema}
        assert crosswalk["birth_date"] == "DATE"

        assert _count(client, f"{identified}.image_occurrence") > 0
        assert _count(client, f"{deidentified}.image_occurrence") > 0

        # the same marts, row for row, identified and de-identified (hashed UIDs, substitute ids,
        # shifted dates, redacted text): the BigQuery macros compute what the DuckDB ones do
        duck = load_config(duck_config).duckdb
        for table in MART_TABLES:
            _assert_same_rows(client, f"{identified}.{table}", duck.identified_path, table)
        duck_deid_tables = _duckdb_tables(duck.deidentified_path)
        bq_deid_tables = sorted(t.table_id for t in client.list_tables(deidentified))
        assert bq_deid_tables == duck_deid_tables
        for table in duck_deid_tables:
            _assert_same_rows(client, f"{deidentified}.{table}", duck.deidentified_path, table)
        uids = [row[0] for row in client.query(f"SELECT image_series_uid FROM `{deidentified}.image_occurrence`").result()]
        assert uids and all(uid.startswith("2.25.") for uid in uids)

        # the key: its table dropped after the build, and nowhere it must not be
        assert KEY_TABLE not in {t.table_id for t in client.list_tables(identified)}
        for table in bq_deid_tables:
            for row in client.query(f"SELECT * FROM `{deidentified}.{table}`").result():
                assert TEST_KEY not in repr(tuple(row.values())), f"the key is in {deidentified}.{table}"
    finally:
        client.close()
    assert not any(TEST_KEY in output for output in outputs)
    # dbt's compiled SQL, logs, manifest and run results of both builds
    for artifacts in (tmp_path / ".imgomop", tmp_path / "duck" / "dbt"):
        files = [path for path in artifacts.rglob("*") if path.is_file()]
        assert files, f"no dbt artifacts under {artifacts}"
        for path in files:
            assert TEST_KEY.encode() not in path.read_bytes(), f"the key is in {path}"


def test_key_table_is_dropped_when_the_build_fails(
    bigquery_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _target(bigquery_emulator)
    monkeypatch.setenv(KEY_ENV_VAR, TEST_KEY)
    client = make_client(target)
    try:
        with pytest.raises(RuntimeError, match="dbt failed"):
            with deid_key_table(target):
                rows = list(client.query(f"SELECT deid_key FROM `{key_table_id(target)}`").result())
                assert [row[0] for row in rows] == [TEST_KEY]
                raise RuntimeError("dbt failed")
        tables = {t.table_id for t in client.list_tables(f"{target.project}.{target.identified_dataset}")}
        assert KEY_TABLE not in tables
        # the de-identified dataset exists before dbt runs (so it gets the target's location)
        client.get_dataset(f"{target.project}.{target.deidentified_dataset}")
    finally:
        client.close()


def test_no_key_no_key_table(bigquery_emulator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target(bigquery_emulator)
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with pytest.raises(BigQuerySetupError, match=KEY_ENV_VAR):
        with deid_key_table(target):
            pass


def test_load_ehr_bigquery_replaces_nothing_when_a_load_fails(bigquery_emulator: str, tmp_path: Path) -> None:
    """A value the emulator cannot load (a line break in a CSV load) stops the load with the file
    named; the EHR tables loaded before are untouched and no staging table is left."""
    target = _target(bigquery_emulator)
    good = _tiny_ehr(tmp_path / "good", note_text="no line break")
    bad = _tiny_ehr(tmp_path / "bad", note_text="line one\nline two")
    loaded = {t.name: t.rows for t in load_ehr_bigquery(good, target)}
    assert loaded["person"] == 1 and loaded["note"] == 1 and loaded["concept"] == 0
    with pytest.raises(EhrLoadError, match=r"note\.csv"):
        load_ehr_bigquery(bad, target)
    client = make_client(target)
    try:
        dataset = f"{target.project}.{target.identified_dataset}"
        assert sorted(t.table_id for t in client.list_tables(dataset)) == sorted(t.name for t in EHR_TABLES)
        notes = [row[0] for row in client.query(f"SELECT note_text FROM `{dataset}.note`").result()]
        assert notes == ["no line break"]
        dates = [row[0] for row in client.query(f"SELECT birth_date FROM `{dataset}.mrn_crosswalk`").result()]
        assert [d.isoformat() for d in dates] == ["1970-01-02"]
    finally:
        client.close()


# --- helpers ---------------------------------------------------------------------------------


def _target(endpoint: str) -> BigQueryTarget:
    suffix = uuid.uuid4().hex[:8]
    return BigQueryTarget(
        project=PROJECT,
        identified_dataset=f"identified_{suffix}",
        deidentified_dataset=f"deidentified_{suffix}",
        api_endpoint=endpoint,
    )


def _write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _one_line_csv_copy(source: Path, dest: Path) -> None:
    """Every CSV of `source` in `dest`, line breaks inside values replaced by ' / '."""
    dest.mkdir(parents=True)
    con = duckdb.connect()
    try:
        for path in sorted(source.iterdir()):
            if path.suffix.lower() != ".csv":
                continue
            quoted = str(path).replace("'", "''")
            reader = f"read_csv('{quoted}', header = true, all_varchar = true)"
            columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
            multiline = [
                c for c in columns
                if con.execute(f"SELECT COUNT(*) FROM {reader} WHERE regexp_matches(\"{c}\", '[\\r\\n]')").fetchone()[0]
            ]
            if not multiline:
                shutil.copy2(path, dest / path.name)
                continue
            selects = ", ".join(
                f"regexp_replace(\"{c}\", '\\r?\\n', ' / ', 'g') AS \"{c}\"" if c in multiline else f'"{c}"'
                for c in columns
            )
            out = str(dest / path.name).replace("'", "''")
            con.execute(f"COPY (SELECT {selects} FROM {reader}) TO '{out}' (HEADER, DELIMITER ',')")
    finally:
        con.close()


def _tiny_ehr(folder: Path, note_text: str) -> Path:
    """The required EHR tables with one row each, plus a note (CSV, as an EHR export has them)."""
    folder.mkdir(parents=True)
    files = {
        "person.csv": "person_id,gender_concept_id,year_of_birth,birth_datetime\n1,8507,1970,1970-01-02 03:04:05\n",
        "visit_occurrence.csv": "visit_occurrence_id,person_id,visit_concept_id,visit_start_date\n10,1,9202,2020-05-01\n",
        "procedure_occurrence.csv": "procedure_occurrence_id,person_id,procedure_concept_id,procedure_date\n"
        "100,1,4163872,2020-05-01\n",
        "mrn_crosswalk.csv": "person_id,mrn,birth_date\n1,MRN0001,1970-01-02\n",
        "imaging_order.csv": "mrn,birth_date,accession_number,procedure_occurrence_id\nMRN0001,1970-01-02,ACC1,100\n",
        "note.csv": 'note_id,person_id,note_date,note_text\n1000,1,2020-05-01,"' + note_text + '"\n',
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _count(client, table_id: str) -> int:
    return next(iter(client.query(f"SELECT COUNT(*) FROM `{table_id}`").result()))[0]


def _duckdb_tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall())
    finally:
        con.close()


def _normalise(value):
    """BigQuery TIMESTAMP values come back in UTC, DuckDB's TIMESTAMP naive (the same instant)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _assert_same_rows(client, bq_table: str, duck_path: Path, table: str) -> None:
    con = duckdb.connect(str(duck_path), read_only=True)
    try:
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall() if row[0] not in VOLATILE]
        duck_rows = sorted((tuple(row) for row in con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()), key=repr)
    finally:
        con.close()
    result = client.query(f"SELECT {', '.join(columns)} FROM `{bq_table}`").result()
    bq_rows = sorted((tuple(_normalise(v) for v in row.values()) for row in result), key=repr)
    assert len(bq_rows) == len(duck_rows), f"{bq_table}: {len(bq_rows)} rows on BigQuery, {len(duck_rows)} on DuckDB"
    for bq_row, duck_row in zip(bq_rows, duck_rows):
        if bq_row != duck_row:
            diff = {c: (d, b) for c, d, b in zip(columns, duck_row, bq_row) if d != b}
            pytest.fail(f"{bq_table}: a row differs from DuckDB's (column: (duckdb, bigquery)): {diff}")
