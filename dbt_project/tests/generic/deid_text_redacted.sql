{#- A de-identified free-text value is made only of allowlisted tokens and masks: redacting it
    again changes nothing. -#}
{% test deid_text_redacted(model, column_name) %}
with texts as (
    select distinct {{ column_name }} as raw_text from {{ model }} where {{ column_name }} is not null
),
again as (
    {{ deid_redaction_table('texts', 'raw_text') }}
)
select raw_text as unredacted_text from again where raw_text <> redacted_text
{% endtest %}
