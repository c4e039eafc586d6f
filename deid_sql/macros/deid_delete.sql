{#-
  7. delete -> a typed NULL; pass -> the value unchanged (no macro needed);
     replace local_path -> the scrubbed file's location from the scrub manifest (a join in the mart).
  `type` is a SQL type name, or one of the generic names below, translated per adapter.
-#}
{% macro deid_delete(type) -%}
  {{ return(adapter.dispatch('deid_delete', 'imgomop')(type)) }}
{%- endmacro %}

{% macro default__deid_delete(type) -%}
  {%- set generic = {
      'string': dbt.type_string(),
      'text': dbt.type_string(),
      'integer': dbt.type_bigint(),
      'int': dbt.type_bigint(),
      'bigint': dbt.type_bigint(),
      'float': dbt.type_float(),
      'date': 'date',
      'timestamp': dbt.type_timestamp(),
      'datetime': deid_datetime_type(),
      'boolean': dbt.type_boolean(),
  } -%}
cast(null as {{ generic.get(type | lower, type) }})
{%- endmacro %}

{% macro deid_datetime_type() -%}
  {{ return(adapter.dispatch('deid_datetime_type', 'imgomop')()) }}
{%- endmacro %}

{% macro duckdb__deid_datetime_type() -%}timestamp{%- endmacro %}

{% macro bigquery__deid_datetime_type() -%}DATETIME{%- endmacro %}
