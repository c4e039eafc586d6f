"""`imgomop check`: data-quality and PHI-leakage checks with great-expectations.

rules.py names every rule and its default criticality; settings.py reads [check] from
imgomop.toml; sql.py writes the SQL (DuckDB and BigQuery); suites.py builds the expectation
suites of each layer (raw, marts, deid, scrub) from the project's own rules; connection.py
connects GX to both warehouses at once; runner.py runs them and writes Data Docs;
summary.py prints the table. great-expectations is imported only when checks run.
"""
