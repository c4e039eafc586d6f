"""dbt-duckdb plugin: hands the de-identification key to DuckDB as a session variable.

The key is read from the environment at connection time and set with a bound parameter, so
it never appears in a model, in compiled SQL under target/, or in dbt's logs. The macro
`deid_key()` reads it back with getvariable().
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin

KEY_ENV_VAR = "IMGOMOP_DEID_KEY"
KEY_VARIABLE = "imgomop_deid_key"


def _set_key(connection_or_cursor) -> None:
    key = os.environ.get(KEY_ENV_VAR)
    if key:
        connection_or_cursor.execute(f"SET VARIABLE {KEY_VARIABLE} = ?", [key])


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        _set_key(conn)

    def configure_cursor(self, cursor) -> None:
        _set_key(cursor)
