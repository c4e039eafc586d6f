"""The README's main job: `imgomop demo` on a fresh folder, as a user runs it (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb


def test_demo_runs_end_to_end_and_ends_with_checks_and_a_review(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "IMGOMOP_DEID_KEY"}  # the demo makes its own key
    result = subprocess.run(
        [sys.executable, "-m", "extractor.cli", "demo", "--out", "demo"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "using a random key for this demo run" in result.stdout
    last_line = result.stdout.strip().splitlines()[-1]
    assert "0 critical failed" in last_line and "Data Docs" in last_line  # the checks end the demo
    assert (tmp_path / "warehouse" / "data_docs" / "index.html").is_file()
    review = (tmp_path / "demo" / "review" / "index.html").read_text(encoding="utf-8")
    assert "identified" in review.splitlines()[0].lower()  # the report says first what it holds
    extract = [p for p in (tmp_path / "demo" / "extract").rglob("*.dcm") if "manifest" not in p.parts]
    con = duckdb.connect(str(tmp_path / "warehouse" / "deidentified.duckdb"), read_only=True)
    try:
        scrubbed_series = con.execute(
            "SELECT count(*) FROM image_occurrence WHERE starts_with(local_path, ?)", [str(tmp_path / "demo" / "extract")]
        ).fetchone()[0]
    finally:
        con.close()
    assert extract and scrubbed_series > 0
    assert "leaked" not in result.stderr  # no teardown noise from the bindings after the summary
