{#- Custom schema names are used verbatim (staging, intermediate, marts), not prefixed
    with the target schema, so Python and BI read `marts.fct_...` whatever the target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
