{#- Typing DICOM strings, dispatched per adapter. Invalid values become NULL; the staging
    models keep a flag beside each typed value so nothing is lost silently. -#}

{% macro dicom_date(expr) -%}{{ adapter.dispatch('dicom_date', 'imgomop')(expr) }}{%- endmacro %}
{% macro duckdb__dicom_date(expr) -%}
CAST(TRY_STRPTIME(NULLIF(TRIM({{ expr }}), ''), '%Y%m%d') AS DATE)
{%- endmacro %}
{% macro bigquery__dicom_date(expr) -%}
SAFE.PARSE_DATE('%Y%m%d', NULLIF(TRIM({{ expr }}), ''))
{%- endmacro %}

{#- DA + TM -> DATETIME. TM keeps HH[MM[SS]]; fractions and a missing time are dropped/zeroed. -#}
{% macro dicom_datetime(date_expr, time_expr) -%}{{ adapter.dispatch('dicom_datetime', 'imgomop')(date_expr, time_expr) }}{%- endmacro %}
{% macro duckdb__dicom_datetime(date_expr, time_expr) -%}
TRY_STRPTIME(
    NULLIF(TRIM({{ date_expr }}), '') || RPAD(SUBSTR(SPLIT_PART(REPLACE(COALESCE(TRIM({{ time_expr }}), ''), ':', ''), '.', 1), 1, 6), 6, '0'),
    '%Y%m%d%H%M%S')
{%- endmacro %}
{% macro bigquery__dicom_datetime(date_expr, time_expr) -%}
SAFE.PARSE_DATETIME('%Y%m%d%H%M%S',
    CONCAT(NULLIF(TRIM({{ date_expr }}), ''), RPAD(SUBSTR(SPLIT(REPLACE(COALESCE(TRIM({{ time_expr }}), ''), ':', ''), '.')[SAFE_OFFSET(0)], 1, 6), 6, '0')))
{%- endmacro %}

{#- The first value of a multi-valued DS/IS string ('0.5\0.5' -> 0.5), as a float. -#}
{% macro dicom_first_number(expr) -%}{{ adapter.dispatch('dicom_first_number', 'imgomop')(expr) }}{%- endmacro %}
{% macro duckdb__dicom_first_number(expr) -%}
TRY_CAST(TRIM(SPLIT_PART({{ expr }}, '\', 1)) AS DOUBLE)
{%- endmacro %}
{% macro bigquery__dicom_first_number(expr) -%}
SAFE_CAST(TRIM(SPLIT({{ expr }}, '\\')[SAFE_OFFSET(0)]) AS FLOAT64)
{%- endmacro %}

{#- Global regular-expression replacement (DuckDB needs the 'g' flag; BigQuery always replaces all). -#}
{% macro regexp_replace_all(expr, pattern, replacement) -%}{{ adapter.dispatch('regexp_replace_all', 'imgomop')(expr, pattern, replacement) }}{%- endmacro %}
{% macro duckdb__regexp_replace_all(expr, pattern, replacement) -%}
REGEXP_REPLACE({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}
{% macro bigquery__regexp_replace_all(expr, pattern, replacement) -%}
REGEXP_REPLACE({{ expr }}, r'{{ pattern }}', '{{ replacement }}')
{%- endmacro %}

{#- MRNs compare as upper-case letters and digits without leading zeros ('00123-45 ' = '12345'). -#}
{% macro normalize_mrn(expr) -%}
NULLIF(LTRIM({{ regexp_replace_all('UPPER(TRIM(' ~ expr ~ '))', '[^A-Z0-9]', '') }}, '0'), '')
{%- endmacro %}

{% macro normalize_accession(expr) -%}
NULLIF(UPPER(TRIM({{ expr }})), '')
{%- endmacro %}

{#- Column types of the OMOP field spec. -#}
{% macro type_id() -%}{{ dbt.type_bigint() }}{%- endmacro %}
{% macro type_text() -%}{{ dbt.type_string() }}{%- endmacro %}
{% macro type_float() -%}{{ adapter.dispatch('type_float', 'imgomop')() }}{%- endmacro %}
{% macro default__type_float() -%}DOUBLE{%- endmacro %}
{% macro bigquery__type_float() -%}FLOAT64{%- endmacro %}
{% macro type_datetime() -%}{{ adapter.dispatch('type_datetime', 'imgomop')() }}{%- endmacro %}
{% macro default__type_datetime() -%}TIMESTAMP{%- endmacro %}
{% macro bigquery__type_datetime() -%}DATETIME{%- endmacro %}

{#- A stable 60-bit id from a text key (unkeyed: identified ids only; the de-identified marts offset them). -#}
{% macro stable_id(text_expr) -%}{{ adapter.dispatch('stable_id', 'imgomop')(text_expr) }}{%- endmacro %}
{% macro duckdb__stable_id(text_expr) -%}
CAST(('0x' || SUBSTR(SHA256({{ text_expr }}), 1, 15)) AS BIGINT)
{%- endmacro %}
{% macro bigquery__stable_id(text_expr) -%}
CAST(CONCAT('0x', SUBSTR(TO_HEX(SHA256({{ text_expr }})), 1, 15)) AS INT64)
{%- endmacro %}

{% macro make_date(year_expr, month_expr, day_expr) -%}{{ adapter.dispatch('make_date', 'imgomop')(year_expr, month_expr, day_expr) }}{%- endmacro %}
{% macro duckdb__make_date(year_expr, month_expr, day_expr) -%}MAKE_DATE(CAST({{ year_expr }} AS BIGINT), CAST({{ month_expr }} AS BIGINT), CAST({{ day_expr }} AS BIGINT)){%- endmacro %}
{% macro bigquery__make_date(year_expr, month_expr, day_expr) -%}DATE({{ year_expr }}, {{ month_expr }}, {{ day_expr }}){%- endmacro %}

{% macro imgomop_regexp_matches(expr, pattern) -%}{{ adapter.dispatch('imgomop_regexp_matches', 'imgomop')(expr, pattern) }}{%- endmacro %}
{% macro duckdb__imgomop_regexp_matches(expr, pattern) -%}REGEXP_MATCHES({{ expr }}, '{{ pattern }}'){%- endmacro %}
{% macro bigquery__imgomop_regexp_matches(expr, pattern) -%}REGEXP_CONTAINS({{ expr }}, r'{{ pattern }}'){%- endmacro %}
