-- Supply already on order: open production orders (planned/released) and open purchase
-- orders, with what is still to come. Overdue orders are expected at the start of the
-- horizon, not in a month that has passed.
with

production_orders as (

    select * from {{ ref('stg_erp__production_orders') }}

),

purchase_orders as (

    select * from {{ ref('stg_erp__purchase_orders') }}

),

open_orders as (

    select
        'production' as supply_type,
        order_id,
        item_id,
        location_id,
        work_center_id,
        null as supplier_id,
        due_date,
        cast(qty_planned as double precision) - coalesce(cast(qty_completed as double precision), 0) as open_qty
    from production_orders
    where status in ('planned', 'released')

    union all

    select
        'purchase' as supply_type,
        po_id as order_id,
        item_id,
        location_id,
        null as work_center_id,
        supplier_id,
        due_date,
        cast(qty_ordered as double precision) - coalesce(cast(qty_received as double precision), 0) as open_qty
    from purchase_orders
    where status = 'open'

),

final as (

    select
        cast(supply_type as varchar) as supply_type,
        cast(order_id as varchar) as order_id,
        cast(item_id as varchar) as item_id,
        cast(location_id as varchar) as location_id,
        cast(work_center_id as varchar) as work_center_id,
        greatest(
            cast(date_trunc('month', due_date) as date),
            cast('{{ var("horizon_start") }}' as date)
        ) as due_month,
        cast(open_qty as double precision) as open_qty,
        cast(supplier_id as varchar) as supplier_id
    from open_orders
    where open_qty > 0

)

select * from final
