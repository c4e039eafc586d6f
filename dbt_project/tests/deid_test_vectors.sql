{#-
  Every vector of deid_sql/seeds/deid_test_vectors.csv, computed with the deid_sql macros
  (the vector's published test key passed as a literal), compared with the expected value
  that the Python implementation produced. Returns the rows that differ: any row fails.
  redact_text vectors are checked through both deid_redact_text (per value) and
  deid_redaction_table (set-based), against the real description_allowlist seed.
-#}
-- depends_on: {{ ref('description_allowlist') }}
{% set vectors_relation = ref('deid_test_vectors') -%}
{%- set groups = [] -%}
{%- if execute -%}
  {%- set groups = run_query(
      "select distinct operation, coalesce(param, '') as param, key from " ~ vectors_relation ~ " order by 1, 2, 3"
  ).rows -%}
{%- endif -%}
{%- set str = deid_string_type() -%}

with vectors as (
    select
        vector_id,
        operation,
        coalesce(param, '') as param,
        key,
        case when input = '<EMPTY>' then '' else replace(input, '<NUL>', {{ deid_nul_char() }}) end as input,
        case when expected = '<EMPTY>' then '' else expected end as expected
    from {{ vectors_relation }}
),

split_vectors as (
    -- shift_date / shift_datetime inputs are "<value>|<subject>"
    select
        vector_id,
        nullif(substr(input, 1, strpos(input, '|') - 1), '') as value_text,
        nullif(substr(input, strpos(input, '|') + 1), '') as subject
    from vectors
    where operation in ('shift_date', 'shift_datetime')
),

results as (
    select vector_id, 'none' as via, cast(null as {{ str }}) as actual from vectors where 1 = 0
{%- for row in groups %}
  {%- set op = row[0] -%}
  {%- set param = row[1] -%}
  {%- set key = "'" ~ (row[2] | replace("'", "''")) ~ "'" -%}
  {%- set where = "v.operation = '" ~ op ~ "' and v.param = '" ~ param ~ "' and v.key = " ~ key %}
    union all
  {%- if op == 'keyed_hash' %}
    select v.vector_id, 'deid_keyed_hash', {{ deid_keyed_hash(param, 'v.input', key=key) }} from vectors as v where {{ where }}
  {%- elif op == 'hash_uid' %}
    select v.vector_id, 'deid_hash_uid', {{ deid_hash_uid('v.input', key=key) }} from vectors as v where {{ where }}
  {%- elif op == 'hash_text' %}
    select v.vector_id, 'deid_hash_text', {{ deid_hash_text(param, 'v.input', key=key) }} from vectors as v where {{ where }}
  {%- elif op == 'substitute_id' %}
    select v.vector_id, 'deid_substitute_id', cast({{ deid_substitute_id('cast(v.input as bigint)', key=key) }} as {{ str }}) from vectors as v where {{ where }}
  {%- elif op == 'offset_id' %}
    select v.vector_id, 'deid_offset_id', cast({{ deid_offset_id(param, 'cast(v.input as bigint)', key=key) }} as {{ str }}) from vectors as v where {{ where }}
  {%- elif op == 'jitter_days' %}
    select v.vector_id, 'deid_jitter_days', cast({{ deid_jitter_days('v.input', key=key, max_days=param) }} as {{ str }}) from vectors as v where {{ where }}
  {%- elif op == 'shift_date' %}
    select v.vector_id, 'deid_shift_date', cast({{ deid_shift_date('cast(s.value_text as date)', 's.subject', key=key, max_days=param) }} as {{ str }})
    from vectors as v join split_vectors as s on s.vector_id = v.vector_id where {{ where }}
  {%- elif op == 'shift_datetime' %}
    select v.vector_id, 'deid_shift_datetime', cast({{ deid_shift_datetime('cast(s.value_text as ' ~ deid_datetime_type() ~ ')', 's.subject', key=key, max_days=param) }} as {{ str }})
    from vectors as v join split_vectors as s on s.vector_id = v.vector_id where {{ where }}
  {%- elif op == 'redact_patterns' %}
    select v.vector_id, 'deid_redact_patterns', {{ deid_redact_patterns('v.input') }} from vectors as v where {{ where }}
  {%- elif op == 'redact_text' %}
    select v.vector_id, 'deid_redact_text', {{ deid_redact_text('v.input') }} from vectors as v where {{ where }}
    union all
    select v.vector_id, 'deid_redaction_table', r.redacted_text
    from vectors as v
    left join ({{ deid_redaction_table("(select input from vectors where operation = 'redact_text')", 'input') }}) as r
        on r.raw_text = v.input
    where {{ where }}
  {%- elif op == 'delete' %}
    select v.vector_id, 'deid_delete', cast({{ deid_delete(param) }} as {{ str }}) from vectors as v where {{ where }}
  {%- else %}
    select v.vector_id, 'unknown operation', cast(null as {{ str }}) from vectors as v where {{ where }}
  {%- endif %}
{%- endfor %}
)

select v.vector_id, v.operation, v.param, r.via, v.expected, r.actual
from vectors as v
left join results as r on r.vector_id = v.vector_id
where r.vector_id is null                                   -- a vector no branch computed
   or r.via = 'unknown operation'
   or (r.actual is null) <> (v.expected is null)
   or r.actual <> v.expected
