-- Planner overrides with scope and adjustment parsed:
--   scope: an item_id -> scope_type 'item'; else a family name -> 'family'; else 'unknown'
--          (kept, so the accepted_values test on scope_type fails instead of a silent drop)
--   adjustment: '120' / '-40' -> qty; '+15%' / '-10%' -> pct as a fraction (-0.10);
--          anything else -> adjustment_type null (the not_null test fails).
with

overrides as (

    select * from {{ ref('stg_planning__demand_overrides') }}

),

items as (

    select * from {{ ref('stg_erp__items') }}

),

item_ids as (

    select distinct item_id from items

),

families as (

    select distinct family from items

),

parsed as (

    select
        overrides.scope as scope_id,
        overrides.month,
        overrides.adjustment,
        overrides.reason_code,
        overrides.author,
        overrides.comment,
        case
            when item_ids.item_id is not null then 'item'
            when families.family is not null then 'family'
            else 'unknown'
        end as scope_type,
        case
            -- `~` with ^...$ is a whole-string regex match on DuckDB and PostgreSQL alike
            when overrides.adjustment ~ '^[+-]?[0-9]+(\.[0-9]+)?%$' then 'pct'
            when overrides.adjustment ~ '^[+-]?[0-9]+(\.[0-9]+)?$' then 'qty'
        end as adjustment_type
    from overrides
    left join item_ids
        on overrides.scope = item_ids.item_id
    left join families
        on overrides.scope = families.family

),

final as (

    select
        scope_type,
        scope_id,
        month,
        adjustment_type,
        case adjustment_type
            when 'pct' then cast(rtrim(adjustment, '%') as double precision) / 100
            when 'qty' then cast(adjustment as double precision)
        end as adjustment_value,
        adjustment as adjustment_text,
        reason_code,
        author,
        comment
    from parsed

)

select * from final
