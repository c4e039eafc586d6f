"""`imgomop scrub-requests`: pending request files run as `imgomop scrub --cohort`, then move to done/ or failed/.

The end-to-end test runs on a copy of the built demo warehouse, so the shared one is left as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import TEST_DEID_KEY, invoke_cli, write_duckdb_config
from typer.testing import CliRunner

from extractor.cli import app
from extractor.scrub.requests import RequestError, process_pending, read_request, settle

COHORT = "SELECT image_occurrence_id FROM image_occurrence WHERE modality_source_value = 'CT' ORDER BY image_occurrence_id LIMIT 2"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_a_request_resolves_relative_paths_against_the_project_folder(tmp_path):
    path = _write(tmp_path / "requests", "study.toml", 'cohort = "cohorts/ct.sql"\nout = "extracts/study"\nprofile = "post-irb-limited"\n')
    request = read_request(path, tmp_path)
    assert request.cohort == str(tmp_path / "cohorts" / "ct.sql")
    assert request.out == str(tmp_path / "extracts" / "study")
    assert request.profile == "post-irb-limited"
    bucket = _write(tmp_path / "requests", "bucket.toml", f'cohort = "{COHORT}"\nout = "gs://bucket/study"\n')
    assert read_request(bucket, tmp_path).out == "gs://bucket/study" and read_request(bucket, tmp_path).cohort == COHORT


@pytest.mark.parametrize(
    "text, message",
    [
        ('out = "x"\n', "missing cohort"),
        (f'cohort = "{COHORT}"\n', "missing out"),
        (f'cohort = "{COHORT}"\nout = "x"\nkey = "secret"\n', "unknown key(s) key"),
        ('cohort = ""\nout = "x"\n', "cohort must be a non-empty string"),
        ('cohort = "select 1"\nout = 3\n', "out must be a non-empty string"),
        ("cohort = \n", "not a readable TOML file"),
    ],
)
def test_a_bad_request_names_the_file_and_the_problem(tmp_path, text, message):
    path = _write(tmp_path, "bad.toml", text)
    with pytest.raises(RequestError) as error:
        read_request(path, tmp_path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_settled_requests_leave_the_pending_folder_and_keep_their_history(tmp_path):
    folder = tmp_path / "requests"
    first = settle(_write(folder, "a.toml", "x"))
    assert first.moved_to == folder / "done" / "a.toml" and first.error is None
    again = settle(_write(folder, "a.toml", "y"))  # the same name asked for again: both are kept
    assert again.moved_to.parent == folder / "done" and again.moved_to.read_text() == "y" and first.moved_to.read_text() == "x"
    failed = settle(_write(folder, "b.toml", "z"), "the cohort query selected no series")
    assert failed.moved_to == folder / "failed" / "b.toml"
    assert "the cohort query selected no series" in (folder / "failed" / "b.error.txt").read_text()
    assert not list(folder.glob("*.toml"))


def test_one_failing_request_does_not_stop_the_others(tmp_path):
    folder = tmp_path / "requests"
    for name in ("a.toml", "b.toml", "c.toml"):
        _write(folder, name, f'cohort = "{COHORT}"\nout = "{name}"\n')
    ran = []

    def run(request):
        ran.append(request.path.name)
        if request.path.name == "b.toml":
            raise RuntimeError("disk full")

    settled = process_pending(folder, tmp_path, run)
    assert ran == ["a.toml", "b.toml", "c.toml"]
    assert [(s.moved_to.parent.name, s.error) for s in settled] == [("done", None), ("failed", "disk full"), ("done", None)]


def test_no_pending_request_is_a_success_with_a_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requests" / "done").mkdir(parents=True)
    _write(tmp_path / "requests" / "done", "old.toml", "x")
    output = invoke_cli("scrub-requests", str(tmp_path / "requests"))
    assert "no pending scrub requests" in output


def test_a_missing_requests_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["scrub-requests", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "scrub requests folder not found" in result.output


def test_without_the_key_no_request_is_touched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMGOMOP_DEID_KEY", raising=False)
    request = _write(tmp_path / "requests", "a.toml", f'cohort = "{COHORT}"\nout = "x"\n')
    result = CliRunner().invoke(app, ["scrub-requests", str(tmp_path / "requests")])
    assert result.exit_code == 2 and "IMGOMOP_DEID_KEY" in result.output
    assert request.exists() and not (tmp_path / "requests" / "done").exists()


@pytest.fixture(scope="module")
def project(built_demo, tmp_path_factory):
    """A copy of the built demo warehouse, its config naming the requests folder."""
    root = tmp_path_factory.mktemp("requests-project")
    shutil.copytree(built_demo.identified.parent, root / "warehouse", ignore=shutil.ignore_patterns("dbt"))
    config = write_duckdb_config(root)
    config.write_text(config.read_text() + '\n[schedule]\nrequests = "incoming"\n')
    return root, config


def test_pending_requests_are_scrubbed_once_and_settled(project, monkeypatch):
    root, config = project
    monkeypatch.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
    folder = root / "incoming"
    _write(folder, "1-ct.toml", f'cohort = "{COHORT}"\nout = "extracts/ct"\nprofile = "post-irb-limited"\n')
    _write(folder, "2-no-id.toml", 'cohort = "SELECT 1 AS x"\nout = "extracts/none"\n')
    _write(folder, "3-typo.toml", f'cohort = "{COHORT}"\nouts = "extracts/typo"\n')

    result = CliRunner().invoke(app, ["scrub-requests", "--config", str(config), "--workers", "1"])
    assert result.exit_code == 1, result.output  # a request failed; the others ran
    assert "scrub requests: 1 done, 2 failed" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["done", "failed"]
    assert [p.name for p in (folder / "done").iterdir()] == ["1-ct.toml"]
    assert "must return image_occurrence_id" in (folder / "failed" / "2-no-id.error.txt").read_text()
    assert "unknown key(s) outs" in (folder / "failed" / "3-typo.error.txt").read_text()

    # the done request went through `imgomop scrub --cohort`: files, manifest, local_path
    extract = root / "extracts" / "ct"
    written = sorted(extract.rglob("*.dcm"))
    assert written and (extract / "manifest").is_dir()
    con = duckdb.connect(str(root / "warehouse" / "identified.duckdb"), read_only=True)
    recorded = con.execute(
        "SELECT count(*) FROM scrub_manifest WHERE outcome = 'deidentified' AND starts_with(output, ?)", [str(extract)]
    ).fetchone()[0]
    con.close()
    assert recorded == len(written)
    con = duckdb.connect(str(root / "warehouse" / "deidentified.duckdb"), read_only=True)
    paths = {r[0] for r in con.execute(f"SELECT local_path FROM image_occurrence WHERE image_occurrence_id IN ({COHORT})").fetchall()}
    con.close()
    assert paths == {str(p.parent) for p in written}  # the newest extract, whatever was scrubbed before

    # a re-run repeats nothing
    again = invoke_cli("scrub-requests", "--config", str(config))
    assert "no pending scrub requests" in again
    assert sorted(extract.rglob("*.dcm")) == written

    # the same cohort again, into a second extract: local_path follows the newest one
    _write(folder, "4-ct-again.toml", f'cohort = "{COHORT}"\nout = "extracts/ct-again"\n')
    invoke_cli("scrub-requests", "--config", str(config), "--workers", "1")
    second = sorted((root / "extracts" / "ct-again").rglob("*.dcm"))
    con = duckdb.connect(str(root / "warehouse" / "deidentified.duckdb"), read_only=True)
    paths = {r[0] for r in con.execute(f"SELECT local_path FROM image_occurrence WHERE image_occurrence_id IN ({COHORT})").fetchall()}
    con.close()
    assert second and paths == {str(p.parent) for p in second}


def test_manifest_columns_keep_their_types_when_a_run_has_no_errors(tmp_path):
    """A first run without errors must not type error columns as NULL (a later error would not fit)."""
    from datetime import datetime

    from extractor.config import Config, DuckDBTarget
    from extractor.scrub.cohort import record_manifest

    config = Config("duckdb", DuckDBTarget(tmp_path / "id.duckdb", tmp_path / "deid.duckdb"))
    row = {"location": "/a/1.dcm", "outcome": "deidentified", "rule": None, "regions": "[]", "output": "/x/s/1.dcm",
           "transfer_syntax_in": "1.2.840.10008.1.2.1", "transfer_syntax_out": "1.2.840.10008.1.2.1",
           "bytes_in": 10, "bytes_out": 9, "seconds": 0.1, "error_class": None, "error": None,
           "series_instance_uid": "1.2.3", "scrubbed_series_uid": "2.25.1", "source_key": "k1", "run_id": "r1",
           "scrubbed_at": datetime(2026, 1, 1)}
    record_manifest(config, [row])
    failed = dict(row, location="/a/2.dcm", outcome="quarantined", output=None, error_class="PixelError",
                  error="cannot decode", source_key="k2", run_id="r2", scrubbed_at=datetime(2026, 1, 2))
    record_manifest(config, [failed])
    # and a warehouse whose manifest was recorded before the schema was explicit is repaired
    legacy = Config("duckdb", DuckDBTarget(tmp_path / "old.duckdb", tmp_path / "old-deid.duckdb"))
    con = duckdb.connect(str(legacy.duckdb.identified_path))
    con.register("_old", pa.Table.from_pylist([row]))
    con.execute("CREATE TABLE scrub_manifest AS SELECT * FROM _old")
    con.close()
    record_manifest(legacy, [failed])
    for cfg in (config, legacy):
        con = duckdb.connect(str(cfg.duckdb.identified_path), read_only=True)
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'scrub_manifest'").fetchall())
        errors = con.execute("SELECT error_class, error FROM scrub_manifest WHERE outcome = 'quarantined'").fetchall()
        con.close()
        assert types["error_class"] == types["error"] == "VARCHAR"
        assert errors == [("PixelError", "cannot decode")]
