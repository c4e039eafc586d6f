"""The command line as a user meets it: help, a harvest, and bad input."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pydicom
from typer.testing import CliRunner

from extractor.cli import app

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("harvest", "demo-data", "demo"):
        assert command in result.output


def test_harvest_help_explains_incremental_runs():
    result = runner.invoke(app, ["harvest", "--help"])
    assert result.exit_code == 0
    assert "incremental" in result.output.lower()


def test_harvest_writes_the_default_warehouse(tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "README.txt"):
        shutil.copy(TEST_FILES / name, archive / name)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["harvest", str(archive), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "3 files seen" in result.output and "2 instances added" in result.output and "1 errors" in result.output
    con = duckdb.connect(str(tmp_path / "warehouse" / "identified.duckdb"), read_only=True)
    assert con.execute("select count(*) from raw_dicom_series").fetchone()[0] == 2
    assert not (tmp_path / "warehouse" / "deidentified.duckdb").exists()


def test_missing_source_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["harvest", str(tmp_path / "no-such-folder")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output


def test_bad_config_is_a_clear_error(tmp_path):
    config = tmp_path / "imgomop.toml"
    config.write_text('[warehouse]\ntarget = "oracle"\n')
    result = runner.invoke(app, ["harvest", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 2
    assert "oracle" in result.output


def test_a_warehouse_another_process_holds_is_a_clear_error(tmp_path, monkeypatch):
    """DuckDB lets one process write a file at a time: a second harvest says so and stops."""
    monkeypatch.chdir(tmp_path)
    warehouse = tmp_path / "warehouse" / "identified.duckdb"
    warehouse.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(warehouse)!r}); print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = runner.invoke(app, ["harvest", str(TEST_FILES / "CT_small.dcm"), "--workers", "1"])
    finally:
        holder.communicate("")
    assert result.exit_code == 2, result.output
    assert f"{warehouse} is open in another process (PID {holder.pid})" in result.output
    assert "Traceback" not in result.output


SLOW_HARVEST = """
import sys, time
from pathlib import Path
from extractor.harvest import pipeline
from extractor.cli import app

read = pipeline.harvest_chunk

def slow(files, run_id):  # the first chunk says it started, then every chunk takes a while
    Path(sys.argv[1]).touch()
    time.sleep(0.5)
    return read(files, run_id)

pipeline.harvest_chunk = slow
app(["harvest", sys.argv[2], "--workers", "2", "--config", sys.argv[3]])
"""


def test_sigterm_stops_a_harvest_cleanly_and_the_next_run_goes_on(tmp_path):
    """A scheduler stopping the task: the pool stops with it, the run is recorded as failed, exit
    code 130 and a line saying how to go on; then a harvest again finishes the archive."""
    archive = tmp_path / "archive"
    for n in range(12):  # 1,092 files: five chunks of up to 256, each made to take half a second
        shutil.copytree(TEST_FILES / "dicomdirtests", archive / f"copy{n}")
    config = tmp_path / "imgomop.toml"
    config.write_text(f'[warehouse]\ntarget = "duckdb"\n[warehouse.duckdb]\nidentified = "{tmp_path}/id.duckdb"\n'
                      f'deidentified = "{tmp_path}/deid.duckdb"\n')
    started = tmp_path / "started"
    harvest = subprocess.Popen([sys.executable, "-c", SLOW_HARVEST, str(started), str(archive), str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not started.exists() and harvest.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    harvest.terminate()
    output, _ = harvest.communicate(timeout=60)  # returns once nothing holds the output pipe
    assert harvest.returncode == 130, output
    assert "interrupted: the run is recorded as failed" in output and "Traceback" not in output
    result = runner.invoke(app, ["harvest", str(archive), "--workers", "2", "--config", str(config)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp_path / "id.duckdb"), read_only=True)
    runs = con.execute("SELECT status, files_seen FROM raw_harvest_run ORDER BY started_at").fetchall()
    files = sum(1 for p in archive.rglob("*") if p.is_file())
    counted = con.execute("SELECT (SELECT COUNT(*) FROM raw_dicom_instance) + (SELECT COUNT(*) FROM raw_harvest_error)").fetchone()[0]
    series = con.execute("SELECT SUM(instance_count) FROM raw_dicom_series").fetchone()[0]
    instances = con.execute("SELECT COUNT(*) FROM raw_dicom_instance").fetchone()[0]
    con.close()
    assert [status for status, _ in runs] == ["failed", "completed"] and runs[1][1] == files
    assert counted == files and series == instances


def test_demo_data_refuses_to_overwrite_without_the_flag(tmp_path):
    (tmp_path / "demo" / "dicom").mkdir(parents=True)
    result = runner.invoke(app, ["demo-data", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert "--overwrite" in result.output
