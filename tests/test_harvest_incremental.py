"""Incremental re-runs of the harvest on real files, and a harvest of pydicom's whole test-file folder.

The archive is 21 real files from pydicom's dicomdirtests folder (one CT patient with two CT
series, one CR/CT patient with four series, one MR series of seven images). Each step changes
the archive the way an archive changes (new images of a series, a rewritten file, a file that
moves to another series) and checks what the next run did and what the tables hold.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import duckdb
import pydicom
import pytest

from bad_dicom import TEST_FILES, truncation_reason
from conftest import interrupt_a_rebuild
from extractor.harvest.header_json import header_json
from extractor.harvest import pipeline
from extractor.harvest.pipeline import harvest
from extractor.warehouses.base import HarvestRun
from extractor.warehouses import duckdb_writer
from extractor.warehouses.duckdb_writer import DuckDBRawWarehouse

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
SOURCES = ("dicomdirtests/98892001", "dicomdirtests/77654033", "dicomdirtests/98892003/MR700")


class Archive:
    def __init__(self, root: Path, db: Path) -> None:
        self.root = root
        self.warehouse = DuckDBRawWarehouse(db)
        self.runs: list[HarvestRun] = []

    def harvest(self) -> HarvestRun:
        run = harvest([str(self.root)], self.warehouse, workers=2, progress=False)
        self.runs.append(run)
        return run

    def table(self, name: str, order: str) -> list[dict[str, Any]]:
        cursor = self.warehouse.con.execute(f"SELECT * FROM {name} ORDER BY {order}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def instances(self) -> dict[str, dict[str, Any]]:
        return {r["location"]: r for r in self.table("raw_dicom_instance", "location")}

    def series(self) -> dict[str, dict[str, Any]]:
        return {r["series_instance_uid"]: r for r in self.table("raw_dicom_series", "series_instance_uid")}

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def rewrite(path: Path, target: Path | None = None, **changes: Any) -> Path:
    """Rewrite a file (or write a changed copy) and move its mtime forward so the change is visible."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    if "SOPInstanceUID" in changes:
        ds.file_meta.MediaStorageSOPInstanceUID = changes["SOPInstanceUID"]
    target = target or path
    old_mtime = path.stat().st_mtime_ns
    ds.save_as(target, enforce_file_format=True)
    os.utime(target, ns=(old_mtime + 5_000_000_000, old_mtime + 5_000_000_000))
    return target


def snapshot(archive: Archive) -> dict[str, list[dict[str, Any]]]:
    return {
        "raw_dicom_instance": archive.table("raw_dicom_instance", "location"),
        "raw_dicom_series": archive.table("raw_dicom_series", "series_instance_uid"),
        "raw_harvest_error": archive.table("raw_harvest_error", "location"),
    }


VOLATILE = {"run_id", "harvested_at", "first_run_id", "last_run_id", "updated_at", "write_seq", "first_write_seq"}  # differ from run to run (batch numbers with the batching)


def _harvested_once(tmp_path: Path) -> tuple[Path, DuckDBRawWarehouse]:
    """The 21-file archive under tmp_path, harvested once into a warehouse there."""
    root = _copy_sources(tmp_path / "archive")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False)
    return root, warehouse


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _copy_sources(root: Path) -> Path:
    """The 21-file archive of SOURCES, copied to root."""
    for source in SOURCES:
        shutil.copytree(TEST_FILES / source, root / source.replace("/", "_"))
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    base = tmp_path_factory.mktemp("incremental")
    archive = Archive(_copy_sources(base / "archive"), base / "id.duckdb")
    yield archive
    archive.warehouse.close()


