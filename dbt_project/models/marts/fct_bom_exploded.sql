-- Multi-level explosion of the bills of material: every made item (a parent in the BOM)
-- to every component at every level below it, with the quantity per unit of the top item
-- (qty_per / (1 - scrap_pct) multiplied down the path), the lead time of the made levels
-- above the component (when it must be there before the top item is finished) and the
-- window in which the whole path is valid. Only paths valid at some point of the plan's
-- horizon are kept; the supply plan applies the window to each production month.
-- Cycles are rejected at ingest; the level limit only guards the recursion.
with recursive

bom_lines as (

    select * from {{ ref('stg_erp__bom_lines') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

bounds as (

    select
        cast('{{ var("horizon_start") }}' as date) as horizon_start,
        -- the last day of the last horizon month
        cast(cast('{{ var("horizon_end") }}' as date) + interval '1 month' as date) - 1 as horizon_last_day

),

lines as (

    select
        cast(bom_lines.parent_item_id as varchar) as parent_item_id,
        cast(bom_lines.component_item_id as varchar) as component_item_id,
        cast(bom_lines.qty_per as double precision)
        / (1 - cast(bom_lines.scrap_pct as double precision)) as qty_per_with_scrap,
        cast(coalesce(bom_lines.valid_from, date '1900-01-01') as date) as valid_from,
        cast(coalesce(bom_lines.valid_to, date '9999-12-31') as date) as valid_to,
        cast(coalesce(items.lead_time_days, 0) as integer) as parent_lead_time_days
    from bom_lines
    left join items
        on bom_lines.parent_item_id = items.item_id
    cross join bounds
    where
        coalesce(bom_lines.valid_from, date '1900-01-01') <= bounds.horizon_last_day
        and coalesce(bom_lines.valid_to, date '9999-12-31') >= bounds.horizon_start

),

explosion as (

    select
        parent_item_id as top_item_id,
        parent_item_id,
        component_item_id,
        1 as bom_level,
        cast(parent_item_id || ' > ' || component_item_id as varchar) as bom_path,
        qty_per_with_scrap as qty_per_cumulative,
        parent_lead_time_days as lead_time_offset_days,
        valid_from,
        valid_to
    from lines

    union all

    select
        explosion.top_item_id,
        lines.parent_item_id,
        lines.component_item_id,
        explosion.bom_level + 1 as bom_level,
        cast(explosion.bom_path || ' > ' || lines.component_item_id as varchar) as bom_path,
        explosion.qty_per_cumulative * lines.qty_per_with_scrap as qty_per_cumulative,
        explosion.lead_time_offset_days + lines.parent_lead_time_days as lead_time_offset_days,
        greatest(explosion.valid_from, lines.valid_from) as valid_from,
        least(explosion.valid_to, lines.valid_to) as valid_to
    from explosion
    inner join lines
        on explosion.component_item_id = lines.parent_item_id
    where
        explosion.bom_level < 20
        and lines.valid_from <= explosion.valid_to
        and lines.valid_to >= explosion.valid_from

),

parents as (

    select distinct parent_item_id from lines

),

final as (

    select
        cast(explosion.top_item_id as varchar) as top_item_id,
        cast(explosion.component_item_id as varchar) as component_item_id,
        cast(explosion.parent_item_id as varchar) as parent_item_id,
        cast(explosion.bom_level as integer) as bom_level,
        cast(explosion.bom_path as varchar) as bom_path,
        cast(explosion.qty_per_cumulative as double precision) as qty_per_cumulative,
        cast(explosion.lead_time_offset_days as integer) as lead_time_offset_days,
        -- a made level of up to 30 days is finished in the month its material arrives
        cast(floor(explosion.lead_time_offset_days / 30.0) as integer) as lead_time_offset_months,
        cast(explosion.valid_from as date) as valid_from,
        -- open-ended: null (9999-12-31 does not fit every client's date type)
        cast(nullif(explosion.valid_to, date '9999-12-31') as date) as valid_to,
        parents.parent_item_id is null as is_leaf
    from explosion
    left join parents
        on explosion.component_item_id = parents.parent_item_id

)

select * from final
