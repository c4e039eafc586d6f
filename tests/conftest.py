"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

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
