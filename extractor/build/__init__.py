"""Stage 2: load the EHR side and build the OMOP imaging tables with dbt."""
