{#- SQL that DuckDB and PostgreSQL spell differently, dispatched on the target's adapter
    (`dbt build --target duckdb|postgres`), so the models themselves run unchanged on both.
    Everything else in the models is SQL both warehouses accept. -#}

{#- One row per month start from `first_month` to `last_month` (DATE expressions, both
    included), as a set-returning expression of the select list. The rows are timestamps:
    cast them to date. -#}
{% macro month_series(first_month, last_month) -%}
    {{ return(adapter.dispatch('month_series', 'sop')(first_month, last_month)) }}
{%- endmacro %}

{% macro default__month_series(first_month, last_month) -%}
    generate_series(
        cast({{ first_month }} as timestamp), cast({{ last_month }} as timestamp), interval '1 month'
    )
{%- endmacro %}

{% macro duckdb__month_series(first_month, last_month) -%}
    unnest(generate_series({{ first_month }}, {{ last_month }}, interval 1 month))
{%- endmacro %}

{#- Session settings before a mart is built (a pre-hook, dbt_project.yml). PostgreSQL may
    split an aggregate over parallel workers and add their partial sums in any order; one
    process per query gives the same floating-point sums on every run. DuckDB's profile
    sets threads: 1 for the same reason. -#}
{% macro deterministic_session() -%}
    {{ return(adapter.dispatch('deterministic_session', 'sop')()) }}
{%- endmacro %}

{% macro default__deterministic_session() -%}
{%- endmacro %}

{% macro postgres__deterministic_session() -%}
    set max_parallel_workers_per_gather = 0
{%- endmacro %}
