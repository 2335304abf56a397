{#- Point in time (DESIGN §2): a plan month only sees extracts of that month and earlier.
    Models pass var('plan_month') in themselves, so unit tests can override it. -#}

{#- Master and planning extracts are full snapshots: keep the latest one the plan month
    may see. `relation` is a source() call. -#}
{% macro latest_snapshot(relation, plan_month) -%}
    _extract_month = (
        select max(_extract_month)
        from {{ relation }}
        where _extract_month <= '{{ plan_month }}'
    )
{%- endmacro %}

{#- Transaction extracts: the row of the latest extract month wins per key (a later
    extract may restate a row); within one file the last line wins. The winner is the row
    where this rank is 1 (a window expression: filter on it in the next CTE, which works
    on every warehouse, unlike DuckDB's `qualify`). -#}
{% macro latest_extract_rank(key_columns) -%}
    row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by _extract_month desc, _source_row desc
    )
{%- endmacro %}
