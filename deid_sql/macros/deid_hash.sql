{#-
  Keyed, domain-separated hashing (deid_sql/SPEC.md, operations 1-4).
    H(domain, value) = lowercase hex SHA-256 of UTF-8 (key || '|' || domain || '|' || value)
    int60(h, i)      = integer value of hex digits h[15*i : 15*i + 15]
  Domains are fixed strings ('uid', 'accession', 'person', 'jitter', 'offset:<name>', 'text'),
  passed to these macros as Jinja strings, never as columns.
-#}

{% macro deid_sha256_hex(expr) -%}
  {{ return(adapter.dispatch('deid_sha256_hex', 'imgomop')(expr)) }}
{%- endmacro %}

{% macro duckdb__deid_sha256_hex(expr) -%}
sha256({{ expr }})
{%- endmacro %}

{% macro bigquery__deid_sha256_hex(expr) -%}
TO_HEX(SHA256({{ expr }}))
{%- endmacro %}


{% macro deid_int60(hex_expr, i) -%}
  {{ return(adapter.dispatch('deid_int60', 'imgomop')(hex_expr, i)) }}
{%- endmacro %}

{% macro duckdb__deid_int60(hex_expr, i) -%}
cast('0x' || substr({{ hex_expr }}, {{ 15 * (i | int) + 1 }}, 15) as bigint)
{%- endmacro %}

{% macro bigquery__deid_int60(hex_expr, i) -%}
CAST(CONCAT('0x', SUBSTR({{ hex_expr }}, {{ 15 * (i | int) + 1 }}, 15)) AS INT64)
{%- endmacro %}


{#- Trim the spaces and NULs DICOM pads values with (both ends). -#}
{% macro deid_strip_padding(expr) -%}
  {{ return(adapter.dispatch('deid_strip_padding', 'imgomop')(expr)) }}
{%- endmacro %}

{% macro duckdb__deid_strip_padding(expr) -%}
trim({{ expr }}, ' ' || chr(0))
{%- endmacro %}

{% macro bigquery__deid_strip_padding(expr) -%}
REGEXP_REPLACE({{ expr }}, r'^[ \x00]+|[ \x00]+$', '')
{%- endmacro %}


{#- The name of the string type for casts. -#}
{% macro deid_string_type() -%}
  {{ return(adapter.dispatch('deid_string_type', 'imgomop')()) }}
{%- endmacro %}

{% macro duckdb__deid_string_type() -%}varchar{%- endmacro %}

{% macro bigquery__deid_string_type() -%}STRING{%- endmacro %}


{#- Domains are code, not data: refuse anything that could need quoting. -#}
{% macro deid_domain_literal(domain) -%}
  {%- if domain is not string or not modules.re.fullmatch('[a-z0-9_:.-]+', domain) -%}
    {{ exceptions.raise_compiler_error("deid: hash domain must match [a-z0-9_:.-]+, got " ~ domain) }}
  {%- endif -%}
'{{ domain }}'
{%- endmacro %}


{#- H(domain, value): value_expr is a string expression; key defaults to deid_key(). -#}
{% macro deid_keyed_hash(domain, value_expr, key=none) -%}
  {{ return(adapter.dispatch('deid_keyed_hash', 'imgomop')(domain, value_expr, key)) }}
{%- endmacro %}

{% macro default__deid_keyed_hash(domain, value_expr, key=none) -%}
{%- set key = key if key is not none else deid_key() -%}
{{ deid_sha256_hex(key ~ " || '|' || " ~ deid_domain_literal(domain) ~ " || '|' || " ~ value_expr) }}
{%- endmacro %}


{#- 1. hash_uid: '2.25.' || 38 decimal digits, no leading zero; NULL / empty after trimming -> NULL. -#}
{% macro deid_hash_uid(expr, key=none) -%}
  {{ return(adapter.dispatch('deid_hash_uid', 'imgomop')(expr, key)) }}
{%- endmacro %}

{% macro default__deid_hash_uid(expr, key=none) -%}
{%- set value = deid_strip_padding(expr) -%}
{%- set h = deid_keyed_hash('uid', value, key) -%}
(case when {{ value }} = '' then null else
  '2.25.'
  || cast(10 + mod({{ deid_int60(h, 0) }}, 90) as {{ deid_string_type() }})
  || lpad(cast(mod({{ deid_int60(h, 1) }}, 1000000000000000000) as {{ deid_string_type() }}), 18, '0')
  || lpad(cast(mod({{ deid_int60(h, 2) }}, 1000000000000000000) as {{ deid_string_type() }}), 18, '0')
end)
{%- endmacro %}


{#- 2. hash_text: first 16 hex digits of H(domain, trimmed value), to fit an SH element; NULL / empty -> NULL. -#}
{% macro deid_hash_text(domain, expr, key=none) -%}
  {{ return(adapter.dispatch('deid_hash_text', 'imgomop')(domain, expr, key)) }}
{%- endmacro %}

{% macro default__deid_hash_text(domain, expr, key=none) -%}
{%- set value = deid_strip_padding(expr) -%}
(case when {{ value }} = '' then null else substr({{ deid_keyed_hash(domain, value, key) }}, 1, 16) end)
{%- endmacro %}


{#- 3. substitute_id: 1 + int60(H('person', person_id as string), 0) mod (2^53 - 1). -#}
{% macro deid_substitute_id(expr, key=none) -%}
  {{ return(adapter.dispatch('deid_substitute_id', 'imgomop')(expr, key)) }}
{%- endmacro %}

{% macro default__deid_substitute_id(expr, key=none) -%}
{%- set h = deid_keyed_hash('person', 'cast(' ~ expr ~ ' as ' ~ deid_string_type() ~ ')', key) -%}
(1 + mod({{ deid_int60(h, 0) }}, 9007199254740991))
{%- endmacro %}


{#- 4. offset_id: id + 10^12 + int60(H('offset:' || name, 'offset'), 0) mod 10^12. -#}
{% macro deid_offset_id(name, expr, key=none) -%}
  {{ return(adapter.dispatch('deid_offset_id', 'imgomop')(name, expr, key)) }}
{%- endmacro %}

{% macro default__deid_offset_id(name, expr, key=none) -%}
{%- set h = deid_keyed_hash('offset:' ~ name, "'offset'", key) -%}
({{ expr }} + (1000000000000 + mod({{ deid_int60(h, 0) }}, 1000000000000)))
{%- endmacro %}
