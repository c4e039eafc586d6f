{#- A column the de-identification deletes holds no value at all. -#}
{% test deid_deleted(model, column_name) %}
select {{ column_name }} as surviving_value from {{ model }} where {{ column_name }} is not null
{% endtest %}
