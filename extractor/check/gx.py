"""great-expectations, imported with its usage statistics turned off.

Import GX only through this module: the variable must be set before GX is first imported.
"""

from __future__ import annotations

import os

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

__all__ = ["DataContextConfig", "InMemoryStoreBackendDefaults", "ProgressBarsConfig", "gx", "gxe"]