def series_of(archive: Archive, path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


# The steps below run in order on one archive (module-scoped fixture); each checks one change.


def test_first_run_harvests_every_file(archive: Archive) -> None:
    files = archive.files()
    assert len(files) == 21
    run = archive.harvest()
    assert (run.status, run.files_seen, run.files_unchanged) == ("completed", 21, 0)
    assert (run.instances_added, run.instances_updated, run.errors) == (21, 0, 0)
    series = archive.series()
    assert run.series_added == len(series) == 7 and run.series_updated == 0
    assert set(archive.instances()) == {str(p) for p in files}
    for uid, row in series.items():
        members = [p for p in files if series_of(archive, p) == uid]
        assert row["instance_count"] == row["file_count"] == len(members)
        assert row["total_bytes"] == sum(p.stat().st_size for p in members)


def test_second_run_sees_everything_unchanged_and_changes_nothing(archive: Archive) -> None:
    before = snapshot(archive)
    run = archive.harvest()
    assert (run.status, run.files_seen, run.files_unchanged) == ("completed", 21, 21)
    assert (run.instances_added, run.instances_updated, run.errors, run.series_added, run.series_updated) == (0, 0, 0, 0, 0)
    assert snapshot(archive) == before


def test_new_instances_update_their_series_without_duplicating_it(archive: Archive) -> None:
    mr_folder = archive.root / "dicomdirtests_98892003_MR700"
    template = sorted(mr_folder.iterdir())[0]
    uid = series_of(archive, template)
    before = archive.series()[uid]
    series_count = len(archive.series())
    added = [
        rewrite(template, mr_folder / f"new{i}", SOPInstanceUID=pydicom.uid.generate_uid(entropy_srcs=["incremental", str(i)]), InstanceNumber=100 + i)
        for i in (1, 2)
    ]
    run = archive.harvest()
    assert (run.files_seen, run.files_unchanged) == (23, 21)
    assert (run.instances_added, run.instances_updated, run.errors) == (2, 0, 0)
    assert (run.series_added, run.series_updated) == (0, 1)
    after = archive.series()
    assert len(after) == series_count
    assert archive.warehouse.con.execute("SELECT COUNT(*) FROM raw_dicom_series WHERE series_instance_uid = ?", [uid]).fetchone()[0] == 1
    row = after[uid]
    assert row["instance_count"] == before["instance_count"] + 2
    assert row["file_count"] == before["file_count"] + 2
    assert row["total_bytes"] == before["total_bytes"] + sum(p.stat().st_size for p in added)
    assert row["first_run_id"] == before["first_run_id"] and row["last_run_id"] == run.run_id
    others = {k: v for k, v in after.items() if k != uid}
    assert all(v["last_run_id"] == archive.runs[0].run_id for v in others.values())


def test_a_rewritten_file_is_reharvested_alone(archive: Archive) -> None:
    target = archive.root / "dicomdirtests_77654033" / "CT2" / "17106"
    before = archive.instances()
    assert before[str(target)]["instance_number"] == "18"
    rewrite(target, InstanceNumber=999, InstitutionName="Rewritten Hospital")
    run = archive.harvest()
    assert (run.files_seen, run.files_unchanged) == (23, 22)
    assert (run.instances_added, run.instances_updated, run.errors) == (0, 1, 0)
    assert (run.series_added, run.series_updated) == (0, 1)
    after = archive.instances()
    row = after[str(target)]
    assert (row["instance_number"], row["institution_name"]) == ("999", "Rewritten Hospital")
    assert row["file_mtime_ns"] == target.stat().st_mtime_ns and row["run_id"] == run.run_id
    unchanged = {k: v for k, v in after.items() if k != str(target)}
    assert unchanged == {k: v for k, v in before.items() if k != str(target)}
    series = archive.series()[row["series_instance_uid"]]
    assert series["instance_count"] == 4 and series["conflicting_attributes"] is None


def test_a_file_moved_to_another_series_updates_both(archive: Archive) -> None:
    moving = archive.root / "dicomdirtests_98892001" / "CT2N" / "6924"
    source_uid = series_of(archive, moving)
    target_uid = series_of(archive, archive.root / "dicomdirtests_98892001" / "CT5N" / "2062")
    before = archive.series()
    old_size = moving.stat().st_size
    rewrite(moving, SeriesInstanceUID=target_uid)
    run = archive.harvest()
    assert (run.instances_added, run.instances_updated, run.errors) == (0, 1, 0)
    assert (run.series_added, run.series_updated) == (0, 2)
    after = archive.series()
    assert len(after) == len(before)
    assert after[source_uid]["instance_count"] == before[source_uid]["instance_count"] - 1
    assert after[target_uid]["instance_count"] == before[target_uid]["instance_count"] + 1
    assert after[source_uid]["total_bytes"] + after[target_uid]["total_bytes"] == (
        before[source_uid]["total_bytes"] + before[target_uid]["total_bytes"] - old_size + moving.stat().st_size
    )
    assert archive.instances()[str(moving)]["series_instance_uid"] == target_uid
    assert after[target_uid]["conflicting_attributes"] is None  # same patient and study


def test_run_table_has_one_completed_row_per_run_matching_the_returned_record(archive: Archive) -> None:
    rows = {r["run_id"]: r for r in archive.table("raw_harvest_run", "started_at")}
    assert len(rows) == len(archive.runs) == 5
    for run in archive.runs:
        row = rows[run.run_id]
        assert row["status"] == "completed"
        assert row["ended_at"] is not None and row["ended_at"] >= row["started_at"]
        for field in ("files_seen", "files_unchanged", "instances_added", "instances_updated", "errors", "series_added", "series_updated"):
            assert row[field] == getattr(run, field), (run.run_id, field)
    assert len(archive.instances()) == 23


# --- pydicom's whole test-file folder against an independent count ------------------------


def independent_sop_instance_uids(folder: Path) -> set[str]:
    """The SOP instances a harvest of `folder` must hold, found with pydicom alone.

    Every file is read with `pydicom.dcmread(force=True)`; counted are the distinct
    SOPInstanceUIDs of files that pydicom can read, that are not a DICOMDIR (media storage or
    SOP class 1.2.840.10008.1.3.10), that carry non-empty SOP Instance, Series Instance and Study
    Instance UIDs, and that are not truncated (`truncation_reason`: a value shorter than declared,
    an undefined-length value without its delimiter, a cut element header). A UID held by two
    files counts once: the harvest keeps one and records the other as a duplicate.
    """
    uids: set[str] = set()
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
                sop_class = str(ds.get("SOPClassUID", "") or "")
                media_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
                sop, series, study = (str(ds.get(k, "") or "").strip(" \0") for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"))
            except Exception:  # noqa: BLE001 - unreadable by pydicom: not an instance
                continue
        if DICOMDIR_SOP_CLASS in (sop_class, media_class):
            continue
        if not (sop and series and study):
            continue
        if truncation_reason(data):
            continue
        uids.add(sop)
    return uids


def test_harvest_of_pydicoms_test_files_matches_an_independent_count(tmp_path: Path) -> None:
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    run = harvest([str(TEST_FILES)], warehouse, workers=2, progress=False)
    files = [p for p in TEST_FILES.rglob("*") if p.is_file()]
    harvested = {r[0] for r in warehouse.con.execute("SELECT sop_instance_uid FROM raw_dicom_instance").fetchall()}
    instance_rows = warehouse.con.execute("SELECT COUNT(*) FROM raw_dicom_instance").fetchone()[0]
    error_rows = warehouse.con.execute("SELECT COUNT(*) FROM raw_harvest_error").fetchone()[0]
    classes = dict(warehouse.con.execute("SELECT error_class, COUNT(*) FROM raw_harvest_error GROUP BY 1").fetchall())
    warehouse.close()

    expected = independent_sop_instance_uids(TEST_FILES)
    assert run.status == "completed" and run.files_seen == len(files)
    assert instance_rows + error_rows == len(files)
    assert instance_rows == len(harvested)  # one row per SOP instance
    assert harvested == expected, (sorted(harvested - expected), sorted(expected - harvested))
    assert len(expected) > 100
    assert classes.get("DICOMDIR") == len(list(TEST_FILES.rglob("DICOMDIR*")))
    assert classes.get("DuplicateSOPInstanceUID", 0) > 0  # e.g. MR_small and its re-encodings share one UID


def _table_rows(warehouse: DuckDBRawWarehouse, table: str, order: str, skip: set[str]) -> list[dict[str, Any]]:
    cursor = warehouse.con.execute(f"SELECT * FROM {table} ORDER BY {order}")
    names = [d[0] for d in cursor.description]
    return [{k: v for k, v in zip(names, row) if k not in skip} for row in cursor.fetchall()]


@pytest.mark.parametrize("workers", [1, 2])
def test_slices_of_three_files_build_the_same_tables_as_one_slice(tmp_path: Path, workers: int) -> None:
    """Series spread over several slices are rebuilt slice by slice and end as one pass builds them."""
    root = _copy_sources(tmp_path / "archive")
    results = {}
    for slice_files in (3, 10_000):
        warehouse = DuckDBRawWarehouse(tmp_path / f"slices-{slice_files}.duckdb")
        run = harvest([str(root)], warehouse, workers=workers, progress=False, slice_files=slice_files, batch_size=2)
        results[slice_files] = (
            (run.files_seen, run.instances_added, run.series_added, run.series_updated),
            _table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
            _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE),
        )
        warehouse.close()
    assert results[3] == results[10_000]
    counts, _, series = results[3]
    assert counts == (21, 21, 7, 0)
    assert all(row["representative_header_json"] for row in series)


@pytest.mark.parametrize("workers", [1, 2])
def test_instance_rows_are_written_in_whole_row_groups_but_the_last(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilds come at slice ends, whatever the batches: writing the whole rest of a slice there
    left part-filled row groups, which DuckDB keeps in memory and rewrites at every checkpoint.
    Now the few rows short of a row group wait for the next write (and their series for the
    next rebuild); the tables end the same."""
    root = _copy_sources(tmp_path / "archive")
    (root / "not_dicom.txt").write_text("notes")  # an error row: not counted in a row group
    written: list[int] = []
    real_write = DuckDBRawWarehouse.write_batch

    def write_batch(self: DuckDBRawWarehouse, run_id: str, instances: Any, errors: Any) -> Any:
        written.append(instances.num_rows)
        return real_write(self, run_id, instances, errors)

    monkeypatch.setattr(DuckDBRawWarehouse, "write_batch", write_batch)
    monkeypatch.setattr(DuckDBRawWarehouse, "write_alignment", 4, raising=False)
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 3)
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    run = harvest([str(root)], warehouse, workers=workers, progress=False, slice_files=5, batch_size=8)
    assert (run.instances_added, run.errors, run.series_added) == (21, 1, 7)
    assert sum(written) == 21 and all(rows % 4 == 0 for rows in written[:-1]), written
    assert _headers_match_their_representatives(warehouse) == []
    volatile = VOLATILE | {"recorded_at"}
    tables = [_table_rows(warehouse, t, "location", volatile) for t in ("raw_dicom_instance", "raw_harvest_error")]
    series = _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE)
    warehouse.close()
    monkeypatch.setattr(DuckDBRawWarehouse, "write_alignment", 1, raising=False)
    warehouse = DuckDBRawWarehouse(tmp_path / "unaligned.duckdb")
    harvest([str(root)], warehouse, workers=workers, progress=False)
    assert [_table_rows(warehouse, t, "location", volatile) for t in ("raw_dicom_instance", "raw_harvest_error")] == tables
    assert _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE) == series
    warehouse.close()


def test_series_rebuilds_after_the_first_scan_only_the_batches_their_rows_can_be_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each series row knows the lowest batch number of its instance rows; later rebuilds start there."""
    root = _copy_sources(tmp_path / "archive")
    bounds: list[int | None] = []
    build_sql = duckdb_writer.new_series_rows_sql

    def spy(*args: Any) -> str:
        bounds.append(args[5])
        return build_sql(*args)

    monkeypatch.setattr(duckdb_writer, "new_series_rows_sql", spy)
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False, slice_files=3, batch_size=2)
    assert bounds[0] is None  # the run's first rebuild scans everything (see the next test)
    assert len(bounds) > 3 and all(bound is not None for bound in bounds[1:])
    assert bounds[1:] == sorted(bounds[1:]) and bounds[-1] > bounds[1]
    mismatched = warehouse.con.execute(
        "SELECT s.series_instance_uid FROM raw_dicom_series AS s JOIN raw_dicom_instance AS i USING (series_instance_uid) "
        "GROUP BY s.series_instance_uid, s.first_write_seq HAVING s.first_write_seq IS DISTINCT FROM MIN(i.write_seq)"
    ).fetchall()
    assert mismatched == []
    warehouse.close()


def test_instance_rows_a_stopped_run_left_without_series_rows_get_them_on_the_next_run(tmp_path: Path) -> None:
    """A run stopped between a write and its series rebuild: the next run's first rebuild builds them."""
    root = _copy_sources(tmp_path / "archive")
    stopped = DuckDBRawWarehouse(tmp_path / "stopped.duckdb")
    stopped.ensure_tables()
    files = sorted(stopped.select_changed("stopped-run", list(pipeline.discover_files([root]))))
    written = pipeline.harvest_chunk(files, "stopped-run")
    stopped.write_batch("stopped-run", written.instances, written.errors)  # and then the process ended
    assert stopped.con.execute("SELECT COUNT(*) FROM raw_dicom_series").fetchone() == (0,)
    stopped.close()
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(TEST_FILES / "CT_small.dcm", extra)  # a new file, of a series of its own
    stopped = DuckDBRawWarehouse(tmp_path / "stopped.duckdb")
    harvest([str(root), str(extra)], stopped, workers=1, progress=False)
    clean = DuckDBRawWarehouse(tmp_path / "clean.duckdb")
    harvest([str(root), str(extra)], clean, workers=1, progress=False)
    skip = VOLATILE | {"representative_header_json"}  # the stopped run's headers are read afterwards
    assert _table_rows(stopped, "raw_dicom_series", "series_instance_uid", skip) == _table_rows(
        clean, "raw_dicom_series", "series_instance_uid", skip
    )
    stopped.close()
    clean.close()


def test_series_a_stopped_run_wrote_to_after_its_last_rebuild_are_rebuilt_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed after a series had its row and then gained rows: the files are found unchanged
    next time, so only the rows waiting in the file for a rebuild tell the next run to rebuild it."""
    root = _copy_sources(tmp_path / "archive")
    interrupt_a_rebuild(monkeypatch, DuckDBRawWarehouse)
    stopped = DuckDBRawWarehouse(tmp_path / "stopped.duckdb")
    with pytest.raises(KeyboardInterrupt):
        harvest([str(root)], stopped, workers=1, progress=False, slice_files=4, batch_size=2)
    stale = stopped.con.execute(
        "SELECT COUNT(*) FROM raw_dicom_series s WHERE instance_count <> "
        "(SELECT COUNT(*) FROM raw_dicom_instance i WHERE i.series_instance_uid = s.series_instance_uid)"
    ).fetchone()[0]
    assert stale > 0  # the case this test is about: a series row older than some of its rows
    monkeypatch.undo()
    again = harvest([str(root)], stopped, workers=1, progress=False)
    clean = DuckDBRawWarehouse(tmp_path / "clean.duckdb")
    harvest([str(root)], clean, workers=1, progress=False)
    assert again.files_unchanged < again.files_seen  # the files the stopped run had not read
    skip = VOLATILE | {"representative_header_json"}
    assert _table_rows(stopped, "raw_dicom_series", "series_instance_uid", skip) == _table_rows(
        clean, "raw_dicom_series", "series_instance_uid", skip
    )
    assert stopped.con.execute(f"SELECT COUNT(*) FROM {duckdb_writer.UNREBUILT_TABLE}").fetchone() == (0,)
    stopped.close()
    clean.close()


def test_rows_from_before_batches_were_numbered_make_rebuilds_scan_everything(tmp_path: Path) -> None:
    """A warehouse written before write_seq existed: its rows are NULL there, and a series that gains
    a file is still counted whole."""
    root = _copy_sources(tmp_path / "archive")
    old_first = sorted(p for p in (root / "dicomdirtests_98892003_MR700").rglob("*") if p.is_file())[0]
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False)
    warehouse.con.execute("UPDATE raw_dicom_instance SET write_seq = NULL")
    warehouse.con.execute("UPDATE raw_dicom_series SET first_write_seq = NULL")
    warehouse.close()
    rewrite(old_first, target=old_first.with_name("ADDED"), SOPInstanceUID="1.2.826.0.1.3680043.8.498.77")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False, slice_files=3, batch_size=2)
    clean = DuckDBRawWarehouse(tmp_path / "clean.duckdb")
    harvest([str(root)], clean, workers=1, progress=False)
    assert _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE) == _table_rows(
        clean, "raw_dicom_series", "series_instance_uid", VOLATILE
    )
    warehouse.close()
    clean.close()


def test_a_changed_file_in_an_early_slice_is_replaced_while_later_slices_are_new(tmp_path: Path) -> None:
    """Slices overlap (the next is selected while the last rows of one are written): a replacement
    in the first slice must still replace its row when the later slices replace nothing."""
    root = tmp_path / "archive"
    shutil.copytree(TEST_FILES / "dicomdirtests/98892003/MR700", root / "a_MR700")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=2, progress=False)
    first = sorted(p for p in root.rglob("*") if p.is_file())[0]
    rewrite(first, PatientName="Changed^Name")
    shutil.copytree(TEST_FILES / "dicomdirtests/98892001", root / "b_CT")  # new files only, in later slices
    run = harvest([str(root)], warehouse, workers=2, progress=False, slice_files=3, batch_size=2)
    rows = warehouse.con.execute("SELECT location, patient_name FROM raw_dicom_instance").fetchall()
    warehouse.close()
    assert (run.instances_updated, run.errors) == (1, 0)
    assert len(rows) == len({location for location, _ in rows}) == len([p for p in root.rglob("*") if p.is_file()])
    assert dict(rows)[str(first)] == "Changed^Name"


def test_rows_carry_the_size_and_mtime_of_the_file_as_read(tmp_path: Path) -> None:
    """The walk does not stat; the reader takes size and mtime from the open file, and the next run
    compares them with the files it finds (a changed mtime alone makes a file changed)."""
    root = _copy_sources(tmp_path / "archive")
    (root / "not-dicom.txt").write_text("hello")
    assert all(ref.file_size is None for ref in pipeline.discover_files([root]))
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False)
    rows = warehouse.con.execute(
        "SELECT location, file_size, file_mtime_ns FROM raw_dicom_instance UNION ALL "
        "SELECT location, file_size, file_mtime_ns FROM raw_harvest_error"
    ).fetchall()
    assert len(rows) == 22
    for location, size, mtime_ns in rows:
        stat = os.stat(location)
        assert (size, mtime_ns) == (stat.st_size, stat.st_mtime_ns), location
    touched = _files(root)[5]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 1))
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert (run.files_seen, run.files_unchanged, run.instances_updated) == (22, 21, 1)
    warehouse.close()


def test_a_copy_of_a_file_an_earlier_run_harvested_is_a_duplicate(tmp_path: Path) -> None:
    """The check first looks for the batch's UIDs alone, and runs in full only when one is found."""
    root, warehouse = _harvested_once(tmp_path)
    original = _files(root)[3]
    (root / "copies").mkdir()
    copy = root / "copies" / "again"
    shutil.copyfile(original, copy)
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert (run.instances_added, run.errors) == (0, 1)
    ((error_class, message),) = warehouse.con.execute(
        "SELECT error_class, message FROM raw_harvest_error WHERE location = ?", [str(copy)]
    ).fetchall()
    assert error_class == "DuplicateSOPInstanceUID" and str(original) in message
    warehouse.close()


def _uid_hashes(warehouse: DuckDBRawWarehouse) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(the UID hash table's rows, the hashes the instance rows call for), each sorted."""
    held = warehouse.con.execute(
        f"SELECT uid_hash, write_seq FROM {duckdb_writer.UID_HASH_TABLE} WHERE write_seq IS DISTINCT FROM $1 ORDER BY ALL",
        [duckdb_writer.UID_HASH_CANARY[1]],
    ).fetchall()
    wanted = warehouse.con.execute(
        f"SELECT {duckdb_writer.UID_HASH}, write_seq FROM raw_dicom_instance WHERE sop_instance_uid IS NOT NULL ORDER BY ALL"
    ).fetchall()
    return held, wanted


def test_the_uid_hash_table_follows_the_instance_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One hash per instance row, through replacements and pruning; a replaced file that keeps its
    SOP instance does not make the full duplicate check run."""
    root, warehouse = _harvested_once(tmp_path)
    held, wanted = _uid_hashes(warehouse)
    assert held == wanted and len(held) > 10
    full_checks = []
    real_check = duckdb_writer.duplicate_sop_rows_sql
    monkeypatch.setattr(duckdb_writer, "duplicate_sop_rows_sql", lambda *a, **k: full_checks.append(a) or real_check(*a, **k))
    files = _files(root)
    rewrite(files[0], PatientName="Same^Instance")
    rewrite(files[1], SOPInstanceUID=pydicom.uid.generate_uid())
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert run.instances_updated == 2 and full_checks == []
    assert _uid_hashes(warehouse)[0] == _uid_hashes(warehouse)[1]
    files[2].unlink()
    harvest([str(root)], warehouse, workers=1, progress=False, prune=True)
    held, wanted = _uid_hashes(warehouse)
    assert held == wanted and len(held) == len(_locations(warehouse, "raw_dicom_instance"))
    shutil.copyfile(files[3], root / "zz_copy.dcm")  # and a copy still makes it run, and is a duplicate
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert run.errors == 1 and len(full_checks) == 1
    warehouse.close()


@pytest.mark.parametrize("lost", ["table", "last batch", "hash function"])
def test_hashes_missing_from_the_uid_hash_table_are_added_before_a_harvest(tmp_path: Path, lost: str) -> None:
    """An archive harvested before the table existed, batches written by a version that did not
    keep it, or hashes from a DuckDB whose hash() differs: the next run hashes those rows first,
    so a copy of one of their files is a duplicate."""
    root = _copy_sources(tmp_path / "archive")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False, batch_size=4)
    if lost == "table":
        warehouse.con.execute(f"DROP TABLE {duckdb_writer.UID_HASH_TABLE}")
    elif lost == "last batch":
        warehouse.con.execute(
            f"DELETE FROM {duckdb_writer.UID_HASH_TABLE} WHERE write_seq = (SELECT MAX(write_seq) FROM raw_dicom_instance)"
        )
    else:  # every hash, the fixed UID's too, as another hash function would give them
        warehouse.con.execute(f"UPDATE {duckdb_writer.UID_HASH_TABLE} SET uid_hash = uid_hash // 2")
    ((last,),) = warehouse.con.execute(
        "SELECT MAX(location) FROM raw_dicom_instance WHERE write_seq = (SELECT MAX(write_seq) FROM raw_dicom_instance)"
    ).fetchall()
    copy = shutil.copyfile(last, root / "zz_copy.dcm")
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert run.errors == 1 and str(copy) in _locations(warehouse, "raw_harvest_error")
    assert _uid_hashes(warehouse)[0] == _uid_hashes(warehouse)[1]
    warehouse.close()


def test_the_walk_finds_files_in_location_order(tmp_path: Path) -> None:
    for name in ("CT/1.dcm", "CT/sub/2.dcm", "CT-old/3.dcm", "CT.x", "CT 2/4.dcm", "a/b", "a-b", "A/c"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [ref.location for ref in pipeline.discover_files([tmp_path])]
    assert found == sorted(found) and len(found) == 8
    roots = [tmp_path / "CT", tmp_path / "CT-old", tmp_path / "CT.x"]
    found = [ref.location for ref in pipeline.discover_files(pipeline.check_sources([str(r) for r in roots]))]
    assert found == sorted(found) and len(found) == 4


def test_a_rerun_looks_up_each_slice_among_the_known_locations_near_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slice's look-up reads the known rows from its first to its last location (and the
    blocks around them), not all of them; new, changed and unchanged files come out as before."""
    monkeypatch.setattr(duckdb_writer, "KNOWN_STEP", 2)
    root, warehouse = _harvested_once(tmp_path)
    files = _files(root)
    rewrite(files[4], PatientName="Changed^One")
    rewrite(files[-2], PatientName="Changed^Two")
    new = [rewrite(files[0], root / "0_new.dcm", SOPInstanceUID=pydicom.uid.generate_uid()),
           rewrite(files[1], files[10].parent / "new-in-the-middle.dcm", SOPInstanceUID=pydicom.uid.generate_uid())]
    (root / "notes.txt").write_text("not DICOM")  # a new error row
    ranges = []
    real_range = DuckDBRawWarehouse._known_range
    monkeypatch.setattr(DuckDBRawWarehouse, "_known_range", lambda self, *a: ranges.append(real_range(self, *a)) or ranges[-1])
    run = harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2)
    assert (run.files_seen, run.files_unchanged) == (len(files) + 3, len(files) - 2)
    assert (run.instances_added, run.instances_updated, run.errors) == (2, 2, 1)
    assert len(ranges) == -(-(len(files) + 3) // 4) and all(end - first <= 4 + 2 * 2 for first, end in ranges)
    ((repeated,),) = warehouse.con.execute(
        "SELECT COUNT(*) FROM (SELECT location FROM raw_dicom_instance UNION ALL SELECT location FROM raw_harvest_error) "
        "GROUP BY location HAVING COUNT(*) > 1"
    ).fetchall() or [(0,)]
    assert repeated == 0 and {str(p) for p in new} <= _locations(warehouse, "raw_dicom_instance")
    tables = {row[0] for row in warehouse.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert duckdb_writer.KNOWN_TABLE not in tables  # dropped once the walk is over
    run = harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2)
    assert run.files_unchanged == run.files_seen == len(files) + 3
    warehouse.close()


def test_known_locations_are_found_whatever_characters_their_names_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up's ranges come from Python's order of the slice and DuckDB's order of the known
    locations: the two agree (code points, UTF-8 bytes), so a re-run finds every file unchanged."""
    monkeypatch.setattr(duckdb_writer, "KNOWN_STEP", 2)
    source = _files(_copy_sources(tmp_path / "sources"))[0]
    root = tmp_path / "archive"
    names = ["a", "A", "Z~", "é", "e\u0301", "ß", "Ω", "中文", "日本", "\U0001f600", "-x", " y", "_", "0", "a b", "ü.dcm"]
    for n, name in enumerate(names):
        folder = root / name / f"{name}{n}"
        folder.mkdir(parents=True)
        shutil.copyfile(source, folder / f"{name}.dcm")
        (folder / f"{name}.txt").write_text(name)
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    first = harvest([str(root)], warehouse, workers=1, progress=False, slice_files=3, batch_size=2)
    again = harvest([str(root)], warehouse, workers=1, progress=False, slice_files=3, batch_size=2)
    assert first.files_seen == again.files_seen == again.files_unchanged == 2 * len(names)
    warehouse.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_name_that_is_not_utf8_is_an_error_row_and_the_run_goes_on(tmp_path: Path, workers: int) -> None:
    """Linux file names are bytes: a Latin-1 name (here in a Latin-1 folder too) cannot be stored as
    text, so it is an error row naming the bytes, and a re-run finds it unchanged."""
    root = tmp_path / "archive"
    shutil.copytree(TEST_FILES / "dicomdirtests/98892003/MR700", root / "MR700")
    latin1 = os.fsencode(root) + b"/M\xfcller"
    os.mkdir(latin1)
    shutil.copyfile(TEST_FILES / "CT_small.dcm", latin1 + b"/CT \xe9t\xe9.dcm")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    first = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    again = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    errors = warehouse.con.execute("SELECT location, error_class, message, file_size FROM raw_harvest_error").fetchall()
    instances = warehouse.con.execute("SELECT COUNT(*) FROM raw_dicom_instance").fetchone()[0]
    warehouse.close()
    assert (first.files_seen, first.instances_added, first.errors) == (8, 7, 1)
    assert (again.files_seen, again.files_unchanged, again.files_removed, again.errors) == (8, 8, 0, 0)
    assert instances == 7
    [(location, error_class, message, size)] = errors
    assert location == f"{root}/M\\xfcller/CT \\xe9t\\xe9.dcm"
    assert error_class == "UndecodableFileName" and "rename" in message
    assert size == (TEST_FILES / "CT_small.dcm").stat().st_size


def test_overlapping_sources_harvest_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    shutil.copytree(TEST_FILES / "dicomdirtests/98892003/MR700", root / "MR700")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    run = harvest([str(root), str(root / "MR700"), str(root)], warehouse, workers=1, progress=False)
    warehouse.close()
    assert (run.files_seen, run.files_unchanged, run.instances_added, run.errors) == (7, 0, 7, 0)


def _headers_match_their_representatives(warehouse: DuckDBRawWarehouse) -> list[str]:
    """Series whose stored header is not the DICOM JSON of their representative file."""
    rows = warehouse.con.execute(
        "SELECT series_instance_uid, representative_location, representative_header_json FROM raw_dicom_series"
    ).fetchall()
    wrong = []
    for series_uid, location, stored in rows:
        with open(location, "rb") as fp:
            if stored is None or stored != header_json(fp):
                wrong.append(series_uid)
    return wrong


def test_series_rebuilds_never_read_the_stored_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header column is the archive's largest: a rebuild that read it (a scan reads a text
    column whole) would cost time and memory in proportion to the archive. Series rebuilt twice
    (slices of three files) take their representative's header from the file instead."""
    root = _copy_sources(tmp_path / "archive")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    statements: list[str] = []
    real = warehouse.con

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> Any:
            statements.append(sql)
            return real.execute(sql, *args)

        def sql(self, sql: str, **kwargs: Any) -> Any:
            statements.append(sql)
            return real.sql(sql, **kwargs)

    monkeypatch.setattr(warehouse, "con", Recording())
    harvest([str(root)], warehouse, workers=1, progress=False, slice_files=3, batch_size=2)
    rebuilds = [sql for sql in statements if "WITH stats AS" in sql]
    assert len(rebuilds) > 3
    assert not any("raw_dicom_series" in sql for sql in rebuilds)  # built from the instance rows alone
    replaced = [sql for sql in statements if "FROM raw_dicom_series WHERE series_instance_uid IN" in sql]
    assert sum(sql.startswith("DELETE") for sql in replaced) == len(rebuilds)
    # nor their header; and no DELETE ... RETURNING, for which DuckDB reads every column
    assert not any("representative_header_json" in sql or "RETURNING" in sql for sql in replaced)
    whole_table_checks = [sql for sql in statements if "representative_header_json IS NULL" in sql and "FROM raw_dicom_series" in sql]
    assert len(whole_table_checks) == 1  # once per run; after that only the rows each rebuild wrote
    assert _headers_match_their_representatives(warehouse) == []
    warehouse.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_series_spanning_rebuilds_keep_their_header_and_get_new_counts_in_place(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series whose representative an earlier rebuild read is updated in place, counts only: its
    header is neither read again nor written again (writing it made DuckDB's next checkpoint
    rewrite the whole header column)."""
    root = _copy_sources(tmp_path / "archive")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    headers_set: list[dict[str, str | None]] = []
    real_set = warehouse.set_series_headers
    monkeypatch.setattr(warehouse, "set_series_headers", lambda headers: (headers_set.append(headers), real_set(headers)))
    counts: list[int] = []
    real_refresh = warehouse.refresh_series

    def refresh(run_id: str, touched: set[str], headers: dict[str, str]) -> None:
        real_refresh(run_id, touched, headers)
        counts.append(warehouse.con.execute("SELECT SUM(instance_count) FROM raw_dicom_series").fetchall()[0][0])

    monkeypatch.setattr(warehouse, "refresh_series", refresh)
    run = harvest([str(root)], warehouse, workers=workers, progress=False, slice_files=2, batch_size=2)
    assert run.series_added == 7 and len(counts) > 7  # seven series of three files: some span rebuilds
    assert counts == sorted(counts) and counts[-1] == 21  # every rebuild added to the counts
    assert [h for h in headers_set if h] == []  # no header read again for a series rebuilt twice
    assert _headers_match_their_representatives(warehouse) == []
    warehouse.close()


def test_a_header_a_stopped_run_left_missing_is_read_by_the_next_run(tmp_path: Path) -> None:
    """The first look for missing headers in a run covers the whole table, not only what it rebuilds."""
    root, warehouse = _harvested_once(tmp_path)
    changed = _files(root)[0]
    warehouse.con.execute(  # every series but the one the next run rebuilds
        "UPDATE raw_dicom_series SET representative_header_json = NULL WHERE series_instance_uid <> "
        "(SELECT series_instance_uid FROM raw_dicom_instance WHERE location = ?)",
        [str(changed)],
    )
    rewrite(changed)
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert run.instances_updated == 1
    assert _headers_match_their_representatives(warehouse) == []
    warehouse.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_rebuilds_forced_by_the_header_budget_build_the_same_tables(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archives of one-file series rebuild series whenever enough headers are held, mid-slice."""
    root = _copy_sources(tmp_path / "archive")
    results = []
    for budget in (pipeline.HEADER_BYTES_PER_REBUILD, 1):
        monkeypatch.setattr(pipeline, "HEADER_BYTES_PER_REBUILD", budget)
        monkeypatch.setattr(pipeline, "CHUNK_FILES", 2)
        warehouse = DuckDBRawWarehouse(tmp_path / f"budget-{budget}.duckdb")
        run = harvest([str(root)], warehouse, workers=workers, progress=False)
        results.append(
            (
                (run.instances_added, run.series_added),
                _table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
                _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE),
            )
        )
        assert _headers_match_their_representatives(warehouse) == []
        warehouse.close()
    assert results[0] == results[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_series_headers_follow_the_representative_whoever_read_it(tmp_path: Path, workers: int) -> None:
    """Workers read each chunk's first file of every series; the parent reads representatives they did not."""
    root = tmp_path / "archive"
    shutil.copytree(TEST_FILES / "dicomdirtests/98892003/MR700", root / "m_MR700")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=workers, progress=False, slice_files=3, batch_size=2)
    assert _headers_match_their_representatives(warehouse) == []

    # A representative this run will not read: its header is gone and only a later file is new.
    warehouse.con.execute("UPDATE raw_dicom_series SET representative_header_json = NULL")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for folder in ("z_later", "a_earlier"):
        (root / folder).mkdir()
    rewrite(files[-1], root / "z_later" / "new", SOPInstanceUID=pydicom.uid.generate_uid())
    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert (run.instances_added, run.series_updated) == (1, 1)
    assert _headers_match_their_representatives(warehouse) == []

    # A new first file of the series becomes its representative, with its own header.
    new_first = rewrite(files[0], root / "a_earlier" / "new", SOPInstanceUID=pydicom.uid.generate_uid(), PatientAge="077Y")
    harvest([str(root)], warehouse, workers=workers, progress=False)
    (representative,) = warehouse.con.execute("SELECT representative_location FROM raw_dicom_series").fetchone()
    assert representative == str(new_first)
    assert _headers_match_their_representatives(warehouse) == []

    # The representative file itself changes: its stored header must not go stale.
    rewrite(new_first, PatientAge="078Y")
    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert run.instances_updated == 1
    assert _headers_match_their_representatives(warehouse) == []
    warehouse.close()


def test_a_harvest_that_outgrows_duckdbs_memory_cap_goes_on_with_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No input aborts the run: a step that runs out of the cap is rolled back and run again."""
    root = _copy_sources(tmp_path / "archive")
    results = []
    monkeypatch.setattr(duckdb_writer, "FALLBACK_MEMORY_LIMITS", ("2MB", "2GB"))
    for limit in (duckdb_writer.HARVEST_CONFIG["memory_limit"], "1MB"):
        monkeypatch.setitem(duckdb_writer.HARVEST_CONFIG, "memory_limit", limit)
        warehouse = DuckDBRawWarehouse(tmp_path / f"limit-{limit}.duckdb")
        run = harvest([str(root)], warehouse, workers=1, progress=False)
        (setting,) = warehouse.con.execute("SELECT current_setting('memory_limit')").fetchone()
        results.append(((run.status, run.instances_added, run.series_added),
                        _table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
                        _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE)))
        warehouse.close()
    assert results[0] == results[1]
    assert results[1][0] == ("completed", 21, 7)
    assert "GiB" in setting  # the 1 MB cap was raised to the fallbacks, one after the other
    assert "ran out of its harvest memory (1MB)" in caplog.text
    assert "ran out of its harvest memory (2MB)" in caplog.text


def test_blocks_cached_past_the_threshold_are_dropped_after_each_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's cache is trimmed between slices, without changing what is written."""
    root = _copy_sources(tmp_path / "archive")
    results, cached = [], []
    fresh = duckdb_writer.connect_raw(tmp_path / "fresh.duckdb")
    ((harvest_limit,),) = fresh.execute("SELECT current_setting('memory_limit')").fetchall()
    fresh.close()
    for kept in (2**40, duckdb_writer.CACHE_KEPT_BYTES):  # never trimmed, then as the harvest does
        monkeypatch.setattr(duckdb_writer, "CACHE_KEPT_BYTES", kept)
        warehouse = DuckDBRawWarehouse(tmp_path / f"kept-{kept}.duckdb")
        harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2)
        (memory,) = warehouse.con.execute("SELECT SUM(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        cached.append(memory)
        (limit,) = warehouse.con.execute("SELECT current_setting('memory_limit')").fetchone()
        assert limit == harvest_limit  # the harvest's limit is back after each trim
        results.append((_table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
                        _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE)))
        warehouse.close()
    assert results[0] == results[1]
    assert cached[1] < cached[0]


def test_a_writes_uid_look_up_leaves_little_of_the_hash_table_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write looks its UIDs up in the whole UID hash table. DuckDB would keep every block of
    it cached, so the writer's memory would grow with the archive; it keeps about
    LOOKUP_MEMORY_BYTES of them, and writes the same rows."""
    root = _copy_sources(tmp_path / "archive")
    results, cached = [], []
    for lookup_bytes in (2**40, duckdb_writer.LOOKUP_MEMORY_BYTES):  # uncapped, then as the harvest does
        monkeypatch.setattr(duckdb_writer, "LOOKUP_MEMORY_BYTES", lookup_bytes)
        warehouse = DuckDBRawWarehouse(tmp_path / f"lookup-{lookup_bytes}.duckdb")
        warehouse.ensure_tables()
        # the hashes of an archive of 4,000,000 instances: about 30 MB of blocks
        warehouse.con.execute(f"INSERT INTO {duckdb_writer.UID_HASH_TABLE} SELECT hash(i), 0 FROM range(4000000) AS r(i)")
        warehouse.con.execute("CHECKPOINT")
        write_batch = warehouse.write_batch
        after_writes: list[int] = []

        def measured(*args: object, warehouse: DuckDBRawWarehouse = warehouse, write=write_batch, after=after_writes) -> object:
            result = write(*args)
            ((held,),) = warehouse.con.execute("SELECT SUM(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'").fetchall()
            after.append(held)
            return result

        monkeypatch.setattr(warehouse, "write_batch", measured)
        run = harvest([str(root)], warehouse, workers=1, progress=False, slice_files=8, batch_size=4)
        assert run.status == "completed" and len(after_writes) > 1
        cached.append(max(after_writes))
        results.append((_table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
                        _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE),
                        _table_rows(warehouse, "raw_harvest_error", "location", VOLATILE)))
        warehouse.close()
    assert results[0] == results[1]
    assert cached[0] > 24 * 2**20  # uncapped, the look-up left the table cached
    assert cached[1] < duckdb_writer.LOOKUP_MEMORY_BYTES + 4 * 2**20


def test_a_uid_look_up_that_outgrows_its_cap_is_retried_with_the_fallback_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The capped look-up runs inside the write's transaction: running out aborts it, and the write
    is rolled back and run again with the fallback limit (no error from restoring the limit)."""
    root = _copy_sources(tmp_path / "archive")
    results = []
    for lookup_bytes in (duckdb_writer.LOOKUP_MEMORY_BYTES, 1):
        monkeypatch.setattr(duckdb_writer, "LOOKUP_MEMORY_BYTES", lookup_bytes)
        warehouse = DuckDBRawWarehouse(tmp_path / f"lookup-{lookup_bytes}.duckdb")
        run = harvest([str(root)], warehouse, workers=1, progress=False)
        results.append(((run.status, run.instances_added, run.series_added, warehouse.memory_limit),
                        _table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
                        _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE)))
        warehouse.close()
    assert results[0][0] == ("completed", 21, 7, duckdb_writer.HARVEST_CONFIG["memory_limit"])
    assert results[1][0] == ("completed", 21, 7, duckdb_writer.FALLBACK_MEMORY_LIMITS[0])
    assert results[0][1:] == results[1][1:]
    assert "in write_batch; going on with" in caplog.text


