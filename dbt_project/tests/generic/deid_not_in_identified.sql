{#- No value of a de-identified column equals a value of an identified column (a raw accession
    number, MRN, UID or person id that survived). -#}
{% test deid_not_in_identified(model, column_name, identified, identified_column) %}
select d.{{ column_name }} as surviving_identifier
from {{ model }} as d
where d.{{ column_name }} is not null
  and cast(d.{{ column_name }} as {{ dbt.type_string() }}) in (
      select cast({{ identified_column }} as {{ dbt.type_string() }}) from {{ identified }}
      where {{ identified_column }} is not null)
{% endtest %}
