"""Local stand-ins for the cloud services, started by the test setup (see tests/conftest.py).

BigQuery: crucible-emulator, installed in its own virtual environment by
`scripts/setup-emulators.sh` (it pins its own duckdb, so it cannot live in the project's venv).
The venv defaults to `<repo>/.venv-crucible`; IMGOMOP_CRUCIBLE_VENV overrides it.
It serves the BigQuery REST API on loopback, accepts any project id and anonymous credentials,
and keeps its state in memory (gone when the process stops).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CRUCIBLE_VENV_ENV = "IMGOMOP_CRUCIBLE_VENV"
SETUP_HINT = "run `bash scripts/setup-emulators.sh` (creates it with uv)"


class EmulatorNotInstalled(RuntimeError):
    pass


class EmulatorDidNotStart(RuntimeError):
    pass


def crucible_venv() -> Path:
    """The emulator's venv; a relative IMGOMOP_CRUCIBLE_VENV is taken from the repository root,
    as scripts/setup-emulators.sh takes it."""
    configured = os.environ.get(CRUCIBLE_VENV_ENV)
    return REPO / Path(configured).expanduser() if configured else REPO / ".venv-crucible"


def crucible_executable() -> Path:
    """The `crucible` command of the emulator's venv, or a message saying how to install it."""
    venv = crucible_venv()
    exe = venv / "bin" / "crucible"
    if not exe.is_file():
        raise EmulatorNotInstalled(
            f"BigQuery emulator not installed: {exe} does not exist; {SETUP_HINT}"
            f" (or point {CRUCIBLE_VENV_ENV} at a venv holding crucible-emulator[server]==0.1.0a2)"
        )
    return exe


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def _serve(command: list[str], health_url: str, name: str, startup_timeout: float) -> Iterator[None]:
    """Run a server process until its health URL answers; stop it afterwards."""
    with tempfile.TemporaryFile(mode="w+b") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _answers(health_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read()[-2000:].decode("utf-8", "replace")
                    state = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
                    raise EmulatorDidNotStart(f"{name} {state} within {startup_timeout:.0f} s; output:\n{tail}")
                time.sleep(0.1)
            yield
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def bigquery_emulator(startup_timeout: float = 30.0) -> Iterator[str]:
    """Start `crucible serve --dialect bigquery` on a free loopback port; yield its endpoint URL."""
    exe = crucible_executable()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [str(exe), "serve", "--dialect", "bigquery", "--host", "127.0.0.1", "--port", str(port)]
    with _serve(command, f"{endpoint}/_crucible/health", f"crucible serve on {endpoint}", startup_timeout):
        yield endpoint


# --- Cloud Storage: gcp-storage-emulator --------------------------------------------------------
# It lives in the project's test extra (its only dependency, google-crc32c, is one
# google-cloud-storage already needs), so it runs with the interpreter that runs the tests.
# In-memory storage; uploads, downloads and listings work; generation preconditions are not
# enforced. google-cloud-storage follows STORAGE_EMULATOR_HOST to it with anonymous credentials.

STORAGE_EMULATOR_MODULE = "gcp_storage_emulator"
STORAGE_EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"


def storage_emulator_check() -> None:
    """Raise EmulatorNotInstalled with how to install it when gcp-storage-emulator is missing."""
    import importlib.util
    import sys

    if importlib.util.find_spec(STORAGE_EMULATOR_MODULE) is None:
        raise EmulatorNotInstalled(
            f"Cloud Storage emulator not installed: no module {STORAGE_EMULATOR_MODULE!r} in {sys.executable}; "
            "install the test extra (`uv pip install -e '.[test]'`, which holds gcp-storage-emulator)"
        )


@contextmanager
def storage_emulator(startup_timeout: float = 30.0) -> Iterator[str]:
    """Start gcp-storage-emulator (in-memory) on a free loopback port; yield its endpoint URL."""
    import sys

    storage_emulator_check()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", STORAGE_EMULATOR_MODULE, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"]
    # its health check answers "OK" at the root
    with _serve(command, f"{endpoint}/", f"gcp-storage-emulator on {endpoint}", startup_timeout):
        yield endpoint