def test_the_harvests_checkpoints_leave_row_groups_unmerged_for_a_later_connection_to_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merging the series table's row groups rewrote their headers, at a cost that grew with the
    archive; the harvest leaves it, and its deleted rows, to the next connection that vacuums."""
    root = _copy_sources(tmp_path / "archive")
    monkeypatch.setattr(duckdb_writer, "ROWS_PER_CONNECTION", 4)  # a new connection, so a new row group, every 4 rows or so

    def series_row_groups(con: duckdb.DuckDBPyConnection) -> int:
        ((groups,),) = con.execute("SELECT COUNT(DISTINCT row_group_id) FROM pragma_storage_info('raw_dicom_series')").fetchall()
        return groups

    results, groups = [], []
    for vacuum_tasks in (100, duckdb_writer.HARVEST_CONFIG["max_vacuum_tasks"]):  # DuckDB's default, then the harvest's
        monkeypatch.setitem(duckdb_writer.HARVEST_CONFIG, "max_vacuum_tasks", vacuum_tasks)
        path = tmp_path / f"vacuum-{vacuum_tasks}.duckdb"
        warehouse = DuckDBRawWarehouse(path)
        harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2)
        results.append(_table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE))
        warehouse.close()
        later = duckdb.connect(str(path))
        groups.append(series_row_groups(later))
        later.execute("CREATE TABLE another_stage (x INTEGER)")  # any write, then a checkpoint
        later.execute("CHECKPOINT")
        groups.append(series_row_groups(later))
        later.close()
    assert results[0] == results[1]
    assert groups[0] == groups[1] == groups[3] == 1  # seven series: one row group once merged
    assert groups[2] > 1  # the harvest's own checkpoints did not merge them


def test_a_run_stopped_while_the_writer_opens_its_file_again_is_recorded_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the old connection is closed and before the new one is open: the run's row
    still ends as failed, not running."""
    root = _copy_sources(tmp_path / "archive")
    real_connect = duckdb_writer.connect_raw
    opened: list[Path] = []

    def connect(path: Path) -> duckdb.DuckDBPyConnection:
        opened.append(path)
        if len(opened) == 2:  # the first reconnect
            raise KeyboardInterrupt
        return real_connect(path)

    monkeypatch.setattr(duckdb_writer, "connect_raw", connect)
    monkeypatch.setattr(duckdb_writer, "ROWS_PER_CONNECTION", 4)
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    with pytest.raises(KeyboardInterrupt):
        harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2)
    assert warehouse.con.execute("SELECT status, ended_at IS NOT NULL FROM raw_harvest_run").fetchall() == [("failed", True)]
    warehouse.close()


