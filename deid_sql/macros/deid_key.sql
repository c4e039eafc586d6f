{#-
  The de-identification key, as a SQL expression. It is never a literal in a model, in
  compiled SQL or in a log:
  - DuckDB: the dbt-duckdb plugin extractor/build/duckdb_key_plugin.py sets the session
    variable imgomop_deid_key from the environment variable IMGOMOP_DEID_KEY (bound parameter);
    a build without it fails with an error naming the variable instead of writing NULL pseudonyms.
  - BigQuery: a one-row table `_imgomop_deid_key` (column deid_key) in the target dataset,
    written by imgomop from the environment / secret manager before the build.
  Every operation macro takes `key=` (a SQL expression) so tests can pass a published test key.
-#}
{% macro deid_key() -%}
  {{ return(adapter.dispatch('deid_key', 'imgomop')()) }}
{%- endmacro %}

{#-
  The cast matters: an unset variable is an untyped NULL, and DuckDB folds `NULL || ...` to NULL
  before the error() branch could run; typed as varchar, the missing key raises the error.
-#}
{% macro duckdb__deid_key() -%}
cast(case when getvariable('imgomop_deid_key') is null or getvariable('imgomop_deid_key') = ''
     then error('IMGOMOP_DEID_KEY is not set: export the de-identification key before dbt build (see deid_sql/SPEC.md)')
     else getvariable('imgomop_deid_key') end as varchar)
{%- endmacro %}

{% macro bigquery__deid_key() -%}
(SELECT deid_key FROM `{{ target.project }}.{{ target.dataset }}._imgomop_deid_key`)
{%- endmacro %}


{#-
  A one-character string holding U+0000 (DICOM pads UIDs with it). Used by the test vectors
  to decode `<NUL>`; the operations themselves never need it (BigQuery trims with a regex).
-#}
{% macro deid_nul_char() -%}
  {{ return(adapter.dispatch('deid_nul_char', 'imgomop')()) }}
{%- endmacro %}

{% macro default__deid_nul_char() -%}
chr(0)
{%- endmacro %}
