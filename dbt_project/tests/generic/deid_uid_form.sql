{#- De-identified UIDs are hashed into the 2.25 (UUID-derived) form: digits and dots, <= 64 characters. -#}
{% test deid_uid_form(model, column_name) %}
select {{ column_name }} as bad_uid
from {{ model }}
where {{ column_name }} is not null
  and (length({{ column_name }}) > 64
       or not {{ imgomop_regexp_matches(column_name, '^2[.]25[.][1-9][0-9]*$') }})
{% endtest %}