def test_the_writer_opens_its_file_again_every_so_many_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's metadata for the rows a connection wrote grows with them; a new connection drops it.
    What is written is the same, a fallback memory limit holds across, also in a pruning run (its
    found locations are a table of the file, dropped once used or after a crash)."""
    root = _copy_sources(tmp_path / "archive")
    results, opened = [], []
    real_connect = duckdb_writer.connect_raw
    monkeypatch.setattr(duckdb_writer, "connect_raw", lambda path: opened.append(path) or real_connect(path))
    for rows_per_connection in (10**9, 4):
        monkeypatch.setattr(duckdb_writer, "ROWS_PER_CONNECTION", rows_per_connection)
        warehouse = DuckDBRawWarehouse(tmp_path / f"rows-{rows_per_connection}.duckdb")
        warehouse.memory_limit = "300MB"  # as after a step that ran out of the harvest's limit
        warehouse.con.execute("SET memory_limit = '300MB'")
        opened.clear()
        harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2)
        assert (len(opened) >= 3) if rows_per_connection == 4 else opened == []  # 21 rows, a new connection per 4 or so
        ((limit,),) = warehouse.con.execute("SELECT current_setting('memory_limit')").fetchall()
        assert limit == "286.1 MiB"  # 300 MB
        results.append((_table_rows(warehouse, "raw_dicom_instance", "location", VOLATILE),
                        _table_rows(warehouse, "raw_dicom_series", "series_instance_uid", VOLATILE)))
        if rows_per_connection == 4:
            first, second = sorted(os.listdir(root))[:2]
            gone = len(_files(root / first))
            (root / first).rename(tmp_path / "moved")  # a folder goes
            for n, path in enumerate(_files(root / second)):  # and new files come, written in several batches
                rewrite(path, root / f"new_{n}.dcm", SOPInstanceUID=pydicom.uid.generate_uid())
            opened.clear()
            run = harvest([str(root)], warehouse, workers=1, progress=False, slice_files=4, batch_size=2, prune=True)
            assert run.instances_added > 4 and len(opened) >= 1
            assert run.files_removed == gone
            assert _locations(warehouse, "raw_dicom_instance").isdisjoint(str(p) for p in _files(tmp_path / "moved"))
            tables = {row[0] for row in warehouse.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            assert duckdb_writer.FOUND_TABLE not in tables
            warehouse.con.execute(f"CREATE TABLE {duckdb_writer.FOUND_TABLE} (location VARCHAR)")  # a stopped run's
            harvest([str(root)], warehouse, workers=1, progress=False)
            tables = {row[0] for row in warehouse.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            assert duckdb_writer.FOUND_TABLE not in tables
        warehouse.close()
    assert results[0] == results[1]


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_pages_duckdb_has_freed_go_back_to_the_system_at_once() -> None:
    """The writer hands back what a step freed, so the next step does not peak on top of it."""
    con = duckdb.connect(config={"threads": 1})
    for _ in range(3):  # jemalloc returns freed pages by itself after a second: a stalled run tries again
        before = _resident_mb()
        con.execute("SELECT COUNT(*) FROM (SELECT DISTINCT i FROM range(2000000) AS t(i))").fetchall()  # a large hash table, freed at the end
        freed_but_resident = _resident_mb()
        assert duckdb_writer.return_freed_memory()
        after = _resident_mb()
        if freed_but_resident - before > 40:
            break
    assert freed_but_resident - before > 40
    assert after < freed_but_resident - 30
    con.close()


def test_freeing_memory_is_skipped_where_duckdb_has_no_jemalloc(monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb_writer._jemalloc_control.cache_clear()
    monkeypatch.setitem(sys.modules, "_duckdb", object())  # a build without the allocator's controls
    monkeypatch.delitem(sys.modules, "duckdb.duckdb", raising=False)
    try:
        assert duckdb_writer.return_freed_memory() is False
    finally:
        monkeypatch.undo()
        duckdb_writer._jemalloc_control.cache_clear()
    assert duckdb_writer.return_freed_memory() is True


def _prune_archive(tmp_path: Path) -> tuple[Path, DuckDBRawWarehouse]:
    root = _copy_sources(tmp_path / "archive")
    (root / "notes.txt").write_text("not a DICOM file")  # an error row
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    harvest([str(root)], warehouse, workers=1, progress=False)
    return root, warehouse


def _locations(warehouse: DuckDBRawWarehouse, table: str) -> set[str]:
    return {row[0] for row in warehouse.con.execute(f"SELECT location FROM {table}").fetchall()}


def _series_rows(warehouse: DuckDBRawWarehouse) -> dict[str, tuple[Any, ...]]:
    rows = warehouse.con.execute(
        "SELECT series_instance_uid, instance_count, representative_location, last_run_id FROM raw_dicom_series"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


@pytest.mark.parametrize("workers", [1, 2])
def test_prune_removes_the_rows_of_files_no_longer_found_and_rebuilds_their_series(tmp_path: Path, workers: int) -> None:
    root, warehouse = _prune_archive(tmp_path)
    before, series_before = _locations(warehouse, "raw_dicom_instance"), _series_rows(warehouse)
    mr = sorted(str(p) for p in (root / "dicomdirtests_98892003_MR700").rglob("*") if p.is_file())
    mr_series = series_of(None, Path(mr[0]))  # type: ignore[arg-type]
    Path(mr[0]).unlink()  # the MR series loses its representative: it needs a new one, and its header
    (root / "notes.txt").unlink()  # an error row goes too
    removed = {mr[0], str(root / "notes.txt")}

    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert run.files_removed == 0 and _locations(warehouse, "raw_dicom_instance") == before, "rows stay without prune"

    run = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    assert run.status == "completed" and run.files_removed == len(removed)
    assert _locations(warehouse, "raw_dicom_instance") == before - removed
    assert str(root / "notes.txt") not in _locations(warehouse, "raw_harvest_error")
    count, representative, last_run = _series_rows(warehouse)[mr_series]
    assert (count, representative, last_run) == (series_before[mr_series][0] - 1, mr[1], run.run_id)
    assert _headers_match_their_representatives(warehouse) == []
    recorded = warehouse.con.execute("SELECT files_removed FROM raw_harvest_run WHERE run_id = ?", [run.run_id]).fetchone()
    assert recorded == (len(removed),)

    shutil.rmtree(root / "dicomdirtests_98892003_MR700")  # a series with no file left loses its row
    run = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    assert run.files_removed == len(mr) - 1 and mr_series not in _series_rows(warehouse)
    run = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    assert run.files_removed == 0 and run.files_unchanged == run.files_seen
    warehouse.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_prune_reads_a_copy_of_a_removed_file_in_its_place(tmp_path: Path, workers: int) -> None:
    """Copies of a harvested file are duplicate-SOP error rows; once the file itself is gone, the
    first copy holds the instance (read in the same run), the other stays a duplicate of it."""
    root, warehouse = _harvested_once(tmp_path)
    original = _files(root)[0]
    copies = [shutil.copy2(original, root / f"zz_copy_{n}.dcm") for n in (1, 2)]
    harvest([str(root)], warehouse, workers=workers, progress=False)
    assert {str(c) for c in copies} <= _locations(warehouse, "raw_harvest_error")
    series_uid = series_of(None, original)  # type: ignore[arg-type]
    count_before = _series_rows(warehouse)[series_uid][0]
    original.unlink()

    run = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    assert (run.files_removed, run.instances_added, run.errors) == (1, 1, 1)
    assert run.files_seen == len(_files(root)) and run.files_unchanged == run.files_seen - 2  # both copies read
    instances, errors = _locations(warehouse, "raw_dicom_instance"), _locations(warehouse, "raw_harvest_error")
    assert str(copies[0]) in instances and str(copies[0]) not in errors and str(original) not in instances
    ((message,),) = warehouse.con.execute("SELECT message FROM raw_harvest_error WHERE location = ?", [str(copies[1])]).fetchall()
    assert message.endswith(f"is already harvested from {copies[0]}")
    assert _series_rows(warehouse)[series_uid][0] == count_before
    assert _headers_match_their_representatives(warehouse) == []

    run = harvest([str(root)], warehouse, workers=workers, progress=False, prune=True)
    assert run.files_removed == run.instances_added == 0 and run.files_unchanged == run.files_seen
    warehouse.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_copy_takes_the_place_of_a_kept_file_that_no_longer_holds_its_instance(tmp_path: Path, workers: int) -> None:
    """Copies stay duplicates while their kept file holds the SOP instance; once it holds another
    one (rewritten) or none (unreadable), the first copy is read again and holds it, whether the
    walk passes it before or after the kept file."""
    root, warehouse = _harvested_once(tmp_path)
    original = _files(root)[0]
    sop_uid = pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID
    first, second = (shutil.copy2(original, root / name) for name in ("0_copy.dcm", "zz_copy.dcm"))
    assert first < original < second  # in walk order
    harvest([str(root)], warehouse, workers=workers, progress=False)
    series_uid = series_of(None, original)  # type: ignore[arg-type]
    count_before = _series_rows(warehouse)[series_uid][0]

    def instance_at(location: Path) -> str | None:
        rows = warehouse.con.execute("SELECT sop_instance_uid FROM raw_dicom_instance WHERE location = ?", [str(location)])
        return next(iter(rows.fetchall()), (None,))[0]

    def kept_by(copy: Path) -> str:
        ((message,),) = warehouse.con.execute("SELECT message FROM raw_harvest_error WHERE location = ?", [str(copy)]).fetchall()
        return message.split(" is already harvested from ")[1]

    rewrite(original, PatientName="Same^Instance")  # still holds it: the copies are not read again
    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert (run.instances_updated, run.instances_added, run.errors) == (1, 0, 0)
    assert run.files_unchanged == run.files_seen - 1
    assert kept_by(first) == kept_by(second) == str(original)

    rewrite(original, SOPInstanceUID=pydicom.uid.generate_uid())
    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert (run.instances_updated, run.instances_added, run.errors) == (1, 1, 1)
    assert run.files_seen == len(_files(root)) and run.files_unchanged == run.files_seen - 3
    assert instance_at(first) == sop_uid and instance_at(original) not in (None, sop_uid)
    assert kept_by(second) == str(first)
    assert _series_rows(warehouse)[series_uid][0] == count_before + 1
    assert _headers_match_their_representatives(warehouse) == []

    first.write_bytes(first.read_bytes()[:200])  # the file holding it now is an error
    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert (run.instances_updated, run.instances_added, run.errors) == (0, 1, 1)
    assert instance_at(second) == sop_uid and instance_at(first) is None
    assert _series_rows(warehouse)[series_uid][0] == count_before + 1

    run = harvest([str(root)], warehouse, workers=workers, progress=False)
    assert (run.instances_added, run.errors) == (0, 0) and run.files_unchanged == run.files_seen
    warehouse.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_copy_found_in_the_run_that_rewrites_its_kept_file_ends_as_the_instance(tmp_path: Path, workers: int) -> None:
    """The new copy is written (a duplicate) batches before its kept file is replaced: it is read
    again at the end, and the run counts it once, as an instance and not as an error."""
    root, warehouse = _harvested_once(tmp_path)
    original = _files(root)[-1]
    copy = shutil.copy2(original, root / "0_copy.dcm")
    rewrite(original, SOPInstanceUID=pydicom.uid.generate_uid())
    run = harvest([str(root)], warehouse, workers=workers, progress=False, batch_size=1, slice_files=1)
    assert (run.instances_updated, run.instances_added, run.errors) == (1, 1, 0)
    assert run.files_unchanged == run.files_seen - 2
    assert str(copy) in _locations(warehouse, "raw_dicom_instance")
    assert str(copy) not in _locations(warehouse, "raw_harvest_error")
    warehouse.close()


def test_a_copy_outside_the_harvested_sources_is_read_again_without_counting_as_found(tmp_path: Path) -> None:
    root, warehouse = _harvested_once(tmp_path)
    original = _files(root)[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = shutil.copy2(original, elsewhere / "copy.dcm")
    harvest([str(elsewhere)], warehouse, workers=1, progress=False)
    assert str(copy) in _locations(warehouse, "raw_harvest_error")
    rewrite(original, SOPInstanceUID=pydicom.uid.generate_uid())
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert (run.files_seen, run.files_unchanged) == (len(_files(root)), len(_files(root)) - 1)
    assert (run.instances_updated, run.instances_added, run.errors) == (1, 1, 0)
    assert str(copy) in _locations(warehouse, "raw_dicom_instance")
    warehouse.close()


def test_a_pruning_run_reads_the_copies_a_stopped_run_left_orphaned(tmp_path: Path) -> None:
    """A run that stopped after removing a file's rows, before reading its copies again, leaves
    a copy naming a file with no row: the next pruning run looks at every copy and reads it."""
    root, warehouse = _harvested_once(tmp_path)
    original = _files(root)[0]
    copy = shutil.copy2(original, root / "zz_copy.dcm")
    harvest([str(root)], warehouse, workers=1, progress=False)
    original.unlink()
    warehouse.con.execute("DELETE FROM raw_dicom_instance WHERE location = ?", [str(original)])  # the stopped run
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert run.instances_added == 0 and str(copy) in _locations(warehouse, "raw_harvest_error"), "only pruning looks"
    run = harvest([str(root)], warehouse, workers=1, progress=False, prune=True)
    assert (run.files_removed, run.instances_added, run.errors) == (0, 1, 0)
    assert run.files_unchanged == run.files_seen - 1
    assert str(copy) in _locations(warehouse, "raw_dicom_instance")
    warehouse.close()


def test_prune_leaves_other_sources_and_unreadable_folders_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, warehouse = _prune_archive(tmp_path)
    ct, unreadable = root / "dicomdirtests_98892001", root / "dicomdirtests_77654033"
    sibling = shutil.copytree(ct, root / "dicomdirtests_98892001b")  # its name starts with ct's: not under it
    harvest([str(root)], warehouse, workers=1, progress=False)
    before = _locations(warehouse, "raw_dicom_instance") | _locations(warehouse, "raw_harvest_error")
    real_scandir = os.scandir

    def scandir(path):  # noqa: ANN001, ANN202 - os.scandir's signature
        if str(path) == str(unreadable):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("extractor.harvest.discover.os.scandir", scandir)
    single = min(p for p in ct.rglob("*") if p.is_file())
    single.unlink()
    shutil.rmtree(unreadable / os.listdir(unreadable)[0])  # gone, but its folder cannot be listed now
    run = harvest([str(ct), str(unreadable)], warehouse, workers=1, progress=False, prune=True)
    after = _locations(warehouse, "raw_dicom_instance") | _locations(warehouse, "raw_harvest_error")
    assert run.files_removed == 1 and after == before - {str(single)}
    assert any(location.startswith(str(sibling) + os.sep) for location in after)
    warehouse.close()


def test_a_warehouse_from_before_prune_gains_the_run_column(tmp_path: Path) -> None:
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    columns = [name for name, _ in duckdb_writer.RAW_TABLES["raw_harvest_run"] if name != "files_removed"]
    body = ", ".join(f"{c} VARCHAR" for c in columns)
    warehouse.con.execute(f"CREATE TABLE raw_harvest_run ({body}, PRIMARY KEY (run_id))")  # as before the column
    warehouse.con.execute("INSERT INTO raw_harvest_run (run_id, status) VALUES ('old', 'completed')")
    run = harvest([str(_copy_sources(tmp_path / "archive"))], warehouse, workers=1, progress=False, prune=True)
    rows = warehouse.con.execute("SELECT run_id, files_removed FROM raw_harvest_run ORDER BY run_id").fetchall()
    assert rows == sorted([("old", None), (run.run_id, 0)])
    warehouse.close()


def test_a_slice_completed_after_every_chunk_is_handed_out_is_rebuilt_at_once() -> None:
    """A rebuild's memory grows with the rows it covers, so the last slices are rebuilt one by
    one as they complete, not all together once the workers have finished them."""
    loop = pipeline._Loop(None, None, workers=2, pool=None, batch_size=2, slice_files=3, bar=None)
    loop.selected, loop.received = [3, 3, 3], [3, 1, 0]  # every chunk handed out
    assert loop._rebuild_due()  # the first slice is complete
    loop.rebuilt = loop.completed
    assert not loop._rebuild_due()  # nothing more completed since
    loop.received[1] = 3
    assert loop._rebuild_due()


def test_a_batch_is_written_to_the_file_a_row_group_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows appended in one transaction are written out as each row group fills, not held in
    memory until five have (DuckDB's default), so a batch's write costs about one row group."""
    held = {}
    for row_groups in (duckdb_writer.HARVEST_CONFIG["write_buffer_row_group_count"], 5):
        monkeypatch.setitem(duckdb_writer.HARVEST_CONFIG, "write_buffer_row_group_count", row_groups)
        con = duckdb_writer.connect_raw(tmp_path / f"buffer-{row_groups}.duckdb")
        con.execute("CREATE TABLE t (location VARCHAR, note VARCHAR)")
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO t SELECT 'archive/' || i, repeat(md5(i::VARCHAR), 8) FROM range(?) AS r(i)",
            [4 * duckdb_writer.ROW_GROUP_SIZE],
        )
        ((held[row_groups],),) = con.execute(
            "SELECT COALESCE(SUM(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
        ).fetchall()
        con.execute("COMMIT")
        con.close()
    assert held[1] < held[5] / 2, held


def test_a_rebuild_takes_the_headers_the_workers_read(tmp_path: Path) -> None:
    """Each representative read in the slice gets its header from the rebuild itself: none is
    left for the parent to open again."""
    root = _copy_sources(tmp_path / "archive")
    warehouse = DuckDBRawWarehouse(tmp_path / "id.duckdb")
    left_without: list[tuple[str, str]] = []
    without_header = warehouse.series_without_header

    def recording() -> list[tuple[str, str]]:
        left = without_header()
        left_without.extend(left)
        return left

    warehouse.series_without_header = recording  # type: ignore[method-assign]
    run = harvest([str(root)], warehouse, workers=1, progress=False)
    assert run.series_added == 7 and left_without == []
    assert _headers_match_their_representatives(warehouse) == []
    warehouse.close()
