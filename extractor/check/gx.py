"""great-expectations, imported with its usage statistics turned off.

Import GX only through this module: the variable must be set before GX is first imported.
"""

from __future__ import annotations

import atexit
import os
import sys

os.environ["GX_ANALYTICS_ENABLED"] = "False"


def _quiet_interpreter_teardown() -> None:
    """GX and duckdb-engine keep DuckDB types in module caches; at interpreter teardown DuckDB's
    bindings (nanobind) then print dozens of "leaked instance" lines to stderr, after every line
    of ours. Nothing leaks across runs (the process is ending), so the noise is dropped: stderr is
    pointed at /dev/null once everything of ours has been flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


atexit.register(_quiet_interpreter_teardown)

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

__all__ = ["DataContextConfig", "InMemoryStoreBackendDefaults", "ProgressBarsConfig", "gx", "gxe"]
