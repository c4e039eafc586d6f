"""The BigQuery writer against a local BigQuery emulator (crucible-emulator), checked against DuckDB.

What this proves and what it does not: see the README section "BigQuery writer: what the
emulator test covers". In short: the CSV load path, the MERGE-based replace semantics, the shared
series SQL, incremental re-runs and the client wiring; not Parquet loads, IAM, quotas or real
BigQuery's SQL engine.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from conftest import interrupt_a_rebuild

from extractor.config import BigQueryTarget
from extractor.harvest import pipeline
from extractor.harvest.pipeline import harvest
from extractor.warehouses.bigquery_writer import (
    BigQueryRawWarehouse,
    _LoadFile,
    arrow_rows,
    csv_field,
    csv_rows,
)
from extractor.warehouses.duckdb_writer import DuckDBRawWarehouse
from extractor.warehouses.schema import RAW_TABLES
from extractor.warehouses.series_sql import UNREBUILT_TABLE

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
KEPT_TABLES = sorted([*RAW_TABLES, UNREBUILT_TABLE])  # every staging table is dropped
# Real files of several encodings and modalities. MR_small* are one SOP instance in several
# transfer syntaxes: every copy after the first is a DuplicateSOPInstanceUID error.
PICKED = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "ExplVR_BigEnd.dcm",
    "image_dfl.dcm",
    "no_meta.dcm",
    "JPEG2000.dcm",
    "GDCMJ2K_TextGBR.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
    "liver_1frame.dcm",
    "MR_truncated.dcm",
]
BATCH_SIZE = 6  # with CHUNK_FILES = 4 below: several write_batch calls per run

# Every column is compared except those that name the run or the moment it ran.
VOLATILE = {"run_id", "harvested_at", "recorded_at", "updated_at", "first_run_id", "last_run_id", "write_seq", "first_write_seq"}
COMPARED = {
    table: [name for name, _ in RAW_TABLES[table] if name not in VOLATILE]
    for table in ("raw_dicom_instance", "raw_dicom_series", "raw_harvest_error")
}
ORDER_BY = {
    "raw_dicom_instance": "location",
    "raw_dicom_series": "series_instance_uid",
    "raw_harvest_error": "location",
}
RUN_COUNTS = (
    "files_seen",
    "files_unchanged",
    "instances_added",
    "instances_updated",
    "errors",
    "series_added",
    "series_updated",
    "files_removed",
)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for i, name in enumerate(PICKED):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEST_FILES / name, folder / name)
    shutil.copy2(TEST_FILES / "CT_small.dcm", root / "zz_copy_of_ct.dcm")  # same SOP instance, another file
    (root / "notes.txt").write_text("not a DICOM file\n", encoding="utf-8")
    (root / "empty.dcm").write_bytes(b"")
    return root


def _warehouses(endpoint: str, tmp_path: Path) -> tuple[BigQueryTarget, DuckDBRawWarehouse]:
    target = BigQueryTarget(
        project="imgomop-test",
        identified_dataset=f"raw_{uuid.uuid4().hex[:8]}",
        deidentified_dataset="deid_unused",
        api_endpoint=endpoint,
    )
    return target, DuckDBRawWarehouse(tmp_path / "identified.duckdb")


def _run(sources: list[str], warehouse, prune: bool = False) -> dict[str, int]:
    try:
        run = harvest(sources, warehouse, workers=1, batch_size=BATCH_SIZE, progress=False, prune=prune)
    finally:
        warehouse.close()
    assert run.status == "completed"
    return {k: getattr(run, k) for k in RUN_COUNTS}


def _naive_utc(value):
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _bq_rows(target: BigQueryTarget, table: str) -> list[dict]:
    warehouse = BigQueryRawWarehouse(target)
    try:
        rows = warehouse.client.query(
            f"SELECT {', '.join(COMPARED[table])} FROM `{target.project}.{target.identified_dataset}.{table}` "
            f"ORDER BY {ORDER_BY[table]}"
        ).result()
        return [{k: _naive_utc(v) for k, v in row.items()} for row in rows]
    finally:
        warehouse.client.close()


def _duck_rows(path: Path, table: str) -> list[dict]:
    warehouse = DuckDBRawWarehouse(path)
    try:
        cursor = warehouse.con.execute(f"SELECT {', '.join(COMPARED[table])} FROM {table} ORDER BY {ORDER_BY[table]}")
        return [dict(zip(COMPARED[table], row)) for row in cursor.fetchall()]
    finally:
        warehouse.close()


def _assert_same_tables(target: BigQueryTarget, duck_path: Path) -> None:
    for table in COMPARED:
        bq_rows, duck_rows = _bq_rows(target, table), _duck_rows(duck_path, table)
        assert len(bq_rows) == len(duck_rows), table
        for bq_row, duck_row in zip(bq_rows, duck_rows):
            assert bq_row == duck_row, f"{table}: {bq_row[ORDER_BY[table]]}"


def _bq_count(target: BigQueryTarget, table: str) -> int:
    warehouse = BigQueryRawWarehouse(target)
    try:
        sql = f"SELECT COUNT(*) FROM `{target.project}.{target.identified_dataset}.{table}`"
        return next(iter(warehouse.client.query(sql).result()))[0]
    finally:
        warehouse.client.close()


def _bq_tables(target: BigQueryTarget) -> list[str]:
    warehouse = BigQueryRawWarehouse(target)
    try:
        return sorted(t.table_id for t in warehouse.client.list_tables(f"{target.project}.{target.identified_dataset}"))
    finally:
        warehouse.client.close()


def test_harvest_into_emulator_matches_duckdb(
    bigquery_emulator: str, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 4)
    target, duck = _warehouses(bigquery_emulator, tmp_path)
    duck_path = duck.path
    bq = BigQueryRawWarehouse(target)
    assert bq.load_format == "CSV"  # an api_endpoint means the emulator: CSV loads

    first = _run([str(archive)], bq)
    assert first == _run([str(archive)], duck)
    assert first["files_seen"] == len(PICKED) + 3
    assert first["instances_added"] > 0 and first["errors"] > 0
    _assert_same_tables(target, duck_path)
    errors = {Path(r["location"]).name: r["error_class"] for r in _bq_rows(target, "raw_harvest_error")}
    assert errors["zz_copy_of_ct.dcm"] == "DuplicateSOPInstanceUID"
    # three files of one MR SOP instance: one kept, two errors
    assert sum(errors.get(n) == "DuplicateSOPInstanceUID" for n in PICKED if n.startswith("MR_small")) == 2
    assert {"notes.txt", "empty.dcm"} <= errors.keys()
    assert _bq_count(target, "raw_harvest_run") == 1
    assert _bq_tables(target) == KEPT_TABLES

    second = _run([str(archive)], BigQueryRawWarehouse(target))
    assert second["files_seen"] == second["files_unchanged"] == first["files_seen"]
    assert second["instances_added"] == second["instances_updated"] == second["errors"] == 0
    assert second["series_added"] == second["series_updated"] == 0
    _assert_same_tables(target, duck_path)

    # a file changes: its row is replaced, its series rebuilt, nothing is duplicated
    changed = archive / "d0" / "CT_small.dcm"
    ds = pydicom.dcmread(changed)
    ds.PatientName = "Changed^Name"
    ds.save_as(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    # and a new file repeats a SOP instance harvested in an earlier run
    shutil.copy2(TEST_FILES / "rtplan.dcm", archive / "rtplan_again.dcm")
    # and the file that held the MR instance now holds another: the first of its copies takes it
    kept_mr = archive / "d0" / "MR_small_implicit.dcm"
    ds = pydicom.dcmread(kept_mr)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(kept_mr)
    os.utime(kept_mr, ns=(kept_mr.stat().st_atime_ns, kept_mr.stat().st_mtime_ns + 10**9))
    third = _run([str(archive)], BigQueryRawWarehouse(target))
    assert third == _run([str(archive)], DuckDBRawWarehouse(duck_path))
    # updated: CT_small and the MR; added: MR_small.dcm; errors: rtplan_again and MR_small_bigendian
    assert third["instances_updated"] == 2 and third["instances_added"] == 1 and third["errors"] == 2
    assert str(archive / "d1" / "MR_small.dcm") in {r["location"] for r in _bq_rows(target, "raw_dicom_instance")}
    assert third["series_updated"] == 2 and third["series_added"] == 0
    _assert_same_tables(target, duck_path)
    names = {r["location"]: r["patient_name"] for r in _bq_rows(target, "raw_dicom_instance")}
    assert names[str(changed)] == "Changed^Name"
    assert _bq_count(target, "raw_harvest_run") == 3
    assert _bq_tables(target) == KEPT_TABLES

    # files disappear: --prune removes their rows and rebuilds their series, as in DuckDB;
    # the copy of a removed file is read in its place
    (archive / "notes.txt").unlink()
    (archive / "d1" / sorted(os.listdir(archive / "d1"))[0]).unlink()
    changed.unlink()
    fourth = _run([str(archive)], BigQueryRawWarehouse(target), prune=True)
    assert fourth == _run([str(archive)], DuckDBRawWarehouse(duck_path), prune=True)
    assert fourth["files_removed"] == 3 and fourth["files_seen"] == third["files_seen"] - 3
    assert fourth["instances_added"] == 1  # zz_copy_of_ct.dcm
    _assert_same_tables(target, duck_path)
    assert str(archive / "zz_copy_of_ct.dcm") in {r["location"] for r in _bq_rows(target, "raw_dicom_instance")}
    assert _bq_tables(target) == KEPT_TABLES


def test_load_format_follows_the_target() -> None:
    production = BigQueryTarget(project="p", identified_dataset="a", deidentified_dataset="b")
    emulator = BigQueryTarget(
        project="p", identified_dataset="a", deidentified_dataset="b", api_endpoint="http://127.0.0.1:1"
    )
    from extractor.warehouses import bigquery_writer

    assert BigQueryRawWarehouse(emulator).load_format == "CSV"
    assert BigQueryRawWarehouse(emulator, load_format="parquet").load_format == "PARQUET"
    with pytest.raises(ValueError, match="load_format"):
        BigQueryRawWarehouse(emulator, load_format="NDJSON")
    # production picks Parquet; the client is not built here (no credentials on this machine)
    assert bigquery_writer.BigQueryRawWarehouse(production, client=object()).load_format == "PARQUET"  # type: ignore[arg-type]


def test_both_load_encodings_carry_the_same_values() -> None:
    """The only code that differs between the CSV (emulator) and Parquet (production) paths."""
    columns = [("s", "STRING"), ("n", "INT64"), ("f", "FLOAT64"), ("t", "TIMESTAMP")]
    rows = [
        {"s": 'a,"b" \\ é 山田', "n": -5, "f": 1e-05, "t": datetime(2024, 1, 2, 3, 4, 5, 6)},
        {"s": "", "n": None, "f": 1e20, "t": None},
        {"s": None, "n": 2**62, "f": None, "t": datetime(1, 1, 1)},
    ]
    data, newline = csv_rows(rows, columns)
    assert not newline
    assert data.decode("utf-8").splitlines() == [
        '"a,""b"" \\ é 山田",-5,0.00001,2024-01-02 03:04:05.000006',
        '"",,100000000000000000000,',
        f",{2**62},,0001-01-01 00:00:00.000000",
    ]
    assert csv_rows([{"s": "two\nlines", "n": 1, "f": 0.5, "t": None}], columns)[1]
    assert csv_field(float("nan"), "FLOAT64") == "NaN"

    # the Parquet load job the production path sends (the emulator cannot run it)
    spool = _LoadFile(columns, "PARQUET")
    spool.add(rows)
    config = spool.job_config().to_api_repr()["load"]
    assert config["sourceFormat"] == "PARQUET" and config["writeDisposition"] == "WRITE_TRUNCATE"
    assert [f["type"] for f in config["schema"]["fields"]] == ["STRING", "INT64", "FLOAT64", "TIMESTAMP"]
    assert pq.read_table(spool.finish()).num_rows == 3

    buffer = io.BytesIO()
    pq.write_table(arrow_rows(rows, columns), buffer)
    back = pq.read_table(io.BytesIO(buffer.getvalue())).to_pylist()
    assert [r["s"] for r in back] == [r["s"] for r in rows]
    assert [r["n"] for r in back] == [r["n"] for r in rows]
    assert [r["f"] for r in back] == [r["f"] for r in rows]
    assert [None if r["t"] is None else r["t"].replace(tzinfo=None) for r in back] == [r["t"] for r in rows]
    assert str(pq.read_schema(io.BytesIO(buffer.getvalue())).field("t").type) == "timestamp[us, tz=UTC]"


def test_rebuilds_look_for_missing_headers_in_the_whole_table_once_per_run(
    bigquery_emulator: str, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first rebuild of a run, only the rows each rebuild wrote are looked at: a query of
    the header column is billed for the whole column. The headers still match DuckDB's."""
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 2)
    target, duck = _warehouses(bigquery_emulator, tmp_path)
    bq = BigQueryRawWarehouse(target)
    queries: list[str] = []
    real_query = bq._query

    def recording(sql: str):
        queries.append(sql)
        return real_query(sql)

    monkeypatch.setattr(bq, "_query", recording)
    slices = {"slice_files": 3, "batch_size": 2}
    for warehouse in (bq, duck):
        try:
            run = harvest([str(archive)], warehouse, workers=1, progress=False, **slices)
        finally:
            warehouse.close()
        assert run.status == "completed"
    series_table = f"`{target.project}.{target.identified_dataset}.raw_dicom_series`"
    header_checks = [sql for sql in queries if "representative_header_json IS NULL" in sql]
    assert len([sql for sql in queries if "_new_series` AS" in sql]) > 3  # rebuilds
    assert [sql for sql in header_checks if series_table in sql] == header_checks[:1]
    assert len(header_checks) > 3  # the later ones read only each rebuild's own staging table
    _assert_same_tables(target, duck.path)


