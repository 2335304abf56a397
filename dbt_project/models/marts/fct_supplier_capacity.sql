-- What each supplier can deliver of each item per horizon month. A row given for a family
-- applies to every item of that family; a row for the item itself wins over its family's.
-- Every supplier × item that has a row gets every horizon month: max_qty is null (no
-- stated limit) in a month the extract does not mention, lead time and unit cost then
-- come from the nearest stated month of the pair (latest earlier, else earliest later).
with

capacities as (

    select * from {{ ref('stg_erp__supplier_capacities') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

bounds as (

    select
        cast('{{ var("horizon_start") }}' as date) as horizon_start,
        cast('{{ var("horizon_end") }}' as date) as horizon_end

),

horizon as (

    select cast({{ month_series('horizon_start', 'horizon_end') }} as date) as month
    from bounds

),

item_rows as (

    select
        supplier_id,
        item_id,
        month,
        max_qty,
        lead_time_days,
        unit_cost,
        1 as scope_rank
    from capacities
    where item_id is not null

),

family_rows as (

    select
        capacities.supplier_id,
        items.item_id,
        capacities.month,
        capacities.max_qty,
        capacities.lead_time_days,
        capacities.unit_cost,
        2 as scope_rank
    from capacities
    inner join items
        on capacities.family = items.family
    where capacities.item_id is null

),

stated_ranked as (

    select
        *,
        row_number() over (
            partition by supplier_id, item_id, month order by scope_rank
        ) as stated_rank
    from (
        select * from item_rows
        union all
        select * from family_rows
    ) as scoped

),

stated as (

    select * from stated_ranked
    where stated_rank = 1

),

pairs as (

    select distinct
        supplier_id,
        item_id
    from stated

),

grid as (

    select
        pairs.supplier_id,
        pairs.item_id,
        horizon.month
    from pairs
    cross join horizon

),

nearest as (

    select
        grid.supplier_id,
        grid.item_id,
        grid.month,
        stated.lead_time_days,
        stated.unit_cost,
        row_number() over (
            partition by grid.supplier_id, grid.item_id, grid.month
            order by
                case when stated.month <= grid.month then 0 else 1 end,
                abs(grid.month - stated.month)
        ) as nearest_rank
    from grid
    inner join stated
        on
            grid.supplier_id = stated.supplier_id
            and grid.item_id = stated.item_id

),

final as (

    select
        cast(grid.supplier_id as varchar) as supplier_id,
        cast(grid.item_id as varchar) as item_id,
        cast(grid.month as date) as month,
        cast(stated.max_qty as double precision) as max_qty,
        cast(nearest.lead_time_days as integer) as lead_time_days,
        cast(nearest.unit_cost as double precision) as unit_cost,
        stated.month is not null as is_stated
    from grid
    left join stated
        on
            grid.supplier_id = stated.supplier_id
            and grid.item_id = stated.item_id
            and grid.month = stated.month
    left join nearest
        on
            grid.supplier_id = nearest.supplier_id
            and grid.item_id = nearest.item_id
            and grid.month = nearest.month
            and nearest.nearest_rank = 1

)

select * from final
