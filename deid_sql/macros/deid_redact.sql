{#-
  6. Two-stage allowlist redaction of free text (deid_sql/SPEC.md, operation 6).
     Stage 1, per value (deid_redact_patterns): printable ASCII, upper case, pattern masks,
     then every run of characters outside [A-Z0-9[]] becomes one space, trimmed.
     Stage 2, set-based (deid_redaction_table): split on spaces; keep masks, allowlisted
     tokens (seed description_allowlist) and numbers of 1-4 digits; every other token -> [X].
-#}

{#-
  The stage-1 patterns, in order: "<mask> <RE2 pattern>" per line. Kept character for
  character identical to REDACTION_PATTERNS in extractor/deid/pseudonymize.py and SPEC.md.
  (A raw block, so Jinja does not touch the backslashes.)
-#}
{% macro deid_redaction_patterns() -%}
{%- set table -%}
[EMAIL] [A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}
[DATE] \b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b
[DATE] \b(19|20)\d{6}\b
[TIME] \b\d{1,2}:\d{2}(:\d{2})?\b
[PHONE] \(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4}\b
[ID] \b[A-Z]{0,3}\d{5,}\b
[ID] \b(\d{2,4}([ _-]\d{2,4}){2,}|\d{3,4}[ _-]\d{2,4}|\d{2}[ _-]\d{3,4})\b
{%- endset -%}
  {%- set patterns = [] -%}
  {%- for line in table.strip().split('\n') -%}
    {%- set parts = line.split(' ', 1) -%}
    {%- do patterns.append((parts[0], parts[1])) -%}
  {%- endfor -%}
  {{ return(patterns) }}
{%- endmacro %}

{% macro deid_redaction_masks() -%}
  {{ return(['[EMAIL]', '[DATE]', '[TIME]', '[PHONE]', '[ID]', '[X]']) }}
{%- endmacro %}


{#- A regular expression as a SQL string literal. -#}
{% macro deid_regex_literal(pattern) -%}
  {{ return(adapter.dispatch('deid_regex_literal', 'imgomop')(pattern)) }}
{%- endmacro %}

{% macro duckdb__deid_regex_literal(pattern) -%}
'{{ pattern | replace("'", "''") }}'
{%- endmacro %}

{% macro bigquery__deid_regex_literal(pattern) -%}
  {%- if "'" in pattern -%}
    {{ exceptions.raise_compiler_error("deid: a BigQuery raw-string pattern cannot contain a single quote: " ~ pattern) }}
  {%- endif -%}
r'{{ pattern }}'
{%- endmacro %}


{#- Global regular-expression replacement. -#}
{% macro deid_regexp_replace_all(expr, pattern, replacement) -%}
  {{ return(adapter.dispatch('deid_regexp_replace_all', 'imgomop')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro duckdb__deid_regexp_replace_all(expr, pattern, replacement) -%}
regexp_replace({{ expr }}, {{ deid_regex_literal(pattern) }}, '{{ replacement }}', 'g')
{%- endmacro %}

{% macro bigquery__deid_regexp_replace_all(expr, pattern, replacement) -%}
REGEXP_REPLACE({{ expr }}, {{ deid_regex_literal(pattern) }}, '{{ replacement }}')
{%- endmacro %}


{#- Whole-string regular-expression match (boolean). -#}
{% macro deid_regexp_full_match(expr, pattern) -%}
  {{ return(adapter.dispatch('deid_regexp_full_match', 'imgomop')(expr, pattern)) }}
{%- endmacro %}

{% macro duckdb__deid_regexp_full_match(expr, pattern) -%}
regexp_full_match({{ expr }}, {{ deid_regex_literal(pattern) }})
{%- endmacro %}

{% macro bigquery__deid_regexp_full_match(expr, pattern) -%}
REGEXP_CONTAINS({{ expr }}, {{ deid_regex_literal('^(?:' ~ pattern ~ ')$') }})
{%- endmacro %}


{#- Stage 1 for one value (SPEC 6a-6c); NULL -> NULL. Same SQL on both adapters. -#}
{% macro deid_redact_patterns(expr) -%}
  {{ return(adapter.dispatch('deid_redact_patterns', 'imgomop')(expr)) }}
{%- endmacro %}

{% macro default__deid_redact_patterns(expr) -%}
  {%- set ns = namespace(s='upper(' ~ deid_regexp_replace_all(expr, '[^ -~]', ' ') ~ ')') -%}
  {%- for mask, pattern in deid_redaction_patterns() -%}
    {%- set ns.s = deid_regexp_replace_all(ns.s, pattern, ' ' ~ mask ~ ' ') -%}
  {%- endfor -%}
trim({{ deid_regexp_replace_all(ns.s, '[^A-Z0-9\\[\\]]+', ' ') }}, ' ')
{%- endmacro %}


{#- The allowlist as stage 2 compares it: trimmed, [A-Za-z0-9]+ only, upper case, distinct. -#}
{% macro deid_allowlist_tokens() -%}
select distinct upper(trim(token, ' ')) as token
from {{ ref('description_allowlist') }}
where token is not null and {{ deid_regexp_full_match("trim(token, ' ')", '[A-Za-z0-9]+') }}
{%- endmacro %}


{#- Stage 2 rule for one token, without the allowlist: a mask or a number of 1-4 digits. -#}
{% macro deid_token_always_kept(token_expr) -%}
({{ token_expr }} in ('{{ deid_redaction_masks() | join("', '") }}') or {{ deid_regexp_full_match(token_expr, '[0-9]{1,4}') }})
{%- endmacro %}


{#-
  Set-based two-stage redaction of the DISTINCT non-NULL values of `column` in `relation`
  (a relation, or a parenthesised subquery). Returns a SELECT of (raw_text, redacted_text);
  join it back on raw_text (a NULL description stays NULL through the left join).
-#}
{% macro deid_redaction_table(relation, column) -%}
  {{ return(adapter.dispatch('deid_redaction_table', 'imgomop')(relation, column)) }}
{%- endmacro %}

{% macro duckdb__deid_redaction_table(relation, column) -%}
select s.raw_text, coalesce(string_agg(k.kept, ' ' order by k.token_position), '') as redacted_text
from (
    select distinct {{ column }} as raw_text from {{ relation }} as _deid_src where {{ column }} is not null
) as s
left join (
    select t.raw_text, t.token_position,
           case when {{ deid_token_always_kept('t.token') }} or a.token is not null then t.token else '[X]' end as kept
    from (
        select x.raw_text, u.token, u.token_position
        from (
            select raw_text, {{ deid_redact_patterns('raw_text') }} as stage1
            from (select distinct {{ column }} as raw_text from {{ relation }} as _deid_src where {{ column }} is not null) as d
        ) as x,
        unnest(string_split(x.stage1, ' ')) with ordinality as u(token, token_position)
    ) as t
    left join ({{ deid_allowlist_tokens() }}) as a on a.token = t.token
    where t.token <> ''
) as k on k.raw_text = s.raw_text
group by s.raw_text
{%- endmacro %}

{% macro bigquery__deid_redaction_table(relation, column) -%}
select s.raw_text, coalesce(string_agg(k.kept, ' ' order by k.token_position), '') as redacted_text
from (
    select distinct {{ column }} as raw_text from {{ relation }} as _deid_src where {{ column }} is not null
) as s
left join (
    select t.raw_text, t.token_position,
           case when {{ deid_token_always_kept('t.token') }} or a.token is not null then t.token else '[X]' end as kept
    from (
        select x.raw_text, token, token_position
        from (
            select raw_text, {{ deid_redact_patterns('raw_text') }} as stage1
            from (select distinct {{ column }} as raw_text from {{ relation }} as _deid_src where {{ column }} is not null) as d
        ) as x
        cross join unnest(split(x.stage1, ' ')) as token with offset as token_position
    ) as t
    left join ({{ deid_allowlist_tokens() }}) as a on a.token = t.token
    where t.token <> ''
) as k on k.raw_text = s.raw_text
group by s.raw_text
{%- endmacro %}


{#-
  Two-stage redaction of one value, as a scalar expression (a correlated subquery per row).
  Fine for small tables and ad-hoc queries; for a mart use deid_redaction_table and a join.
-#}
{% macro deid_redact_text(expr) -%}
  {{ return(adapter.dispatch('deid_redact_text', 'imgomop')(expr)) }}
{%- endmacro %}

{% macro duckdb__deid_redact_text(expr) -%}
(case when {{ expr }} is null then null else coalesce((
    select string_agg(
             case when {{ deid_token_always_kept('u.token') }}
                       or u.token in (select token from ({{ deid_allowlist_tokens() }}) as a)
                  then u.token else '[X]' end,
             ' ' order by u.token_position)
    from unnest(string_split({{ deid_redact_patterns(expr) }}, ' ')) with ordinality as u(token, token_position)
    where u.token <> ''
), '') end)
{%- endmacro %}

{% macro bigquery__deid_redact_text(expr) -%}
(case when {{ expr }} is null then null else coalesce((
    select string_agg(
             case when {{ deid_token_always_kept('token') }}
                       or token in (select token from ({{ deid_allowlist_tokens() }}) as a)
                  then token else '[X]' end,
             ' ' order by token_position)
    from unnest(split({{ deid_redact_patterns(expr) }}, ' ')) as token with offset as token_position
    where token <> ''
), '') end)
{%- endmacro %}
