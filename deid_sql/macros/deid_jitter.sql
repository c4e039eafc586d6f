{#-
  5. Per-patient date jitter (deid_sql/SPEC.md, operation 5).
     R = max_days if given, else var('jitter_days_max') (default 30), R >= 1.
     v = int60(H('jitter', subject as string), 0) mod 2R
     jitter = v - R if v < R else v - R + 1        -- in [-R, -1] U [1, R], never 0
  The subject is the identified person_id (the scrubbing stage passes the same).
-#}

{% macro deid_jitter_max(max_days=none) -%}
  {%- set r = max_days if max_days is not none else var('jitter_days_max', 30) -%}
  {%- if not modules.re.fullmatch('[0-9]+', r | string | trim) or (r | int) < 1 -%}
    {{ exceptions.raise_compiler_error("deid: jitter_days_max must be an integer >= 1 (jitter is never 0), got " ~ r) }}
  {%- endif -%}
  {{ return(r | int) }}
{%- endmacro %}

{% macro deid_jitter_days(subject_expr, key=none, max_days=none) -%}
  {{ return(adapter.dispatch('deid_jitter_days', 'imgomop')(subject_expr, key, max_days)) }}
{%- endmacro %}

{% macro default__deid_jitter_days(subject_expr, key=none, max_days=none) -%}
{%- set r = deid_jitter_max(max_days) -%}
{%- set v = 'mod(' ~ deid_int60(deid_keyed_hash('jitter', 'cast(' ~ subject_expr ~ ' as ' ~ deid_string_type() ~ ')', key), 0) ~ ', ' ~ (2 * r) ~ ')' -%}
(case when {{ v }} < {{ r }} then {{ v }} - {{ r }} else {{ v }} - {{ r - 1 }} end)
{%- endmacro %}


{#- shift_date: date + jitter_days(subject) days (a DATE stays a DATE). -#}
{% macro deid_shift_date(date_expr, subject_expr, key=none, max_days=none) -%}
  {{ return(adapter.dispatch('deid_shift_date', 'imgomop')(date_expr, subject_expr, key, max_days)) }}
{%- endmacro %}

{% macro duckdb__deid_shift_date(date_expr, subject_expr, key=none, max_days=none) -%}
(cast({{ date_expr }} as date) + cast({{ deid_jitter_days(subject_expr, key, max_days) }} as integer))
{%- endmacro %}

{#- The outer CAST is a no-op on BigQuery; the emulator (crucible) returns a TIMESTAMP without it.
    The inner CASTs (here and in shift_datetime) match the DuckDB variants: BigQuery has no implicit
    TIMESTAMP/DATETIME -> DATE/DATETIME coercion, so DATE_ADD(<DATETIME>) or DATETIME_ADD(<TIMESTAMP>) (an EHR
    column loaded as TIMESTAMP) would fail there; the emulator accepts both, so only the cast makes it portable. -#}
{% macro bigquery__deid_shift_date(date_expr, subject_expr, key=none, max_days=none) -%}
CAST(DATE_ADD(CAST({{ date_expr }} AS DATE), INTERVAL {{ deid_jitter_days(subject_expr, key, max_days) }} DAY) AS DATE)
{%- endmacro %}


{#- shift_datetime: datetime + jitter_days(subject) days, time of day kept (DuckDB TIMESTAMP, BigQuery DATETIME). -#}
{% macro deid_shift_datetime(datetime_expr, subject_expr, key=none, max_days=none) -%}
  {{ return(adapter.dispatch('deid_shift_datetime', 'imgomop')(datetime_expr, subject_expr, key, max_days)) }}
{%- endmacro %}

{% macro duckdb__deid_shift_datetime(datetime_expr, subject_expr, key=none, max_days=none) -%}
({{ datetime_expr }} + to_days(cast({{ deid_jitter_days(subject_expr, key, max_days) }} as integer)))
{%- endmacro %}

{% macro bigquery__deid_shift_datetime(datetime_expr, subject_expr, key=none, max_days=none) -%}
DATETIME_ADD(CAST({{ datetime_expr }} AS DATETIME), INTERVAL {{ deid_jitter_days(subject_expr, key, max_days) }} DAY)
{%- endmacro %}