def test_series_a_stopped_run_wrote_to_after_its_last_rebuild_are_rebuilt_by_the_next(
    bigquery_emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No transaction holds a batch's rows and its series there: the series are noted before the
    rows and forgotten after their rebuild, so a run stopped in between leaves them to the next."""
    archive = tmp_path / "archive"
    for folder in ("98892001", "77654033", "98892003/MR700"):  # series of several files, spread over rebuilds
        shutil.copytree(TEST_FILES / "dicomdirtests" / folder, archive / folder.replace("/", "_"))
    target, duck = _warehouses(bigquery_emulator, tmp_path)
    interrupt_a_rebuild(monkeypatch, BigQueryRawWarehouse)
    with pytest.raises(KeyboardInterrupt):
        harvest([str(archive)], BigQueryRawWarehouse(target), workers=1, progress=False, slice_files=4, batch_size=2)
    dataset = f"`{target.project}.{target.identified_dataset}"
    stale = BigQueryRawWarehouse(target).client.query(
        f"SELECT COUNT(*) FROM {dataset}.raw_dicom_series` s WHERE instance_count <> "
        f"(SELECT COUNT(*) FROM {dataset}.raw_dicom_instance` i WHERE i.series_instance_uid = s.series_instance_uid)"
    ).result()
    assert next(iter(stale))[0] > 0  # the case this test is about: a series row older than some of its rows
    monkeypatch.undo()
    _run([str(archive)], BigQueryRawWarehouse(target))
    _run([str(archive)], duck)
    _assert_same_tables(target, duck.path)
    assert _bq_count(target, UNREBUILT_TABLE) == 0
