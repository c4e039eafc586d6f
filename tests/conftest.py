"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[str]:
    """The endpoint URL of a BigQuery emulator (crucible-emulator) running for this test session.

    Fails (never skips) when the emulator's venv is missing: scripts/setup-emulators.sh makes it.
    """
    from emulators import EmulatorNotInstalled, crucible_executable
    from emulators import bigquery_emulator as start_bigquery_emulator

    missing = None
    try:
        crucible_executable()
    except EmulatorNotInstalled as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    with start_bigquery_emulator() as endpoint:
        yield endpoint


TEST_DEID_KEY = "imgomop-test-key-published-not-secret"


@dataclass(frozen=True)
class BuiltDemo:
    """The demo archive carried through harvest, load-ehr and build on DuckDB."""

    root: Path
    archive: object  # extractor.demo_data.DemoArchive
    config_path: Path
    identified: Path
    deidentified: Path
    build_output: str


def write_duckdb_config(root: Path) -> Path:
    config = root / "imgomop.toml"
    config.write_text(
        "[warehouse.duckdb]\n"
        f'identified = "{root / "warehouse" / "identified.duckdb"}"\n'
        f'deidentified = "{root / "warehouse" / "deidentified.duckdb"}"\n'
    )
    return config


def interrupt_a_rebuild(monkeypatch: pytest.MonkeyPatch, warehouse_class: type, number: int = 2) -> None:
    """Make the `number`-th series rebuild of that writer class raise KeyboardInterrupt, as Ctrl-C
    or SIGTERM would between a write and its rebuild (`monkeypatch.undo()` restores it)."""
    real_refresh = warehouse_class.refresh_series
    calls = []

    def refresh(self, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return real_refresh(self, *args, **kwargs)

    monkeypatch.setattr(warehouse_class, "refresh_series", refresh)


def invoke_cli(*args: str) -> str:
    """Run an imgomop command in-process; fail the test with its output when it fails."""
    from typer.testing import CliRunner

    from extractor.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        pytest.fail(f"imgomop {' '.join(args)} exited {result.exit_code}:\n{result.output}\n{result.exception!r}")
    return result.output


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory) -> Iterator[BuiltDemo]:
    from extractor.demo_data import make_demo_archive

    root = tmp_path_factory.mktemp("built-demo")
    archive = make_demo_archive(root / "demo", seed=7)
    config = write_duckdb_config(root)
    previous_key = os.environ.get("IMGOMOP_DEID_KEY")
    os.environ["IMGOMOP_DEID_KEY"] = TEST_DEID_KEY
    try:
        invoke_cli("harvest", str(archive.dicom_dir), "--config", str(config), "--workers", "2")
        invoke_cli("load-ehr", str(archive.ehr_dir), "--config", str(config))
        output = invoke_cli("build", "--config", str(config))
        yield BuiltDemo(
            root, archive, config, root / "warehouse" / "identified.duckdb", root / "warehouse" / "deidentified.duckdb", output
        )
    finally:
        if previous_key is None:
            os.environ.pop("IMGOMOP_DEID_KEY", None)
        else:
            os.environ["IMGOMOP_DEID_KEY"] = previous_key


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """The endpoint URL of a Cloud Storage emulator (gcp-storage-emulator, in memory) for this session.

    Point google-cloud-storage at it with STORAGE_EMULATOR_HOST (set it with monkeypatch in the
    test: the client then uses anonymous credentials). Fails (never skips) when it is not installed.
    """
    from emulators import EmulatorNotInstalled, storage_emulator, storage_emulator_check

    missing = None
    try:
        storage_emulator_check()
    except EmulatorNotInstalled as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    with storage_emulator() as endpoint:
        yield endpoint
