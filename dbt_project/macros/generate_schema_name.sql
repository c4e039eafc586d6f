{#- A custom schema is used as written, not prefixed with the target schema: the de-identified
    marts land exactly in the configured de-identified dataset. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
